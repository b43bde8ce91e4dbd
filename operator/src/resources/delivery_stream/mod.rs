//! A Firehose delivery stream (Direct PUT) into an S3 bucket, encrypted with
//! an AWS-owned key; found by its deterministic name.

mod destination;

use aws_sdk_firehose::types::{
    DeliveryStreamDescription, DeliveryStreamEncryptionConfigurationInput, DeliveryStreamEncryptionStatus,
    DeliveryStreamStatus, DeliveryStreamType, KeyType,
};

pub use self::destination::{Destination, compression_format};
use super::sdk::{deleted, failed};
use super::tags::{from_sdk, to_sdk};
use crate::aws::AwsClients;
use crate::aws::errors::{classify, code};
use crate::engine::resource::Resource;
use crate::engine::{ComponentError, ErrorKind, Readiness, Tags, field, removed_tag_keys, tag_changes};
use crate::resources::sdk::built;

const NOT_FOUND: &str = "ResourceNotFoundException";

#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryStream {
    pub name: String,
    /// What it is called once made; Firehose says so again when it is found.
    pub arn: String,
    pub destination: Destination,
    pub tags: Tags,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StreamState {
    pub name: String,
    pub arn: String,
    /// `CREATING`, `ACTIVE`, `DELETING`, …
    pub status: String,
    /// An update names the version and destination it changes.
    pub version_id: String,
    pub destination_id: String,
    /// `None`: the stream has no S3 destination.
    pub destination: Option<Destination>,
    pub encrypted: bool,
    pub tags: Tags,
}

impl StreamState {
    fn is(&self, status: DeliveryStreamStatus) -> bool {
        self.status == status.as_str()
    }
}

impl Resource for DeliveryStream {
    type Observed = StreamState;
    const TYPE: Option<&'static str> = Some("AWS::KinesisFirehose::DeliveryStream");
    const DELETED_LATER: bool = true;

    fn label(&self) -> String {
        format!("Firehose stream {}", self.name)
    }

    async fn find(&self, aws: &AwsClients) -> Result<Option<StreamState>, ComponentError> {
        let name = self.name.as_str();
        let described = aws
            .firehose
            .describe_delivery_stream()
            .delivery_stream_name(name)
            .send()
            .await;
        let description = match described {
            Ok(out) => out.delivery_stream_description,
            Err(err) if code(&err) == Some(NOT_FOUND) => None,
            Err(err) => return Err(classify(&format!("look up {}", self.label()), err)),
        };
        let Some(description) = description else {
            return Ok(None);
        };
        let tags = aws
            .firehose
            .list_tags_for_delivery_stream()
            .delivery_stream_name(name)
            .send()
            .await
            .map_err(failed("read tags of", &self.label()))?;
        Ok(Some(stream_state(name, &description, from_sdk(tags.tags()))))
    }

    fn delta(&self, observed: &StreamState) -> Result<Vec<String>, ComponentError> {
        if observed.is(DeliveryStreamStatus::Deleting) {
            return Err(ComponentError::retryable(
                "StreamDeleting",
                format!(
                    "{} is being deleted; it is made again once it is gone",
                    self.label()
                ),
            ));
        }
        let mut fields = tag_changes(&observed.tags, &self.tags);
        // Firehose accepts other changes only to an ACTIVE stream.
        if observed.is(DeliveryStreamStatus::Active) {
            fields.extend(self.destination.changes_from(observed.destination.as_ref()));
            if !observed.encrypted {
                fields.push(field("encrypted", false, true));
            }
        }
        Ok(fields)
    }

    fn create_fields(&self) -> Vec<String> {
        let d = &self.destination;
        vec![
            format!(
                "Direct PUT to {}, errors to {}, encrypted",
                d.prefix, d.error_prefix
            ),
            format!(
                "buffered {} MiB or {} s, {}",
                d.buffer_size_mib, d.buffer_interval_seconds, d.compression
            ),
        ]
    }

