//! What a group is compared on, and when it is ready: pure.

use std::collections::BTreeSet;
use std::fmt;

use super::AutoScalingGroup;
use crate::engine::{Readiness, Tags, field};

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

/// The group's load balancer health checks decide which instances are replaced.
pub(super) const HEALTH_CHECK_TYPE: &str = "ELB";

impl AutoScalingGroup {
    fn template_text(&self) -> String {
        format!("{} version {}", self.launch_template, self.version)
    }

    /// What `update_auto_scaling_group` puts back, as plan fields.
    pub(super) fn group_fields(&self, observed: &GroupState) -> Vec<String> {
        let mut fields = Vec::new();
        let mut compare = |name: &str, observed: String, desired: String| {
            if observed != desired {
                fields.push(field(name, observed, desired));
            }
        };
        compare("min size", observed.min_size.to_string(), self.min_size.to_string());
        compare("max size", observed.max_size.to_string(), self.max_size.to_string());
        // Unset, the scaling policy owns it.
        if let Some(capacity) = self.desired_capacity {
            compare(
                "desired capacity",
                observed.desired_capacity.to_string(),
                capacity.to_string(),
            );
        }
        compare("subnets", join(&observed.subnets), join(&self.subnets));
        compare(
            "health check type",
            observed.health_check_type.clone(),
            HEALTH_CHECK_TYPE.to_owned(),
        );
        let current = format!(
            "{} version {}",
            observed.launch_template_id.as_deref().unwrap_or("(none)"),
            observed.launch_template_version.as_deref().unwrap_or("(none)")
        );
        compare("launch template", current, self.template_text());
        fields
    }

    fn moves_template(&self, observed: &GroupState) -> bool {
        observed.launch_template_id.as_deref() != self.launch_template.known()
            || observed.launch_template_version != Some(self.version.to_string())
    }

    /// Instances an instance refresh should replace: every one when the
    /// group moves to another template version, else those a crash left on
    /// an older one. None while a refresh runs: it picks up the group's
    /// current version as it goes.
    pub(super) fn outdated(&self, observed: &GroupState) -> usize {
        if observed.refresh_in_progress {
            return 0;
        }
        if self.moves_template(observed) {
            return observed.instances.len();
        }
        observed
            .instances
            .iter()
            .filter(|i| i.launch_template_version != observed.launch_template_version)
            .count()
    }

    pub(super) fn refresh_field(outdated: usize) -> String {
        format!("instance refresh: replace {outdated} instance(s) with the latest launch template version")
    }

    /// Ready when no refresh runs and as many instances as it should run are
    /// in service on its version and pass the target group's health check.
    pub(super) fn readiness_of(&self, observed: &GroupState) -> Readiness {
        if observed.refresh_in_progress {
            return Readiness::Waiting(format!(
                "an instance refresh is replacing the instances of Auto Scaling group {}",
                self.name
            ));
        }
        let wanted = usize::try_from(observed.desired_capacity.max(self.min_size)).unwrap_or(0);
        let in_service = observed
            .instances
            .iter()
            .filter(|i| i.in_service && i.launch_template_version == observed.launch_template_version)
            .count();
        if in_service < wanted {
            return Readiness::Waiting(format!(
                "{in_service} of {wanted} {} are in service",
                self.instances
            ));
        }
        if observed.healthy_targets < wanted {
            return Readiness::Waiting(format!(
                "{} of {wanted} {} pass the {} health check",
                observed.healthy_targets, self.instances, self.health_check_path
            ));
        }
        Readiness::Ready
    }

    pub(super) fn going_reason(observed: &GroupState) -> Option<String> {
        observed.deleting.then(|| {
            format!(
                "the Auto Scaling group is being deleted; {} instance(s) still terminating",
                observed.instances.len()
            )
        })
    }
}

pub(super) fn join(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(",")
}
