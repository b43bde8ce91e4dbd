//! An IAM role with one inline policy: the shape the Firehose delivery role,
//! the upload instances' role and the Redshift role take. Found by its
//! deterministic name.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::aws::AwsClients;
use crate::engine::resource::Resource;
use crate::engine::{ComponentError, Tags, field, tag_changes};

mod steps;

use steps::{RoleStep, converge, execute, observe, teardown};

/// Roles the operator makes live under this path, so an account's
/// administrators can tell them apart and scope permission boundaries to it.
pub const ROLE_PATH: &str = "/imagepipeline/";

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredRole {
    pub name: String,
    pub arn: String,
    pub trust_policy: Value,
    pub policy_name: String,
    pub policy: Value,
    pub tags: BTreeMap<String, String>,
}

impl DesiredRole {
    /// A role that one AWS service principal may assume, only on behalf of
    /// this account (the confused-deputy guard AWS recommends).
    pub fn for_service(
        name: String,
        arn: String,
        service_principal: &str,
        account_id: &str,
        policy_name: &str,
        policy: Value,
        tags: BTreeMap<String, String>,
    ) -> Self {
        let trust_policy = json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": { "Service": service_principal },
                "Action": "sts:AssumeRole",
                "Condition": { "StringEquals": { "aws:SourceAccount": account_id } }
            }]
        });
        Self {
            name,
            arn,
            trust_policy,
            policy_name: policy_name.to_owned(),
            policy,
            tags,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedRole {
    pub arn: String,
    pub trust_policy: Option<Value>,
    pub tags: BTreeMap<String, String>,
    pub policy: Option<Value>,
}

impl Resource for DesiredRole {
    type Observed = ObservedRole;
    const TYPE: Option<&'static str> = Some("AWS::IAM::Role");

    fn label(&self) -> String {
        format!("IAM role {}", self.name)
    }

    async fn find(&self, aws: &AwsClients) -> Result<Option<ObservedRole>, ComponentError> {
        observe(aws, self).await
    }

    fn delta(&self, observed: &ObservedRole) -> Result<Vec<String>, ComponentError> {
        let mut fields = Vec::new();
        if observed.trust_policy.as_ref() != Some(&self.trust_policy) {
            fields.push("trust policy: who may assume the role differs from the spec".to_owned());
        }
        match &observed.policy {
            None => fields.push(field(
                &format!("policy {}", self.policy_name),
                "(none)",
                "as specified",
            )),
            Some(policy) if *policy != self.policy => fields.push(field(
                &format!("policy {}", self.policy_name),
                "(other statements)",
                "as specified",
            )),
            Some(_) => {}
        }
        fields.extend(tag_changes(&observed.tags, &self.tags));
        Ok(fields)
    }

    fn create_fields(&self) -> Vec<String> {
        vec![format!("policy {}", self.policy_name)]
    }

    async fn create(&self, aws: &AwsClients) -> Result<ObservedRole, ComponentError> {
        let mut made = None;
        execute(aws, self, &mut made, &RoleStep::Create).await?;
        execute(aws, self, &mut made, &RoleStep::PutPolicy { existed: false }).await?;
        Ok(ObservedRole {
            trust_policy: Some(self.trust_policy.clone()),
            tags: self.tags.clone(),
            policy: Some(self.policy.clone()),
            ..made.unwrap_or_default()
        })
    }

    async fn update(&self, aws: &AwsClients, observed: &ObservedRole) -> Result<(), ComponentError> {
        let mut current = Some(observed.clone());
        for step in converge(self, Some(observed)) {
            execute(aws, self, &mut current, &step).await?;
        }
        Ok(())
    }

    async fn delete(&self, aws: &AwsClients, observed: &ObservedRole) -> Result<(), ComponentError> {
        let mut current = Some(observed.clone());
        for step in teardown(Some(observed)) {
            execute(aws, self, &mut current, &step).await?;
        }
        Ok(())
    }

    /// Its name: the last part of its ARN, after the path.
    fn id(observed: &ObservedRole) -> String {
        observed.arn.rsplit('/').next().unwrap_or_default().to_owned()
    }

    fn arn(observed: &ObservedRole) -> Option<String> {
        Some(observed.arn.clone())
    }

    fn tags(observed: &ObservedRole) -> Option<&Tags> {
        Some(&observed.tags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired() -> DesiredRole {
        DesiredRole::for_service(
            "ipl-media-photos-firehose".into(),
            "arn:aws:iam::123456789012:role/imagepipeline/ipl-media-photos-firehose".into(),
            "firehose.amazonaws.com",
            "123456789012",
            "deliver-to-bucket",
            json!({ "Version": "2012-10-17", "Statement": [] }),
            BTreeMap::from([("team".to_owned(), "media".to_owned())]),
        )
    }

    fn as_desired(desired: &DesiredRole) -> ObservedRole {
        ObservedRole {
            arn: desired.arn.clone(),
            trust_policy: Some(desired.trust_policy.clone()),
            tags: desired.tags.clone(),
            policy: Some(desired.policy.clone()),
        }
    }

    #[test]
    fn a_role_is_created_with_its_policy_and_left_alone_once_as_desired() {
        let desired = desired();
        assert_eq!(
            converge(&desired, None),
            [RoleStep::Create, RoleStep::PutPolicy { existed: false }]
        );
        assert_eq!(converge(&desired, Some(&as_desired(&desired))), []);
    }

    #[test]
    fn a_role_without_its_policy_or_tags_gets_them_back() {
        let desired = desired();
        let stripped = ObservedRole {
            policy: None,
            tags: BTreeMap::new(),
            ..as_desired(&desired)
        };
        assert_eq!(
            converge(&desired, Some(&stripped)),
            [
                RoleStep::PutPolicy { existed: false },
                RoleStep::SetTags {
                    observed: BTreeMap::new()
                },
            ]
        );
    }

    #[test]
    fn the_inline_policy_is_deleted_before_the_role() {
        let desired = desired();
        assert_eq!(
            teardown(Some(&as_desired(&desired))),
            [RoleStep::DeletePolicy, RoleStep::Delete]
        );
        assert_eq!(teardown(None), []);
    }
}