    async fn create(&self, aws: &AwsClients) -> Result<StreamState, ComponentError> {
        let action = format!("create {}", self.label());
        let created = aws
            .firehose
            .create_delivery_stream()
            .delivery_stream_name(&self.name)
            .delivery_stream_type(DeliveryStreamType::DirectPut)
            .extended_s3_destination_configuration(self.destination.config()?)
            .delivery_stream_encryption_configuration_input(aws_owned_key()?)
            .set_tags(Some(to_sdk(&self.tags)?))
            .send()
            .await;
        let arn = match created {
            Ok(out) => out.delivery_stream_arn.unwrap_or_else(|| self.arn.clone()),
            // Made by an earlier pass that crashed before it saw the answer.
            Err(err) if code(&err) == Some("ResourceInUseException") => self.arn.clone(),
            // A role made seconds ago may not have reached Firehose yet (IAM
            // is eventually consistent): not the spec's fault.
            Err(err) if code(&err) == Some("InvalidArgumentException") => {
                let mut err = classify(&action, err);
                err.kind = ErrorKind::Retryable;
                err.reason = "RoleNotYetUsable".to_owned();
                return Err(err);
            }
            Err(err) => return Err(classify(&action, err)),
        };
        Ok(StreamState {
            name: self.name.clone(),
            arn,
            status: DeliveryStreamStatus::Creating.as_str().to_owned(),
            version_id: String::new(),
            destination_id: String::new(),
            destination: Some(self.destination.clone()),
            encrypted: true,
            tags: self.tags.clone(),
        })
    }

    async fn update(&self, aws: &AwsClients, observed: &StreamState) -> Result<(), ComponentError> {
        let firehose = &aws.firehose;
        let (name, label) = (self.name.as_str(), self.label());
        if observed.tags != self.tags {
            let stale = removed_tag_keys(&observed.tags, &self.tags);
            if !stale.is_empty() {
                firehose
                    .untag_delivery_stream()
                    .delivery_stream_name(name)
                    .set_tag_keys(Some(stale))
                    .send()
                    .await
                    .map_err(failed("untag", &label))?;
            }
            firehose
                .tag_delivery_stream()
                .delivery_stream_name(name)
                .set_tags(Some(to_sdk(&self.tags)?))
                .send()
                .await
                .map_err(failed("tag", &label))?;
        }
        if !observed.is(DeliveryStreamStatus::Active) {
            return Ok(());
        }
        if observed.destination.as_ref() != Some(&self.destination) {
            firehose
                .update_destination()
                .delivery_stream_name(name)
                .current_delivery_stream_version_id(&observed.version_id)
                .destination_id(&observed.destination_id)
                .extended_s3_destination_update(self.destination.update())
                .send()
                .await
                .map_err(failed("update the destination of", &label))?;
        }
        if !observed.encrypted {
            firehose
                .start_delivery_stream_encryption()
                .delivery_stream_name(name)
                .delivery_stream_encryption_configuration_input(aws_owned_key()?)
                .send()
                .await
                .map_err(failed("encrypt", &label))?;
        }
        Ok(())
    }

    async fn delete(&self, aws: &AwsClients, _observed: &StreamState) -> Result<(), ComponentError> {
        deleted(
            aws.firehose
                .delete_delivery_stream()
                .delivery_stream_name(&self.name)
                .send()
                .await,
            &[NOT_FOUND],
            &format!("delete {}", self.label()),
        )
    }

    fn id(observed: &StreamState) -> String {
        observed.name.clone()
    }

    fn arn(observed: &StreamState) -> Option<String> {
        Some(observed.arn.clone())
    }

    fn tags(observed: &StreamState) -> Option<&Tags> {
        Some(&observed.tags)
    }

    fn readiness(&self, observed: &StreamState) -> Readiness {
        let ready = DeliveryStreamStatus::Active.as_str();
        Readiness::of(&self.label(), Some(&observed.status), ready)
    }

    fn going(&self, observed: &StreamState) -> Option<String> {
        observed
            .is(DeliveryStreamStatus::Deleting)
            .then(|| format!("{} is being deleted", self.label()))
    }
}

fn stream_state(name: &str, description: &DeliveryStreamDescription, tags: Tags) -> StreamState {
    let first = description.destinations().first();
    let destination = first
        .and_then(|d| d.extended_s3_destination_description())
        .map(Destination::observed);
    let encrypted = description
        .delivery_stream_encryption_configuration()
        .and_then(|e| e.status())
        .is_some_and(|s| {
            matches!(
                s,
                DeliveryStreamEncryptionStatus::Enabled | DeliveryStreamEncryptionStatus::Enabling
            )
        });
    StreamState {
        name: name.to_owned(),
        arn: description.delivery_stream_arn().to_owned(),
        status: description.delivery_stream_status().as_str().to_owned(),
        version_id: description.version_id().to_owned(),
        destination_id: first.map(|d| d.destination_id().to_owned()).unwrap_or_default(),
        destination,
        encrypted,
        tags,
    }
}

fn aws_owned_key() -> Result<DeliveryStreamEncryptionConfigurationInput, ComponentError> {
    built(
        DeliveryStreamEncryptionConfigurationInput::builder()
            .key_type(KeyType::AwsOwnedCmk)
            .build(),
    )
}
