//! An Auto Scaling group running an explicit launch template version behind
//! a target group, with ELB health checks. Found by its name. Moving it to
//! another version starts an instance refresh, which replaces the instances
//! while the load balancer keeps serving; instances a crash left on an older
//! version start one too.

mod delta;
mod state;

use std::collections::BTreeSet;

use aws_sdk_autoscaling::types::{LaunchTemplateSpecification, RefreshPreferences, RefreshStrategy, Tag};
use aws_sdk_elasticloadbalancingv2::types::TargetHealthStateEnum;

pub use state::{GroupInstance, GroupState, TemplateVersion};

use super::sdk::{deleted, failed};
use super::shared_lists;
use crate::aws::AwsClients;
use crate::aws::errors::code;
use crate::engine::resource::{Ref, Resource};
use crate::engine::{Readiness, Tags};
use crate::error::ComponentError;
use delta::{HEALTH_CHECK_TYPE, join};

/// An instance refresh keeps this share of the group in service.
const REFRESH_MIN_HEALTHY_PERCENT: i32 = 90;
const REFRESH_WARMUP_SECONDS: i32 = 120;
/// Instance refreshes in these states still replace instances.
const REFRESH_RUNNING: [&str; 5] = [
    "Pending",
    "InProgress",
    "Cancelling",
    "RollbackInProgress",
    "Baking",
];

#[derive(Clone, Debug, PartialEq)]
pub struct AutoScalingGroup {
    pub name: String,
    /// The id of its launch template, and the version it runs.
    pub launch_template: Ref,
    pub version: TemplateVersion,
    /// The ARN of the target group its instances join.
    pub target_group: Ref,
    pub min_size: i32,
    pub max_size: i32,
    /// Set only when the spec sets it; otherwise a scaling policy decides.
    pub desired_capacity: Option<i32>,
    /// Made by another component; known whenever this one applies.
    pub subnets: BTreeSet<String>,
    /// Time an instance gets to start and pass the health check before the
    /// group replaces it.
    pub health_check_grace_seconds: i32,
    /// What its instances are, for messages (`upload instances`), and the
    /// path their health is checked on.
    pub instances: String,
    pub health_check_path: String,
    pub tags: Tags,
}

impl AutoScalingGroup {
    fn template(&self) -> Result<LaunchTemplateSpecification, ComponentError> {
        let TemplateVersion::Number(version) = self.version else {
            return Err(ComponentError::retryable(
                "NotFoundYet",
                format!(
                    "the new version of launch template {} is not visible yet; the next pass continues",
                    self.launch_template
                ),
            ));
        };
        Ok(LaunchTemplateSpecification::builder()
            .launch_template_id(self.launch_template.id())
            .version(version.to_string())
            .build())
    }

    /// Auto Scaling tags say more than a key and value: which group they
    /// are on, and that its instances get them too.
    fn sdk_tags(&self) -> Vec<Tag> {
        self.tags
            .iter()
            .map(|(key, value)| {
                Tag::builder()
                    .key(key)
                    .value(value)
                    .propagate_at_launch(true)
                    .resource_id(&self.name)
                    .resource_type("auto-scaling-group")
                    .build()
            })
            .collect()
    }

    async fn start_refresh(&self, aws: &AwsClients) -> Result<(), ComponentError> {
        match aws
            .autoscaling
            .start_instance_refresh()
            .auto_scaling_group_name(&self.name)
            .strategy(RefreshStrategy::Rolling)
            .preferences(
                RefreshPreferences::builder()
                    .min_healthy_percentage(REFRESH_MIN_HEALTHY_PERCENT)
                    .instance_warmup(REFRESH_WARMUP_SECONDS)
                    .build(),
            )
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // One is already rolling the group: it picks up the group's
            // current version as it replaces instances.
            Err(err) if code(&err) == Some("InstanceRefreshInProgress") => Ok(()),
            Err(err) => Err(failed("start an instance refresh of", &self.label())(err)),
        }
    }

    async fn healthy_targets(&self, aws: &AwsClients) -> Result<usize, ComponentError> {
        let Some(arn) = self.target_group.known() else {
            return Ok(0);
        };
        let health = aws
            .elbv2
            .describe_target_health()
            .target_group_arn(arn)
            .send()
            .await
            .map_err(failed("read the target health of target group", arn))?;
        Ok(health
            .target_health_descriptions()
            .iter()
            .filter(|t| t.target_health().and_then(|h| h.state()) == Some(&TargetHealthStateEnum::Healthy))
            .count())
    }
}

impl Resource for AutoScalingGroup {
    type Observed = GroupState;
    const TYPE: Option<&'static str> = Some("AWS::AutoScaling::AutoScalingGroup");

    fn label(&self) -> String {
        format!("Auto Scaling group {}", self.name)
    }

