//! Delivery: the Firehose stream that writes image events into the bucket
//! under `events/` (failures under `errors/`), and the IAM role it writes with,
//! which can reach this bucket and nothing else.

use std::collections::BTreeMap;

use aws_sdk_firehose::types::{
    BufferingHints, CompressionFormat, DeliveryStreamEncryptionConfigurationInput,
    DeliveryStreamEncryptionStatus, DeliveryStreamStatus, DeliveryStreamType,
    ExtendedS3DestinationConfiguration, ExtendedS3DestinationUpdate, KeyType,
};
use serde_json::json;

use super::{built, ownership};
use crate::api::v1alpha1::{Compression, DeletionPolicy};
use crate::aws::AwsClients;
use crate::aws::errors::{classify, code};
use crate::engine::{
    Action, Change, Component, ComponentError, ComponentKind, Outputs, PipelineContext, Readiness,
    removed_tag_keys, tag_changes,
};
use crate::resources::iam_role::{self, DesiredRole, ObservedRole, RoleStep};
use crate::resources::tags::{from_sdk, to_sdk};

pub use ingest_core::contract::prefix::{ERRORS as ERRORS_PREFIX, EVENTS as EVENTS_PREFIX};

pub struct Delivery;

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredDelivery {
    pub role: DesiredRole,
    pub stream: DesiredStream,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredStream {
    pub name: String,
    pub arn: String,
    pub owner: String,
    pub destination: Destination,
    pub tags: BTreeMap<String, String>,
}

/// The destination settings the operator manages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    pub bucket_arn: String,
    pub role_arn: String,
    pub prefix: String,
    pub error_prefix: String,
    pub buffer_size_mib: i32,
    pub buffer_interval_seconds: i32,
    pub compression: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedDelivery {
    pub role: Option<ObservedRole>,
    pub stream: Option<ObservedStream>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ObservedStream {
    pub arn: String,
    pub status: String,
    pub version_id: String,
    pub destination_id: String,
    pub destination: Option<Destination>,
    pub encrypted: bool,
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum DeliveryStep {
    Role(RoleStep),
    CreateStream,
    UpdateDestination { observed: Option<Destination> },
    EnableEncryption,
    SetTags { observed: BTreeMap<String, String> },
    DeleteStream,
}

impl Component for Delivery {
    const KIND: ComponentKind = ComponentKind::Delivery;
    const DEPENDS_ON: &'static [ComponentKind] = &[ComponentKind::Storage];
    type Desired = DesiredDelivery;
    type Observed = ObservedDelivery;
    type Step = DeliveryStep;

    fn desired(ctx: &PipelineContext, _upstream: &Outputs) -> Result<DesiredDelivery, ComponentError> {
        let bucket_arn = ctx.bucket_arn();
        let role_name = ctx.resource_name("firehose", 64);
        let role_arn = ctx.global_arn("iam", &format!("role{}{role_name}", iam_role::ROLE_PATH));
        // What Firehose needs to write objects, on this bucket only.
        let policy = json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Action": [
                    "s3:AbortMultipartUpload", "s3:GetBucketLocation", "s3:GetObject",
                    "s3:ListBucket", "s3:ListBucketMultipartUploads", "s3:PutObject"
                ],
                "Resource": [bucket_arn.clone(), format!("{bucket_arn}/*")]
            }]
        });
        let tags = ctx.tags(Self::KIND);
        let role = DesiredRole::for_service(
            role_name,
            role_arn.clone(),
            "firehose.amazonaws.com",
            &ctx.account_id,
            "deliver-to-bucket",
            policy,
            tags.clone(),
        );
        let name = ctx.resource_name("events", 64);
        let delivery = &ctx.spec.delivery;
        Ok(DesiredDelivery {
            role,
            stream: DesiredStream {
                arn: ctx.arn("firehose", &format!("deliverystream/{name}")),
                name,
                owner: ctx.owner.tag_value(),
                destination: Destination {
                    bucket_arn,
                    role_arn,
                    prefix: EVENTS_PREFIX.to_owned(),
                    error_prefix: ERRORS_PREFIX.to_owned(),
                    buffer_size_mib: delivery.buffer_size_mib,
                    buffer_interval_seconds: delivery.buffer_interval_seconds,
                    compression: compression_format(delivery.compression).as_str().to_owned(),
                },
                tags,
            },
        })
    }

    async fn observe(
        aws: &AwsClients,
        desired: &DesiredDelivery,
    ) -> Result<ObservedDelivery, ComponentError> {
        Ok(ObservedDelivery {
            role: iam_role::observe(aws, &desired.role).await?,
            stream: observe_stream(aws, &desired.stream).await?,
        })
    }

    fn converge(
        desired: &DesiredDelivery,
        observed: &ObservedDelivery,
    ) -> Result<Vec<DeliveryStep>, ComponentError> {
        if let Some(role) = &observed.role {
            ownership::check(
                &role.tags,
                &desired.stream.owner,
                &format!("IAM role {}", desired.role.name),
            )?;
        }
        let mut steps: Vec<DeliveryStep> = iam_role::converge(&desired.role, observed.role.as_ref())
            .into_iter()
            .map(DeliveryStep::Role)
            .collect();
        let Some(stream) = &observed.stream else {
            steps.push(DeliveryStep::CreateStream);
            return Ok(steps);
        };
        ownership::check(
            &stream.tags,
            &desired.stream.owner,
            &format!("Firehose stream {}", desired.stream.name),
        )?;
        if stream.status == DeliveryStreamStatus::Deleting.as_str() {
            return Err(ComponentError::retryable(
                "StreamDeleting",
                format!(
                    "Firehose stream {} is being deleted; it is made again once it is gone",
                    desired.stream.name
                ),
            ));
        }
        if stream.tags != desired.stream.tags {
            steps.push(DeliveryStep::SetTags {
                observed: stream.tags.clone(),
            });
        }
        // Firehose accepts changes only to an ACTIVE stream.
        if stream.status != DeliveryStreamStatus::Active.as_str() {
            return Ok(steps);
        }
        if stream.destination.as_ref() != Some(&desired.stream.destination) {
            steps.push(DeliveryStep::UpdateDestination {
                observed: stream.destination.clone(),
            });
        }
        if !stream.encrypted {
            steps.push(DeliveryStep::EnableEncryption);
        }
        Ok(steps)
    }

    fn teardown(
        desired: &DesiredDelivery,
        observed: &ObservedDelivery,
        _policy: DeletionPolicy,
    ) -> (Vec<DeliveryStep>, Option<String>) {
        // Delivery is never retained: it holds no data of its own.
        let owner = &desired.stream.owner;
        if let Some(stream) = &observed.stream {
            if !ownership::is_ours(&stream.tags, owner) && !stream.tags.is_empty() {
                return (vec![], None);
            }
            if stream.status == DeliveryStreamStatus::Deleting.as_str() {
                return (
                    vec![],
                    Some(format!(
                        "Firehose stream {} is being deleted",
                        desired.stream.name
                    )),
                );
            }
            return (vec![DeliveryStep::DeleteStream], None);
        }
        match &observed.role {
            Some(role) if ownership::is_ours(&role.tags, owner) || role.tags.is_empty() => (
                iam_role::teardown(Some(role))
                    .into_iter()
                    .map(DeliveryStep::Role)
                    .collect(),
                None,
            ),
            _ => (vec![], None),
        }
    }

    async fn execute(
        aws: &AwsClients,
        desired: &DesiredDelivery,
        observed: &mut ObservedDelivery,
        step: &DeliveryStep,
    ) -> Result<(), ComponentError> {
        let firehose = &aws.firehose;
        let stream = &desired.stream;
        let name = stream.name.as_str();
        let action = format!("{} ({name})", Self::describe(desired, step).resource);
        match step {
            DeliveryStep::Role(step) => iam_role::execute(aws, &desired.role, &mut observed.role, step).await,
            DeliveryStep::CreateStream => {
                let tags = to_sdk(&stream.tags)?;
                let result = firehose
                    .create_delivery_stream()
                    .delivery_stream_name(name)
                    .delivery_stream_type(DeliveryStreamType::DirectPut)
                    .extended_s3_destination_configuration(destination_config(&stream.destination)?)
                    .delivery_stream_encryption_configuration_input(aws_owned_key()?)
                    .set_tags(Some(tags))
                    .send()
                    .await;
                match result {
                    Ok(_) => Ok(()),
                    Err(err) if code(&err) == Some("ResourceInUseException") => Ok(()),
                    // A role made seconds ago may not have reached Firehose yet
                    // (IAM is eventually consistent): not the spec's fault.
                    Err(err) if code(&err) == Some("InvalidArgumentException") => {
                        let mut err = classify(&action, err);
                        err.kind = crate::engine::ErrorKind::Retryable;
                        err.reason = "RoleNotYetUsable".to_owned();
                        Err(err)
                    }
                    Err(err) => Err(classify(&action, err)),
                }
            }
            DeliveryStep::UpdateDestination { .. } => {
                let Some(current) = &observed.stream else {
                    return Ok(());
                };
                let d = &stream.destination;
                let update = ExtendedS3DestinationUpdate::builder()
                    .role_arn(&d.role_arn)
                    .bucket_arn(&d.bucket_arn)
                    .prefix(&d.prefix)
                    .error_output_prefix(&d.error_prefix)
                    .buffering_hints(buffering(d))
                    .compression_format(CompressionFormat::from(d.compression.as_str()))
                    .build();
                firehose
                    .update_destination()
                    .delivery_stream_name(name)
                    .current_delivery_stream_version_id(&current.version_id)
                    .destination_id(&current.destination_id)
                    .extended_s3_destination_update(update)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|err| classify(&action, err))
            }
            DeliveryStep::EnableEncryption => firehose
                .start_delivery_stream_encryption()
                .delivery_stream_name(name)
                .delivery_stream_encryption_configuration_input(aws_owned_key()?)
                .send()
                .await
                .map(drop)
                .map_err(|err| classify(&action, err)),
            DeliveryStep::SetTags { observed: old } => {
                let stale = removed_tag_keys(old, &stream.tags);
                if !stale.is_empty() {
                    firehose
                        .untag_delivery_stream()
                        .delivery_stream_name(name)
                        .set_tag_keys(Some(stale))
                        .send()
                        .await
                        .map_err(|err| classify(&action, err))?;
                }
                let tags = to_sdk(&stream.tags)?;
                firehose
                    .tag_delivery_stream()
                    .delivery_stream_name(name)
                    .set_tags(Some(tags))
                    .send()
                    .await
                    .map(drop)
                    .map_err(|err| classify(&action, err))
            }
            DeliveryStep::DeleteStream => match firehose
                .delete_delivery_stream()
                .delivery_stream_name(name)
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(err) if code(&err) == Some("ResourceNotFoundException") => Ok(()),
                Err(err) => Err(classify(&action, err)),
            },
        }
    }

    fn describe(desired: &DesiredDelivery, step: &DeliveryStep) -> Change {
        match step {
            DeliveryStep::Role(step) => iam_role::change(&desired.role, step),
            DeliveryStep::SetTags { observed } => {
                let mut change = step.change();
                change.fields = tag_changes(observed, &desired.stream.tags);
                change
            }
            step => {
                let mut change = step.change();
                change.resource = change.resource.replacen(
                    "Firehose stream",
                    &format!("Firehose stream {}", desired.stream.name),
                    1,
                );
                change
            }
        }
    }

    fn readiness(desired: &DesiredDelivery, observed: &ObservedDelivery) -> Readiness {
        let resource = format!("Firehose stream {}", desired.stream.name);
        let status = observed.stream.as_ref().map(|s| s.status.as_str());
        Readiness::of(&resource, status, DeliveryStreamStatus::Active.as_str())
    }

    fn publish(desired: &DesiredDelivery, observed: &ObservedDelivery, outputs: &mut Outputs) {
        iam_role::publish(Self::KIND, &desired.role, observed.role.as_ref(), outputs);
        if let Some(stream) = &observed.stream {
            outputs.delivery_stream = Some(desired.stream.name.clone());
            outputs.resource(
                Self::KIND,
                "AWS::KinesisFirehose::DeliveryStream",
                &desired.stream.name,
                Some(stream.arn.clone()),
            );
        }
    }
}

