//! Storage: the S3 bucket that holds images (`images/`) and events
//! (`events/`), private, encrypted, TLS-only, and forgetting everything after
//! `retentionDays`.

use serde_json::Value;

use crate::engine::resource::{Walk, WalkMode};
use crate::engine::{ComponentError, ComponentKind, Declared, Outputs, PipelineContext};
use crate::resources::bucket::lifecycle::{ExpiryRule, LifecycleRules};
use crate::resources::bucket::policy::{TlsOnlyPolicy, tls_only_policy};
use crate::resources::bucket::settings::{DefaultEncryption, PublicAccessBlock};
use crate::resources::bucket::{Bucket, BucketState};
use crate::resources::tags_of::TagsOf;
use ingest_core::contract::prefix;

/// Prefixes that expire after `retentionDays`: images, Firehose events, and
/// the records Firehose could not deliver.
const EXPIRING_PREFIXES: [&str; 3] = [prefix::IMAGES, prefix::EVENTS, prefix::ERRORS];
/// Multipart uploads abandoned by a crashed writer are removed after a day.
const ABORT_INCOMPLETE_UPLOADS_AFTER_DAYS: i32 = 1;
const ABORT_RULE_ID: &str = "abort-incomplete-uploads";
const STAGING_RULE_ID: &str = "expire-staging";

pub struct Storage;

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredStorage {
    pub bucket: Bucket,
    /// Sorted, as the bucket's find reads them.
    pub lifecycle: Vec<ExpiryRule>,
    /// The TLS-only bucket policy.
    pub policy: Value,
}

impl Declared for Storage {
    const KIND: ComponentKind = ComponentKind::Storage;
    const DEPENDS_ON: &'static [ComponentKind] = &[];
    type Desired = DesiredStorage;

    fn desired(ctx: &PipelineContext, _upstream: &Outputs) -> Result<DesiredStorage, ComponentError> {
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
        // Resumable and direct uploads wait here until they are complete;
        // what is abandoned goes after a day, whatever the retention.
        lifecycle.push(ExpiryRule {
            id: STAGING_RULE_ID.to_owned(),
            prefix: prefix::STAGING.to_owned(),
            expiration_days: Some(prefix::STAGING_EXPIRY_DAYS as i32),
            abort_incomplete_upload_days: None,
            enabled: true,
        });
        lifecycle.push(ExpiryRule {
            id: ABORT_RULE_ID.to_owned(),
            prefix: String::new(),
            expiration_days: None,
            abort_incomplete_upload_days: Some(ABORT_INCOMPLETE_UPLOADS_AFTER_DAYS),
            enabled: true,
        });
        lifecycle.sort();
        Ok(DesiredStorage {
            policy: tls_only_policy(&ctx.bucket_arn()),
            bucket: Bucket {
                name: ctx.bucket_name(),
                arn: ctx.bucket_arn(),
                region: ctx.region().to_owned(),
                tags: ctx.tags(Self::KIND),
            },
            lifecycle,
        })
    }

    async fn declare(
        walk: &mut Walk<'_>,
        desired: &DesiredStorage,
        outputs: &mut Outputs,
    ) -> Result<(), ComponentError> {
        let found = walk.ensure(&desired.bucket).await?;
        outputs.bucket = found.as_ref().map(|bucket| bucket.name.clone());
        // Its settings go with it, and stay with it when `Retain` keeps it.
        if walk.mode() == WalkMode::Find {
            return Ok(());
        }
        // A bucket a plan would create has nothing set yet.
        let bucket = found.unwrap_or_else(|| desired.bucket.unmade());
        walk.ensure(&desired.tags(&bucket)).await?;
        walk.ensure(&PublicAccessBlock::of(&bucket)).await?;
        walk.ensure(&DefaultEncryption::of(&bucket)).await?;
        walk.ensure(&LifecycleRules::of(&bucket, desired.lifecycle.clone()))
            .await?;
        walk.ensure(&TlsOnlyPolicy::of(&bucket, desired.policy.clone()))
            .await?;
        Ok(())
    }
}

impl DesiredStorage {
    fn tags(&self, found: &BucketState) -> TagsOf<Bucket> {
        TagsOf {
            resource: self.bucket.clone(),
            observed: found.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::engine::resource::Resource;
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

    fn as_desired(desired: &DesiredStorage) -> BucketState {
        BucketState {
            tags: desired.bucket.tags.clone(),
            public_access_blocked: true,
            encryption: Some("AES256".into()),
            policy: Some(desired.policy.clone()),
            lifecycle: desired.lifecycle.clone(),
            ..desired.bucket.unmade()
        }
    }

    /// What plan shows for `found`, part by part in the order `declare`
    /// ensures them: the label and fields of each part that differs.
    fn differences(desired: &DesiredStorage, found: &BucketState) -> Vec<(String, Vec<String>)> {
        fn delta<R: Resource>(part: R, observed: &R::Observed) -> (String, Vec<String>) {
            (part.label(), part.delta(observed).expect("a delta"))
        }
        [
            delta(desired.tags(found), &found.tags),
            delta(PublicAccessBlock::of(found), &found.public_access_blocked),
            delta(DefaultEncryption::of(found), &found.encryption),
            delta(
                LifecycleRules::of(found, desired.lifecycle.clone()),
                &found.lifecycle,
            ),
            delta(TlsOnlyPolicy::of(found, desired.policy.clone()), &found.policy),
        ]
        .into_iter()
        .filter(|(_, fields)| !fields.is_empty())
        .collect()
    }

    #[test]
    fn lifecycle_expires_images_events_and_errors_after_retention_days_staged_uploads_after_a_day_and_aborts_stale_uploads()
     {
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
                ("staging/".into(), Some(1), None, true),
            ]
        );
    }

