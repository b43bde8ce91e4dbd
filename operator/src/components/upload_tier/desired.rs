//! What the upload tier should be: pure, from the spec and the outputs of
//! the components it stands on.

use std::collections::BTreeSet;

use crate::components::network::NetworkOutputs;
use crate::components::upload_instance_setup::{
    self as setup, IMDS_HOP_LIMIT, UPLOAD_PORT, UploadInstanceConfig, UploadTargets,
};
use crate::engine::resource::{Ref, Resource};
use crate::engine::{ComponentError, ComponentKind, Outputs, PipelineContext};
use crate::resources::auto_scaling_group::{AutoScalingGroup, TemplateVersion};
use crate::resources::iam_role::{self, DesiredRole};
use crate::resources::instance_profile::InstanceProfile;
use crate::resources::launch_template::LaunchTemplate;
use crate::resources::listener::Listener;
use crate::resources::load_balancer::LoadBalancer;
use crate::resources::machine_image::ImageSource;
use crate::resources::scaling_policy::ScalingPolicy;
use crate::resources::ssm_parameter::SecureParameter;
use crate::resources::tagged_instances::TaggedInstances;
use crate::resources::target_group::TargetGroup;

/// Path the target group checks; upload-api answers it without touching AWS.
pub const HEALTH_CHECK_PATH: &str = "/healthz";
/// Name of the target-tracking policy on the group.
pub const SCALING_POLICY_NAME: &str = "cpu-target-tracking";
/// TLS policy of the HTTPS listener: TLS 1.3 and 1.2 with forward secrecy.
pub const TLS_POLICY: &str = "ELBSecurityPolicy-TLS13-1-2-2021-06";
/// Root volume (gp3): room for docker and the upload-api image.
pub const ROOT_VOLUME_GIB: i32 = 20;
/// Time an instance gets to pull the image and pass `/healthz` before the
/// group replaces it for failing ELB health checks.
const HEALTH_CHECK_GRACE_SECONDS: i32 = 300;
const HTTP_PORT: i32 = 80;
const HTTPS_PORT: i32 = 443;

/// The tier's resources in the order they are made. Those that name a
/// resource made before them hold it as pending; `declare` fills in what
/// was made.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredUploadTier {
    pub role: DesiredRole,
    pub instance_profile: InstanceProfile,
    pub api_keys: SecureParameter,
    pub image: ImageSource,
    /// Without its AMI, which only AWS knows.
    pub launch_template: LaunchTemplate,
    pub target_group: TargetGroup,
    pub load_balancer: LoadBalancer,
    pub listener: Listener,
    pub group: AutoScalingGroup,
    pub scaling_policy: ScalingPolicy,
    /// What a teardown waits for before it deletes what they stand on.
    pub instances: TaggedInstances,
}

/// What the tier should be, from the spec and what the Network, Storage,
/// Metadata and Delivery made.
pub(super) fn desired(
    ctx: &PipelineContext,
    upstream: &Outputs,
) -> Result<DesiredUploadTier, ComponentError> {
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
    // ELB names are at most 32 characters.
    let short_name = ctx.resource_name("upload", 32);
    let tags = ctx.tags(ComponentKind::UploadTier);
    let iam_arn = |kind: &str| ctx.global_arn("iam", &format!("{kind}{}{name}", iam_role::ROLE_PATH));
    let network = NetworkOutputs::from_upstream(upstream);
    let subnets: BTreeSet<String> = network.public_subnets.iter().map(|s| s.id.clone()).collect();
    let launch_template = LaunchTemplate {
        name: name.clone(),
        description: "ImagePipeline upload-api".to_owned(),
        image: None,
        instance_type: spec.instance_type.clone(),
        instance_type_field: "spec.uploadApi.instanceType",
        zones: network
            .public_subnets
            .iter()
            .map(|s| s.availability_zone.clone())
            .collect(),
        instance_profile_arn: iam_arn("instance-profile"),
        security_group: network.upload_group.clone(),
        imds_hop_limit: IMDS_HOP_LIMIT,
        root_volume_gib: ROOT_VOLUME_GIB,
        user_data: setup::user_data_base64(&config),
        tags: tags.clone(),
    };
    let target_group = TargetGroup {
        name: short_name.clone(),
        vpc_id: network.api_vpc.clone(),
        port: i32::from(UPLOAD_PORT),
        health_check_path: HEALTH_CHECK_PATH.to_owned(),
        tags: tags.clone(),
    };
    let load_balancer = LoadBalancer {
        name: short_name.clone(),
        subnets: subnets.clone(),
        security_group: network.load_balancer_group.clone(),
        tags: tags.clone(),
    };
    let certificate_arn = spec.certificate_arn.clone();
    let listener = Listener {
        load_balancer: Ref::Pending(load_balancer.label()),
        load_balancer_name: short_name,
        port: if certificate_arn.is_some() {
            HTTPS_PORT
        } else {
            HTTP_PORT
        },
        certificate_arn,
        tls_policy: TLS_POLICY,
        target_group: Ref::Pending(target_group.label()),
    };
    let group = AutoScalingGroup {
        name: name.clone(),
        launch_template: Ref::Pending(launch_template.label()),
        version: TemplateVersion::Next,
        target_group: Ref::Pending(target_group.label()),
        min_size: spec.min_size,
        max_size: spec.max_size,
        desired_capacity: spec.desired_capacity,
        subnets,
        health_check_grace_seconds: HEALTH_CHECK_GRACE_SECONDS,
        instances: "upload instances".to_owned(),
        health_check_path: HEALTH_CHECK_PATH.to_owned(),
        tags: tags.clone(),
    };
    Ok(DesiredUploadTier {
        role: DesiredRole {
            name: name.clone(),
            arn: iam_arn("role"),
            trust_policy: setup::instance_trust_policy(),
            policy_name: "upload-api".to_owned(),
            policy: setup::instance_permissions_policy(ctx, &config),
            tags: tags.clone(),
        },
        instance_profile: InstanceProfile {
            name: name.clone(),
            arn: iam_arn("instance-profile"),
            role: name.clone(),
            tags: tags.clone(),
        },
        api_keys: SecureParameter {
            name: config.api_keys_parameter().to_owned(),
            description: "upload-api keys, one a line (ImagePipeline)".to_owned(),
            value: api_keys,
            tags,
        },
        image: ImageSource::new(spec.ami_id.as_ref(), "spec.uploadApi.amiId"),
        scaling_policy: ScalingPolicy {
            group: Ref::Pending(group.label()),
            group_name: name,
            name: SCALING_POLICY_NAME.to_owned(),
            target_cpu_percent: f64::from(spec.target_cpu_percent),
        },
        launch_template,
        target_group,
        load_balancer,
        listener,
        group,
        instances: TaggedInstances {
            owner: ctx.owner.tag_value(),
            component: ComponentKind::UploadTier.tag_value(),
            what: "upload instance",
        },
    })
}

impl DesiredUploadTier {
    pub(super) fn scheme(&self) -> &'static str {
        match self.listener.certificate_arn {
            Some(_) => "https",
            None => "http",
        }
    }
}
