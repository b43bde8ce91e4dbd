//! An EC2 launch template, found by its name. A change of what instances
//! launch with is a new version (a version cannot change); whoever launches
//! from the template moves to the new version.

mod settings;

use std::collections::BTreeSet;

use aws_sdk_ec2::types::ResourceType;

pub use settings::LaunchSettings;

use super::sdk::{deleted, failed, tag_specification};
use super::shared_lists;
use super::tags::from_sdk;
use crate::aws::AwsClients;
use crate::aws::errors::{classify, code};
use crate::engine::Tags;
use crate::engine::resource::{Ref, Resource};
use crate::error::ComponentError;
use crate::resources::instance_offering::check_offered;
use crate::resources::machine_image::ResolvedImage;

#[derive(Clone, Debug, PartialEq)]
pub struct LaunchTemplate {
    pub name: String,
    /// Says what its instances run, on each version.
    pub description: String,
    /// `None` only while tearing down, which does not look the AMI up: a
    /// missing AMI must not stop a deletion.
    pub image: Option<ResolvedImage>,
    pub instance_type: String,
    /// The spec field of the instance type, and the zones that must offer
    /// it: AWS would accept a type a zone lacks and fail every launch there.
    pub instance_type_field: &'static str,
    pub zones: BTreeSet<String>,
    pub instance_profile_arn: String,
    /// Made by another component; known whenever this one applies.
    pub security_group: Ref,
    pub imds_hop_limit: i32,
    pub root_volume_gib: i32,
    /// Base64 of the first-boot script.
    pub user_data: String,
    /// Of the template, and of the instances and volumes it launches.
    pub tags: Tags,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateState {
    pub id: String,
    pub tags: Tags,
    pub latest_version: i64,
    pub latest: LaunchSettings,
}

impl LaunchTemplate {
    /// What its instances should launch with: IMDSv2 only and an encrypted
    /// root volume, always.
    pub fn settings(&self) -> Result<LaunchSettings, ComponentError> {
        let image = self.image.as_ref().ok_or_else(|| {
            ComponentError::retryable(
                "ImageNotResolved",
                format!("the AMI of {} was not looked up yet", self.label()),
            )
        })?;
        Ok(LaunchSettings {
            image_id: image.id.clone(),
            instance_type: self.instance_type.clone(),
            instance_profile_arn: self.instance_profile_arn.clone(),
            security_groups: BTreeSet::from([self.security_group.to_string()]),
            imds_tokens_required: true,
            imds_hop_limit: self.imds_hop_limit,
            root_device: image.root_device.clone(),
            root_volume_gib: self.root_volume_gib,
            root_volume_encrypted: true,
            user_data: self.user_data.clone(),
            tags: self.tags.clone(),
        })
    }

    /// Before a version asks for the instance type.
    async fn check_instance_type(&self, aws: &AwsClients) -> Result<(), ComponentError> {
        check_offered(aws, &self.instance_type, &self.zones, self.instance_type_field).await
    }
}

impl Resource for LaunchTemplate {
    type Observed = TemplateState;
    const TYPE: Option<&'static str> = Some("AWS::EC2::LaunchTemplate");

    fn label(&self) -> String {
        format!("launch template {}", self.name)
    }

    async fn find(&self, aws: &AwsClients) -> Result<Option<TemplateState>, ComponentError> {
        let name = &self.name;
        let narrow = vec![shared_lists::filter("launch-template-name", name)];
        let shared = shared_lists::launch_templates(aws, narrow).await?;
        let template = match shared.iter().find(|t| t.launch_template_name() == Some(name)) {
            Some(template) => template.clone(),
            // Not among the pipelines' (tagged) templates: one of that name
            // made by anyone else still takes the name, and is found by it.
            None => match aws
                .ec2
                .describe_launch_templates()
                .launch_template_names(name)
                .send()
                .await
            {
                Ok(out) => match out.launch_templates().first() {
                    Some(template) => template.clone(),
                    None => return Ok(None),
                },
                Err(err) if code(&err).is_some_and(|c| c.starts_with("InvalidLaunchTemplateName")) => {
                    return Ok(None);
                }
                Err(err) => return Err(classify(&format!("look up {}", self.label()), err)),
            },
        };
        let id = template.launch_template_id().unwrap_or_default().to_owned();
        let latest = shared_lists::latest_template_version(aws, &id).await?;
        let latest = latest.as_ref();
        Ok(Some(TemplateState {
            tags: from_sdk(template.tags()),
            latest_version: latest.and_then(|v| v.version_number()).unwrap_or(1),
            latest: LaunchSettings::from_sdk(latest.and_then(|v| v.launch_template_data())),
            id,
        }))
    }