    #[test]
    fn bucket_is_named_by_the_spec_or_else_after_namespace_and_name() {
        let named = desired("eu-west-1", "{bucketName: media-photos-eu-west-1}");
        assert_eq!(named.bucket.name, "media-photos-eu-west-1");
        assert_eq!(named.bucket.arn, "arn:aws:s3:::media-photos-eu-west-1");

        let generated = desired("eu-west-1", "{}").bucket.name;
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
        let tags = desired("eu-west-1", "{}").bucket.tags;
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
            assert_eq!(desired.bucket.arn, arn);
            assert_eq!(
                desired.policy["Statement"][0]["Resource"],
                json!([arn, format!("{arn}/*")])
            );
        }
    }

    #[test]
    fn a_bucket_as_desired_needs_no_changes() {
        let desired = desired("eu-west-1", "{retentionDays: 30}");
        let found = as_desired(&desired);
        assert_eq!(desired.bucket.delta(&found), Ok(vec![]));
        assert_eq!(differences(&desired, &found), []);
    }

    #[test]
    fn a_bucket_to_create_gets_every_setting_right_after_it_is_made() {
        let desired = desired("eu-west-1", "{retentionDays: 30}");
        let name = &desired.bucket.name;
        let labels: Vec<String> = differences(&desired, &desired.bucket.unmade())
            .into_iter()
            .map(|(label, _)| label)
            .collect();
        assert_eq!(
            labels,
            [
                format!("S3 bucket {name} tags"),
                format!("S3 bucket {name} public access block"),
                format!("S3 bucket {name} default encryption"),
                format!("S3 bucket {name} lifecycle rules"),
                format!("S3 bucket {name} bucket policy"),
            ]
        );
    }

    #[test]
    fn each_drift_is_shown_only_by_the_part_that_repairs_it() {
        let desired = desired("eu-west-1", "{retentionDays: 30}");
        let name = &desired.bucket.name;
        let drifted = |drift: fn(&mut BucketState)| {
            let mut found = as_desired(&desired);
            drift(&mut found);
            found
        };
        let rules = |found: &BucketState| {
            let describe = |rules: &[ExpiryRule]| {
                let rules: Vec<String> = rules.iter().map(ExpiryRule::describe).collect();
                if rules.is_empty() {
                    "(none)".to_owned()
                } else {
                    rules.join(", ")
                }
            };
            format!(
                "rules: {} → {}",
                describe(&found.lifecycle),
                describe(&desired.lifecycle)
            )
        };
        let lifecycle_cases = [
            drifted(|b| b.lifecycle.retain(|r| r.prefix != "errors/")),
            drifted(|b| {
                let images = b.lifecycle.iter_mut().find(|r| r.prefix == "images/");
                images.expect("an images/ rule").expiration_days = Some(7)
            }),
            drifted(|b| b.lifecycle.iter_mut().for_each(|r| r.enabled = false)),
        ]
        .map(|found| {
            let repair = (format!("S3 bucket {name} lifecycle rules"), vec![rules(&found)]);
            (found, repair)
        });
        let others = [
            (
                drifted(|b| b.public_access_blocked = false),
                (
                    format!("S3 bucket {name} public access block"),
                    vec!["block all public access: false → true".to_owned()],
                ),
            ),
            (
                drifted(|b| b.encryption = None),
                (
                    format!("S3 bucket {name} default encryption"),
                    vec!["algorithm: (none) → AES256".to_owned()],
                ),
            ),
            (
                drifted(|b| b.policy = None),
                (
                    format!("S3 bucket {name} bucket policy"),
                    vec![
                        "statement DenyInsecureTransport: (no policy) → deny requests without TLS".to_owned(),
                    ],
                ),
            ),
            (
                drifted(|b| {
                    b.tags.insert("team".into(), "someone-else".into());
                }),
                (
                    format!("S3 bucket {name} tags"),
                    vec!["tag team: someone-else → media-platform".to_owned()],
                ),
            ),
        ];
        for (found, repair) in lifecycle_cases.into_iter().chain(others) {
            assert_eq!(differences(&desired, &found), [repair], "{found:?}");
        }
    }
}