impl DeliveryStep {
    fn change(&self) -> Change {
        // The role's steps describe themselves; the stream's are described here.
        let resource = "Firehose stream";
        match self {
            DeliveryStep::Role(_) => Change::new(Action::Update, "IAM role"),
            DeliveryStep::CreateStream => Change::new(Action::Create, resource).note(format!(
                "Direct PUT to {EVENTS_PREFIX}, errors to {ERRORS_PREFIX}, encrypted"
            )),
            DeliveryStep::UpdateDestination { observed } => {
                let mut change = Change::new(Action::Update, format!("{resource} destination"));
                if observed.is_none() {
                    change = change.note("no S3 destination found");
                }
                change
            }
            DeliveryStep::EnableEncryption => {
                Change::new(Action::Update, format!("{resource} encryption")).field("encrypted", false, true)
            }
            DeliveryStep::SetTags { .. } => Change::new(Action::Update, format!("{resource} tags")),
            DeliveryStep::DeleteStream => Change::new(Action::Delete, resource),
        }
    }
}

async fn observe_stream(
    aws: &AwsClients,
    desired: &DesiredStream,
) -> Result<Option<ObservedStream>, ComponentError> {
    let name = desired.name.as_str();
    let description = match aws
        .firehose
        .describe_delivery_stream()
        .delivery_stream_name(name)
        .send()
        .await
    {
        Ok(out) => out.delivery_stream_description,
        Err(err) if code(&err) == Some("ResourceNotFoundException") => None,
        Err(err) => return Err(classify(&format!("look up Firehose stream {name}"), err)),
    };
    let Some(description) = description else {
        return Ok(None);
    };
    let first = description.destinations().first();
    let destination = first
        .and_then(|d| d.extended_s3_destination_description())
        .map(|s3| Destination {
            bucket_arn: s3.bucket_arn().to_owned(),
            role_arn: s3.role_arn().to_owned(),
            prefix: s3.prefix().unwrap_or_default().to_owned(),
            error_prefix: s3.error_output_prefix().unwrap_or_default().to_owned(),
            buffer_size_mib: s3
                .buffering_hints()
                .and_then(|b| b.size_in_mbs())
                .unwrap_or_default(),
            buffer_interval_seconds: s3
                .buffering_hints()
                .and_then(|b| b.interval_in_seconds())
                .unwrap_or_default(),
            compression: s3.compression_format().as_str().to_owned(),
        });
    let encrypted = description
        .delivery_stream_encryption_configuration()
        .and_then(|e| e.status())
        .is_some_and(|s| {
            matches!(
                s,
                DeliveryStreamEncryptionStatus::Enabled | DeliveryStreamEncryptionStatus::Enabling
            )
        });
    let tags = aws
        .firehose
        .list_tags_for_delivery_stream()
        .delivery_stream_name(name)
        .send()
        .await
        .map_err(|err| classify(&format!("read tags of Firehose stream {name}"), err))?;
    Ok(Some(ObservedStream {
        arn: description.delivery_stream_arn().to_owned(),
        status: description.delivery_stream_status().as_str().to_owned(),
        version_id: description.version_id().to_owned(),
        destination_id: first.map(|d| d.destination_id().to_owned()).unwrap_or_default(),
        destination,
        encrypted,
        tags: from_sdk(tags.tags()),
    }))
}

