//! An IAM role with one inline policy: the shape the Firehose delivery role,
//! the upload instances' role and the Redshift role take. Found by its
//! deterministic name.

use std::collections::BTreeMap;

use percent_encoding::percent_decode_str;
use serde_json::{Value, json};

use crate::aws::AwsClients;
use crate::aws::errors::{classify, code};
use crate::engine::resource::Resource;
use crate::engine::{ComponentError, Tags, field, removed_tag_keys, tag_changes};
use crate::resources::tags::{from_sdk, to_sdk};

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

#[derive(Clone, Debug, PartialEq)]
enum RoleStep {
    Create,
    UpdateTrustPolicy,
    PutPolicy { existed: bool },
    SetTags { observed: BTreeMap<String, String> },
    DeletePolicy,
    Delete,
}

async fn observe(aws: &AwsClients, desired: &DesiredRole) -> Result<Option<ObservedRole>, ComponentError> {
    let name = desired.name.as_str();
    let role = match aws.iam.get_role().role_name(name).send().await {
        Ok(out) => out.role,
        Err(err) if code(&err) == Some("NoSuchEntity") => return Ok(None),
        Err(err) => return Err(classify(&format!("look up IAM role {name}"), err)),
    };
    let Some(role) = role else { return Ok(None) };
    let policy = match aws
        .iam
        .get_role_policy()
        .role_name(name)
        .policy_name(&desired.policy_name)
        .send()
        .await
    {
        Ok(out) => decode_policy(out.policy_document()),
        Err(err) if code(&err) == Some("NoSuchEntity") => None,
        Err(err) => return Err(classify(&format!("read policy of IAM role {name}"), err)),
    };
    Ok(Some(ObservedRole {
        arn: role.arn().to_owned(),
        trust_policy: role.assume_role_policy_document().and_then(decode_policy),
        tags: from_sdk(role.tags()),
        policy,
    }))
}

/// IAM returns policy documents URL-encoded.
fn decode_policy(document: &str) -> Option<Value> {
    let text = percent_decode_str(document).decode_utf8().ok()?;
    serde_json::from_str(&text).ok()
}

fn converge(desired: &DesiredRole, observed: Option<&ObservedRole>) -> Vec<RoleStep> {
    let Some(role) = observed else {
        return vec![RoleStep::Create, RoleStep::PutPolicy { existed: false }];
    };
    let mut steps = Vec::new();
    if role.trust_policy.as_ref() != Some(&desired.trust_policy) {
        steps.push(RoleStep::UpdateTrustPolicy);
    }
    if role.policy.as_ref() != Some(&desired.policy) {
        steps.push(RoleStep::PutPolicy {
            existed: role.policy.is_some(),
        });
    }
    if role.tags != desired.tags {
        steps.push(RoleStep::SetTags {
            observed: role.tags.clone(),
        });
    }
    steps
}

fn teardown(observed: Option<&ObservedRole>) -> Vec<RoleStep> {
    match observed {
        None => vec![],
        Some(role) if role.policy.is_some() => vec![RoleStep::DeletePolicy, RoleStep::Delete],
        Some(_) => vec![RoleStep::Delete],
    }
}

async fn execute(
    aws: &AwsClients,
    desired: &DesiredRole,
    observed: &mut Option<ObservedRole>,
    step: &RoleStep,
) -> Result<(), ComponentError> {
    let iam = &aws.iam;
    let name = desired.name.as_str();
    let verb = match step {
        RoleStep::Create => "create",
        RoleStep::UpdateTrustPolicy => "update the trust policy of",
        RoleStep::PutPolicy { .. } => "put the inline policy of",
        RoleStep::SetTags { .. } => "tag",
        RoleStep::DeletePolicy => "delete the inline policy of",
        RoleStep::Delete => "delete",
    };
    let action = format!("{verb} IAM role {name}");
    match step {
        RoleStep::Create => {
            let tags = to_sdk(&desired.tags)?;
            match iam
                .create_role()
                .role_name(name)
                .path(ROLE_PATH)
                .assume_role_policy_document(desired.trust_policy.to_string())
                .set_tags(Some(tags))
                .send()
                .await
            {
                Ok(out) => {
                    let arn = out
                        .role()
                        .map(|r| r.arn().to_owned())
                        .unwrap_or_else(|| desired.arn.clone());
                    *observed = Some(ObservedRole {
                        arn,
                        ..ObservedRole::default()
                    });
                    Ok(())
                }
                // Made by an earlier pass that crashed before it saw the answer.
                Err(err) if code(&err) == Some("EntityAlreadyExists") => Ok(()),
                Err(err) => Err(classify(&action, err)),
            }
        }
        RoleStep::UpdateTrustPolicy => iam
            .update_assume_role_policy()
            .role_name(name)
            .policy_document(desired.trust_policy.to_string())
            .send()
            .await
            .map(drop)
            .map_err(|err| classify(&action, err)),
        RoleStep::PutPolicy { .. } => iam
            .put_role_policy()
            .role_name(name)
            .policy_name(&desired.policy_name)
            .policy_document(desired.policy.to_string())
            .send()
            .await
            .map(drop)
            .map_err(|err| classify(&action, err)),
        RoleStep::SetTags { observed: old } => {
            let stale = removed_tag_keys(old, &desired.tags);
            if !stale.is_empty() {
                iam.untag_role()
                    .role_name(name)
                    .set_tag_keys(Some(stale))
                    .send()
                    .await
                    .map_err(|err| classify(&action, err))?;
            }
            iam.tag_role()
                .role_name(name)
                .set_tags(Some(to_sdk(&desired.tags)?))
                .send()
                .await
                .map(drop)
                .map_err(|err| classify(&action, err))
        }
        RoleStep::DeletePolicy => {
            match iam
                .delete_role_policy()
                .role_name(name)
                .policy_name(&desired.policy_name)
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(err) if code(&err) == Some("NoSuchEntity") => Ok(()),
                Err(err) => Err(classify(&action, err)),
            }
        }
        RoleStep::Delete => match iam.delete_role().role_name(name).send().await {
            Ok(_) => Ok(()),
            Err(err) if code(&err) == Some("NoSuchEntity") => Ok(()),
            Err(err) => Err(classify(&action, err)),
        },
    }
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
