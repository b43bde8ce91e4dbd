//! Helpers for SDK calls that several components make the same way: deletes
//! that find their resource gone, errors named after what was being done, and
//! EC2 and Redshift tags.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::error::operation::BuildError;

use super::tags::to_sdk;
use crate::aws::AwsClients;
use crate::aws::errors::{classify, code};
use crate::engine::ComponentError;

/// A delete that finds its resource already gone has done its work.
pub(crate) fn deleted<T, E>(
    result: Result<T, SdkError<E, HttpResponse>>,
    gone: &[&str],
    action: &str,
) -> Result<(), ComponentError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(()),
        Err(err) if code(&err).is_some_and(|c| gone.contains(&c)) => Ok(()),
        Err(err) => Err(blocked_or(err, action)),
    }
}

/// Classifies the failure to `verb` the resource `what`.
pub(crate) fn failed<E>(verb: &str, what: &str) -> impl FnOnce(SdkError<E, HttpResponse>) -> ComponentError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let action = format!("{verb} {what}");
    move |err| classify(&action, err)
}

/// Error codes with which AWS refuses to delete what something still stands
/// on (EC2, Elastic Load Balancing, IAM).
const IN_USE_CODES: [&str; 3] = ["DependencyViolation", "ResourceInUse", "DeleteConflict"];

/// AWS refuses to delete what something still stands on: that is waiting,
/// and the message names what blocks.
pub(crate) fn blocked_or<E>(err: SdkError<E, HttpResponse>, action: &str) -> ComponentError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let dependency = code(&err).is_some_and(|c| IN_USE_CODES.contains(&c));
    let mut err = classify(action, err);
    if dependency {
        err.reason = "DeletionBlocked".to_owned();
    }
    err
}

pub(crate) fn tag_specification(
    resource_type: ResourceType,
    tags: &BTreeMap<String, String>,
) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource_type)
        // EC2 tags always build: the builder has no required field.
        .set_tags(to_sdk(tags).ok())
        .build()
}

/// Terminates instances; ones already gone count as terminated.
pub(crate) async fn terminate_instances(
    aws: &AwsClients,
    ids: &[String],
    what: &str,
) -> Result<(), ComponentError> {
    deleted(
        aws.ec2
            .terminate_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send()
            .await,
        &["InvalidInstanceID.NotFound"],
        &format!("terminate {what}"),
    )
}

/// Makes the tags of the EC2 resource `id` exactly `desired`.
pub(crate) async fn set_ec2_tags(
    aws: &AwsClients,
    id: &str,
    observed: &BTreeMap<String, String>,
    desired: &BTreeMap<String, String>,
    what: &str,
) -> Result<(), ComponentError> {
    let stale: Vec<Tag> = crate::engine::removed_tag_keys(observed, desired)
        .into_iter()
        .map(|key| Tag::builder().key(key).build())
        .collect();
    if !stale.is_empty() {
        aws.ec2
            .delete_tags()
            .resources(id)
            .set_tags(Some(stale))
            .send()
            .await
            .map_err(failed("untag", what))?;
    }
    aws.ec2
        .create_tags()
        .resources(id)
        .set_tags(Some(to_sdk(desired)?))
        .send()
        .await
        .map(drop)
        .map_err(failed("tag", what))
}

/// Sets `desired` on the Redshift resource `arn`; with `observed`, its keys
/// no longer desired are removed first. Without, tags are only added: the
/// cluster's record of its schema is set so, beside its managed tags.
pub(crate) async fn set_redshift_tags(
    aws: &AwsClients,
    arn: &str,
    observed: Option<&BTreeMap<String, String>>,
    desired: &BTreeMap<String, String>,
    what: &str,
) -> Result<(), ComponentError> {
    let stale = observed
        .map(|old| crate::engine::removed_tag_keys(old, desired))
        .unwrap_or_default();
    if !stale.is_empty() {
        aws.redshift
            .delete_tags()
            .resource_name(arn)
            .set_tag_keys(Some(stale))
            .send()
            .await
            .map_err(failed("untag", what))?;
    }
    aws.redshift
        .create_tags()
        .resource_name(arn)
        .set_tags(Some(to_sdk(desired)?))
        .send()
        .await
        .map(drop)
        .map_err(failed("tag", what))
}

/// SDK builders fail only when a required field is missing, which is a bug
/// in the operator, not something the user can fix; reported as such.
pub(crate) fn built<T>(result: Result<T, BuildError>) -> Result<T, ComponentError> {
    result.map_err(|err| {
        ComponentError::terminal(
            "InternalError",
            format!("the operator built an invalid AWS request: {err}"),
        )
    })
}