    async fn find(&self, aws: &AwsClients) -> Result<Option<GroupState>, ComponentError> {
        let name = &self.name;
        let shared = shared_lists::auto_scaling_groups(aws, name).await?;
        let group = match shared.iter().find(|g| g.auto_scaling_group_name() == Some(name)) {
            Some(group) => group.clone(),
            // Not among the pipelines' (tagged) groups: one of that name
            // made by anyone else still takes the name, and is found by it.
            None => {
                let out = aws
                    .autoscaling
                    .describe_auto_scaling_groups()
                    .auto_scaling_group_names(name)
                    .send()
                    .await
                    .map_err(failed("look up", &self.label()))?;
                match out.auto_scaling_groups().first() {
                    Some(group) => group.clone(),
                    None => return Ok(None),
                }
            }
        };
        let refreshes = aws
            .autoscaling
            .describe_instance_refreshes()
            .auto_scaling_group_name(name)
            .send()
            .await
            .map_err(failed("list the instance refreshes of", &self.label()))?;
        Ok(Some(GroupState::from_sdk(
            &group,
            refreshes
                .instance_refreshes()
                .iter()
                .any(|r| r.status().is_some_and(|s| REFRESH_RUNNING.contains(&s.as_str()))),
            self.healthy_targets(aws).await?,
        )))
    }

    fn delta(&self, observed: &GroupState) -> Result<Vec<String>, ComponentError> {
        let mut fields = self.group_fields(observed);
        match self.outdated(observed) {
            0 => {}
            outdated => fields.push(Self::refresh_field(outdated)),
        }
        Ok(fields)
    }

    fn create_fields(&self) -> Vec<String> {
        vec![format!(
            "{}-{} instances over {} subnets, ELB health checks",
            self.min_size,
            self.max_size,
            self.subnets.len()
        )]
    }

    async fn create(&self, aws: &AwsClients) -> Result<GroupState, ComponentError> {
        match aws
            .autoscaling
            .create_auto_scaling_group()
            .auto_scaling_group_name(&self.name)
            .launch_template(self.template()?)
            .min_size(self.min_size)
            .max_size(self.max_size)
            .set_desired_capacity(self.desired_capacity)
            .vpc_zone_identifier(join(&self.subnets))
            .target_group_arns(self.target_group.id())
            .health_check_type(HEALTH_CHECK_TYPE)
            .health_check_grace_period(self.health_check_grace_seconds)
            .set_tags(Some(self.sdk_tags()))
            .send()
            .await
        {
            Ok(_) => {}
            // Made by an earlier pass that crashed before it saw the answer.
            Err(err) if code(&err) == Some("AlreadyExists") => {}
            Err(err) => return Err(failed("create", &self.label())(err)),
        }
        Ok(GroupState {
            name: self.name.clone(),
            min_size: self.min_size,
            max_size: self.max_size,
            desired_capacity: self.desired_capacity.unwrap_or(self.min_size),
            launch_template_id: self.launch_template.known().map(str::to_owned),
            launch_template_version: Some(self.version.to_string()),
            subnets: self.subnets.clone(),
            health_check_type: HEALTH_CHECK_TYPE.to_owned(),
            tags: self.tags.clone(),
            ..GroupState::default()
        })
    }

    /// The group's settings, then a refresh of instances not on its version.
    async fn update(&self, aws: &AwsClients, observed: &GroupState) -> Result<(), ComponentError> {
        if !self.group_fields(observed).is_empty() {
            aws.autoscaling
                .update_auto_scaling_group()
                .auto_scaling_group_name(&self.name)
                .launch_template(self.template()?)
                .min_size(self.min_size)
                .max_size(self.max_size)
                .set_desired_capacity(self.desired_capacity)
                .vpc_zone_identifier(join(&self.subnets))
                .health_check_type(HEALTH_CHECK_TYPE)
                .health_check_grace_period(self.health_check_grace_seconds)
                .send()
                .await
                .map_err(failed("update", &self.label()))?;
        }
        if self.outdated(observed) > 0 {
            self.start_refresh(aws).await?;
        }
        Ok(())
    }

    /// Terminates its instances too.
    async fn delete(&self, aws: &AwsClients, _observed: &GroupState) -> Result<(), ComponentError> {
        deleted(
            aws.autoscaling
                .delete_auto_scaling_group()
                .auto_scaling_group_name(&self.name)
                .force_delete(true)
                .send()
                .await,
            &["ValidationError"],
            &format!("delete {}", self.label()),
        )
    }

    fn id(observed: &GroupState) -> String {
        observed.name.clone()
    }

    fn tags(observed: &GroupState) -> Option<&Tags> {
        Some(&observed.tags)
    }

    fn readiness(&self, observed: &GroupState) -> Readiness {
        self.readiness_of(observed)
    }

    fn going(&self, observed: &GroupState) -> Option<String> {
        Self::going_reason(observed)
    }
}
