//! The settings of a bucket that S3 keeps apart from it, each set by a call
//! of its own: public access block and default encryption (and the bucket
//! policy, [`super::policy`], and lifecycle rules, [`super::lifecycle`]). Each
//! is a part of the bucket, read by the bucket's `find`, so plan shows a
//! difference as `S3 bucket <name> <setting>`.

use aws_sdk_s3::types::{
    PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
};

use super::BucketState;
use crate::aws::AwsClients;
use crate::engine::field;
use crate::engine::resource::Resource;
use crate::error::ComponentError;
use crate::resources::sdk::built;
use crate::resources::sdk::{deleted, failed};

/// What a delete of a bucket's setting finds gone.
const GONE: [&str; 1] = ["NoSuchBucket"];

/// Every kind of public access blocked.
#[derive(Clone, Debug, PartialEq)]
pub struct PublicAccessBlock {
    pub bucket: String,
    /// Whether the bucket's `find` saw all four blocks on.
    pub observed: bool,
}

impl PublicAccessBlock {
    pub fn of(bucket: &BucketState) -> Self {
        Self {
            bucket: bucket.name.clone(),
            observed: bucket.public_access_blocked,
        }
    }
}

impl Resource for PublicAccessBlock {
    type Observed = bool;
    const TYPE: Option<&'static str> = None;

    fn label(&self) -> String {
        format!("S3 bucket {} public access block", self.bucket)
    }

    async fn find(&self, _aws: &AwsClients) -> Result<Option<bool>, ComponentError> {
        Ok(Some(self.observed))
    }

    fn delta(&self, blocked: &bool) -> Result<Vec<String>, ComponentError> {
        Ok(if *blocked {
            vec![]
        } else {
            vec![field("block all public access", false, true)]
        })
    }

    async fn create(&self, aws: &AwsClients) -> Result<bool, ComponentError> {
        self.update(aws, &false).await?;
        Ok(true)
    }

    async fn update(&self, aws: &AwsClients, _observed: &bool) -> Result<(), ComponentError> {
        let all = PublicAccessBlockConfiguration::builder()
            .block_public_acls(true)
            .ignore_public_acls(true)
            .block_public_policy(true)
            .restrict_public_buckets(true)
            .build();
        aws.s3
            .put_public_access_block()
            .bucket(&self.bucket)
            .public_access_block_configuration(all)
            .send()
            .await
            .map(drop)
            .map_err(failed("put", &self.label()))
    }

    async fn delete(&self, aws: &AwsClients, _observed: &bool) -> Result<(), ComponentError> {
        deleted(
            aws.s3
                .delete_public_access_block()
                .bucket(&self.bucket)
                .send()
                .await,
            &GONE,
            &format!("delete {}", self.label()),
        )
    }

    fn id(_observed: &bool) -> String {
        String::new()
    }
}

/// Objects encrypted at rest by default.
#[derive(Clone, Debug, PartialEq)]
pub struct DefaultEncryption {
    pub bucket: String,
    /// The algorithm the bucket's `find` saw, if any.
    pub observed: Option<String>,
}

impl DefaultEncryption {
    pub fn of(bucket: &BucketState) -> Self {
        Self {
            bucket: bucket.name.clone(),
            observed: bucket.encryption.clone(),
        }
    }
}

impl Resource for DefaultEncryption {
    type Observed = Option<String>;
    const TYPE: Option<&'static str> = None;

    fn label(&self) -> String {
        format!("S3 bucket {} default encryption", self.bucket)
    }

    async fn find(&self, _aws: &AwsClients) -> Result<Option<Option<String>>, ComponentError> {
        Ok(Some(self.observed.clone()))
    }

    /// Either S3-managed or KMS keys satisfy "encrypted"; only its absence
    /// is drift.
    fn delta(&self, algorithm: &Option<String>) -> Result<Vec<String>, ComponentError> {
        Ok(match algorithm {
            Some(_) => vec![],
            None => vec![field("algorithm", "(none)", "AES256")],
        })
    }

    async fn create(&self, aws: &AwsClients) -> Result<Option<String>, ComponentError> {
        self.update(aws, &None).await?;
        Ok(Some(ServerSideEncryption::Aes256.as_str().to_owned()))
    }

    async fn update(&self, aws: &AwsClients, _observed: &Option<String>) -> Result<(), ComponentError> {
        let default = built(
            ServerSideEncryptionByDefault::builder()
                .sse_algorithm(ServerSideEncryption::Aes256)
                .build(),
        )?;
        let rule = ServerSideEncryptionRule::builder()
            .apply_server_side_encryption_by_default(default)
            .build();
        let config = built(ServerSideEncryptionConfiguration::builder().rules(rule).build())?;
        aws.s3
            .put_bucket_encryption()
            .bucket(&self.bucket)
            .server_side_encryption_configuration(config)
            .send()
            .await
            .map(drop)
            .map_err(failed("put", &self.label()))
    }

    async fn delete(&self, aws: &AwsClients, _observed: &Option<String>) -> Result<(), ComponentError> {
        deleted(
            aws.s3
                .delete_bucket_encryption()
                .bucket(&self.bucket)
                .send()
                .await,
            &GONE,
            &format!("delete {}", self.label()),
        )
    }

    fn id(_observed: &Option<String>) -> String {
        String::new()
    }
}
