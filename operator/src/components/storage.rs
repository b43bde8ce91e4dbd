//! Storage: the S3 bucket that holds images (`images/`) and events
//! (`events/`), private, encrypted, TLS-only, and forgetting everything after
//! `retentionDays`.

use std::collections::BTreeMap;

use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint,
    CreateBucketConfiguration, Delete, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter, ObjectIdentifier, ObjectOwnership, PublicAccessBlockConfiguration,
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
    ServerSideEncryptionRule, Tagging,
};
use ingest_core::contract::prefix;
use serde_json::{Value, json};

use super::{built, ownership};
use crate::api::v1alpha1::DeletionPolicy;
use crate::aws::AwsClients;
use crate::aws::errors::{classify, code, status};
use crate::engine::{
    Action, Change, Component, ComponentError, ComponentKind, Outputs, PipelineContext, Readiness,
    tag_changes,
};
use crate::resources::tags::{from_sdk, to_sdk};

/// Prefixes that expire after `retentionDays`: images, Firehose events, and
/// the records Firehose could not deliver.
const EXPIRING_PREFIXES: [&str; 3] = [prefix::IMAGES, prefix::EVENTS, prefix::ERRORS];
/// Multipart uploads abandoned by a crashed writer are removed after a day.
const ABORT_INCOMPLETE_UPLOADS_AFTER_DAYS: i32 = 1;
const ABORT_RULE_ID: &str = "abort-incomplete-uploads";
/// S3 DeleteObjects takes at most 1,000 keys.
const DELETE_OBJECTS_BATCH: usize = 1000;

pub struct Storage;

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredStorage {
    pub bucket: String,
    pub arn: String,
    pub region: String,
    pub owner: String,
    pub tags: BTreeMap<String, String>,
    pub lifecycle: Vec<ExpiryRule>,
    /// The TLS-only bucket policy.
    pub policy: Value,
}

