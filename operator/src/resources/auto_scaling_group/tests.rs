use super::*;

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
    assert!(group.references().is_empty(), "found by name, even while tearing down");
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
    assert_eq!(group.delta(&observed).unwrap(), [AutoScalingGroup::refresh_field(1)]);
    assert!(group.group_fields(&observed).is_empty(), "the group itself is as desired");
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
    assert!(group.going(&observed).unwrap().contains("2 instance(s) still terminating"));
}
