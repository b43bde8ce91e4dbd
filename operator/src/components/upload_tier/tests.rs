use std::collections::BTreeSet;

use super::*;
use crate::components::network::NetworkOutputs;
use crate::engine::resource::Ref;
use crate::engine::{Readiness, SecretText, SubnetOutput, context_from_yaml};
use crate::resources::auto_scaling_group::{GroupInstance, GroupState};
use crate::resources::iam_role::DesiredRole;
use crate::resources::instance_profile::InstanceProfile;
use crate::resources::instance_profile::ProfileState;
use crate::resources::listener::ListenerState;
use crate::resources::load_balancer::LoadBalancer;
use crate::resources::load_balancer::LoadBalancerState;
use crate::resources::scaling_policy::PolicyState;
use crate::resources::ssm_parameter::ParameterState;
use crate::resources::ssm_parameter::SecureParameter;
use crate::resources::target_group::TargetGroup;
use crate::resources::target_group::TargetGroupState;

const CERTIFICATE: &str =
    "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789";

fn upstream() -> Outputs {
    let subnet = |id: &str, zone: &str| SubnetOutput {
        id: id.to_owned(),
        availability_zone: zone.to_owned(),
        cidr: String::new(),
    };
    let mut upstream = Outputs {
        bucket: Some("photos-bucket".to_owned()),
        table: Some("photos-table".to_owned()),
        delivery_stream: Some("photos-events".to_owned()),
        ..Outputs::default()
    };
    upstream.publish(NetworkOutputs {
        api_vpc: Ref::Known("vpc-api".to_owned()),
        public_subnets: vec![subnet("subnet-a", "eu-west-1a"), subnet("subnet-b", "eu-west-1b")],
        load_balancer_group: Ref::Known("sg-lb".to_owned()),
        upload_group: Ref::Known("sg-upload".to_owned()),
        ..NetworkOutputs::pending()
    });
    upstream
}

fn context(upload_api: &str) -> PipelineContext {
    context_from_yaml(&format!(
        "
apiVersion: imagepipeline.io/v1alpha1
kind: ImagePipeline
metadata: {{name: photos, namespace: media}}
spec:
  region: eu-west-1
  network: {{availabilityZones: [eu-west-1a, eu-west-1b]}}
  uploadApi: {{ {upload_api} }}
"
    ))
}

fn desired_with(upload_api: &str) -> DesiredUploadTier {
    UploadTier::desired(&context(upload_api), &upstream()).expect("upload tier of a valid spec")
}

fn image() -> ResolvedImage {
    ResolvedImage {
        id: "ami-0123456789abcdef0".to_owned(),
        root_device: "/dev/xvda".to_owned(),
    }
}

/// The template, listener, group and policy as `declare` makes them once
/// everything before them exists.
fn declared(
    desired: &DesiredUploadTier,
    version: TemplateVersion,
) -> (LaunchTemplate, Listener, AutoScalingGroup) {
    let template = LaunchTemplate {
        image: Some(image()),
        ..desired.launch_template.clone()
    };
    let listener = Listener {
        load_balancer: Ref::Known("arn:lb".into()),
        target_group: Ref::Known("arn:tg".into()),
        ..desired.listener.clone()
    };
    let group = AutoScalingGroup {
        launch_template: Ref::Known("lt-1".into()),
        version,
        target_group: Ref::Known("arn:tg".into()),
        ..desired.group.clone()
    };
    (template, listener, group)
}

/// What AWS holds once a first apply of `desired_with("")` is done and the
/// group is in service.
struct Applied {
    profile: ProfileState,
    keys: ParameterState,
    template: TemplateState,
    target_group: TargetGroupState,
    load_balancer: LoadBalancerState,
    listener: ListenerState,
    group: GroupState,
    policy: PolicyState,
}