/// A lifecycle rule reduced to what the operator manages.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExpiryRule {
    pub id: String,
    pub prefix: String,
    pub expiration_days: Option<i32>,
    pub abort_incomplete_upload_days: Option<i32>,
    pub enabled: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub enum ObservedStorage {
    #[default]
    Absent,
    /// The name belongs to a bucket this account cannot use.
    Unavailable {
        status: u16,
    },
    Present(BucketConfig),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct BucketConfig {
    pub tags: BTreeMap<String, String>,
    pub public_access_blocked: bool,
    pub encryption: Option<String>,
    pub policy: Option<Value>,
    pub lifecycle: Vec<ExpiryRule>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StorageStep {
    CreateBucket,
    BlockPublicAccess,
    EnableDefaultEncryption,
    PutTlsOnlyPolicy {
        observed: Option<Value>,
    },
    PutLifecycle {
        observed: Vec<ExpiryRule>,
    },
    SetTags {
        observed: BTreeMap<String, String>,
        desired: BTreeMap<String, String>,
    },
    EmptyAndDeleteBucket,
}

impl Component for Storage {
    const KIND: ComponentKind = ComponentKind::Storage;
    const DEPENDS_ON: &'static [ComponentKind] = &[];
    type Desired = DesiredStorage;
    type Observed = ObservedStorage;
    type Step = StorageStep;

    fn desired(ctx: &PipelineContext, _upstream: &Outputs) -> Result<DesiredStorage, ComponentError> {
        let bucket = ctx.bucket_name();
        let bucket_arn = ctx.bucket_arn();
        let days = ctx.spec.storage.retention_days;
        let mut lifecycle: Vec<ExpiryRule> = EXPIRING_PREFIXES
            .iter()
            .map(|prefix| ExpiryRule {
                id: format!("expire-{}", prefix.trim_end_matches('/')),
                prefix: (*prefix).to_owned(),
                expiration_days: Some(days),
                abort_incomplete_upload_days: None,
                enabled: true,
            })
            .collect();
        lifecycle.push(ExpiryRule {
            id: ABORT_RULE_ID.to_owned(),
            prefix: String::new(),
            expiration_days: None,
            abort_incomplete_upload_days: Some(ABORT_INCOMPLETE_UPLOADS_AFTER_DAYS),
            enabled: true,
        });
        lifecycle.sort();
        Ok(DesiredStorage {
            policy: tls_only_policy(&bucket_arn),
            arn: bucket_arn,
            bucket,
            region: ctx.region().to_owned(),
            owner: ctx.owner.tag_value(),
            tags: ctx.tags(Self::KIND),
            lifecycle,
        })
    }

    async fn observe(aws: &AwsClients, desired: &DesiredStorage) -> Result<ObservedStorage, ComponentError> {
        let s3 = &aws.s3;
        let bucket = desired.bucket.as_str();
        if let Err(err) = s3.head_bucket().bucket(bucket).send().await {
            return match status(&err) {
                Some(404) => Ok(ObservedStorage::Absent),
                Some(status @ (301 | 403)) => Ok(ObservedStorage::Unavailable { status }),
                _ => Err(classify(&format!("look up S3 bucket {bucket}"), err)),
            };
        }
        let mut config = BucketConfig::default();
        match s3.get_bucket_tagging().bucket(bucket).send().await {
            Ok(out) => config.tags = from_sdk(out.tag_set()),
            Err(err) if code(&err) == Some("NoSuchTagSet") => {}
            Err(err) => return Err(classify(&format!("read tags of S3 bucket {bucket}"), err)),
        }
        match s3.get_public_access_block().bucket(bucket).send().await {
            Ok(out) => {
                config.public_access_blocked = out.public_access_block_configuration().is_some_and(|c| {
                    c.block_public_acls() == Some(true)
                        && c.ignore_public_acls() == Some(true)
                        && c.block_public_policy() == Some(true)
                        && c.restrict_public_buckets() == Some(true)
                })
            }
            Err(err) if code(&err) == Some("NoSuchPublicAccessBlockConfiguration") => {}
            Err(err) => {
                return Err(classify(
                    &format!("read public access block of S3 bucket {bucket}"),
                    err,
                ));
            }
        }
        match s3.get_bucket_encryption().bucket(bucket).send().await {
            Ok(out) => {
                config.encryption = out
                    .server_side_encryption_configuration()
                    .and_then(|c| c.rules().first())
                    .and_then(|rule| rule.apply_server_side_encryption_by_default())
                    .map(|default| default.sse_algorithm().as_str().to_owned())
            }
            Err(err) if code(&err) == Some("ServerSideEncryptionConfigurationNotFoundError") => {}
            Err(err) => return Err(classify(&format!("read encryption of S3 bucket {bucket}"), err)),
        }
        match s3.get_bucket_policy().bucket(bucket).send().await {
            Ok(out) => config.policy = out.policy().and_then(|text| serde_json::from_str(text).ok()),
            Err(err) if code(&err) == Some("NoSuchBucketPolicy") => {}
            Err(err) => return Err(classify(&format!("read policy of S3 bucket {bucket}"), err)),
        }
        match s3
            .get_bucket_lifecycle_configuration()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(out) => {
                config.lifecycle = out.rules().iter().map(expiry_rule).collect();
                config.lifecycle.sort();
            }
            Err(err) if code(&err) == Some("NoSuchLifecycleConfiguration") => {}
            Err(err) => {
                return Err(classify(
                    &format!("read lifecycle rules of S3 bucket {bucket}"),
                    err,
                ));
            }
        }
        Ok(ObservedStorage::Present(config))
    }

    fn converge(
        desired: &DesiredStorage,
        observed: &ObservedStorage,
    ) -> Result<Vec<StorageStep>, ComponentError> {
        let config = match observed {
            ObservedStorage::Absent => {
                return Ok(vec![
                    StorageStep::CreateBucket,
                    StorageStep::SetTags {
                        observed: BTreeMap::new(),
                        desired: desired.tags.clone(),
                    },
                    StorageStep::BlockPublicAccess,
                    StorageStep::EnableDefaultEncryption,
                    StorageStep::PutLifecycle { observed: vec![] },
                    StorageStep::PutTlsOnlyPolicy { observed: None },
                ]);
            }
            ObservedStorage::Unavailable { status } => return Err(name_taken(&desired.bucket, *status)),
            ObservedStorage::Present(config) => config,
        };
        ownership::check(
            &config.tags,
            &desired.owner,
            &format!("S3 bucket {}", desired.bucket),
        )?;
        let mut steps = Vec::new();
        if config.tags != desired.tags {
            steps.push(StorageStep::SetTags {
                observed: config.tags.clone(),
                desired: desired.tags.clone(),
            });
        }
        if !config.public_access_blocked {
            steps.push(StorageStep::BlockPublicAccess);
        }
        // Either S3-managed or KMS keys satisfy "encrypted"; only its absence is drift.
        if config.encryption.is_none() {
            steps.push(StorageStep::EnableDefaultEncryption);
        }
        if config.policy.as_ref() != Some(&desired.policy) {
            steps.push(StorageStep::PutTlsOnlyPolicy {
                observed: config.policy.clone(),
            });
        }
        if config.lifecycle != desired.lifecycle {
            steps.push(StorageStep::PutLifecycle {
                observed: config.lifecycle.clone(),
            });
        }
        Ok(steps)
    }

    fn teardown(
        desired: &DesiredStorage,
        observed: &ObservedStorage,
        policy: DeletionPolicy,
    ) -> (Vec<StorageStep>, Option<String>) {
        let ObservedStorage::Present(config) = observed else {
            return (vec![], None);
        };
        if ownership::check(&config.tags, &desired.owner, "").is_err() {
            return (vec![], None);
        }
        match policy {
            DeletionPolicy::Delete => (vec![StorageStep::EmptyAndDeleteBucket], None),
            DeletionPolicy::Retain => (
                ownership::missing_retained_tags(&config.tags, &desired.tags)
                    .map(|retained| StorageStep::SetTags {
                        observed: config.tags.clone(),
                        desired: retained,
                    })
                    .into_iter()
                    .collect(),
                None,
            ),
        }
    }

    async fn execute(
        aws: &AwsClients,
        desired: &DesiredStorage,
        _observed: &mut ObservedStorage,
        step: &StorageStep,
    ) -> Result<(), ComponentError> {
        let s3 = &aws.s3;
        let bucket = desired.bucket.as_str();
        let action = Self::describe(desired, step).resource;
        match step {
            StorageStep::CreateBucket => {
                let mut request = s3
                    .create_bucket()
                    .bucket(bucket)
                    .object_ownership(ObjectOwnership::BucketOwnerEnforced);
                // us-east-1 is the one region that rejects its own name as a constraint.
                if desired.region != "us-east-1" {
                    request = request.create_bucket_configuration(
                        CreateBucketConfiguration::builder()
                            .location_constraint(BucketLocationConstraint::from(desired.region.as_str()))
                            .build(),
                    );
                }
                match request.send().await {
                    Ok(_) => Ok(()),
                    // A crash after an earlier create: the bucket is ours already.
                    Err(err) if code(&err) == Some("BucketAlreadyOwnedByYou") => Ok(()),
                    Err(err) if code(&err) == Some("BucketAlreadyExists") => Err(name_taken(bucket, 409)),
                    Err(err) => Err(classify(&format!("create S3 bucket {bucket}"), err)),
                }
            }
            StorageStep::BlockPublicAccess => s3
                .put_public_access_block()
                .bucket(bucket)
                .public_access_block_configuration(
                    PublicAccessBlockConfiguration::builder()
                        .block_public_acls(true)
                        .ignore_public_acls(true)
                        .block_public_policy(true)
                        .restrict_public_buckets(true)
                        .build(),
                )
                .send()
                .await
                .map(drop)
                .map_err(|err| classify(&action, err)),
            StorageStep::EnableDefaultEncryption => {
                let default = built(
                    ServerSideEncryptionByDefault::builder()
                        .sse_algorithm(ServerSideEncryption::Aes256)
                        .build(),
                )?;
                let rule = ServerSideEncryptionRule::builder()
                    .apply_server_side_encryption_by_default(default)
                    .build();
                let config = built(ServerSideEncryptionConfiguration::builder().rules(rule).build())?;
                s3.put_bucket_encryption()
                    .bucket(bucket)
                    .server_side_encryption_configuration(config)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|err| classify(&action, err))
            }
            StorageStep::PutTlsOnlyPolicy { .. } => s3
                .put_bucket_policy()
                .bucket(bucket)
                .policy(desired.policy.to_string())
                .send()
                .await
                .map(drop)
                .map_err(|err| classify(&action, err)),
            StorageStep::PutLifecycle { .. } => {
                let rules = desired
                    .lifecycle
                    .iter()
                    .map(lifecycle_rule)
                    .collect::<Result<Vec<_>, _>>()?;
                let config = built(
                    BucketLifecycleConfiguration::builder()
                        .set_rules(Some(rules))
                        .build(),
                )?;
                s3.put_bucket_lifecycle_configuration()
                    .bucket(bucket)
                    .lifecycle_configuration(config)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|err| classify(&action, err))
            }
            StorageStep::SetTags { desired: tags, .. } => {
                let tags = to_sdk(tags)?;
                s3.put_bucket_tagging()
                    .bucket(bucket)
                    .tagging(built(Tagging::builder().set_tag_set(Some(tags)).build())?)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|err| classify(&action, err))
            }
            StorageStep::EmptyAndDeleteBucket => {
                empty_bucket(aws, bucket).await?;
                match s3.delete_bucket().bucket(bucket).send().await {
                    Ok(_) => Ok(()),
                    Err(err) if code(&err) == Some("NoSuchBucket") => Ok(()),
                    Err(err) => Err(classify(&format!("delete S3 bucket {bucket}"), err)),
                }
            }
        }
    }

    fn describe(desired: &DesiredStorage, step: &StorageStep) -> Change {
        let mut change = step.change();
        if let StorageStep::PutLifecycle { .. } = step {
            let rules: Vec<String> = desired.lifecycle.iter().map(ExpiryRule::describe).collect();
            if let Some(field) = change.fields.first_mut() {
                field.push_str(&format!(" → {}", rules.join(", ")));
            }
        }
        let what = if change.resource.is_empty() {
            String::new()
        } else {
            format!(" {}", change.resource)
        };
        change.resource = format!("S3 bucket {}{what}", desired.bucket);
        change
    }

    fn readiness(_desired: &DesiredStorage, _observed: &ObservedStorage) -> Readiness {
        Readiness::Ready
    }

    fn publish(desired: &DesiredStorage, observed: &ObservedStorage, outputs: &mut Outputs) {
        if let ObservedStorage::Present(_) = observed {
            outputs.bucket = Some(desired.bucket.clone());
            outputs.resource(
                Self::KIND,
                "AWS::S3::Bucket",
                &desired.bucket,
                Some(desired.arn.clone()),
            );
        }
    }
}

