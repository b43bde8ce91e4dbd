//! What an instance launched from a template gets: compared field by field
//! with the template's latest version, and written as a version's data.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{
    LaunchTemplateBlockDeviceMappingRequest, LaunchTemplateEbsBlockDeviceRequest,
    LaunchTemplateHttpTokensState, LaunchTemplateIamInstanceProfileSpecificationRequest,
    LaunchTemplateInstanceMetadataEndpointState, LaunchTemplateInstanceMetadataOptionsRequest,
    LaunchTemplateTagSpecificationRequest, RequestLaunchTemplateData, ResourceType,
    ResponseLaunchTemplateData, VolumeType,
};

use crate::engine::{Tags, field};
use crate::resources::tags::{from_sdk, to_sdk};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LaunchSettings {
    pub image_id: String,
    pub instance_type: String,
    pub instance_profile_arn: String,
    pub security_groups: BTreeSet<String>,
    pub imds_tokens_required: bool,
    pub imds_hop_limit: i32,
    pub root_device: String,
    pub root_volume_gib: i32,
    pub root_volume_encrypted: bool,
    /// Base64, as EC2 takes and returns it.
    pub user_data: String,
    /// Tags given to the instances and their volumes.
    pub tags: Tags,
}

impl LaunchSettings {
    /// The fields of `desired` these differ from, as plan fields.
    pub fn differences(&self, desired: &LaunchSettings) -> Vec<String> {
        let mut fields = Vec::new();
        let mut compare = |name: &str, observed: String, wanted: String| {
            if observed != wanted {
                fields.push(field(name, observed, wanted));
            }
        };
        compare("image", self.image_id.clone(), desired.image_id.clone());
        compare(
            "instance type",
            self.instance_type.clone(),
            desired.instance_type.clone(),
        );
        compare(
            "instance profile",
            self.instance_profile_arn.clone(),
            desired.instance_profile_arn.clone(),
        );
        compare(
            "security groups",
            join(&self.security_groups),
            join(&desired.security_groups),
        );
        compare(
            "IMDSv2 required",
            self.imds_tokens_required.to_string(),
            desired.imds_tokens_required.to_string(),
        );
        compare(
            "IMDS hop limit",
            self.imds_hop_limit.to_string(),
            desired.imds_hop_limit.to_string(),
        );
        compare("root volume", self.volume_text(), desired.volume_text());
        if self.user_data != desired.user_data {
            fields.push("user data: changed".to_owned());
        }
        if self.tags != desired.tags {
            fields.push("instance tags: changed".to_owned());
        }
        fields
    }

    fn volume_text(&self) -> String {
        let encryption = if self.root_volume_encrypted {
            "encrypted"
        } else {
            "unencrypted"
        };
        format!("{} {} GiB {encryption}", self.root_device, self.root_volume_gib)
    }

    /// What a version of the template holds.
    pub fn from_sdk(data: Option<&ResponseLaunchTemplateData>) -> Self {
        let metadata = data.and_then(|d| d.metadata_options());
        let root = data.and_then(|d| d.block_device_mappings().first());
        let root_ebs = root.and_then(|m| m.ebs());
        let tags = data
            .and_then(|d| {
                d.tag_specifications()
                    .iter()
                    .find(|spec| spec.resource_type() == Some(&ResourceType::Instance))
            })
            .map(|spec| from_sdk(spec.tags()))
            .unwrap_or_default();
        LaunchSettings {
            image_id: data.and_then(|d| d.image_id()).unwrap_or_default().to_owned(),
            instance_type: data
                .and_then(|d| d.instance_type())
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default(),
            instance_profile_arn: data
                .and_then(|d| d.iam_instance_profile())
                .and_then(|p| p.arn())
                .unwrap_or_default()
                .to_owned(),
            security_groups: data
                .map(|d| d.security_group_ids().iter().cloned().collect())
                .unwrap_or_default(),
            imds_tokens_required: metadata.and_then(|m| m.http_tokens())
                == Some(&LaunchTemplateHttpTokensState::Required),
            imds_hop_limit: metadata
                .and_then(|m| m.http_put_response_hop_limit())
                .unwrap_or(1),
            root_device: root.and_then(|m| m.device_name()).unwrap_or_default().to_owned(),
            root_volume_gib: root_ebs.and_then(|e| e.volume_size()).unwrap_or(0),
            root_volume_encrypted: root_ebs.and_then(|e| e.encrypted()).unwrap_or(false),
            user_data: data.and_then(|d| d.user_data()).unwrap_or_default().to_owned(),
            tags,
        }
    }