    fn delta(&self, observed: &TemplateState) -> Result<Vec<String>, ComponentError> {
        Ok(observed.latest.differences(&self.settings()?))
    }

    fn create_fields(&self) -> Vec<String> {
        vec![format!(
            "{}, IMDSv2 required, encrypted root volume, {}",
            self.instance_type, self.description
        )]
    }

    async fn create(&self, aws: &AwsClients) -> Result<TemplateState, ComponentError> {
        let settings = self.settings()?;
        self.check_instance_type(aws).await?;
        let out = aws
            .ec2
            .create_launch_template()
            .launch_template_name(&self.name)
            .version_description(&self.description)
            .launch_template_data(settings.to_sdk())
            .tag_specifications(tag_specification(ResourceType::LaunchTemplate, &self.tags))
            .send()
            .await
            .map_err(failed("create", &self.label()))?;
        let made = out.launch_template();
        Ok(TemplateState {
            id: made
                .and_then(|t| t.launch_template_id())
                .unwrap_or_default()
                .to_owned(),
            tags: self.tags.clone(),
            latest_version: made.and_then(|t| t.latest_version_number()).unwrap_or(1),
            latest: settings,
        })
    }

    /// A new version: the group moves to it, and an instance refresh
    /// replaces the instances.
    async fn update(&self, aws: &AwsClients, observed: &TemplateState) -> Result<(), ComponentError> {
        let settings = self.settings()?;
        self.check_instance_type(aws).await?;
        aws.ec2
            .create_launch_template_version()
            .launch_template_id(&observed.id)
            .version_description(&self.description)
            .launch_template_data(settings.to_sdk())
            .send()
            .await
            .map(drop)
            .map_err(failed("create a version of", &self.label()))
    }

    async fn delete(&self, aws: &AwsClients, observed: &TemplateState) -> Result<(), ComponentError> {
        deleted(
            aws.ec2
                .delete_launch_template()
                .launch_template_id(&observed.id)
                .send()
                .await,
            &["InvalidLaunchTemplateId.NotFound"],
            &format!("delete {}", self.label()),
        )
    }

    fn id(observed: &TemplateState) -> String {
        observed.id.clone()
    }

    fn tags(observed: &TemplateState) -> Option<&Tags> {
        Some(&observed.tags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(image: Option<ResolvedImage>) -> LaunchTemplate {
        LaunchTemplate {
            name: "ipl-media-photos-upload".into(),
            description: "runs upload-api".into(),
            image,
            instance_type: "t3.small".into(),
            instance_type_field: "spec.uploadApi.instanceType",
            zones: BTreeSet::from(["eu-west-1a".to_owned()]),
            instance_profile_arn: "arn:profile".into(),
            security_group: Ref::Pending("security group upload".into()),
            imds_hop_limit: 2,
            root_volume_gib: 20,
            user_data: String::new(),
            tags: Tags::new(),
        }
    }

    #[test]
    fn a_template_declared_without_its_ami_can_be_found_and_deleted_but_not_compared() {
        let template = template(None);
        assert!(template.references().is_empty(), "found by name alone");
        let err = template.settings().unwrap_err();
        assert_eq!(err.reason, "ImageNotResolved");
        assert!(!err.is_terminal());
    }

    #[test]
    fn a_security_group_not_made_yet_shows_as_pending_not_as_an_empty_id() {
        let image = ResolvedImage {
            id: "ami-1".into(),
            root_device: "/dev/xvda".into(),
        };
        let settings = template(Some(image)).settings().unwrap();
        let [group] = Vec::from_iter(settings.security_groups).try_into().unwrap();
        assert!(group.contains("security group upload"), "{group}");
    }
}