fn applied() -> Applied {
    let desired = desired_with("");
    let (template, _, group) = declared(&desired, TemplateVersion::Number(1));
    let instance = |id: &str| GroupInstance {
        id: id.to_owned(),
        in_service: true,
        launch_template_version: Some("1".to_owned()),
    };
    Applied {
        profile: ProfileState {
            name: desired.instance_profile.name.clone(),
            arn: desired.instance_profile.arn.clone(),
            roles: vec![desired.role.name.clone()],
            tags: desired.role.tags.clone(),
        },
        keys: ParameterState {
            name: desired.api_keys.name.clone(),
            value: SecretText::new("generated"),
        },
        template: TemplateState {
            id: "lt-1".to_owned(),
            tags: template.tags.clone(),
            latest_version: 1,
            latest: template.settings().unwrap(),
        },
        target_group: TargetGroupState {
            name: desired.target_group.name.clone(),
            arn: "arn:tg".to_owned(),
            health_check_path: Some(HEALTH_CHECK_PATH.to_owned()),
            tags: group.tags.clone(),
        },
        load_balancer: LoadBalancerState {
            name: desired.load_balancer.name.clone(),
            arn: "arn:lb".to_owned(),
            dns_name: "lb.example".to_owned(),
            state: "active".to_owned(),
            subnets: desired.load_balancer.subnets.clone(),
            security_groups: BTreeSet::from(["sg-lb".to_owned()]),
            tags: group.tags.clone(),
        },
        listener: ListenerState {
            arn: "arn:listener".to_owned(),
            port: 80,
            protocol: "HTTP".to_owned(),
            certificate_arn: None,
            ssl_policy: None,
            target_group_arn: Some("arn:tg".to_owned()),
        },
        group: GroupState {
            name: group.name.clone(),
            min_size: 2,
            max_size: 6,
            desired_capacity: 2,
            launch_template_id: Some("lt-1".to_owned()),
            launch_template_version: Some("1".to_owned()),
            subnets: group.subnets.clone(),
            health_check_type: "ELB".to_owned(),
            tags: group.tags.clone(),
            deleting: false,
            instances: vec![instance("i-1"), instance("i-2")],
            refresh_in_progress: false,
            healthy_targets: 2,
        },
        policy: PolicyState {
            name: SCALING_POLICY_NAME.to_owned(),
            cpu_target: Some(60.0),
        },
    }
}

/// What a walk of `desired` over `applied` would change: each resource's
/// label with its plan fields.
fn changes(desired: &DesiredUploadTier, applied: &Applied) -> Vec<(String, Vec<String>)> {
    let version = version(
        WalkMode::Plan,
        &declared(desired, TemplateVersion::Next).0,
        Some(&applied.template),
    )
    .unwrap();
    let (template, listener, group) = declared(desired, version);
    let policy = ScalingPolicy {
        group: Ref::Known(group.name.clone()),
        ..desired.scaling_policy.clone()
    };
    let deltas = [
        (
            desired.instance_profile.label(),
            desired.instance_profile.delta(&applied.profile),
        ),
        (desired.api_keys.label(), desired.api_keys.delta(&applied.keys)),
        (template.label(), template.delta(&applied.template)),
        (
            desired.target_group.label(),
            desired.target_group.delta(&applied.target_group),
        ),
        (
            desired.load_balancer.label(),
            desired.load_balancer.delta(&applied.load_balancer),
        ),
        (listener.label(), listener.delta(&applied.listener)),
        (group.label(), group.delta(&applied.group)),
        (policy.label(), policy.delta(&applied.policy)),
    ];
    deltas
        .into_iter()
        .map(|(label, delta)| (label, delta.expect("comparable")))
        .filter(|(_, fields)| !fields.is_empty())
        .collect()
}

#[test]
fn later_resources_name_the_earlier_ones_they_stand_on_until_those_are_made() {
    let desired = desired_with("");
    let pending = |r: &Ref| match r {
        Ref::Pending(what) => what.clone(),
        Ref::Known(id) => panic!("{id} is not made yet"),
    };
    assert_eq!(
        pending(&desired.listener.load_balancer),
        desired.load_balancer.label()
    );
    assert_eq!(
        pending(&desired.listener.target_group),
        desired.target_group.label()
    );
    assert_eq!(
        pending(&desired.group.launch_template),
        desired.launch_template.label()
    );
    assert_eq!(pending(&desired.group.target_group), desired.target_group.label());
    assert_eq!(pending(&desired.scaling_policy.group), desired.group.label());
    assert_eq!(desired.instance_profile.role, desired.role.name);
    // What the Network made is known; before it exists (a first plan), it
    // shows as pending, never as an empty id.
    assert_eq!(desired.target_group.vpc_id, Ref::Known("vpc-api".into()));
    let first_plan = UploadTier::desired(&context(""), &Outputs::default()).unwrap();
    assert!(pending(&first_plan.launch_template.security_group).contains("security group"));
    assert!(pending(&first_plan.load_balancer.security_group).contains("security group"));
    assert!(pending(&first_plan.target_group.vpc_id).contains("API VPC"));
}

#[test]
fn as_applied_nothing_changes_and_the_tier_is_ready() {
    let desired = desired_with("");
    let applied = applied();
    assert_eq!(changes(&desired, &applied), vec![]);
    let (_, _, group) = declared(&desired, TemplateVersion::Number(1));
    assert_eq!(
        desired.load_balancer.readiness(&applied.load_balancer),
        Readiness::Ready
    );
    assert_eq!(group.readiness(&applied.group), Readiness::Ready);
}

