//! UploadTier: the upload API on EC2 behind an application load balancer.
//!
//! An instance role and profile (least privilege, see
//! [`upload_instance_setup`]), the API keys in an SSM SecureString, a launch
//! template, a target group checking `/healthz`, an internet-facing ALB in the
//! public subnets with one listener, an Auto Scaling group over those subnets
//! with ELB health checks, and a target-tracking policy on average CPU.
//!
//! Every resource has a deterministic name, so it is found again after a
//! crash. The group runs an explicit launch-template version: a change of
//! instance type, AMI or container image makes a new version, moves the group
//! to it and starts an instance refresh, which replaces the instances while
//! the load balancer keeps serving. Instances still on an older version start
//! a refresh too, so a crash between those calls converges.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_autoscaling::types::{
    LaunchTemplateSpecification, MetricType, PredefinedMetricSpecification, RefreshPreferences,
    RefreshStrategy, TargetTrackingConfiguration,
};
use aws_sdk_ec2::types::{
    InstanceStateName, LaunchTemplateBlockDeviceMappingRequest, LaunchTemplateEbsBlockDeviceRequest,
    LaunchTemplateHttpTokensState, LaunchTemplateIamInstanceProfileSpecificationRequest,
    LaunchTemplateInstanceMetadataEndpointState, LaunchTemplateInstanceMetadataOptionsRequest,
    LaunchTemplateTagSpecificationRequest, RequestLaunchTemplateData, ResourceType, VolumeType,
};
use aws_sdk_elasticloadbalancingv2::types::{
    Action as ListenerAction, ActionTypeEnum, Certificate, LoadBalancerSchemeEnum, LoadBalancerStateEnum,
    LoadBalancerTypeEnum, Matcher, ProtocolEnum, TargetTypeEnum,
};
use aws_sdk_ssm::types::ParameterType;
use rand::Rng;

mod observe;

use observe::{
    observe_api_keys, observe_group, observe_instance_profile, observe_launch_template, observe_listeners,
    observe_load_balancer, observe_tagged_instances, observe_target_group,
};

use super::instance_offering::check_offered;
use super::machine_image::{self, ImageSource, ResolvedImage};
use super::ownership;
use super::upload_instance_setup::{
    self as setup, IMDS_HOP_LIMIT, UPLOAD_PORT, UploadInstanceConfig, UploadTargets,
};
use crate::api::v1alpha1::DeletionPolicy;
use crate::aws::AwsClients;
use crate::aws::errors::{Lookup, SpecReference, classify_with, code};
use crate::engine::{
    Action, Change, Component, ComponentError, ComponentKind, Outputs, PipelineContext, Readiness, SecretText,
};
use crate::resources::iam_role::{self, DesiredRole, ObservedRole, RoleStep};
use crate::resources::sdk::{deleted, failed, tag_specification, terminate_instances};
use crate::resources::tags::to_sdk;

pub struct UploadTier;