fn destination_config(d: &Destination) -> Result<ExtendedS3DestinationConfiguration, ComponentError> {
    built(
        ExtendedS3DestinationConfiguration::builder()
            .role_arn(&d.role_arn)
            .bucket_arn(&d.bucket_arn)
            .prefix(&d.prefix)
            .error_output_prefix(&d.error_prefix)
            .buffering_hints(buffering(d))
            .compression_format(CompressionFormat::from(d.compression.as_str()))
            .build(),
    )
}

fn buffering(d: &Destination) -> BufferingHints {
    BufferingHints::builder()
        .size_in_mbs(d.buffer_size_mib)
        .interval_in_seconds(d.buffer_interval_seconds)
        .build()
}

fn aws_owned_key() -> Result<DeliveryStreamEncryptionConfigurationInput, ComponentError> {
    built(
        DeliveryStreamEncryptionConfigurationInput::builder()
            .key_type(KeyType::AwsOwnedCmk)
            .build(),
    )
}

fn compression_format(compression: Compression) -> CompressionFormat {
    match compression {
        Compression::Uncompressed => CompressionFormat::Uncompressed,
        Compression::Gzip => CompressionFormat::Gzip,
        Compression::Zip => CompressionFormat::Zip,
        Compression::Snappy => CompressionFormat::Snappy,
        Compression::HadoopSnappy => CompressionFormat::HadoopSnappy,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::engine::{COMPONENT_TAG, context_from_yaml};

    /// The delivery of pipeline media/photos into bucket photos-bucket, with
    /// `delivery` as its `spec.delivery` (a YAML flow mapping).
    fn desired(delivery: &str) -> DesiredDelivery {
        let ctx = context_from_yaml(&format!(
            "
apiVersion: imagepipeline.io/v1alpha1
kind: ImagePipeline
metadata: {{name: photos, namespace: media}}
spec:
  region: eu-west-1
  network: {{availabilityZones: [eu-west-1a, eu-west-1b]}}
  storage: {{bucketName: photos-bucket}}
  delivery: {delivery}
"
        ));
        Delivery::desired(&ctx, &Outputs::default()).expect("delivery of a valid spec")
    }

    const TUNED: &str = "{bufferIntervalSeconds: 120, bufferSizeMiB: 16, compression: ZIP}";

    fn as_desired(desired: &DesiredDelivery) -> ObservedDelivery {
        ObservedDelivery {
            role: Some(ObservedRole {
                arn: desired.role.arn.clone(),
                trust_policy: Some(desired.role.trust_policy.clone()),
                tags: desired.role.tags.clone(),
                policy: Some(desired.role.policy.clone()),
            }),
            stream: Some(ObservedStream {
                arn: desired.stream.arn.clone(),
                status: DeliveryStreamStatus::Active.as_str().to_owned(),
                version_id: "1".into(),
                destination_id: "destinationId-000000000001".into(),
                destination: Some(desired.stream.destination.clone()),
                encrypted: true,
                tags: desired.stream.tags.clone(),
            }),
        }
    }

    #[test]
    fn stream_writes_events_and_errors_into_the_bucket_buffered_and_compressed_as_the_spec_says() {
        let desired = desired(TUNED);
        let destination = &desired.stream.destination;
        assert_eq!(
            *destination,
            Destination {
                bucket_arn: "arn:aws:s3:::photos-bucket".into(),
                role_arn: desired.role.arn.clone(),
                prefix: "events/".into(),
                error_prefix: "errors/".into(),
                buffer_size_mib: 16,
                buffer_interval_seconds: 120,
                compression: "ZIP".into(),
            }
        );
        assert!(
            desired
                .role
                .arn
                .starts_with("arn:aws:iam::123456789012:role/imagepipeline/ipl-media-photos-firehose-"),
            "{}",
            desired.role.arn
        );
        assert_eq!(desired.stream.tags[COMPONENT_TAG], "delivery");
    }

    #[test]
    fn every_compression_of_the_spec_is_the_firehose_format_of_that_name() {
        for format in ["UNCOMPRESSED", "GZIP", "ZIP", "Snappy", "HADOOP_SNAPPY"] {
            let desired = desired(&format!("{{compression: {format}}}"));
            assert_eq!(desired.stream.destination.compression, format);
        }
    }

    #[test]
    fn role_may_write_to_the_pipelines_bucket_and_nothing_else() {
        let policy = desired("{}").role.policy;
        let statements = policy["Statement"].as_array().expect("statements");
        assert!(!statements.is_empty());
        for statement in statements {
            assert_eq!(
                statement["Resource"],
                json!(["arn:aws:s3:::photos-bucket", "arn:aws:s3:::photos-bucket/*"])
            );
            let actions = statement["Action"].as_array().expect("a list of actions");
            assert!(
                actions
                    .iter()
                    .filter_map(Value::as_str)
                    .all(|a| a.starts_with("s3:") && !a.contains('*')),
                "{actions:?}"
            );
        }
    }

    #[test]
    fn only_firehose_on_behalf_of_this_account_may_assume_the_role() {
        let trust = desired("{}").role.trust_policy;
        assert_eq!(
            trust["Statement"],
            json!([{
                "Effect": "Allow",
                "Principal": { "Service": "firehose.amazonaws.com" },
                "Action": "sts:AssumeRole",
                "Condition": { "StringEquals": { "aws:SourceAccount": "123456789012" } }
            }])
        );
    }

    #[test]
    fn a_delivery_as_desired_needs_no_steps() {
        let desired = desired(TUNED);
        assert_eq!(Delivery::converge(&desired, &as_desired(&desired)), Ok(vec![]));
    }

    #[test]
    fn each_drift_yields_only_the_step_that_repairs_it() {
        let desired = desired(TUNED);
        let drifted = |drift: fn(&mut ObservedRole, &mut ObservedStream)| {
            let mut observed = as_desired(&desired);
            drift(observed.role.as_mut().unwrap(), observed.stream.as_mut().unwrap());
            observed
        };
        let redirected = |drift: fn(&mut Destination)| {
            let mut observed = as_desired(&desired);
            let destination = observed.stream.as_mut().unwrap().destination.as_mut().unwrap();
            drift(destination);
            let repair = DeliveryStep::UpdateDestination {
                observed: Some(destination.clone()),
            };
            (observed, repair)
        };
        let cases = [
            redirected(|d| d.buffer_size_mib = 5),
            redirected(|d| d.buffer_interval_seconds = 60),
            redirected(|d| d.compression = "GZIP".into()),
            redirected(|d| d.prefix = String::new()),
            (
                drifted(|_, s| s.encrypted = false),
                DeliveryStep::EnableEncryption,
            ),
            (
                drifted(|r, _| r.policy.as_mut().unwrap()["Statement"][0]["Resource"] = json!("*")),
                DeliveryStep::Role(RoleStep::PutPolicy { existed: true }),
            ),
            (
                drifted(|r, _| r.trust_policy.as_mut().unwrap()["Statement"][0]["Condition"] = json!({})),
                DeliveryStep::Role(RoleStep::UpdateTrustPolicy),
            ),
        ];
        for (observed, repair) in cases {
            assert_eq!(
                Delivery::converge(&desired, &observed),
                Ok(vec![repair]),
                "{observed:?}"
            );
        }
    }
}
