//! Launching a broker's instance: whether its type is offered in its zone,
//! the `RunInstances` that a retry cannot repeat, and what its errors mean.

use std::collections::BTreeSet;

use aws_sdk_ec2::operation::run_instances::{RunInstancesError, RunInstancesOutput};
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, HttpTokensState, IamInstanceProfileSpecification,
    InstanceMetadataEndpointState, InstanceMetadataOptionsRequest, ResourceType, VolumeType,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use sha2::{Digest, Sha256};

use super::BROKER_TAG;
use crate::aws::AwsClients;
use crate::aws::errors::{Lookup, SpecReference, classify_with, code};
use crate::components::kafka_broker_setup::DATA_VOLUME_DEVICE;
use crate::engine::resource::Ref;
use crate::engine::{ComponentError, Tags};
use crate::resources::instance_offering::check_offered;
use crate::resources::machine_image::{ImageSource, ResolvedImage};
use crate::resources::sdk::tag_specification;

const INSTANCE_TYPE_FIELD: &str = "spec.kafka.instanceType";
/// Each broker's root volume (gp3, beside its data volume): room for the
/// OS, Java and the Kafka distribution.
pub const ROOT_VOLUME_GIB: i32 = 20;
/// Only the broker's own processes (not containers on it) may use the
/// instance role's credentials: one hop keeps IMDS to the host.
const BROKER_IMDS_HOP_LIMIT: i32 = 1;

#[derive(Clone, Debug, PartialEq)]
pub struct Launch {
    pub image: ResolvedImage,
    /// Where the image comes from, for an error naming the spec field.
    pub image_source: ImageSource,
    pub instance_type: String,
    pub volume_gib: i32,
    pub availability_zone: String,
    pub subnet: Ref,
    pub security_group: Ref,
    pub private_ip: String,
    /// The instance profile whose role lets the broker fetch Kafka and
    /// write its heartbeat.
    pub instance_profile_arn: String,
    /// Base64 of the first-boot script.
    pub user_data: String,
    /// The owner's and component's tags and `Name`; [`BROKER_TAG`] is added.
    pub tags: Tags,
}

impl Launch {
    /// Launches the instance of broker `node_id` (`broker` in messages) and
    /// returns its id; `replaced` are the instances that held it before.
    pub(super) async fn run(
        &self,
        aws: &AwsClients,
        owner: &str,
        node_id: u32,
        broker: &str,
        replaced: &[String],
    ) -> Result<String, ComponentError> {
        let zone = BTreeSet::from([self.availability_zone.clone()]);
        check_offered(aws, &self.instance_type, &zone, INSTANCE_TYPE_FIELD).await?;
        let token = client_token(owner, node_id, self.subnet.id(), replaced);
        let launched = self.request(aws, node_id, &token).await.map_err(|err| {
            if code(&err) == Some("InvalidIPAddress.InUse") {
                // Taken by this broker from a pass that crashed (not visible
                // yet), or by something else in the subnet.
                return ComponentError::retryable(
                    "BrokerAddressInUse",
                    format!(
                        "{broker}: address {} in subnet {} is in use; if no broker of this pipeline holds it, \
                         release the network interface that does",
                        self.private_ip, self.subnet
                    ),
                );
            }
            if code(&err) == Some("InvalidParameterValue")
                && err.message().is_some_and(|m| m.contains("iamInstanceProfile"))
            {
                // IAM is eventually consistent: EC2 may not see a profile
                // made seconds ago.
                return ComponentError::retryable(
                    "InstanceProfilePropagating",
                    format!(
                        "{broker}: EC2 does not see the instance profile {} yet; trying again",
                        self.instance_profile_arn
                    ),
                );
            }
            let mut references = vec![SpecReference::new(
                Lookup::InstanceType,
                INSTANCE_TYPE_FIELD,
                &self.instance_type,
            )];
            if let ImageSource::Spec { id, field } = &self.image_source {
                references.push(SpecReference::new(Lookup::Image, field, id));
            }
            classify_with(&format!("launch {broker}"), &references, err)
        })?;
        let id = launched.instances().first().and_then(|i| i.instance_id());
        Ok(id.unwrap_or_default().to_owned())
    }

    async fn request(
        &self,
        aws: &AwsClients,
        node_id: u32,
        client_token: &str,
    ) -> Result<RunInstancesOutput, SdkError<RunInstancesError, HttpResponse>> {
        let mut tags = self.tags.clone();
        tags.insert(BROKER_TAG.to_owned(), node_id.to_string());
        let volume = |device: &str, size: i32| {
            BlockDeviceMapping::builder()
                .device_name(device)
                .ebs(
                    EbsBlockDevice::builder()
                        .volume_size(size)
                        .volume_type(VolumeType::Gp3)
                        .encrypted(true)
                        .delete_on_termination(true)
                        .build(),
                )
                .build()
        };
        aws.ec2
            .run_instances()
            .image_id(&self.image.id)
            .instance_type(self.instance_type.as_str().into())
            .min_count(1)
            .max_count(1)
            .client_token(client_token)
            .subnet_id(self.subnet.id())
            .private_ip_address(&self.private_ip)
            .security_group_ids(self.security_group.id())
            .user_data(&self.user_data)
            .iam_instance_profile(
                IamInstanceProfileSpecification::builder()
                    .arn(&self.instance_profile_arn)
                    .build(),
            )
            .metadata_options(
                InstanceMetadataOptionsRequest::builder()
                    .http_endpoint(InstanceMetadataEndpointState::Enabled)
                    .http_tokens(HttpTokensState::Required)
                    .http_put_response_hop_limit(BROKER_IMDS_HOP_LIMIT)
                    .build(),
            )
            .block_device_mappings(volume(&self.image.root_device, ROOT_VOLUME_GIB))
            .block_device_mappings(volume(DATA_VOLUME_DEVICE, self.volume_gib))
            .tag_specifications(tag_specification(ResourceType::Instance, &tags))
            .tag_specifications(tag_specification(ResourceType::Volume, &tags))
            .send()
            .await
    }
}

/// Deterministic per broker, so a retried launch returns the instance the
/// lost answer described. Instances that held the broker before are part of
/// it: AWS keeps a token for a while after its instance terminated, and a
/// replacement must not get that terminated instance back.
pub fn client_token(owner: &str, node_id: u32, subnet_id: &str, replaced: &[String]) -> String {
    let mut replaced: Vec<&str> = replaced.iter().map(String::as_str).collect();
    replaced.sort_unstable();
    let digest = Sha256::digest(format!("{owner}/{node_id}/{subnet_id}/{}", replaced.join(",")));
    // RunInstances takes at most 64 ASCII characters.
    format!("ipl-{}", hex::encode(&digest[..24]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retried_launch_reuses_its_token_and_a_replacement_gets_its_own() {
        let first = client_token("media/photos", 1, "subnet-a", &[]);
        assert_eq!(first, client_token("media/photos", 1, "subnet-a", &[]));
        let replacement = client_token("media/photos", 1, "subnet-a", &["i-2".into(), "i-1".into()]);
        assert_ne!(replacement, first);
        assert_eq!(
            replacement,
            client_token("media/photos", 1, "subnet-a", &["i-1".into(), "i-2".into()]),
            "the order the instances are listed in does not matter"
        );
        assert_ne!(first, client_token("media/photos", 2, "subnet-a", &[]));
        assert!(first.len() <= 64 && first.is_ascii(), "{first}");
    }
}
