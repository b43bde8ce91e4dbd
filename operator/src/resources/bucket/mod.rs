//! An S3 bucket, found by its name (global across accounts), and emptied
//! before it is deleted. Its find reads its settings too; each setting S3
//! keeps apart ([`settings`], [`policy`], [`lifecycle`], and its tags through
//! [`TagsOf`](crate::resources::tags_of::TagsOf)) is a part of it.

pub mod lifecycle;
mod objects;
pub mod policy;
pub mod settings;

use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration, ObjectOwnership, Tagging};
use serde_json::Value;

use super::sdk::{deleted, failed};
use super::tags::{from_sdk, to_sdk};
use crate::aws::AwsClients;
use crate::aws::errors::{classify, code, status};
use crate::engine::Tags;
use crate::engine::resource::Resource;
use crate::error::ComponentError;
use crate::resources::sdk::built;
use lifecycle::{ExpiryRule, expiry_rule};

#[derive(Clone, Debug, PartialEq)]
pub struct Bucket {
    pub name: String,
    pub arn: String,
    pub region: String,
    pub tags: Tags,
}

/// A bucket as its find saw it, with the settings its parts compare.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BucketState {
    pub name: String,
    pub arn: String,
    /// HeadBucket's status when the name belongs to a bucket this account
    /// cannot use (301: another region, 403: another account).
    pub taken: Option<u16>,
    pub tags: Tags,
    pub public_access_blocked: bool,
    /// The default encryption algorithm, if any.
    pub encryption: Option<String>,
    pub policy: Option<Value>,
    /// Sorted.
    pub lifecycle: Vec<ExpiryRule>,
}

impl Bucket {
    /// The bucket before it exists: nothing set. What a plan compares the
    /// settings of a bucket it would create with.
    pub fn unmade(&self) -> BucketState {
        BucketState {
            name: self.name.clone(),
            arn: self.arn.clone(),
            ..BucketState::default()
        }
    }

    /// Reads the settings of the bucket, which exists.
    async fn read_settings(&self, aws: &AwsClients) -> Result<BucketState, ComponentError> {
        let (s3, bucket) = (&aws.s3, self.name.as_str());
        let read = |what: &str| format!("read {what} of S3 bucket {bucket}");
        let mut state = self.unmade();
        match s3.get_bucket_tagging().bucket(bucket).send().await {
            Ok(out) => state.tags = from_sdk(out.tag_set()),
            Err(err) if code(&err) == Some("NoSuchTagSet") => {}
            Err(err) => return Err(classify(&read("tags"), err)),
        }
        match s3.get_public_access_block().bucket(bucket).send().await {
            Ok(out) => {
                state.public_access_blocked = out.public_access_block_configuration().is_some_and(|c| {
                    c.block_public_acls() == Some(true)
                        && c.ignore_public_acls() == Some(true)
                        && c.block_public_policy() == Some(true)
                        && c.restrict_public_buckets() == Some(true)
                })
            }
            Err(err) if code(&err) == Some("NoSuchPublicAccessBlockConfiguration") => {}
            Err(err) => return Err(classify(&read("public access block"), err)),
        }
        match s3.get_bucket_encryption().bucket(bucket).send().await {
            Ok(out) => {
                state.encryption = out
                    .server_side_encryption_configuration()
                    .and_then(|c| c.rules().first())
                    .and_then(|rule| rule.apply_server_side_encryption_by_default())
                    .map(|default| default.sse_algorithm().as_str().to_owned())
            }
            Err(err) if code(&err) == Some("ServerSideEncryptionConfigurationNotFoundError") => {}
            Err(err) => return Err(classify(&read("encryption"), err)),
        }
        match s3.get_bucket_policy().bucket(bucket).send().await {
            Ok(out) => state.policy = out.policy().and_then(|text| serde_json::from_str(text).ok()),
            Err(err) if code(&err) == Some("NoSuchBucketPolicy") => {}
            Err(err) => return Err(classify(&read("policy"), err)),
        }
        match s3
            .get_bucket_lifecycle_configuration()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(out) => {
                state.lifecycle = out.rules().iter().map(expiry_rule).collect();
                state.lifecycle.sort();
            }
            Err(err) if code(&err) == Some("NoSuchLifecycleConfiguration") => {}
            Err(err) => return Err(classify(&read("lifecycle rules"), err)),
        }
        Ok(state)
    }
}

impl Resource for Bucket {
    type Observed = BucketState;
    const TYPE: Option<&'static str> = Some("AWS::S3::Bucket");
    const KEEPS_DATA: bool = true;

    fn label(&self) -> String {
        format!("S3 bucket {}", self.name)
    }