/// Path the target group checks; upload-api answers it without touching AWS.
pub const HEALTH_CHECK_PATH: &str = "/healthz";
/// Name of the target-tracking policy on the group.
pub const SCALING_POLICY_NAME: &str = "cpu-target-tracking";
/// TLS policy of the HTTPS listener: TLS 1.3 and 1.2 with forward secrecy.
pub const TLS_POLICY: &str = "ELBSecurityPolicy-TLS13-1-2-2021-06";
/// Root volume: room for docker and the upload-api image.
const ROOT_VOLUME_GIB: i32 = 20;
/// Time an instance gets to pull the image and pass `/healthz` before the
/// group replaces it for failing ELB health checks.
const HEALTH_CHECK_GRACE_SECONDS: i32 = 300;
/// An instance refresh keeps this share of the group in service.
const REFRESH_MIN_HEALTHY_PERCENT: i32 = 90;
const REFRESH_WARMUP_SECONDS: i32 = 120;
const HTTP_PORT: i32 = 80;
const HTTPS_PORT: i32 = 443;

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredUploadTier {
    pub owner: String,
    pub tags: BTreeMap<String, String>,
    pub role: DesiredRole,
    pub instance_profile: DesiredInstanceProfile,
    pub api_keys: DesiredApiKeys,
    pub image: ImageSource,
    pub launch_template: DesiredLaunchTemplate,
    pub target_group: DesiredTargetGroup,
    pub load_balancer: DesiredLoadBalancer,
    pub listener: DesiredListener,
    pub group: DesiredGroup,
    pub target_cpu_percent: f64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredInstanceProfile {
    pub name: String,
    pub arn: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredApiKeys {
    pub parameter: String,
    /// The keys from the pipeline's Secret; `None` (the CLI): generate a key
    /// once and keep whatever the parameter holds from then on.
    pub value: Option<SecretText>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredLaunchTemplate {
    pub name: String,
    pub instance_type: String,
    /// The zones of the group's subnets, each of which must offer the type.
    pub zones: BTreeSet<String>,
    /// Base64 of the first-boot script.
    pub user_data: String,
    pub security_group: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredTargetGroup {
    /// At most 32 characters, as ELB requires.
    pub name: String,
    pub vpc_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredLoadBalancer {
    /// At most 32 characters, as ELB requires.
    pub name: String,
    pub subnets: BTreeSet<String>,
    pub security_group: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredListener {
    pub port: i32,
    /// HTTPS with this ACM certificate; plain HTTP when `None`.
    pub certificate_arn: Option<String>,
}

impl DesiredListener {
    fn protocol(&self) -> ProtocolEnum {
        if self.certificate_arn.is_some() {
            ProtocolEnum::Https
        } else {
            ProtocolEnum::Http
        }
    }

    /// Only HTTPS listeners have a TLS policy.
    fn ssl_policy(&self) -> Option<&'static str> {
        self.certificate_arn.as_ref().map(|_| TLS_POLICY)
    }

    fn certificates(&self) -> Option<Vec<Certificate>> {
        self.certificate_arn
            .as_ref()
            .map(|arn| vec![Certificate::builder().certificate_arn(arn).build()])
    }

    /// What the spec names for this listener, for errors that it is missing.
    fn references(&self) -> Vec<SpecReference<'_>> {
        self.certificate_arn
            .iter()
            .map(|arn| SpecReference::new(Lookup::Certificate, "spec.uploadApi.certificateArn", arn))
            .collect()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredGroup {
    pub name: String,
    pub min_size: i32,
    pub max_size: i32,
    /// Set only when the spec sets it; otherwise the scaling policy decides.
    pub desired_capacity: Option<i32>,
    pub subnets: BTreeSet<String>,
}

/// What an instance launched from the template gets: the fields compared
/// with the template's latest version.
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
    pub user_data: String,
    /// Tags given to the instances and their volumes.
    pub tags: BTreeMap<String, String>,
}

impl LaunchSettings {
    fn differences(&self, desired: &LaunchSettings) -> Vec<String> {
        let mut fields = Vec::new();
        let mut compare = |name: &str, observed: String, wanted: String| {
            if observed != wanted {
                fields.push(format!("{name}: {observed} → {wanted}"));
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
        compare("root volume", volume_text(self), volume_text(desired));
        if self.user_data != desired.user_data {
            fields.push("user data: changed".to_owned());
        }
        if self.tags != desired.tags {
            fields.push("instance tags: changed".to_owned());
        }
        fields
    }
}

fn volume_text(settings: &LaunchSettings) -> String {
    format!(
        "{} {} GiB{}",
        settings.root_device,
        settings.root_volume_gib,
        if settings.root_volume_encrypted {
            " encrypted"
        } else {
            " unencrypted"
        }
    )
}

fn join(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(",")
}

#[derive(Clone, Debug, Default)]
pub struct ObservedUploadTier {
    pub role: Option<ObservedRole>,
    pub instance_profile: Option<ObservedInstanceProfile>,
    pub api_keys: Option<SecretText>,
    /// The AMI to launch, or why it cannot be found. Only converging needs
    /// it, so a missing AMI never blocks deletion.
    pub image: Option<Result<ResolvedImage, ComponentError>>,
    pub launch_template: Option<ObservedLaunchTemplate>,
    pub target_group: Option<ObservedTargetGroup>,
    pub load_balancer: Option<ObservedLoadBalancer>,
    pub listeners: Vec<ObservedListener>,
    pub group: Option<ObservedGroup>,
    /// Instances tagged as this tier's that are not terminated, whether or
    /// not a group still runs them.
    pub instances: Vec<TaggedInstance>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedInstanceProfile {
    pub roles: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedLaunchTemplate {
    pub id: String,
    pub tags: BTreeMap<String, String>,
    pub latest_version: i64,
    pub latest: LaunchSettings,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedTargetGroup {
    pub arn: String,
    pub health_check_path: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// Targets passing the health check.
    pub healthy_targets: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedLoadBalancer {
    pub arn: String,
    pub dns_name: String,
    pub state: String,
    pub subnets: BTreeSet<String>,
    pub security_groups: BTreeSet<String>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedListener {
    pub arn: String,
    pub port: i32,
    pub protocol: String,
    pub certificate_arn: Option<String>,
    pub ssl_policy: Option<String>,
    pub target_group_arn: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedGroup {
    pub min_size: i32,
    pub max_size: i32,
    pub desired_capacity: i32,
    pub launch_template_id: Option<String>,
    pub launch_template_version: Option<String>,
    pub subnets: BTreeSet<String>,
    pub health_check_type: String,
    pub tags: BTreeMap<String, String>,
    /// AWS is deleting the group (and terminating its instances).
    pub deleting: bool,
    pub instances: Vec<GroupInstance>,
    pub refresh_in_progress: bool,
    /// Target value of the CPU target-tracking policy, if it exists.
    pub cpu_target: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInstance {
    pub id: String,
    pub in_service: bool,
    pub launch_template_version: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaggedInstance {
    pub id: String,
    pub state: String,
}

impl TaggedInstance {
    fn terminating(&self) -> bool {
        self.state == InstanceStateName::ShuttingDown.as_str()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum UploadTierStep {
    Role(RoleStep),
    CreateInstanceProfile,
    AddRoleToInstanceProfile,
    RemoveRoleFromInstanceProfile { role: String },
    PutApiKeys { exists: bool },
    CreateLaunchTemplate,
    CreateLaunchTemplateVersion { differences: Vec<String> },
    CreateTargetGroup,
    SetHealthCheck,
    CreateLoadBalancer,
    SetLoadBalancerSubnets,
    SetLoadBalancerSecurityGroups,
    CreateListener,
    UpdateListener { arn: String },
    DeleteListener { arn: String, port: i32 },
    CreateGroup,
    UpdateGroup { fields: Vec<String> },
    PutScalingPolicy,
    StartInstanceRefresh { outdated: usize },
    DeleteGroup,
    TerminateInstances { ids: Vec<String> },
    DeleteLoadBalancer,
    DeleteTargetGroup,
    DeleteLaunchTemplate,
    DeleteInstanceProfile,
    DeleteApiKeys,
}

impl DesiredUploadTier {
    fn launch_settings(&self, image: &ResolvedImage) -> LaunchSettings {
        let template = &self.launch_template;
        LaunchSettings {
            image_id: image.id.clone(),
            instance_type: template.instance_type.clone(),
            instance_profile_arn: self.instance_profile.arn.clone(),
            security_groups: BTreeSet::from([template.security_group.clone()]),
            imds_tokens_required: true,
            imds_hop_limit: IMDS_HOP_LIMIT,
            root_device: image.root_device.clone(),
            root_volume_gib: ROOT_VOLUME_GIB,
            root_volume_encrypted: true,
            user_data: template.user_data.clone(),
            tags: self.tags.clone(),
        }
    }

    fn scheme(&self) -> &'static str {
        if self.listener.certificate_arn.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

impl Component for UploadTier {
    const KIND: ComponentKind = ComponentKind::UploadTier;
    const DEPENDS_ON: &'static [ComponentKind] = &[
        ComponentKind::Network,
        ComponentKind::Storage,
        ComponentKind::Metadata,
        ComponentKind::Delivery,
    ];
    type Desired = DesiredUploadTier;
    type Observed = ObservedUploadTier;
    type Step = UploadTierStep;

    fn desired(ctx: &PipelineContext, upstream: &Outputs) -> Result<DesiredUploadTier, ComponentError> {
        let spec = &ctx.spec.upload_api;
        let api_keys = match (&spec.api_keys_secret_ref, &ctx.upload_api_keys) {
            (_, Some(keys)) => Some(keys.clone()),
            (None, None) => None,
            (Some(secret), None) => {
                return Err(ComponentError::terminal(
                    "ApiKeysSecretUnavailable",
                    format!(
                        "spec.uploadApi.apiKeysSecretRef names the Kubernetes Secret {}, which only the \
                         controller reads; apply this pipeline with the controller, or remove the field \
                         so that apply generates a key",
                        secret.name
                    ),
                ));
            }
        };
        let targets = UploadTargets {
            bucket: upstream.bucket.clone().unwrap_or_else(|| ctx.bucket_name()),
            table: upstream.table.clone().unwrap_or_else(|| ctx.table_name()),
            delivery_stream: upstream.delivery_stream.clone().unwrap_or_default(),
        };
        let config = UploadInstanceConfig::new(ctx, targets)?;
        let name = ctx.resource_name("upload", 64);
        let role_arn = ctx.global_arn("iam", &format!("role{}{name}", iam_role::ROLE_PATH));
        let tags = ctx.tags(Self::KIND);
        let role = DesiredRole {
            name: name.clone(),
            arn: role_arn,
            trust_policy: setup::instance_trust_policy(),
            policy_name: "upload-api".to_owned(),
            policy: setup::instance_permissions_policy(ctx, &config),
            tags: tags.clone(),
        };
        let short_name = ctx.resource_name("upload", 32);
        let public_subnets: BTreeSet<String> = upstream.public_subnets.iter().map(|s| s.id.clone()).collect();
        Ok(DesiredUploadTier {
            owner: ctx.owner.tag_value(),
            instance_profile: DesiredInstanceProfile {
                arn: ctx.global_arn("iam", &format!("instance-profile{}{name}", iam_role::ROLE_PATH)),
                name: name.clone(),
            },
            role,
            api_keys: DesiredApiKeys {
                parameter: config.api_keys_parameter().to_owned(),
                value: api_keys,
            },
            image: ImageSource::new(spec.ami_id.as_ref(), "spec.uploadApi.amiId"),
            launch_template: DesiredLaunchTemplate {
                name: name.clone(),
                instance_type: spec.instance_type.clone(),
                zones: upstream
                    .public_subnets
                    .iter()
                    .map(|s| s.availability_zone.clone())
                    .collect(),
                user_data: setup::user_data_base64(&config),
                security_group: upstream.upload_security_group.clone().unwrap_or_default(),
            },
            target_group: DesiredTargetGroup {
                name: short_name.clone(),
                vpc_id: upstream.api_vpc_id.clone().unwrap_or_default(),
            },
            load_balancer: DesiredLoadBalancer {
                name: short_name,
                subnets: public_subnets.clone(),
                security_group: upstream.load_balancer_security_group.clone().unwrap_or_default(),
            },
            listener: DesiredListener {
                port: if spec.certificate_arn.is_some() {
                    HTTPS_PORT
                } else {
                    HTTP_PORT
                },
                certificate_arn: spec.certificate_arn.clone(),
            },
            group: DesiredGroup {
                name,
                min_size: spec.min_size,
                max_size: spec.max_size,
                desired_capacity: spec.desired_capacity,
                subnets: public_subnets,
            },
            target_cpu_percent: f64::from(spec.target_cpu_percent),
            tags,
        })
    }

    async fn observe(
        aws: &AwsClients,
        desired: &DesiredUploadTier,
    ) -> Result<ObservedUploadTier, ComponentError> {
        let image = match machine_image::resolve(aws, &desired.image).await {
            Err(err) if !err.is_terminal() => return Err(err),
            image => Some(image),
        };
        let load_balancer = observe_load_balancer(aws, desired).await?;
        let listeners = match &load_balancer {
            Some(lb) => observe_listeners(aws, &lb.arn).await?,
            None => Vec::new(),
        };
        Ok(ObservedUploadTier {
            role: iam_role::observe(aws, &desired.role).await?,
            instance_profile: observe_instance_profile(aws, &desired.instance_profile.name).await?,
            api_keys: observe_api_keys(aws, &desired.api_keys.parameter).await?,
            image,
            launch_template: observe_launch_template(aws, &desired.launch_template.name).await?,
            target_group: observe_target_group(aws, &desired.target_group.name).await?,
            load_balancer,
            listeners,
            group: observe_group(aws, &desired.group.name).await?,
            instances: observe_tagged_instances(aws, &desired.owner).await?,
        })
    }

    fn converge(
        desired: &DesiredUploadTier,
        observed: &ObservedUploadTier,
    ) -> Result<Vec<UploadTierStep>, ComponentError> {
        check_ownership(desired, observed)?;
        let image = match &observed.image {
            Some(Ok(image)) => image,
            Some(Err(err)) => return Err(err.clone()),
            None => {
                return Err(ComponentError::retryable(
                    "ImageNotResolved",
                    "the AMI of the upload instances was not looked up yet",
                ));
            }
        };
        let mut steps: Vec<UploadTierStep> = iam_role::converge(&desired.role, observed.role.as_ref())
            .into_iter()
            .map(UploadTierStep::Role)
            .collect();
        match &observed.instance_profile {
            None => steps.extend([
                UploadTierStep::CreateInstanceProfile,
                UploadTierStep::AddRoleToInstanceProfile,
            ]),
            Some(profile) => {
                // A profile holds at most one role.
                for role in profile.roles.iter().filter(|r| **r != desired.role.name) {
                    steps.push(UploadTierStep::RemoveRoleFromInstanceProfile { role: role.clone() });
                }
                if !profile.roles.contains(&desired.role.name) {
                    steps.push(UploadTierStep::AddRoleToInstanceProfile);
                }
            }
        }
        match (&desired.api_keys.value, &observed.api_keys) {
            (_, None) => steps.push(UploadTierStep::PutApiKeys { exists: false }),
            (Some(wanted), Some(stored)) if wanted != stored => {
                steps.push(UploadTierStep::PutApiKeys { exists: true });
            }
            _ => {}
        }

        let wanted = desired.launch_settings(image);
        let new_version = match &observed.launch_template {
            None => {
                steps.push(UploadTierStep::CreateLaunchTemplate);
                true
            }
            Some(template) => {
                let differences = template.latest.differences(&wanted);
                let changed = !differences.is_empty();
                if changed {
                    steps.push(UploadTierStep::CreateLaunchTemplateVersion { differences });
                }
                changed
            }
        };

        match &observed.target_group {
            None => steps.push(UploadTierStep::CreateTargetGroup),
            Some(tg) if tg.health_check_path.as_deref() != Some(HEALTH_CHECK_PATH) => {
                steps.push(UploadTierStep::SetHealthCheck);
            }
            Some(_) => {}
        }
        match &observed.load_balancer {
            None => steps.push(UploadTierStep::CreateLoadBalancer),
            Some(lb) => {
                if lb.subnets != desired.load_balancer.subnets {
                    steps.push(UploadTierStep::SetLoadBalancerSubnets);
                }
                if lb.security_groups != BTreeSet::from([desired.load_balancer.security_group.clone()]) {
                    steps.push(UploadTierStep::SetLoadBalancerSecurityGroups);
                }
            }
        }
        steps.extend(listener_steps(desired, observed));

        match &observed.group {
            None => steps.extend([UploadTierStep::CreateGroup, UploadTierStep::PutScalingPolicy]),
            Some(group) => {
                let version = observed
                    .launch_template
                    .as_ref()
                    .filter(|_| !new_version)
                    .map(|t| t.latest_version.to_string());
                let fields = group_differences(desired, observed, group, version.as_deref());
                let moves_version = new_version || fields.iter().any(|f| f.starts_with("launch template"));
                if !fields.is_empty() {
                    steps.push(UploadTierStep::UpdateGroup { fields });
                }
                if group.cpu_target != Some(desired.target_cpu_percent) {
                    steps.push(UploadTierStep::PutScalingPolicy);
                }
                let outdated = if moves_version {
                    group.instances.len()
                } else {
                    group
                        .instances
                        .iter()
                        .filter(|i| i.launch_template_version != group.launch_template_version)
                        .count()
                };
                if outdated > 0 && !group.refresh_in_progress {
                    steps.push(UploadTierStep::StartInstanceRefresh { outdated });
                }
            }
        }
        Ok(steps)
    }

    fn teardown(
        _desired: &DesiredUploadTier,
        observed: &ObservedUploadTier,
        _policy: DeletionPolicy,
    ) -> (Vec<UploadTierStep>, Option<String>) {
        // Compute, network and IAM are always removed, whatever the policy.
        // The instances go first: the load balancer, target group and
        // template stay until nothing runs that uses them.
        if let Some(group) = &observed.group {
            if group.deleting {
                return (
                    vec![],
                    Some(format!(
                        "the Auto Scaling group is being deleted; {} instance(s) still terminating",
                        group.instances.len()
                    )),
                );
            }
            return (vec![UploadTierStep::DeleteGroup], None);
        }
        let running: Vec<String> = observed
            .instances
            .iter()
            .filter(|i| !i.terminating())
            .map(|i| i.id.clone())
            .collect();
        if !running.is_empty() {
            return (vec![UploadTierStep::TerminateInstances { ids: running }], None);
        }
        if let Some(instance) = observed.instances.first() {
            return (
                vec![],
                Some(format!(
                    "waiting for upload instance {} to terminate ({} left)",
                    instance.id,
                    observed.instances.len()
                )),
            );
        }
        let mut steps = Vec::new();
        steps.extend(observed.listeners.iter().map(|l| UploadTierStep::DeleteListener {
            arn: l.arn.clone(),
            port: l.port,
        }));
        if observed.load_balancer.is_some() {
            steps.push(UploadTierStep::DeleteLoadBalancer);
        }
        if observed.target_group.is_some() {
            steps.push(UploadTierStep::DeleteTargetGroup);
        }
        if observed.launch_template.is_some() {
            steps.push(UploadTierStep::DeleteLaunchTemplate);
        }
        if let Some(profile) = &observed.instance_profile {
            steps.extend(
                profile
                    .roles
                    .iter()
                    .map(|role| UploadTierStep::RemoveRoleFromInstanceProfile { role: role.clone() }),
            );
            steps.push(UploadTierStep::DeleteInstanceProfile);
        }
        steps.extend(
            iam_role::teardown(observed.role.as_ref())
                .into_iter()
                .map(UploadTierStep::Role),
        );
        if observed.api_keys.is_some() {
            steps.push(UploadTierStep::DeleteApiKeys);
        }
        (steps, None)
    }

    async fn execute(
        aws: &AwsClients,
        desired: &DesiredUploadTier,
        observed: &mut ObservedUploadTier,
        step: &UploadTierStep,
    ) -> Result<(), ComponentError> {
        let action = describe_step(desired, step).resource;
        match step {
            UploadTierStep::Role(step) => {
                iam_role::execute(aws, &desired.role, &mut observed.role, step).await
            }
            UploadTierStep::CreateInstanceProfile => {
                let profile = &desired.instance_profile;
                let mut request = aws
                    .iam
                    .create_instance_profile()
                    .instance_profile_name(&profile.name)
                    .path(iam_role::ROLE_PATH);
                for tag in to_sdk::<aws_sdk_iam::types::Tag>(&desired.tags)? {
                    request = request.tags(tag);
                }
                match request.send().await {
                    Ok(_) => {}
                    Err(err) if code(&err) == Some("EntityAlreadyExists") => {}
                    Err(err) => return Err(failed("create", &action)(err)),
                }
                observed.instance_profile = Some(ObservedInstanceProfile::default());
                Ok(())
            }
            UploadTierStep::AddRoleToInstanceProfile => {
                match aws
                    .iam
                    .add_role_to_instance_profile()
                    .instance_profile_name(&desired.instance_profile.name)
                    .role_name(&desired.role.name)
                    .send()
                    .await
                {
                    Ok(_) => Ok(()),
                    // Added by a pass that crashed before it saw the answer.
                    Err(err) if code(&err) == Some("LimitExceeded") => Ok(()),
                    Err(err) => Err(failed("add role to", &action)(err)),
                }
            }
            UploadTierStep::RemoveRoleFromInstanceProfile { role } => deleted(
                aws.iam
                    .remove_role_from_instance_profile()
                    .instance_profile_name(&desired.instance_profile.name)
                    .role_name(role)
                    .send()
                    .await,
                &["NoSuchEntity"],
                &format!("remove role {role} from {action}"),
            ),
            UploadTierStep::PutApiKeys { exists } => {
                let value = match &desired.api_keys.value {
                    Some(keys) => keys.clone(),
                    None => generate_api_key(),
                };
                let mut request = aws
                    .ssm
                    .put_parameter()
                    .name(&desired.api_keys.parameter)
                    .description("upload-api keys, one a line (ImagePipeline)")
                    .r#type(ParameterType::SecureString)
                    .value(value.expose())
                    .overwrite(*exists);
                // SSM refuses tags together with an overwrite.
                if !exists {
                    request = request.set_tags(Some(to_sdk(&desired.tags)?));
                }
                match request.send().await {
                    Ok(_) => {}
                    // Written by a pass that crashed before it saw the answer;
                    // the next observation compares it.
                    Err(err) if code(&err) == Some("ParameterAlreadyExists") => {}
                    Err(err) => return Err(failed("write", &action)(err)),
                }
                observed.api_keys = Some(value);
                Ok(())
            }
            UploadTierStep::CreateLaunchTemplate => {
                let settings = desired.launch_settings(resolved_image(observed)?);
                check_instance_type(aws, desired).await?;
                let out = aws
                    .ec2
                    .create_launch_template()
                    .launch_template_name(&desired.launch_template.name)
                    .version_description("ImagePipeline upload-api")
                    .launch_template_data(launch_template_data(&settings))
                    .tag_specifications(tag_specification(ResourceType::LaunchTemplate, &desired.tags))
                    .send()
                    .await
                    .map_err(failed("create", &action))?;
                let id = out
                    .launch_template()
                    .and_then(|t| t.launch_template_id())
                    .unwrap_or_default()
                    .to_owned();
                observed.launch_template = Some(ObservedLaunchTemplate {
                    id,
                    tags: desired.tags.clone(),
                    latest_version: 1,
                    latest: settings,
                });
                Ok(())
            }
            UploadTierStep::CreateLaunchTemplateVersion { .. } => {
                let settings = desired.launch_settings(resolved_image(observed)?);
                check_instance_type(aws, desired).await?;
                let template = observed
                    .launch_template
                    .as_mut()
                    .ok_or_else(|| missing("launch template"))?;
                let out = aws
                    .ec2
                    .create_launch_template_version()
                    .launch_template_id(&template.id)
                    .launch_template_data(launch_template_data(&settings))
                    .send()
                    .await
                    .map_err(failed("create a version of", &action))?;
                template.latest_version = out
                    .launch_template_version()
                    .and_then(|v| v.version_number())
                    .unwrap_or(template.latest_version + 1);
                template.latest = settings;
                Ok(())
            }
            UploadTierStep::CreateTargetGroup => {
                let mut request = aws
                    .elbv2
                    .create_target_group()
                    .name(&desired.target_group.name)
                    .protocol(ProtocolEnum::Http)
                    .port(i32::from(UPLOAD_PORT))
                    .vpc_id(&desired.target_group.vpc_id)
                    .target_type(TargetTypeEnum::Instance)
                    .health_check_protocol(ProtocolEnum::Http)
                    .health_check_path(HEALTH_CHECK_PATH)
                    .matcher(Matcher::builder().http_code("200").build());
                request = request.set_tags(Some(to_sdk(&desired.tags)?));
                // ELB answers a create of an identical existing group with it.
                let out = request.send().await.map_err(failed("create", &action))?;
                let arn = out
                    .target_groups()
                    .first()
                    .and_then(|tg| tg.target_group_arn())
                    .unwrap_or_default()
                    .to_owned();
                observed.target_group = Some(ObservedTargetGroup {
                    arn,
                    health_check_path: Some(HEALTH_CHECK_PATH.to_owned()),
                    tags: desired.tags.clone(),
                    healthy_targets: 0,
                });
                Ok(())
            }
            UploadTierStep::SetHealthCheck => aws
                .elbv2
                .modify_target_group()
                .target_group_arn(target_group_arn(observed)?)
                .health_check_protocol(ProtocolEnum::Http)
                .health_check_path(HEALTH_CHECK_PATH)
                .matcher(Matcher::builder().http_code("200").build())
                .send()
                .await
                .map(drop)
                .map_err(failed("set the health check of", &action)),
            UploadTierStep::CreateLoadBalancer => {
                let lb = &desired.load_balancer;
                let mut request = aws
                    .elbv2
                    .create_load_balancer()
                    .name(&lb.name)
                    .r#type(LoadBalancerTypeEnum::Application)
                    .scheme(LoadBalancerSchemeEnum::InternetFacing)
                    .set_subnets(Some(lb.subnets.iter().cloned().collect()))
                    .security_groups(&lb.security_group);
                request = request.set_tags(Some(to_sdk(&desired.tags)?));
                let out = request.send().await.map_err(failed("create", &action))?;
                let created = out.load_balancers().first();
                observed.load_balancer = Some(ObservedLoadBalancer {
                    arn: created
                        .and_then(|l| l.load_balancer_arn())
                        .unwrap_or_default()
                        .to_owned(),
                    dns_name: created.and_then(|l| l.dns_name()).unwrap_or_default().to_owned(),
                    state: LoadBalancerStateEnum::Provisioning.as_str().to_owned(),
                    subnets: lb.subnets.clone(),
                    security_groups: BTreeSet::from([lb.security_group.clone()]),
                    tags: desired.tags.clone(),
                });
                Ok(())
            }
            UploadTierStep::SetLoadBalancerSubnets => aws
                .elbv2
                .set_subnets()
                .load_balancer_arn(load_balancer_arn(observed)?)
                .set_subnets(Some(desired.load_balancer.subnets.iter().cloned().collect()))
                .send()
                .await
                .map(drop)
                .map_err(failed("set the subnets of", &action)),
            UploadTierStep::SetLoadBalancerSecurityGroups => aws
                .elbv2
                .set_security_groups()
                .load_balancer_arn(load_balancer_arn(observed)?)
                .security_groups(&desired.load_balancer.security_group)
                .send()
                .await
                .map(drop)
                .map_err(failed("set the security groups of", &action)),
            UploadTierStep::CreateListener => {
                let listener = &desired.listener;
                let request = aws
                    .elbv2
                    .create_listener()
                    .load_balancer_arn(load_balancer_arn(observed)?)
                    .port(listener.port)
                    .default_actions(forward_to(target_group_arn(observed)?));
                request
                    .protocol(listener.protocol())
                    .set_ssl_policy(listener.ssl_policy().map(str::to_owned))
                    .set_certificates(listener.certificates())
                    .send()
                    .await
                    .map(drop)
                    .map_err(|err| classify_with(&format!("create {action}"), &listener.references(), err))
            }
            UploadTierStep::UpdateListener { arn } => {
                let listener = &desired.listener;
                let request = aws
                    .elbv2
                    .modify_listener()
                    .listener_arn(arn)
                    .port(listener.port)
                    .default_actions(forward_to(target_group_arn(observed)?));
                request
                    .protocol(listener.protocol())
                    .set_ssl_policy(listener.ssl_policy().map(str::to_owned))
                    .set_certificates(listener.certificates())
                    .send()
                    .await
                    .map(drop)
                    .map_err(|err| classify_with(&format!("update {action}"), &listener.references(), err))
            }
            UploadTierStep::DeleteListener { arn, .. } => deleted(
                aws.elbv2.delete_listener().listener_arn(arn).send().await,
                &["ListenerNotFound"],
                &format!("delete {action}"),
            ),
            UploadTierStep::CreateGroup => {
                let group = &desired.group;
                let mut request = aws
                    .autoscaling
                    .create_auto_scaling_group()
                    .auto_scaling_group_name(&group.name)
                    .launch_template(group_template(observed)?)
                    .min_size(group.min_size)
                    .max_size(group.max_size)
                    .set_desired_capacity(group.desired_capacity)
                    .vpc_zone_identifier(join(&group.subnets))
                    .target_group_arns(target_group_arn(observed)?)
                    .health_check_type("ELB")
                    .health_check_grace_period(HEALTH_CHECK_GRACE_SECONDS);
                for (key, value) in &desired.tags {
                    request = request.tags(
                        aws_sdk_autoscaling::types::Tag::builder()
                            .key(key)
                            .value(value)
                            .propagate_at_launch(true)
                            .resource_id(&group.name)
                            .resource_type("auto-scaling-group")
                            .build(),
                    );
                }
                match request.send().await {
                    Ok(_) => Ok(()),
                    Err(err) if code(&err) == Some("AlreadyExists") => Ok(()),
                    Err(err) => Err(failed("create", &action)(err)),
                }
            }
            UploadTierStep::UpdateGroup { .. } => {
                let group = &desired.group;
                aws.autoscaling
                    .update_auto_scaling_group()
                    .auto_scaling_group_name(&group.name)
                    .launch_template(group_template(observed)?)
                    .min_size(group.min_size)
                    .max_size(group.max_size)
                    .set_desired_capacity(group.desired_capacity)
                    .vpc_zone_identifier(join(&group.subnets))
                    .health_check_type("ELB")
                    .health_check_grace_period(HEALTH_CHECK_GRACE_SECONDS)
                    .send()
                    .await
                    .map(drop)
                    .map_err(failed("update", &action))
            }
            UploadTierStep::PutScalingPolicy => {
                let metric = PredefinedMetricSpecification::builder()
                    .predefined_metric_type(MetricType::AsgAverageCpuUtilization)
                    .build();
                let target = TargetTrackingConfiguration::builder()
                    .predefined_metric_specification(metric)
                    .target_value(desired.target_cpu_percent)
                    .build();
                aws.autoscaling
                    .put_scaling_policy()
                    .auto_scaling_group_name(&desired.group.name)
                    .policy_name(SCALING_POLICY_NAME)
                    .policy_type("TargetTrackingScaling")
                    .target_tracking_configuration(target)
                    .send()
                    .await
                    .map(drop)
                    .map_err(failed("put", &action))
            }
            UploadTierStep::StartInstanceRefresh { .. } => {
                match aws
                    .autoscaling
                    .start_instance_refresh()
                    .auto_scaling_group_name(&desired.group.name)
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
                    // One is already rolling the group: it picks up the
                    // group's current version as it replaces instances.
                    Err(err) if code(&err) == Some("InstanceRefreshInProgress") => Ok(()),
                    Err(err) => Err(failed("start", &action)(err)),
                }
            }
            UploadTierStep::DeleteGroup => deleted(
                aws.autoscaling
                    .delete_auto_scaling_group()
                    .auto_scaling_group_name(&desired.group.name)
                    .force_delete(true)
                    .send()
                    .await,
                &["ValidationError"],
                &format!("delete {action}"),
            ),
            UploadTierStep::TerminateInstances { ids } => terminate_instances(aws, ids, &action).await,
            UploadTierStep::DeleteLoadBalancer => deleted(
                aws.elbv2
                    .delete_load_balancer()
                    .load_balancer_arn(load_balancer_arn(observed)?)
                    .send()
                    .await,
                &["LoadBalancerNotFound"],
                &format!("delete {action}"),
            ),
            UploadTierStep::DeleteTargetGroup => deleted(
                aws.elbv2
                    .delete_target_group()
                    .target_group_arn(target_group_arn(observed)?)
                    .send()
                    .await,
                &["TargetGroupNotFound"],
                &format!("delete {action}"),
            ),
            UploadTierStep::DeleteLaunchTemplate => {
                let template = observed
                    .launch_template
                    .as_ref()
                    .ok_or_else(|| missing("launch template"))?;
                deleted(
                    aws.ec2
                        .delete_launch_template()
                        .launch_template_id(&template.id)
                        .send()
                        .await,
                    &["InvalidLaunchTemplateId.NotFound"],
                    &format!("delete {action}"),
                )
            }
            UploadTierStep::DeleteInstanceProfile => deleted(
                aws.iam
                    .delete_instance_profile()
                    .instance_profile_name(&desired.instance_profile.name)
                    .send()
                    .await,
                &["NoSuchEntity"],
                &format!("delete {action}"),
            ),
            UploadTierStep::DeleteApiKeys => deleted(
                aws.ssm
                    .delete_parameter()
                    .name(&desired.api_keys.parameter)
                    .send()
                    .await,
                &["ParameterNotFound"],
                &format!("delete {action}"),
            ),
        }
    }

    fn describe(desired: &DesiredUploadTier, step: &UploadTierStep) -> Change {
        describe_step(desired, step)
    }

    fn readiness(desired: &DesiredUploadTier, observed: &ObservedUploadTier) -> Readiness {
        let Some(lb) = &observed.load_balancer else {
            return Readiness::Waiting("the load balancer does not exist yet".to_owned());
        };
        if lb.state != LoadBalancerStateEnum::Active.as_str() {
            return Readiness::Waiting(format!(
                "load balancer {} is {}",
                desired.load_balancer.name, lb.state
            ));
        }
        let Some(group) = &observed.group else {
            return Readiness::Waiting("the Auto Scaling group does not exist yet".to_owned());
        };
        if group.refresh_in_progress {
            return Readiness::Waiting(format!(
                "an instance refresh is replacing the instances of Auto Scaling group {}",
                desired.group.name
            ));
        }
        let wanted = usize::try_from(group.desired_capacity.max(desired.group.min_size)).unwrap_or(0);
        let in_service = group
            .instances
            .iter()
            .filter(|i| i.in_service && i.launch_template_version == group.launch_template_version)
            .count();
        if in_service < wanted {
            return Readiness::Waiting(format!(
                "{in_service} of {wanted} upload instances are in service"
            ));
        }
        let healthy = observed.target_group.as_ref().map_or(0, |tg| tg.healthy_targets);
        if healthy < wanted {
            return Readiness::Waiting(format!(
                "{healthy} of {wanted} upload instances pass the {HEALTH_CHECK_PATH} health check"
            ));
        }
        Readiness::Ready
    }

    fn publish(desired: &DesiredUploadTier, observed: &ObservedUploadTier, outputs: &mut Outputs) {
        iam_role::publish(Self::KIND, &desired.role, observed.role.as_ref(), outputs);
        if observed.instance_profile.is_some() {
            outputs.resource(
                Self::KIND,
                "AWS::IAM::InstanceProfile",
                &desired.instance_profile.name,
                Some(desired.instance_profile.arn.clone()),
            );
        }
        if let Some(template) = &observed.launch_template {
            outputs.resource(Self::KIND, "AWS::EC2::LaunchTemplate", &template.id, None);
        }
        if let Some(tg) = &observed.target_group {
            outputs.resource(
                Self::KIND,
                "AWS::ElasticLoadBalancingV2::TargetGroup",
                &desired.target_group.name,
                Some(tg.arn.clone()),
            );
        }
        if let Some(lb) = &observed.load_balancer {
            outputs.upload_url = Some(format!("{}://{}", desired.scheme(), lb.dns_name));
            outputs.resource(
                Self::KIND,
                "AWS::ElasticLoadBalancingV2::LoadBalancer",
                &desired.load_balancer.name,
                Some(lb.arn.clone()),
            );
        }
        if observed.group.is_some() {
            outputs.resource(
                Self::KIND,
                "AWS::AutoScaling::AutoScalingGroup",
                &desired.group.name,
                None,
            );
        }
    }
}

fn check_ownership(desired: &DesiredUploadTier, observed: &ObservedUploadTier) -> Result<(), ComponentError> {
    let found = [
        observed.launch_template.as_ref().map(|t| {
            (
                &t.tags,
                format!("launch template {}", desired.launch_template.name),
            )
        }),
        observed
            .target_group
            .as_ref()
            .map(|tg| (&tg.tags, format!("target group {}", desired.target_group.name))),
        observed
            .load_balancer
            .as_ref()
            .map(|lb| (&lb.tags, format!("load balancer {}", desired.load_balancer.name))),
        observed
            .group
            .as_ref()
            .map(|g| (&g.tags, format!("Auto Scaling group {}", desired.group.name))),
    ];
    found
        .into_iter()
        .flatten()
        .try_for_each(|(tags, resource)| ownership::check(tags, &desired.owner, &resource))
}

fn listener_steps(desired: &DesiredUploadTier, observed: &ObservedUploadTier) -> Vec<UploadTierStep> {
    let listener = &desired.listener;
    let target_group = observed.target_group.as_ref().map(|tg| tg.arn.as_str());
    let mut steps = Vec::new();
    let mut found = false;
    for existing in &observed.listeners {
        if existing.port != listener.port {
            steps.push(UploadTierStep::DeleteListener {
                arn: existing.arn.clone(),
                port: existing.port,
            });
            continue;
        }
        found = true;
        let as_desired = existing.protocol == listener.protocol().as_str()
            && existing.certificate_arn == listener.certificate_arn
            // Emulators report a TLS policy on HTTP listeners too.
            && (listener.ssl_policy().is_none() || existing.ssl_policy.as_deref() == listener.ssl_policy())
            && target_group.is_some()
            && existing.target_group_arn.as_deref() == target_group;
        if !as_desired {
            steps.push(UploadTierStep::UpdateListener {
                arn: existing.arn.clone(),
            });
        }
    }
    if !found {
        steps.push(UploadTierStep::CreateListener);
    }
    steps
}

fn group_differences(
    desired: &DesiredUploadTier,
    observed: &ObservedUploadTier,
    group: &ObservedGroup,
    version: Option<&str>,
) -> Vec<String> {
    let wanted = &desired.group;
    let mut fields = Vec::new();
    let mut compare = |name: &str, observed: String, desired: String| {
        if observed != desired {
            fields.push(format!("{name}: {observed} → {desired}"));
        }
    };
    compare(
        "min size",
        group.min_size.to_string(),
        wanted.min_size.to_string(),
    );
    compare(
        "max size",
        group.max_size.to_string(),
        wanted.max_size.to_string(),
    );
    if let Some(capacity) = wanted.desired_capacity {
        compare(
            "desired capacity",
            group.desired_capacity.to_string(),
            capacity.to_string(),
        );
    }
    compare("subnets", join(&group.subnets), join(&wanted.subnets));
    compare(
        "health check type",
        group.health_check_type.clone(),
        "ELB".to_owned(),
    );
    let template_id = observed.launch_template.as_ref().map(|t| t.id.clone());
    let current = format!(
        "{} version {}",
        group.launch_template_id.as_deref().unwrap_or("(none)"),
        group.launch_template_version.as_deref().unwrap_or("(none)")
    );
    let target = format!(
        "{} version {}",
        template_id.as_deref().unwrap_or("(new)"),
        version.unwrap_or("(new)")
    );
    compare("launch template", current, target);
    fields
}

fn describe_step(desired: &DesiredUploadTier, step: &UploadTierStep) -> Change {
    let template = format!("launch template {}", desired.launch_template.name);
    let target_group = format!("target group {}", desired.target_group.name);
    let load_balancer = format!("load balancer {}", desired.load_balancer.name);
    let group = format!("Auto Scaling group {}", desired.group.name);
    let profile = format!("IAM instance profile {}", desired.instance_profile.name);
    let parameter = format!("SSM parameter {}", desired.api_keys.parameter);
    let listener = format!("{load_balancer} listener on port {}", desired.listener.port);
    match step {
        UploadTierStep::Role(step) => iam_role::change(&desired.role, step),
        UploadTierStep::CreateInstanceProfile => Change::new(Action::Create, profile),
        UploadTierStep::AddRoleToInstanceProfile => {
            Change::new(Action::Update, profile).note(format!("add role {}", desired.role.name))
        }
        UploadTierStep::RemoveRoleFromInstanceProfile { role } => {
            Change::new(Action::Update, profile).note(format!("remove role {role}"))
        }
        UploadTierStep::PutApiKeys { exists } => {
            let change = Change::new(if *exists { Action::Update } else { Action::Create }, parameter);
            match &desired.api_keys.value {
                Some(_) => change.note("SecureString: the API keys of the pipeline's Secret"),
                None => change.note(format!(
                    "SecureString: a generated API key; read it with \
                     `aws ssm get-parameter --with-decryption --name {}`",
                    desired.api_keys.parameter
                )),
            }
        }
        UploadTierStep::CreateLaunchTemplate => Change::new(Action::Create, template).note(format!(
            "{}, IMDSv2 required, encrypted root volume, runs upload-api",
            desired.launch_template.instance_type
        )),
        UploadTierStep::CreateLaunchTemplateVersion { differences } => {
            let mut change = Change::new(Action::Update, format!("{template}: new version"));
            change.fields.clone_from(differences);
            change
        }
        UploadTierStep::CreateTargetGroup => Change::new(Action::Create, target_group)
            .note(format!("HTTP {UPLOAD_PORT}, health check {HEALTH_CHECK_PATH}")),
        UploadTierStep::SetHealthCheck => {
            Change::new(Action::Update, target_group).note(format!("health check {HEALTH_CHECK_PATH}"))
        }
        UploadTierStep::CreateLoadBalancer => Change::new(Action::Create, load_balancer)
            .note("internet-facing application load balancer in the public subnets"),
        UploadTierStep::SetLoadBalancerSubnets => Change::new(Action::Update, load_balancer)
            .note(format!("subnets → {}", join(&desired.load_balancer.subnets))),
        UploadTierStep::SetLoadBalancerSecurityGroups => Change::new(Action::Update, load_balancer).note(
            format!("security groups → {}", desired.load_balancer.security_group),
        ),
        UploadTierStep::CreateListener => {
            Change::new(Action::Create, listener).note(match &desired.listener.certificate_arn {
                Some(_) => format!("HTTPS ({TLS_POLICY}) → {target_group}"),
                None => format!("HTTP → {target_group}"),
            })
        }
        UploadTierStep::UpdateListener { .. } => Change::new(Action::Update, listener),
        UploadTierStep::DeleteListener { port, .. } => {
            Change::new(Action::Delete, format!("{load_balancer} listener on port {port}"))
        }
        UploadTierStep::CreateGroup => {
            let wanted = &desired.group;
            Change::new(Action::Create, group).note(format!(
                "{}-{} instances over {} subnets, ELB health checks",
                wanted.min_size,
                wanted.max_size,
                wanted.subnets.len()
            ))
        }
        UploadTierStep::UpdateGroup { fields } => {
            let mut change = Change::new(Action::Update, group);
            change.fields.clone_from(fields);
            change
        }
        UploadTierStep::PutScalingPolicy => Change::new(Action::Update, format!("{group}: scaling policy"))
            .note(format!("average CPU target {}%", desired.target_cpu_percent)),
        UploadTierStep::StartInstanceRefresh { outdated } => {
            Change::new(Action::Update, format!("{group}: instance refresh")).note(format!(
                "replace {outdated} instance(s) with the latest launch template version"
            ))
        }
        UploadTierStep::DeleteGroup => Change::new(Action::Delete, group).note("terminates its instances"),
        UploadTierStep::TerminateInstances { ids } => {
            Change::new(Action::Delete, format!("upload instances {}", ids.join(", ")))
        }
        UploadTierStep::DeleteLoadBalancer => Change::new(Action::Delete, load_balancer),
        UploadTierStep::DeleteTargetGroup => Change::new(Action::Delete, target_group),
        UploadTierStep::DeleteLaunchTemplate => Change::new(Action::Delete, template),
        UploadTierStep::DeleteInstanceProfile => Change::new(Action::Delete, profile),
        UploadTierStep::DeleteApiKeys => Change::new(Action::Delete, parameter),
    }
}

fn generate_api_key() -> SecretText {
    let bytes: [u8; 32] = rand::rng().random();
    SecretText::new(hex::encode(bytes))
}

fn missing(what: &str) -> ComponentError {
    ComponentError::retryable(
        "NotFoundYet",
        format!("the {what} of the upload tier is not visible yet; the next pass continues"),
    )
}

/// Before a launch template asks for an instance type: AWS would accept it
/// and fail every launch in a zone that lacks it.
async fn check_instance_type(aws: &AwsClients, desired: &DesiredUploadTier) -> Result<(), ComponentError> {
    let template = &desired.launch_template;
    check_offered(
        aws,
        &template.instance_type,
        &template.zones,
        "spec.uploadApi.instanceType",
    )
    .await
}

fn resolved_image(observed: &ObservedUploadTier) -> Result<&ResolvedImage, ComponentError> {
    match &observed.image {
        Some(Ok(image)) => Ok(image),
        Some(Err(err)) => Err(err.clone()),
        None => Err(missing("AMI")),
    }
}

fn target_group_arn(observed: &ObservedUploadTier) -> Result<String, ComponentError> {
    observed
        .target_group
        .as_ref()
        .map(|tg| tg.arn.clone())
        .ok_or_else(|| missing("target group"))
}

fn load_balancer_arn(observed: &ObservedUploadTier) -> Result<String, ComponentError> {
    observed
        .load_balancer
        .as_ref()
        .map(|lb| lb.arn.clone())
        .ok_or_else(|| missing("load balancer"))
}

/// The launch template version the group runs: the template's latest.
fn group_template(observed: &ObservedUploadTier) -> Result<LaunchTemplateSpecification, ComponentError> {
    let template = observed
        .launch_template
        .as_ref()
        .ok_or_else(|| missing("launch template"))?;
    Ok(LaunchTemplateSpecification::builder()
        .launch_template_id(&template.id)
        .version(template.latest_version.to_string())
        .build())
}

fn forward_to(target_group_arn: String) -> ListenerAction {
    ListenerAction::builder()
        .r#type(ActionTypeEnum::Forward)
        .target_group_arn(target_group_arn)
        .build()
}

fn launch_template_data(settings: &LaunchSettings) -> RequestLaunchTemplateData {
    // EC2 tags always build: the builder has no required field.
    let tags: Option<Vec<aws_sdk_ec2::types::Tag>> = to_sdk(&settings.tags).ok();
    let tagged = |resource: ResourceType| {
        LaunchTemplateTagSpecificationRequest::builder()
            .resource_type(resource)
            .set_tags(tags.clone())
            .build()
    };
    RequestLaunchTemplateData::builder()
        .image_id(&settings.image_id)
        .instance_type(settings.instance_type.as_str().into())
        .iam_instance_profile(
            LaunchTemplateIamInstanceProfileSpecificationRequest::builder()
                .arn(&settings.instance_profile_arn)
                .build(),
        )
        .set_security_group_ids(Some(settings.security_groups.iter().cloned().collect()))
        .metadata_options(
            LaunchTemplateInstanceMetadataOptionsRequest::builder()
                .http_endpoint(LaunchTemplateInstanceMetadataEndpointState::Enabled)
                .http_tokens(if settings.imds_tokens_required {
                    LaunchTemplateHttpTokensState::Required
                } else {
                    LaunchTemplateHttpTokensState::Optional
                })
                .http_put_response_hop_limit(settings.imds_hop_limit)
                .build(),
        )
        .block_device_mappings(
            LaunchTemplateBlockDeviceMappingRequest::builder()
                .device_name(&settings.root_device)
                .ebs(
                    LaunchTemplateEbsBlockDeviceRequest::builder()
                        .volume_size(settings.root_volume_gib)
                        .volume_type(VolumeType::Gp3)
                        .encrypted(settings.root_volume_encrypted)
                        .delete_on_termination(true)
                        .build(),
                )
                .build(),
        )
        .user_data(&settings.user_data)
        .tag_specifications(tagged(ResourceType::Instance))
        .tag_specifications(tagged(ResourceType::Volume))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{SubnetOutput, context_from_yaml};

    fn upstream() -> Outputs {
        let subnet = |id: &str, zone: &str| SubnetOutput {
            id: id.to_owned(),
            availability_zone: zone.to_owned(),
            cidr: String::new(),
        };
        Outputs {
            api_vpc_id: Some("vpc-api".to_owned()),
            public_subnets: vec![subnet("subnet-a", "eu-west-1a"), subnet("subnet-b", "eu-west-1b")],
            load_balancer_security_group: Some("sg-lb".to_owned()),
            upload_security_group: Some("sg-upload".to_owned()),
            bucket: Some("photos-bucket".to_owned()),
            table: Some("photos-table".to_owned()),
            delivery_stream: Some("photos-events".to_owned()),
            ..Outputs::default()
        }
    }

    fn desired_with(upload_api: &str) -> DesiredUploadTier {
        let ctx = context_from_yaml(&format!(
            "
apiVersion: imagepipeline.io/v1alpha1
kind: ImagePipeline
metadata: {{name: photos, namespace: media}}
spec:
  region: eu-west-1
  network: {{availabilityZones: [eu-west-1a, eu-west-1b]}}
  uploadApi: {{ {upload_api} }}
"
        ));
        UploadTier::desired(&ctx, &upstream()).expect("upload tier of a valid spec")
    }

    fn image() -> ResolvedImage {
        ResolvedImage {
            id: "ami-0123456789abcdef0".to_owned(),
            root_device: "/dev/xvda".to_owned(),
        }
    }

    /// What AWS holds once a first apply is done and the group is in service.
    fn as_desired(desired: &DesiredUploadTier) -> ObservedUploadTier {
        let instance = |id: &str| GroupInstance {
            id: id.to_owned(),
            in_service: true,
            launch_template_version: Some("1".to_owned()),
        };
        ObservedUploadTier {
            role: Some(ObservedRole {
                arn: desired.role.arn.clone(),
                trust_policy: Some(desired.role.trust_policy.clone()),
                tags: desired.role.tags.clone(),
                policy: Some(desired.role.policy.clone()),
            }),
            instance_profile: Some(ObservedInstanceProfile {
                roles: vec![desired.role.name.clone()],
            }),
            api_keys: Some(SecretText::new("generated")),
            image: Some(Ok(image())),
            launch_template: Some(ObservedLaunchTemplate {
                id: "lt-1".to_owned(),
                tags: desired.tags.clone(),
                latest_version: 1,
                latest: desired.launch_settings(&image()),
            }),
            target_group: Some(ObservedTargetGroup {
                arn: "arn:tg".to_owned(),
                health_check_path: Some(HEALTH_CHECK_PATH.to_owned()),
                tags: desired.tags.clone(),
                healthy_targets: 2,
            }),
            load_balancer: Some(ObservedLoadBalancer {
                arn: "arn:lb".to_owned(),
                dns_name: "lb.example".to_owned(),
                state: "active".to_owned(),
                subnets: desired.load_balancer.subnets.clone(),
                security_groups: BTreeSet::from(["sg-lb".to_owned()]),
                tags: desired.tags.clone(),
            }),
            listeners: vec![ObservedListener {
                arn: "arn:listener".to_owned(),
                port: 80,
                protocol: "HTTP".to_owned(),
                certificate_arn: None,
                ssl_policy: None,
                target_group_arn: Some("arn:tg".to_owned()),
            }],
            group: Some(ObservedGroup {
                min_size: 2,
                max_size: 6,
                desired_capacity: 2,
                launch_template_id: Some("lt-1".to_owned()),
                launch_template_version: Some("1".to_owned()),
                subnets: desired.group.subnets.clone(),
                health_check_type: "ELB".to_owned(),
                tags: desired.tags.clone(),
                deleting: false,
                instances: vec![instance("i-1"), instance("i-2")],
                refresh_in_progress: false,
                cpu_target: Some(60.0),
            }),
            instances: vec![],
        }
    }

    fn steps(desired: &DesiredUploadTier, observed: &ObservedUploadTier) -> Vec<UploadTierStep> {
        UploadTier::converge(desired, observed).expect("converges")
    }

    #[test]
    fn a_first_apply_makes_everything_in_one_round_in_dependency_order() {
        let desired = desired_with("");
        let observed = ObservedUploadTier {
            image: Some(Ok(image())),
            ..ObservedUploadTier::default()
        };
        let steps = steps(&desired, &observed);
        let position = |step: &UploadTierStep| steps.iter().position(|s| s == step).expect("step planned");
        assert!(
            position(&UploadTierStep::CreateInstanceProfile)
                < position(&UploadTierStep::CreateLaunchTemplate)
        );
        assert!(position(&UploadTierStep::CreateTargetGroup) < position(&UploadTierStep::CreateListener));
        assert!(position(&UploadTierStep::CreateLoadBalancer) < position(&UploadTierStep::CreateListener));
        assert!(position(&UploadTierStep::CreateLaunchTemplate) < position(&UploadTierStep::CreateGroup));
        assert!(position(&UploadTierStep::CreateGroup) < position(&UploadTierStep::PutScalingPolicy));
        assert!(steps.contains(&UploadTierStep::PutApiKeys { exists: false }));
        assert!(
            !steps
                .iter()
                .any(|s| matches!(s, UploadTierStep::StartInstanceRefresh { .. }))
        );
    }

    #[test]
    fn as_desired_needs_no_steps_and_is_ready() {
        let desired = desired_with("");
        let observed = as_desired(&desired);
        assert_eq!(steps(&desired, &observed), vec![]);
        assert_eq!(UploadTier::readiness(&desired, &observed), Readiness::Ready);
    }

    #[test]
    fn the_launch_template_runs_imdsv2_only_with_an_encrypted_root_volume() {
        let settings = desired_with("").launch_settings(&image());
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
    fn a_scaling_change_updates_only_the_group() {
        let observed = as_desired(&desired_with(""));
        let desired = desired_with("minSize: 3, maxSize: 8, desiredCapacity: 4");
        assert_eq!(
            steps(&desired, &observed),
            vec![UploadTierStep::UpdateGroup {
                fields: vec![
                    "min size: 2 → 3".to_owned(),
                    "max size: 6 → 8".to_owned(),
                    "desired capacity: 2 → 4".to_owned(),
                ]
            }]
        );
    }

    #[test]
    fn without_a_desired_capacity_the_scaling_policy_owns_it() {
        let desired = desired_with("");
        let mut observed = as_desired(&desired);
        let group = observed.group.as_mut().unwrap();
        group.desired_capacity = 5;
        group
            .instances
            .extend(["i-3", "i-4", "i-5"].map(|id| GroupInstance {
                id: id.to_owned(),
                in_service: true,
                launch_template_version: Some("1".to_owned()),
            }));
        observed.target_group.as_mut().unwrap().healthy_targets = 5;
        assert_eq!(steps(&desired, &observed), vec![]);
        assert_eq!(UploadTier::readiness(&desired, &observed), Readiness::Ready);
    }

    #[test]
    fn an_instance_type_or_image_change_makes_a_new_version_moves_the_group_and_refreshes() {
        let observed = as_desired(&desired_with(""));
        for spec in [
            "instanceType: t3.large",
            "image: ghcr.io/example/upload-api:2.0.0",
        ] {
            let steps = steps(&desired_with(spec), &observed);
            assert!(
                matches!(
                    &steps[..],
                    [
                        UploadTierStep::CreateLaunchTemplateVersion { .. },
                        UploadTierStep::UpdateGroup { .. },
                        UploadTierStep::StartInstanceRefresh { outdated: 2 },
                    ]
                ),
                "{spec}: {steps:?}"
            );
        }
    }

    #[test]
    fn instances_left_on_an_old_version_are_refreshed_unless_a_refresh_runs() {
        let desired = desired_with("");
        let mut observed = as_desired(&desired);
        let group = observed.group.as_mut().unwrap();
        group.instances[0].launch_template_version = Some("0".to_owned());
        assert_eq!(
            steps(&desired, &observed),
            vec![UploadTierStep::StartInstanceRefresh { outdated: 1 }]
        );
        observed.group.as_mut().unwrap().refresh_in_progress = true;
        assert_eq!(steps(&desired, &observed), vec![]);
        assert!(matches!(
            UploadTier::readiness(&desired, &observed),
            Readiness::Waiting(why) if why.contains("instance refresh")
        ));
    }

    #[test]
    fn a_certificate_moves_the_listener_to_https_on_443() {
        let observed = as_desired(&desired_with(""));
        let desired = desired_with(
            "certificateArn: arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789",
        );
        assert_eq!(
            steps(&desired, &observed),
            vec![
                UploadTierStep::DeleteListener {
                    arn: "arn:listener".to_owned(),
                    port: 80
                },
                UploadTierStep::CreateListener,
            ]
        );
    }

    #[test]
    fn generated_api_keys_are_kept_and_secret_keys_are_mirrored() {
        let mut desired = desired_with("");
        let observed = as_desired(&desired);
        assert_eq!(
            steps(&desired, &observed),
            vec![],
            "a generated key is not rotated"
        );
        desired.api_keys.value = Some(SecretText::new("from-the-secret"));
        assert_eq!(
            steps(&desired, &observed),
            vec![UploadTierStep::PutApiKeys { exists: true }]
        );
        let change = describe_step(&desired, &UploadTierStep::PutApiKeys { exists: true });
        assert!(!format!("{change:?}").contains("from-the-secret"), "{change:?}");
    }

    #[test]
    fn a_secret_the_cli_cannot_read_is_a_terminal_error_naming_the_field() {
        let ctx = context_from_yaml(
            "
apiVersion: imagepipeline.io/v1alpha1
kind: ImagePipeline
metadata: {name: photos, namespace: media}
spec:
  region: eu-west-1
  network: {availabilityZones: [eu-west-1a, eu-west-1b]}
  uploadApi: {apiKeysSecretRef: {name: photos-keys}}
",
        );
        let err = UploadTier::desired(&ctx, &upstream()).unwrap_err();
        assert!(err.is_terminal());
        assert!(err.message.contains("spec.uploadApi.apiKeysSecretRef"), "{err}");
    }

    #[test]
    fn a_missing_ami_stops_converging_but_not_deleting() {
        let desired = desired_with("amiId: ami-0123456789abcdef0");
        let mut observed = as_desired(&desired);
        let missing = ComponentError::terminal(
            "ImageNotFound",
            "spec.uploadApi.amiId: AMI ami-0123456789abcdef0 does not exist",
        );
        observed.image = Some(Err(missing.clone()));
        assert_eq!(UploadTier::converge(&desired, &observed), Err(missing));
        let (steps, _) = UploadTier::teardown(&desired, &observed, DeletionPolicy::Delete);
        assert_eq!(steps, vec![UploadTierStep::DeleteGroup]);
    }

    #[test]
    fn teardown_removes_the_instances_before_what_they_stand_on() {
        let desired = desired_with("");
        let mut observed = as_desired(&desired);
        // Retain keeps data, never compute.
        let (steps, _) = UploadTier::teardown(&desired, &observed, DeletionPolicy::Retain);
        assert_eq!(steps, vec![UploadTierStep::DeleteGroup]);

        observed.group.as_mut().unwrap().deleting = true;
        let (steps, waiting) = UploadTier::teardown(&desired, &observed, DeletionPolicy::Delete);
        assert_eq!(steps, vec![]);
        assert!(waiting.unwrap().contains("2 instance(s) still terminating"));

        observed.group = None;
        observed.instances = vec![TaggedInstance {
            id: "i-9".to_owned(),
            state: "running".to_owned(),
        }];
        let (steps, _) = UploadTier::teardown(&desired, &observed, DeletionPolicy::Delete);
        assert_eq!(
            steps,
            vec![UploadTierStep::TerminateInstances {
                ids: vec!["i-9".to_owned()]
            }],
            "an instance no group runs any more is terminated too"
        );

        observed.instances[0].state = "shutting-down".to_owned();
        let (steps, waiting) = UploadTier::teardown(&desired, &observed, DeletionPolicy::Delete);
        assert_eq!(steps, vec![]);
        assert!(waiting.unwrap().contains("i-9"));

        observed.instances.clear();
        let (steps, waiting) = UploadTier::teardown(&desired, &observed, DeletionPolicy::Delete);
        assert_eq!(waiting, None);
        let kinds: Vec<String> = steps
            .iter()
            .map(|s| format!("{s:?}").split([' ', '(']).next().unwrap().to_owned())
            .collect();
        assert_eq!(
            kinds,
            [
                "DeleteListener",
                "DeleteLoadBalancer",
                "DeleteTargetGroup",
                "DeleteLaunchTemplate",
                "RemoveRoleFromInstanceProfile",
                "DeleteInstanceProfile",
                "Role",
                "Role",
                "DeleteApiKeys"
            ]
        );
    }
}
