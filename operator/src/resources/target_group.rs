//! An Elastic Load Balancing target group of instances, checked over HTTP
//! on a health path. Found by its name (at most 32 characters).

use aws_sdk_elasticloadbalancingv2::types::{Matcher, ProtocolEnum, TargetTypeEnum};

use super::sdk::{deleted, failed};
use super::shared_lists;
use super::tags::to_sdk;
use crate::aws::AwsClients;
use crate::engine::resource::{Ref, Resource};
use crate::engine::{Tags, field};
use crate::error::ComponentError;

#[derive(Clone, Debug, PartialEq)]
pub struct TargetGroup {
    pub name: String,
    /// Made by another component; known whenever this one applies.
    pub vpc_id: Ref,
    pub port: i32,
    /// Answered with 200 by a healthy target.
    pub health_check_path: String,
    pub tags: Tags,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetGroupState {
    pub name: String,
    pub arn: String,
    pub health_check_path: Option<String>,
    pub tags: Tags,
}

fn healthy_answer() -> Matcher {
    Matcher::builder().http_code("200").build()
}

impl Resource for TargetGroup {
    type Observed = TargetGroupState;
    const TYPE: Option<&'static str> = Some("AWS::ElasticLoadBalancingV2::TargetGroup");

    fn label(&self) -> String {
        format!("target group {}", self.name)
    }

    async fn find(&self, aws: &AwsClients) -> Result<Option<TargetGroupState>, ComponentError> {
        let groups = shared_lists::target_groups(aws, &self.name).await?;
        let Some((group, tags)) = groups
            .iter()
            .find(|(group, _)| group.target_group_name() == Some(self.name.as_str()))
        else {
            return Ok(None);
        };
        let arn = group.target_group_arn().unwrap_or_default().to_owned();
        Ok(Some(TargetGroupState {
            name: self.name.clone(),
            tags: tags.clone(),
            health_check_path: group.health_check_path().map(str::to_owned),
            arn,
        }))
    }

    fn delta(&self, observed: &TargetGroupState) -> Result<Vec<String>, ComponentError> {
        let path = observed.health_check_path.as_deref();
        Ok(if path == Some(self.health_check_path.as_str()) {
            vec![]
        } else {
            vec![field(
                "health check",
                path.unwrap_or("(none)"),
                &self.health_check_path,
            )]
        })
    }

    fn create_fields(&self) -> Vec<String> {
        vec![format!(
            "HTTP {}, health check {}",
            self.port, self.health_check_path
        )]
    }

    /// ELB answers a create of an identical existing group with that group.
    async fn create(&self, aws: &AwsClients) -> Result<TargetGroupState, ComponentError> {
        let out = aws
            .elbv2
            .create_target_group()
            .name(&self.name)
            .protocol(ProtocolEnum::Http)
            .port(self.port)
            .vpc_id(self.vpc_id.id())
            .target_type(TargetTypeEnum::Instance)
            .health_check_protocol(ProtocolEnum::Http)
            .health_check_path(&self.health_check_path)
            .matcher(healthy_answer())
            .set_tags(Some(to_sdk(&self.tags)?))
            .send()
            .await
            .map_err(failed("create", &self.label()))?;
        Ok(TargetGroupState {
            name: self.name.clone(),
            arn: out
                .target_groups()
                .first()
                .and_then(|tg| tg.target_group_arn())
                .unwrap_or_default()
                .to_owned(),
            health_check_path: Some(self.health_check_path.clone()),
            tags: self.tags.clone(),
        })
    }

    async fn update(&self, aws: &AwsClients, observed: &TargetGroupState) -> Result<(), ComponentError> {
        aws.elbv2
            .modify_target_group()
            .target_group_arn(&observed.arn)
            .health_check_protocol(ProtocolEnum::Http)
            .health_check_path(&self.health_check_path)
            .matcher(healthy_answer())
            .send()
            .await
            .map(drop)
            .map_err(failed("set the health check of", &self.label()))
    }

    async fn delete(&self, aws: &AwsClients, observed: &TargetGroupState) -> Result<(), ComponentError> {
        deleted(
            aws.elbv2
                .delete_target_group()
                .target_group_arn(&observed.arn)
                .send()
                .await,
            &["TargetGroupNotFound"],
            &format!("delete {}", self.label()),
        )
    }

    fn id(observed: &TargetGroupState) -> String {
        observed.name.clone()
    }

    fn arn(observed: &TargetGroupState) -> Option<String> {
        Some(observed.arn.clone())
    }

    fn tags(observed: &TargetGroupState) -> Option<&Tags> {
        Some(&observed.tags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_checking_another_path_gets_the_health_check_back() {
        let group = TargetGroup {
            name: "ipl-media-photos-upload".into(),
            vpc_id: Ref::Known("vpc-api".into()),
            port: 8080,
            health_check_path: "/healthz".into(),
            tags: Tags::new(),
        };
        let mut observed = TargetGroupState {
            name: group.name.clone(),
            arn: "arn:tg".into(),
            health_check_path: Some("/healthz".into()),
            tags: Tags::new(),
        };
        assert_eq!(group.delta(&observed).unwrap(), Vec::<String>::new());
        observed.health_check_path = Some("/".into());
        assert_eq!(group.delta(&observed).unwrap(), ["health check: / → /healthz"]);
        assert!(
            group.references().is_empty(),
            "found by name, even while tearing down"
        );
    }
}
