//! What AWS reports of a group, and the template version it should run.

use std::collections::BTreeSet;
use std::fmt;

use aws_sdk_autoscaling::types::{AutoScalingGroup as SdkGroup, LifecycleState};

use crate::engine::Tags;
use crate::resources::tags::from_sdk;

/// The launch template version a group runs: its template's latest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemplateVersion {
    Number(i64),
    /// The version this apply makes (in a plan).
    Next,
}

impl fmt::Display for TemplateVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateVersion::Number(n) => write!(f, "{n}"),
            TemplateVersion::Next => f.write_str("(new)"),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupState {
    pub name: String,
    pub min_size: i32,
    pub max_size: i32,
    pub desired_capacity: i32,
    pub launch_template_id: Option<String>,
    pub launch_template_version: Option<String>,
    pub subnets: BTreeSet<String>,
    pub health_check_type: String,
    pub tags: Tags,
    /// AWS is deleting the group (and terminating its instances).
    pub deleting: bool,
    pub instances: Vec<GroupInstance>,
    pub refresh_in_progress: bool,
    /// Targets passing the health check of the group's target group.
    pub healthy_targets: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInstance {
    pub id: String,
    pub in_service: bool,
    pub launch_template_version: Option<String>,
}

impl GroupState {
    pub(super) fn from_sdk(group: &SdkGroup, refresh_in_progress: bool, healthy_targets: usize) -> Self {
        let template = group.launch_template();
        GroupState {
            name: group.auto_scaling_group_name().unwrap_or_default().to_owned(),
            min_size: group.min_size().unwrap_or_default(),
            max_size: group.max_size().unwrap_or_default(),
            desired_capacity: group.desired_capacity().unwrap_or_default(),
            launch_template_id: template.and_then(|t| t.launch_template_id()).map(str::to_owned),
            launch_template_version: template.and_then(|t| t.version()).map(str::to_owned),
            subnets: group
                .vpc_zone_identifier()
                .unwrap_or_default()
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            health_check_type: group.health_check_type().unwrap_or_default().to_owned(),
            tags: from_sdk(group.tags()),
            deleting: group.status().is_some_and(|s| s.starts_with("Delete")),
            instances: group
                .instances()
                .iter()
                .map(|i| GroupInstance {
                    id: i.instance_id().unwrap_or_default().to_owned(),
                    in_service: i.lifecycle_state() == Some(&LifecycleState::InService),
                    launch_template_version: i.launch_template().and_then(|t| t.version()).map(str::to_owned),
                })
                .collect(),
            refresh_in_progress,
            healthy_targets,
        }
    }
}
