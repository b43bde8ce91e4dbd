//! What a group is compared on, and when it is ready: pure.

use std::collections::BTreeSet;

use super::{AutoScalingGroup, GroupState};
use crate::engine::{Readiness, field};

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
        compare(
            "min size",
            observed.min_size.to_string(),
            self.min_size.to_string(),
        );
        compare(
            "max size",
            observed.max_size.to_string(),
            self.max_size.to_string(),
        );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Tags;
    use crate::engine::resource::{Ref, Resource};
    use crate::resources::auto_scaling_group::{GroupInstance, TemplateVersion};

    fn group() -> AutoScalingGroup {
        AutoScalingGroup {
            name: "ipl-media-photos-upload".into(),
            launch_template: Ref::Known("lt-1".into()),
            version: TemplateVersion::Number(1),
            target_group: Ref::Known("arn:tg".into()),
            min_size: 2,
            max_size: 6,
            desired_capacity: None,
            subnets: BTreeSet::from(["subnet-a".to_owned(), "subnet-b".to_owned()]),
            health_check_grace_seconds: 300,
            instances: "upload instances".into(),
            health_check_path: "/healthz".into(),
            tags: Tags::new(),
        }
    }

    fn instance(id: &str, version: &str) -> GroupInstance {
        GroupInstance {
            id: id.to_owned(),
            in_service: true,
            launch_template_version: Some(version.to_owned()),
        }
    }

    /// A group as a first apply leaves it, its instances in service.
    fn in_service(group: &AutoScalingGroup) -> GroupState {
        GroupState {
            name: group.name.clone(),
            min_size: 2,
            max_size: 6,
            desired_capacity: 2,
            launch_template_id: Some("lt-1".into()),
            launch_template_version: Some("1".into()),
            subnets: group.subnets.clone(),
            health_check_type: "ELB".into(),
            tags: Tags::new(),
            deleting: false,
            instances: vec![instance("i-1", "1"), instance("i-2", "1")],
            refresh_in_progress: false,
            healthy_targets: 2,
        }
    }

    #[test]
    fn as_desired_it_needs_nothing_and_is_ready() {
        let group = group();
        let observed = in_service(&group);
        assert_eq!(group.delta(&observed).unwrap(), Vec::<String>::new());
        assert_eq!(group.readiness(&observed), Readiness::Ready);
        assert!(group.create_fields()[0].starts_with("2-6 instances over 2 subnets"));
        assert!(
            group.references().is_empty(),
            "found by name, even while tearing down"
        );
    }

    #[test]
    fn a_scaling_change_changes_only_the_sizes() {
        let observed = in_service(&group());
        let scaled = AutoScalingGroup {
            min_size: 3,
            max_size: 8,
            desired_capacity: Some(4),
            ..group()
        };
        assert_eq!(
            scaled.delta(&observed).unwrap(),
            ["min size: 2 → 3", "max size: 6 → 8", "desired capacity: 2 → 4"]
        );
    }

    #[test]
    fn without_a_desired_capacity_the_scaling_policy_owns_it() {
        let group = group();
        let mut observed = in_service(&group);
        observed.desired_capacity = 5;
        observed
            .instances
            .extend(["i-3", "i-4", "i-5"].map(|id| instance(id, "1")));
        observed.healthy_targets = 5;
        assert_eq!(group.delta(&observed).unwrap(), Vec::<String>::new());
        assert_eq!(group.readiness(&observed), Readiness::Ready);
        observed.healthy_targets = 4;
        assert_eq!(
            group.readiness(&observed),
            Readiness::Waiting("4 of 5 upload instances pass the /healthz health check".into())
        );
    }

    #[test]
    fn a_new_template_version_moves_the_group_and_refreshes_every_instance() {
        let observed = in_service(&group());
        for version in [TemplateVersion::Number(2), TemplateVersion::Next] {
            let moved = AutoScalingGroup { version, ..group() };
            assert_eq!(
                moved.delta(&observed).unwrap(),
                [
                    format!("launch template: lt-1 version 1 → lt-1 version {version}"),
                    AutoScalingGroup::refresh_field(2),
                ]
            );
        }
        let plan = AutoScalingGroup {
            version: TemplateVersion::Next,
            ..group()
        };
        assert_eq!(plan.template().unwrap_err().reason, "NotFoundYet");
    }

    #[test]
    fn instances_left_on_an_old_version_are_refreshed_unless_a_refresh_runs() {
        let group = group();
        let mut observed = in_service(&group);
        observed.instances[0].launch_template_version = Some("0".into());
        assert_eq!(
            group.delta(&observed).unwrap(),
            [AutoScalingGroup::refresh_field(1)]
        );
        assert!(
            group.group_fields(&observed).is_empty(),
            "the group itself is as desired"
        );
        observed.refresh_in_progress = true;
        assert_eq!(group.delta(&observed).unwrap(), Vec::<String>::new());
        assert!(matches!(
            group.readiness(&observed),
            Readiness::Waiting(why) if why.contains("instance refresh")
        ));
    }

    #[test]
    fn a_group_being_deleted_is_waited_for() {
        let group = group();
        let mut observed = in_service(&group);
        assert_eq!(group.going(&observed), None);
        observed.deleting = true;
        assert!(
            group
                .going(&observed)
                .unwrap()
                .contains("2 instance(s) still terminating")
        );
    }
}