impl StorageStep {
    fn change(&self) -> Change {
        match self {
            StorageStep::CreateBucket => Change::new(Action::Create, ""),
            StorageStep::BlockPublicAccess => Change::new(Action::Update, "public access block").field(
                "block all public access",
                false,
                true,
            ),
            StorageStep::EnableDefaultEncryption => {
                Change::new(Action::Update, "default encryption").field("algorithm", "(none)", "AES256")
            }
            StorageStep::PutTlsOnlyPolicy { observed } => Change::new(Action::Update, "bucket policy").field(
                "statement DenyInsecureTransport",
                if observed.is_some() {
                    "different"
                } else {
                    "(no policy)"
                },
                "deny requests without TLS",
            ),
            StorageStep::PutLifecycle { observed } => {
                let describe = |rules: &[ExpiryRule]| {
                    if rules.is_empty() {
                        return "(none)".to_owned();
                    }
                    rules
                        .iter()
                        .map(ExpiryRule::describe)
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let mut change = Change::new(Action::Update, "lifecycle rules");
                change.fields.push(format!("rules: {}", describe(observed)));
                change
            }
            StorageStep::SetTags { observed, desired } => {
                let mut change = Change::new(Action::Update, "tags");
                change.fields = tag_changes(observed, desired);
                change
            }
            StorageStep::EmptyAndDeleteBucket => {
                Change::new(Action::Delete, "").note("with every object in it")
            }
        }
    }
}

impl ExpiryRule {
    fn describe(&self) -> String {
        let target = if self.prefix.is_empty() {
            "everything".to_owned()
        } else {
            self.prefix.clone()
        };
        let what = match (self.expiration_days, self.abort_incomplete_upload_days) {
            (Some(days), _) => format!("expire {target} after {days}d"),
            (None, Some(days)) => format!("abort uploads in {target} after {days}d"),
            (None, None) => format!("rule {} on {target}", self.id),
        };
        if self.enabled {
            what
        } else {
            format!("{what} (disabled)")
        }
    }
}

/// Denies every request to the bucket that does not use TLS.
pub fn tls_only_policy(bucket_arn: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [bucket_arn, format!("{bucket_arn}/*")],
            "Condition": { "Bool": { "aws:SecureTransport": "false" } }
        }]
    })
}