#[test]
fn the_launch_template_runs_imdsv2_only_with_an_encrypted_root_volume() {
    let (template, _, _) = declared(&desired_with(""), TemplateVersion::Next);
    let settings = template.settings().unwrap();
    assert!(settings.imds_tokens_required);
    assert_eq!(
        settings.imds_hop_limit, 2,
        "the container is one hop behind the instance"
    );
    assert!(settings.root_volume_encrypted);
    assert_eq!(settings.root_device, "/dev/xvda");
    assert_eq!(settings.security_groups, BTreeSet::from(["sg-upload".to_owned()]));
}

#[test]
fn a_scaling_change_changes_only_the_group() {
    let desired = desired_with("minSize: 3, maxSize: 8, desiredCapacity: 4");
    assert_eq!(
        changes(&desired, &applied()),
        vec![(
            desired.group.label(),
            ["min size: 2 → 3", "max size: 6 → 8", "desired capacity: 2 → 4"]
                .map(String::from)
                .to_vec()
        )]
    );
}

#[test]
fn an_instance_type_or_image_change_makes_a_new_version_moves_the_group_and_refreshes() {
    let applied = applied();
    for spec in [
        "instanceType: t3.large",
        "image: ghcr.io/example/upload-api:2.0.0",
    ] {
        let desired = desired_with(spec);
        let labels: Vec<String> = changes(&desired, &applied)
            .into_iter()
            .map(|(label, _)| label)
            .collect();
        assert_eq!(
            labels,
            [desired.launch_template.label(), desired.group.label()],
            "{spec}"
        );
        let (_, _, moved) = declared(&desired, TemplateVersion::Next);
        let fields = moved.delta(&applied.group).unwrap();
        assert!(
            fields.iter().any(|f| f.starts_with("launch template:")),
            "{spec}: {fields:?}"
        );
        assert!(
            fields.iter().any(|f| f.contains("replace 2 instance(s)")),
            "{spec}: {fields:?}"
        );
        // Applying, the group moves once the template reports the version.
        let (template, _, _) = declared(&desired, TemplateVersion::Next);
        assert_eq!(
            version(WalkMode::Apply, &template, Some(&applied.template)).unwrap(),
            TemplateVersion::Number(1)
        );
    }
}

#[test]
fn a_certificate_moves_the_listener_to_https_on_443() {
    let desired = desired_with(&format!("certificateArn: {CERTIFICATE}"));
    assert_eq!((desired.listener.port, desired.scheme()), (443, "https"));
    let applied = applied();
    let (_, listener, _) = declared(&desired, TemplateVersion::Number(1));
    let found = [applied.listener];
    let others = listener.others(&found);
    let ports: Vec<i32> = others.iter().map(|(unwanted, _)| unwanted.port).collect();
    assert_eq!(ports, [80], "the listener on port 80 is deleted");
    assert_eq!(
        (desired_with("").listener.port, desired_with("").scheme()),
        (80, "http")
    );
}

#[test]
fn the_keys_of_the_pipelines_secret_are_mirrored_and_otherwise_generated() {
    assert_eq!(desired_with("").api_keys.value, None);
    let mut ctx = context("apiKeysSecretRef: {name: photos-keys}");
    ctx.upload_api_keys = Some(SecretText::new("from-the-secret"));
    let desired = UploadTier::desired(&ctx, &upstream()).unwrap();
    assert_eq!(desired.api_keys.value, Some(SecretText::new("from-the-secret")));
    assert_eq!(desired.api_keys.name, "/imagepipeline/media/photos/api-keys");
}

#[test]
fn a_secret_the_cli_cannot_read_is_a_terminal_error_naming_the_field() {
    let err =
        UploadTier::desired(&context("apiKeysSecretRef: {name: photos-keys}"), &upstream()).unwrap_err();
    assert!(err.is_terminal());
    assert!(err.message.contains("spec.uploadApi.apiKeysSecretRef"), "{err}");
}

#[test]
fn teardown_needs_no_ami_and_removes_everything_whatever_the_policy() {
    let desired = desired_with("amiId: ami-0123456789abcdef0");
    // Declared without its AMI, the template is still found by name.
    assert_eq!(desired.launch_template.image, None);
    assert!(desired.launch_template.references().is_empty());
    // Retain keeps data, never compute or IAM.
    assert!(
        ![
            DesiredRole::KEEPS_DATA,
            InstanceProfile::KEEPS_DATA,
            SecureParameter::KEEPS_DATA,
            LaunchTemplate::KEEPS_DATA,
            TargetGroup::KEEPS_DATA,
            LoadBalancer::KEEPS_DATA,
            Listener::KEEPS_DATA,
            AutoScalingGroup::KEEPS_DATA,
            ScalingPolicy::KEEPS_DATA,
        ]
        .contains(&true)
    );
}
