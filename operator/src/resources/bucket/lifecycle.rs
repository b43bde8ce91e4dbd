//! A bucket's lifecycle rules: what expires when, and the part of the bucket
//! that puts them.

use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration,
    LifecycleRule, LifecycleRuleFilter,
};

use super::BucketState;
use crate::aws::AwsClients;
use crate::engine::resource::Resource;
use crate::error::ComponentError;
use crate::resources::sdk::built;
use crate::resources::sdk::{deleted, failed};

/// A lifecycle rule reduced to what the operator manages.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExpiryRule {
    pub id: String,
    pub prefix: String,
    pub expiration_days: Option<i32>,
    pub abort_incomplete_upload_days: Option<i32>,
    pub enabled: bool,
}

impl ExpiryRule {
    pub fn describe(&self) -> String {
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

/// The lifecycle rules of a bucket: exactly `rules`, sorted.
#[derive(Clone, Debug, PartialEq)]
pub struct LifecycleRules {
    pub bucket: String,
    pub rules: Vec<ExpiryRule>,
    /// The rules the bucket's `find` read, sorted.
    pub observed: Vec<ExpiryRule>,
}

impl LifecycleRules {
    pub fn of(bucket: &BucketState, rules: Vec<ExpiryRule>) -> Self {
        Self {
            bucket: bucket.name.clone(),
            rules,
            observed: bucket.lifecycle.clone(),
        }
    }
}

fn describe(rules: &[ExpiryRule]) -> String {
    if rules.is_empty() {
        return "(none)".to_owned();
    }
    rules
        .iter()
        .map(ExpiryRule::describe)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Resource for LifecycleRules {
    type Observed = Vec<ExpiryRule>;
    const TYPE: Option<&'static str> = None;

    fn label(&self) -> String {
        format!("S3 bucket {} lifecycle rules", self.bucket)
    }

    /// Read by the bucket's `find`: no call of its own.
    async fn find(&self, _aws: &AwsClients) -> Result<Option<Vec<ExpiryRule>>, ComponentError> {
        Ok(Some(self.observed.clone()))
    }

    fn delta(&self, observed: &Vec<ExpiryRule>) -> Result<Vec<String>, ComponentError> {
        Ok(if *observed == self.rules {
            vec![]
        } else {
            vec![crate::engine::field(
                "rules",
                describe(observed),
                describe(&self.rules),
            )]
        })
    }

    async fn create(&self, aws: &AwsClients) -> Result<Vec<ExpiryRule>, ComponentError> {
        self.update(aws, &self.observed).await?;
        Ok(self.rules.clone())
    }

    async fn update(&self, aws: &AwsClients, _observed: &Vec<ExpiryRule>) -> Result<(), ComponentError> {
        let rules = self
            .rules
            .iter()
            .map(lifecycle_rule)
            .collect::<Result<Vec<_>, _>>()?;
        let config = built(
            BucketLifecycleConfiguration::builder()
                .set_rules(Some(rules))
                .build(),
        )?;
        aws.s3
            .put_bucket_lifecycle_configuration()
            .bucket(&self.bucket)
            .lifecycle_configuration(config)
            .send()
            .await
            .map(drop)
            .map_err(failed("put", &self.label()))
    }

    async fn delete(&self, aws: &AwsClients, _observed: &Vec<ExpiryRule>) -> Result<(), ComponentError> {
        deleted(
            aws.s3.delete_bucket_lifecycle().bucket(&self.bucket).send().await,
            &["NoSuchBucket"],
            &format!("delete {}", self.label()),
        )
    }

    fn id(_observed: &Vec<ExpiryRule>) -> String {
        String::new()
    }
}

/// A rule as S3 returned it.
pub(super) fn expiry_rule(rule: &LifecycleRule) -> ExpiryRule {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(prefix: &str, days: i32) -> ExpiryRule {
        ExpiryRule {
            id: format!("expire-{prefix}"),
            prefix: prefix.to_owned(),
            expiration_days: Some(days),
            abort_incomplete_upload_days: None,
            enabled: true,
        }
    }

    #[test]
    fn rules_that_differ_are_one_field_with_both_sets_spelled_out() {
        let rules = LifecycleRules {
            bucket: "photos".into(),
            rules: vec![rule("images/", 30)],
            observed: vec![],
        };
        assert_eq!(
            rules.delta(&vec![]).unwrap(),
            ["rules: (none) → expire images/ after 30d"]
        );
        assert_eq!(
            rules.delta(&vec![rule("images/", 30)]).unwrap(),
            Vec::<String>::new()
        );
        let disabled = ExpiryRule {
            enabled: false,
            ..rule("images/", 30)
        };
        assert_eq!(
            rules.delta(&vec![disabled]).unwrap(),
            ["rules: expire images/ after 30d (disabled) → expire images/ after 30d"]
        );
    }
}
