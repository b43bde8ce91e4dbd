//! The calls that find, make, change and delete a role and its inline
//! policy, as steps the role's verbs run in order.

use std::collections::BTreeMap;

use percent_encoding::percent_decode_str;
use serde_json::Value;

use super::{DesiredRole, ObservedRole, ROLE_PATH};
use crate::aws::AwsClients;
use crate::aws::errors::{classify, code};
use crate::engine::{ComponentError, removed_tag_keys};
use crate::resources::tags::{from_sdk, to_sdk};

#[derive(Clone, Debug, PartialEq)]
pub(super) enum RoleStep {
    Create,
    UpdateTrustPolicy,
    PutPolicy { existed: bool },
    SetTags { observed: BTreeMap<String, String> },
    DeletePolicy,
    Delete,
}

pub(super) async fn observe(
    aws: &AwsClients,
    desired: &DesiredRole,
) -> Result<Option<ObservedRole>, ComponentError> {
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

pub(super) fn converge(desired: &DesiredRole, observed: Option<&ObservedRole>) -> Vec<RoleStep> {
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

pub(super) fn teardown(observed: Option<&ObservedRole>) -> Vec<RoleStep> {
    match observed {
        None => vec![],
        Some(role) if role.policy.is_some() => vec![RoleStep::DeletePolicy, RoleStep::Delete],
        Some(_) => vec![RoleStep::Delete],
    }
}

pub(super) async fn execute(
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
