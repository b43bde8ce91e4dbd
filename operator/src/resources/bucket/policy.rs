//! The bucket policy: requests without TLS denied.

use serde_json::{Value, json};

use super::BucketState;
use crate::aws::AwsClients;
use crate::engine::field;
use crate::engine::resource::Resource;
use crate::error::ComponentError;
use crate::resources::sdk::{deleted, failed};

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

/// The bucket policy, exactly [`tls_only_policy`].
#[derive(Clone, Debug, PartialEq)]
pub struct TlsOnlyPolicy {
    pub bucket: String,
    pub policy: Value,
    /// The policy the bucket's `find` read, if any.
    pub observed: Option<Value>,
}

impl TlsOnlyPolicy {
    /// The policy `bucket` must have, [`tls_only_policy`] of its ARN, beside
    /// the one it has.
    pub fn of(bucket: &BucketState, policy: Value) -> Self {
        Self {
            bucket: bucket.name.clone(),
            policy,
            observed: bucket.policy.clone(),
        }
    }
}

impl Resource for TlsOnlyPolicy {
    type Observed = Option<Value>;
    const TYPE: Option<&'static str> = None;

    fn label(&self) -> String {
        format!("S3 bucket {} bucket policy", self.bucket)
    }

    async fn find(&self, _aws: &AwsClients) -> Result<Option<Option<Value>>, ComponentError> {
        Ok(Some(self.observed.clone()))
    }

    fn delta(&self, observed: &Option<Value>) -> Result<Vec<String>, ComponentError> {
        let was = match observed {
            Some(policy) if *policy == self.policy => return Ok(vec![]),
            Some(_) => "different",
            None => "(no policy)",
        };
        Ok(vec![field(
            "statement DenyInsecureTransport",
            was,
            "deny requests without TLS",
        )])
    }

    async fn create(&self, aws: &AwsClients) -> Result<Option<Value>, ComponentError> {
        self.update(aws, &None).await?;
        Ok(Some(self.policy.clone()))
    }

    async fn update(&self, aws: &AwsClients, _observed: &Option<Value>) -> Result<(), ComponentError> {
        aws.s3
            .put_bucket_policy()
            .bucket(&self.bucket)
            .policy(self.policy.to_string())
            .send()
            .await
            .map(drop)
            .map_err(failed("put", &self.label()))
    }

    async fn delete(&self, aws: &AwsClients, _observed: &Option<Value>) -> Result<(), ComponentError> {
        deleted(
            aws.s3.delete_bucket_policy().bucket(&self.bucket).send().await,
            &["NoSuchBucket"],
            &format!("delete {}", self.label()),
        )
    }

    fn id(_observed: &Option<Value>) -> String {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_policy_other_than_tls_only_is_put_back() {
        let policy = TlsOnlyPolicy {
            bucket: "photos".into(),
            policy: tls_only_policy("arn:aws:s3:::photos"),
            observed: None,
        };
        assert_eq!(
            policy.delta(&Some(policy.policy.clone())).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            policy.delta(&Some(json!({}))).unwrap(),
            ["statement DenyInsecureTransport: different → deny requests without TLS"]
        );
        assert_eq!(
            policy.delta(&None).unwrap(),
            ["statement DenyInsecureTransport: (no policy) → deny requests without TLS"]
        );
    }
}