fn expiry_rule(rule: &LifecycleRule) -> ExpiryRule {
    #[allow(deprecated)] // rules written by other tools may still use the top-level prefix
    let prefix = rule
        .filter()
        .and_then(|f| f.prefix())
        .or(rule.prefix())
        .unwrap_or_default();
    ExpiryRule {
        id: rule.id().unwrap_or_default().to_owned(),
        prefix: prefix.to_owned(),
        expiration_days: rule.expiration().and_then(|e| e.days()),
        abort_incomplete_upload_days: rule
            .abort_incomplete_multipart_upload()
            .and_then(|a| a.days_after_initiation()),
        enabled: rule.status() == &ExpirationStatus::Enabled,
    }
}

fn lifecycle_rule(rule: &ExpiryRule) -> Result<LifecycleRule, ComponentError> {
    let mut builder = LifecycleRule::builder()
        .id(&rule.id)
        .filter(LifecycleRuleFilter::builder().prefix(&rule.prefix).build())
        .status(if rule.enabled {
            ExpirationStatus::Enabled
        } else {
            ExpirationStatus::Disabled
        });
    if let Some(days) = rule.expiration_days {
        builder = builder.expiration(LifecycleExpiration::builder().days(days).build());
    }
    if let Some(days) = rule.abort_incomplete_upload_days {
        builder = builder.abort_incomplete_multipart_upload(
            AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(days)
                .build(),
        );
    }
    built(builder.build())
}

