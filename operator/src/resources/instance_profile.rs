//! An IAM instance profile holding one role: how EC2 instances get the
//! role's credentials. Found by its deterministic name.

use super::iam_role::ROLE_PATH;
use super::sdk::{deleted, failed};
use super::tags::{from_sdk, to_sdk};
use crate::aws::AwsClients;
use crate::aws::errors::{classify, code};
use crate::engine::resource::Resource;
use crate::engine::{Tags, field};
use crate::error::ComponentError;

#[derive(Clone, Debug, PartialEq)]
pub struct InstanceProfile {
    pub name: String,
    pub arn: String,
    /// The name of the role it holds, made before it.
    pub role: String,
    pub tags: Tags,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProfileState {
    pub name: String,
    pub arn: String,
    pub roles: Vec<String>,
    pub tags: Tags,
}

impl InstanceProfile {
    /// Roles it holds that are not its role: a profile holds at most one.
    fn other_roles<'a>(&self, observed: &'a ProfileState) -> impl Iterator<Item = &'a String> {
        let role = self.role.clone();
        observed.roles.iter().filter(move |r| **r != role)
    }

    async fn add_role(&self, aws: &AwsClients) -> Result<(), ComponentError> {
        match aws
            .iam
            .add_role_to_instance_profile()
            .instance_profile_name(&self.name)
            .role_name(&self.role)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Added by a pass that crashed before it saw the answer.
            Err(err) if code(&err) == Some("LimitExceeded") => Ok(()),
            Err(err) => Err(failed("add role to", &self.label())(err)),
        }
    }

    async fn remove_role(&self, aws: &AwsClients, role: &str) -> Result<(), ComponentError> {
        deleted(
            aws.iam
                .remove_role_from_instance_profile()
                .instance_profile_name(&self.name)
                .role_name(role)
                .send()
                .await,
            &["NoSuchEntity"],
            &format!("remove role {role} from {}", self.label()),
        )
    }
}

impl Resource for InstanceProfile {
    type Observed = ProfileState;
    const TYPE: Option<&'static str> = Some("AWS::IAM::InstanceProfile");

    fn label(&self) -> String {
        format!("IAM instance profile {}", self.name)
    }

    async fn find(&self, aws: &AwsClients) -> Result<Option<ProfileState>, ComponentError> {
        let out = match aws
            .iam
            .get_instance_profile()
            .instance_profile_name(&self.name)
            .send()
            .await
        {
            Ok(out) => out,
            Err(err) if code(&err) == Some("NoSuchEntity") => return Ok(None),
            Err(err) => return Err(classify(&format!("look up {}", self.label()), err)),
        };
        Ok(out.instance_profile().map(|profile| ProfileState {
            name: profile.instance_profile_name().to_owned(),
            arn: profile.arn().to_owned(),
            roles: profile.roles().iter().map(|r| r.role_name().to_owned()).collect(),
            tags: from_sdk(profile.tags()),
        }))
    }

    fn delta(&self, observed: &ProfileState) -> Result<Vec<String>, ComponentError> {
        let as_desired = observed.roles == [self.role.clone()];
        Ok(if as_desired {
            vec![]
        } else {
            let roles = match observed.roles.join(", ") {
                none if none.is_empty() => "(none)".to_owned(),
                roles => roles,
            };
            vec![field("role", roles, &self.role)]
        })
    }

    fn create_fields(&self) -> Vec<String> {
        vec![format!("role {}", self.role)]
    }

    async fn create(&self, aws: &AwsClients) -> Result<ProfileState, ComponentError> {
        match aws
            .iam
            .create_instance_profile()
            .instance_profile_name(&self.name)
            .path(ROLE_PATH)
            .set_tags(Some(to_sdk(&self.tags)?))
            .send()
            .await
        {
            Ok(_) => {}
            // Made by an earlier pass that crashed before it saw the answer.
            Err(err) if code(&err) == Some("EntityAlreadyExists") => {}
            Err(err) => return Err(failed("create", &self.label())(err)),
        }
        self.add_role(aws).await?;
        Ok(ProfileState {
            name: self.name.clone(),
            arn: self.arn.clone(),
            roles: vec![self.role.clone()],
            tags: self.tags.clone(),
        })
    }

    async fn update(&self, aws: &AwsClients, observed: &ProfileState) -> Result<(), ComponentError> {
        for role in self.other_roles(observed) {
            self.remove_role(aws, role).await?;
        }
        if !observed.roles.contains(&self.role) {
            self.add_role(aws).await?;
        }
        Ok(())
    }

    /// IAM deletes only an empty profile.
    async fn delete(&self, aws: &AwsClients, observed: &ProfileState) -> Result<(), ComponentError> {
        for role in &observed.roles {
            self.remove_role(aws, role).await?;
        }
        deleted(
            aws.iam
                .delete_instance_profile()
                .instance_profile_name(&self.name)
                .send()
                .await,
            &["NoSuchEntity"],
            &format!("delete {}", self.label()),
        )
    }

    fn id(observed: &ProfileState) -> String {
        observed.name.clone()
    }

    fn arn(observed: &ProfileState) -> Option<String> {
        Some(observed.arn.clone())
    }

    fn tags(observed: &ProfileState) -> Option<&Tags> {
        Some(&observed.tags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> InstanceProfile {
        InstanceProfile {
            name: "ipl-media-photos-upload".into(),
            arn: "arn:aws:iam::123456789012:instance-profile/imagepipeline/ipl-media-photos-upload".into(),
            role: "ipl-media-photos-upload".into(),
            tags: Tags::new(),
        }
    }

    fn holding(roles: &[&str]) -> ProfileState {
        ProfileState {
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..ProfileState::default()
        }
    }

    #[test]
    fn a_profile_holds_exactly_its_role() {
        let profile = profile();
        assert_eq!(
            profile.delta(&holding(&["ipl-media-photos-upload"])).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            profile.delta(&holding(&[])).unwrap(),
            ["role: (none) → ipl-media-photos-upload"],
            "a crash between creating the profile and adding the role"
        );
        let other = holding(&["someone-elses"]);
        assert_eq!(
            profile.delta(&other).unwrap(),
            ["role: someone-elses → ipl-media-photos-upload"]
        );
        assert_eq!(profile.other_roles(&other).collect::<Vec<_>>(), ["someone-elses"]);
    }
}