    /// The data of a new version.
    pub fn to_sdk(&self) -> RequestLaunchTemplateData {
        // EC2 tags always build: the builder has no required field.
        let tags: Option<Vec<aws_sdk_ec2::types::Tag>> = to_sdk(&self.tags).ok();
        let tagged = |resource: ResourceType| {
            LaunchTemplateTagSpecificationRequest::builder()
                .resource_type(resource)
                .set_tags(tags.clone())
                .build()
        };
        RequestLaunchTemplateData::builder()
            .image_id(&self.image_id)
            .instance_type(self.instance_type.as_str().into())
            .iam_instance_profile(
                LaunchTemplateIamInstanceProfileSpecificationRequest::builder()
                    .arn(&self.instance_profile_arn)
                    .build(),
            )
            .set_security_group_ids(Some(self.security_groups.iter().cloned().collect()))
            .metadata_options(
                LaunchTemplateInstanceMetadataOptionsRequest::builder()
                    .http_endpoint(LaunchTemplateInstanceMetadataEndpointState::Enabled)
                    .http_tokens(if self.imds_tokens_required {
                        LaunchTemplateHttpTokensState::Required
                    } else {
                        LaunchTemplateHttpTokensState::Optional
                    })
                    .http_put_response_hop_limit(self.imds_hop_limit)
                    .build(),
            )
            .block_device_mappings(
                LaunchTemplateBlockDeviceMappingRequest::builder()
                    .device_name(&self.root_device)
                    .ebs(
                        LaunchTemplateEbsBlockDeviceRequest::builder()
                            .volume_size(self.root_volume_gib)
                            .volume_type(VolumeType::Gp3)
                            .encrypted(self.root_volume_encrypted)
                            .delete_on_termination(true)
                            .build(),
                    )
                    .build(),
            )
            .user_data(&self.user_data)
            .tag_specifications(tagged(ResourceType::Instance))
            .tag_specifications(tagged(ResourceType::Volume))
            .build()
    }
}

fn join(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LaunchSettings {
        LaunchSettings {
            image_id: "ami-1".into(),
            instance_type: "t3.small".into(),
            instance_profile_arn: "arn:profile".into(),
            security_groups: BTreeSet::from(["sg-upload".to_owned()]),
            imds_tokens_required: true,
            imds_hop_limit: 2,
            root_device: "/dev/xvda".into(),
            root_volume_gib: 20,
            root_volume_encrypted: true,
            user_data: "IyEvYmluL3No".into(),
            tags: Tags::from([("team".to_owned(), "media".to_owned())]),
        }
    }

    #[test]
    fn each_differing_setting_is_one_field_and_user_data_is_not_shown() {
        let desired = settings();
        assert_eq!(settings().differences(&desired), Vec::<String>::new());
        let observed = LaunchSettings {
            instance_type: "t3.large".into(),
            imds_tokens_required: false,
            root_volume_encrypted: false,
            user_data: "b2xk".into(),
            tags: Tags::new(),
            ..settings()
        };
        assert_eq!(
            observed.differences(&desired),
            [
                "instance type: t3.large → t3.small",
                "IMDSv2 required: false → true",
                "root volume: /dev/xvda 20 GiB unencrypted → /dev/xvda 20 GiB encrypted",
                "user data: changed",
                "instance tags: changed",
            ]
        );
    }

    #[test]
    fn a_version_written_reads_back_the_same() {
        let request = settings().to_sdk();
        let response = ResponseLaunchTemplateData::builder()
            .image_id(request.image_id().unwrap())
            .instance_type(request.instance_type().unwrap().clone())
            .user_data(request.user_data().unwrap())
            .build();
        let read = LaunchSettings::from_sdk(Some(&response));
        assert_eq!(
            (read.image_id, read.instance_type, read.user_data),
            (
                "ami-1".to_owned(),
                "t3.small".to_owned(),
                "IyEvYmluL3No".to_owned()
            )
        );
    }
}