    async fn find(&self, aws: &AwsClients) -> Result<Option<BucketState>, ComponentError> {
        match aws.s3.head_bucket().bucket(&self.name).send().await {
            Ok(_) => self.read_settings(aws).await.map(Some),
            Err(err) => match status(&err) {
                Some(404) => Ok(None),
                Some(status @ (301 | 403)) => Ok(Some(BucketState {
                    taken: Some(status),
                    ..self.unmade()
                })),
                _ => Err(classify(&format!("look up {}", self.label()), err)),
            },
        }
    }

    fn unavailable(&self, observed: &BucketState) -> Option<ComponentError> {
        observed.taken.map(|status| name_taken(&self.name, status))
    }

    /// The bucket itself has nothing to change: its settings are its parts.
    fn delta(&self, _observed: &BucketState) -> Result<Vec<String>, ComponentError> {
        Ok(vec![])
    }

    async fn create(&self, aws: &AwsClients) -> Result<BucketState, ComponentError> {
        let mut request = aws
            .s3
            .create_bucket()
            .bucket(&self.name)
            .object_ownership(ObjectOwnership::BucketOwnerEnforced);
        // us-east-1 is the one region that rejects its own name as a constraint.
        if self.region != "us-east-1" {
            request = request.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(self.region.as_str()))
                    .build(),
            );
        }
        match request.send().await {
            Ok(_) => Ok(self.unmade()),
            // A crash after an earlier create: the bucket is ours already.
            Err(err) if code(&err) == Some("BucketAlreadyOwnedByYou") => Ok(self.unmade()),
            Err(err) if code(&err) == Some("BucketAlreadyExists") => Err(name_taken(&self.name, 409)),
            Err(err) => Err(classify(&format!("create {}", self.label()), err)),
        }
    }

    async fn update(&self, _aws: &AwsClients, _observed: &BucketState) -> Result<(), ComponentError> {
        Ok(())
    }

    async fn delete(&self, aws: &AwsClients, _observed: &BucketState) -> Result<(), ComponentError> {
        self.empty(aws).await?;
        deleted(
            aws.s3.delete_bucket().bucket(&self.name).send().await,
            &["NoSuchBucket"],
            &format!("delete {}", self.label()),
        )
    }

    fn id(observed: &BucketState) -> String {
        observed.name.clone()
    }

    fn arn(observed: &BucketState) -> Option<String> {
        Some(observed.arn.clone())
    }

    fn tags(observed: &BucketState) -> Option<&Tags> {
        Some(&observed.tags)
    }

    fn desired_tags(&self) -> Option<&Tags> {
        Some(&self.tags)
    }

    /// S3 replaces a bucket's whole tag set at once.
    async fn set_tags(
        &self,
        aws: &AwsClients,
        _observed: &BucketState,
        tags: &Tags,
    ) -> Result<(), ComponentError> {
        let s3 = &aws.s3;
        if tags.is_empty() {
            return deleted(
                s3.delete_bucket_tagging().bucket(&self.name).send().await,
                &["NoSuchBucket"],
                &format!("untag {}", self.label()),
            );
        }
        let tagging = built(Tagging::builder().set_tag_set(Some(to_sdk(tags)?)).build())?;
        s3.put_bucket_tagging()
            .bucket(&self.name)
            .tagging(tagging)
            .send()
            .await
            .map(drop)
            .map_err(failed("tag", &self.label()))
    }
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
    use crate::engine::resource::check_owner;
    use crate::engine::{ErrorKind, OWNER_TAG};

    fn bucket() -> Bucket {
        Bucket {
            name: "shared-photos".into(),
            arn: "arn:aws:s3:::shared-photos".into(),
            region: "eu-west-1".into(),
            tags: Tags::from([(OWNER_TAG.to_owned(), "media/photos".to_owned())]),
        }
    }

    #[test]
    fn a_name_another_account_holds_is_a_terminal_error_naming_the_spec_field() {
        let bucket = bucket();
        assert_eq!(bucket.unavailable(&bucket.unmade()), None);
        for (status, why) in [
            (403, "another AWS account"),
            (301, "another region"),
            (409, "another AWS account"),
        ] {
            let taken = BucketState {
                taken: Some(status),
                ..bucket.unmade()
            };
            let err = bucket.unavailable(&taken).expect("unavailable");
            assert_eq!(
                (err.kind, err.reason.as_str()),
                (ErrorKind::Terminal, "BucketNameTaken")
            );
            assert!(
                err.message.contains(why) && err.message.contains("spec.storage.bucketName"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_bucket_of_another_pipeline_is_a_terminal_error() {
        let bucket = bucket();
        let mut found = bucket.unmade();
        found.tags.insert(OWNER_TAG.into(), "media/other".into());
        let tags = Bucket::tags(&found).expect("a bucket has tags");
        let err = check_owner(tags, "media/photos", &bucket.label()).unwrap_err();
        assert!(
            err.is_terminal() && err.message.contains("media/other"),
            "{err:?}"
        );
    }
}