/// Deletes every object, a page at a time. A key S3 refuses to delete fails
/// the step, so the bucket is never deleted half-empty.
async fn empty_bucket(aws: &AwsClients, bucket: &str) -> Result<(), ComponentError> {
    let mut pages = aws.s3.list_objects_v2().bucket(bucket).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|err| classify(&format!("list objects of S3 bucket {bucket}"), err))?;
        let keys: Vec<ObjectIdentifier> = page
            .contents()
            .iter()
            .filter_map(|object| object.key())
            .map(|key| built(ObjectIdentifier::builder().key(key).build()))
            .collect::<Result<_, _>>()?;
        for batch in keys.chunks(DELETE_OBJECTS_BATCH) {
            let delete = built(
                Delete::builder()
                    .set_objects(Some(batch.to_vec()))
                    .quiet(true)
                    .build(),
            )?;
            let out = aws
                .s3
                .delete_objects()
                .bucket(bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|err| classify(&format!("delete objects of S3 bucket {bucket}"), err))?;
            if let Some(failed) = out.errors().first() {
                return Err(ComponentError::retryable(
                    "ObjectsNotDeleted",
                    format!(
                        "S3 refused to delete {} of {} objects in bucket {bucket}, e.g. {}: {} {}",
                        out.errors().len(),
                        batch.len(),
                        failed.key().unwrap_or("?"),
                        failed.code().unwrap_or("?"),
                        failed.message().unwrap_or(""),
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn name_taken(bucket: &str, status: u16) -> ComponentError {
    let why = match status {
        301 => "exists in another region",
        // HeadBucket answers 403 without a body, so a missing s3:ListBucket
        // on our own bucket looks the same.
        _ => "belongs to another AWS account (or the operator is denied s3:ListBucket on it)",
    };
    ComponentError::terminal(
        "BucketNameTaken",
        format!(
            "S3 bucket name {bucket} {why}; bucket names are global: set spec.storage.bucketName to another name"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{COMPONENT_TAG, OWNER_TAG, context_from_yaml};

    /// The storage of pipeline media/photos in `region`, with `storage` as its
    /// `spec.storage` (a YAML flow mapping).
    fn desired(region: &str, storage: &str) -> DesiredStorage {
        let ctx = context_from_yaml(&format!(
            "
apiVersion: imagepipeline.io/v1alpha1
kind: ImagePipeline
metadata: {{name: photos, namespace: media}}
spec:
  region: {region}
  tags: {{team: media-platform}}
  network: {{availabilityZones: [{region}a, {region}b]}}
  storage: {storage}
"
        ));
        Storage::desired(&ctx, &Outputs::default()).expect("storage of a valid spec")
    }

    fn as_desired(desired: &DesiredStorage) -> BucketConfig {
        BucketConfig {
            tags: desired.tags.clone(),
            public_access_blocked: true,
            encryption: Some("AES256".into()),
            policy: Some(desired.policy.clone()),
            lifecycle: desired.lifecycle.clone(),
        }
    }

    #[test]
    fn lifecycle_expires_images_events_and_errors_after_retention_days_and_aborts_stale_uploads() {
        let rules: Vec<_> = desired("eu-west-1", "{retentionDays: 30}")
            .lifecycle
            .into_iter()
            .map(|r| {
                (
                    r.prefix,
                    r.expiration_days,
                    r.abort_incomplete_upload_days,
                    r.enabled,
                )
            })
            .collect();
        assert_eq!(
            rules,
            [
                (String::new(), None, Some(1), true),
                ("errors/".into(), Some(30), None, true),
                ("events/".into(), Some(30), None, true),
                ("images/".into(), Some(30), None, true),
            ]
        );
    }

    #[test]
    fn bucket_is_named_by_the_spec_or_else_after_namespace_and_name() {
        let named = desired("eu-west-1", "{bucketName: media-photos-eu-west-1}");
        assert_eq!(named.bucket, "media-photos-eu-west-1");
        assert_eq!(named.arn, "arn:aws:s3:::media-photos-eu-west-1");

        let generated = desired("eu-west-1", "{}").bucket;
        let hash = generated
            .strip_prefix("ipl-media-photos-")
            .unwrap_or_else(|| panic!("{generated}"));
        assert!(
            hash.len() == 8 && hash.chars().all(|c| c.is_ascii_hexdigit()),
            "{generated}"
        );
    }

    #[test]
    fn tags_are_the_users_plus_owner_and_component() {
        let tags = desired("eu-west-1", "{}").tags;
        assert_eq!(
            tags,
            BTreeMap::from([
                ("team".to_owned(), "media-platform".to_owned()),
                (OWNER_TAG.to_owned(), "media/photos".to_owned()),
                (COMPONENT_TAG.to_owned(), "storage".to_owned()),
            ])
        );
    }

    #[test]
    fn tls_only_policy_covers_the_bucket_and_its_objects_in_the_regions_partition() {
        for (region, partition) in [
            ("eu-west-1", "aws"),
            ("cn-north-1", "aws-cn"),
            ("us-gov-west-1", "aws-us-gov"),
        ] {
            let desired = desired(region, "{bucketName: photos-bucket}");
            let arn = format!("arn:{partition}:s3:::photos-bucket");
            assert_eq!(desired.arn, arn);
            assert_eq!(
                desired.policy["Statement"][0]["Resource"],
                json!([arn, format!("{arn}/*")])
            );
        }
    }

    #[test]
    fn a_bucket_as_desired_needs_no_steps() {
        let desired = desired("eu-west-1", "{retentionDays: 30}");
        let observed = ObservedStorage::Present(as_desired(&desired));
        assert_eq!(Storage::converge(&desired, &observed), Ok(vec![]));
    }

    #[test]
    fn each_drift_yields_only_the_step_that_repairs_it() {
        let desired = desired("eu-west-1", "{retentionDays: 30}");
        let drifted = |drift: fn(&mut BucketConfig)| {
            let mut config = as_desired(&desired);
            drift(&mut config);
            config
        };
        let cases = [
            drifted(|c| c.lifecycle.retain(|r| r.prefix != "errors/")),
            drifted(|c| {
                let images = c.lifecycle.iter_mut().find(|r| r.prefix == "images/");
                images.expect("an images/ rule").expiration_days = Some(7)
            }),
            drifted(|c| c.lifecycle.iter_mut().for_each(|r| r.enabled = false)),
        ]
        .map(|config| {
            let repair = StorageStep::PutLifecycle {
                observed: config.lifecycle.clone(),
            };
            (config, repair)
        });
        let others = [
            (
                drifted(|c| c.public_access_blocked = false),
                StorageStep::BlockPublicAccess,
            ),
            (
                drifted(|c| c.encryption = None),
                StorageStep::EnableDefaultEncryption,
            ),
            (
                drifted(|c| c.policy = None),
                StorageStep::PutTlsOnlyPolicy { observed: None },
            ),
        ];
        for (config, repair) in cases.into_iter().chain(others) {
            let steps = Storage::converge(&desired, &ObservedStorage::Present(config.clone()));
            assert_eq!(steps, Ok(vec![repair]), "{config:?}");
        }
    }

    #[test]
    fn a_bucket_of_another_pipeline_is_a_terminal_error() {
        let desired = desired("eu-west-1", "{}");
        let mut config = as_desired(&desired);
        config.tags.insert(OWNER_TAG.into(), "media/other".into());
        let err = Storage::converge(&desired, &ObservedStorage::Present(config)).unwrap_err();
        assert!(
            err.is_terminal() && err.message.contains("media/other"),
            "{err:?}"
        );
    }

    #[test]
    fn the_bucket_policy_denies_every_request_without_tls_on_bucket_and_objects() {
        let policy = tls_only_policy("arn:aws:s3:::photos");
        let statement = &policy["Statement"][0];
        assert_eq!(statement["Effect"], "Deny");
        assert_eq!(statement["Principal"], "*");
        assert_eq!(statement["Action"], "s3:*");
        assert_eq!(
            statement["Resource"],
            json!(["arn:aws:s3:::photos", "arn:aws:s3:::photos/*"])
        );
        assert_eq!(
            statement["Condition"],
            json!({ "Bool": { "aws:SecureTransport": "false" } })
        );
    }
}
