//! UploadTier: the upload API on EC2 behind an application load balancer.
//!
//! An instance role and profile (least privilege, see
//! [`upload_instance_setup`](super::upload_instance_setup)), the API keys in
//! an SSM SecureString, a launch template, a target group checking
//! `/healthz`, an internet-facing ALB in the public subnets with one
//! listener, an Auto Scaling group over those subnets with ELB health checks,
//! and a target-tracking policy on average CPU.
//!
//! Every resource has a deterministic name, so it is found again after a
//! crash. The group runs an explicit launch-template version: a change of
//! instance type, AMI or container image makes a new version, moves the group
//! to it and starts an instance refresh, which replaces the instances while
//! the load balancer keeps serving.
//!
//! Tearing down, the instances go first: nothing they stand on is deleted
//! until AWS has terminated them. Compute and IAM are removed whatever the
//! deletion policy; none of it holds data.

mod desired;
#[cfg(test)]
mod tests;

pub use desired::{DesiredUploadTier, HEALTH_CHECK_PATH, ROOT_VOLUME_GIB, SCALING_POLICY_NAME, TLS_POLICY};

use crate::engine::resource::{Ref, Resource, Walk, WalkMode};
use crate::engine::{ComponentError, ComponentKind, Declared, Outputs, PipelineContext};
use crate::resources::auto_scaling_group::{AutoScalingGroup, TemplateVersion};
use crate::resources::launch_template::{LaunchTemplate, TemplateState};
use crate::resources::listener::{self, Listener};
use crate::resources::machine_image::{self, ImageSource, ResolvedImage};
use crate::resources::scaling_policy::ScalingPolicy;
use crate::resources::tagged_instances::{InstancesState, TaggedInstances};

pub struct UploadTier;

impl Declared for UploadTier {
    const KIND: ComponentKind = ComponentKind::UploadTier;
    const DEPENDS_ON: &'static [ComponentKind] = &[
        ComponentKind::Network,
        ComponentKind::Storage,
        ComponentKind::Metadata,
        ComponentKind::Delivery,
    ];
    type Desired = DesiredUploadTier;

    fn desired(ctx: &PipelineContext, upstream: &Outputs) -> Result<DesiredUploadTier, ComponentError> {
        desired::desired(ctx, upstream)
    }

    async fn declare(
        walk: &mut Walk<'_>,
        desired: &DesiredUploadTier,
        outputs: &mut Outputs,
    ) -> Result<(), ComponentError> {
        walk.ensure(&desired.role).await?;
        walk.ensure(&desired.instance_profile).await?;
        walk.ensure(&desired.api_keys).await?;
        let template = LaunchTemplate {
            image: image(walk, &desired.image).await?,
            ..desired.launch_template.clone()
        };
        let made_template = walk.ensure(&template).await?;
        let target_group = walk.ensure(&desired.target_group).await?;
        let load_balancer = walk.ensure(&desired.load_balancer).await?;
        outputs.upload_url = load_balancer
            .as_ref()
            .map(|lb| format!("{}://{}", desired.scheme(), lb.dns_name));

        let listener = Listener {
            load_balancer: Ref::to(
                load_balancer.as_ref(),
                |lb| lb.arn.clone(),
                desired.load_balancer.label(),
            ),
            target_group: Ref::to(
                target_group.as_ref(),
                |tg| tg.arn.clone(),
                desired.target_group.label(),
            ),
            ..desired.listener.clone()
        };
        listeners(walk, &listener).await?;

        let group = AutoScalingGroup {
            launch_template: Ref::to(made_template.as_ref(), |t| t.id.clone(), template.label()),
            version: version(walk.mode(), &template, made_template.as_ref())?,
            target_group: listener.target_group.clone(),
            ..desired.group.clone()
        };
        let instances = hold_for_instances(walk, desired).await?;
        let made_group = walk.ensure(&group).await?;
        match &made_group {
            None => terminate_left_behind(walk, desired, instances).await?,
            // Its policies go with it.
            Some(group) if group.deleting => return Ok(()),
            Some(_) => {}
        }
        let policy = ScalingPolicy {
            group: Ref::to(made_group.as_ref(), |g| g.name.clone(), group.label()),
            ..desired.scaling_policy.clone()
        };
        walk.ensure(&policy).await?;
        Ok(())
    }
}

/// The AMI, looked up unless tearing down: a missing AMI must not stop a
/// deletion.
async fn image(walk: &Walk<'_>, source: &ImageSource) -> Result<Option<ResolvedImage>, ComponentError> {
    if walk.mode() == WalkMode::Find {
        return Ok(None);
    }
    machine_image::resolve(walk.aws(), source).await.map(Some)
}

/// The template version the group runs: the latest. A plan shows the group
/// moving to the version the apply would make; an apply moves it in the
/// round after it made the version, once the template reports it.
fn version(
    mode: WalkMode,
    template: &LaunchTemplate,
    made: Option<&TemplateState>,
) -> Result<TemplateVersion, ComponentError> {
    Ok(match made {
        Some(made) if mode == WalkMode::Plan && !template.delta(made)?.is_empty() => TemplateVersion::Next,
        Some(made) => TemplateVersion::Number(made.latest_version),
        None => TemplateVersion::Next,
    })
}

/// The listener on the wanted port. One on another port goes first (a
/// certificate moves the API from port 80 to 443).
async fn listeners(walk: &mut Walk<'_>, listener: &Listener) -> Result<(), ComponentError> {
    if let Some(arn) = listener.load_balancer.known() {
        let found = listener::list(walk.aws(), arn).await?;
        for (unwanted, observed) in listener.others(&found) {
            walk.remove(&unwanted, observed).await?;
        }
    }
    walk.ensure(listener).await?;
    Ok(())
}

/// Tearing down: while any instance of the tier is not terminated, nothing
/// declared so far (the load balancer, target group, template, profile,
/// role) is deleted. Returns what was found.
async fn hold_for_instances(
    walk: &mut Walk<'_>,
    desired: &DesiredUploadTier,
) -> Result<Option<InstancesState>, ComponentError> {
    if walk.mode() != WalkMode::Find {
        return Ok(None);
    }
    let found = desired.instances.find(walk.aws()).await?;
    walk.hold(found.as_ref().map(|i| desired.instances.waiting(i)));
    Ok(found)
}

/// Instances no group runs any more are terminated by the teardown itself.
async fn terminate_left_behind(
    walk: &mut Walk<'_>,
    desired: &DesiredUploadTier,
    instances: Option<InstancesState>,
) -> Result<(), ComponentError> {
    if let Some(running) = instances.as_ref().and_then(TaggedInstances::running) {
        walk.remove(&desired.instances, &running).await?;
    }
    Ok(())
}
