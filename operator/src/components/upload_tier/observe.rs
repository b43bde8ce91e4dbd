//! What of the upload tier exists in AWS: each read finds its resource by
//! its deterministic name (or, for instances, by tags).

use std::collections::BTreeMap;

use aws_sdk_autoscaling::types::{LifecycleState, MetricType};
use aws_sdk_ec2::types::ResourceType;
use aws_sdk_elasticloadbalancingv2::types::TargetHealthStateEnum;

use super::{
    DesiredUploadTier, GroupInstance, LaunchSettings, ObservedGroup, ObservedInstanceProfile,
    ObservedLaunchTemplate, ObservedListener, ObservedLoadBalancer, ObservedTargetGroup, SCALING_POLICY_NAME,
    TaggedInstance, UploadTier,
};
use crate::aws::AwsClients;
use crate::aws::errors::{classify, code};
use crate::engine::{COMPONENT_TAG, Component, ComponentError, OWNER_TAG, SecretText};
use crate::resources::sdk::{failed, tag_filter};
use crate::resources::tags::from_sdk;

pub(super) async fn observe_instance_profile(
    aws: &AwsClients,
    name: &str,
) -> Result<Option<ObservedInstanceProfile>, ComponentError> {
    match aws
        .iam
        .get_instance_profile()
        .instance_profile_name(name)
        .send()
        .await
    {
        Ok(out) => Ok(Some(ObservedInstanceProfile {
            roles: out
                .instance_profile()
                .map(|p| p.roles().iter().map(|r| r.role_name().to_owned()).collect())
                .unwrap_or_default(),
        })),
        Err(err) if code(&err) == Some("NoSuchEntity") => Ok(None),
        Err(err) => Err(classify(&format!("look up IAM instance profile {name}"), err)),
    }
}

pub(super) async fn observe_api_keys(
    aws: &AwsClients,
    name: &str,
) -> Result<Option<SecretText>, ComponentError> {
    match aws
        .ssm
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
    {
        Ok(out) => Ok(out.parameter().and_then(|p| p.value()).map(SecretText::new)),
        Err(err) if code(&err) == Some("ParameterNotFound") => Ok(None),
        Err(err) => Err(classify(&format!("read SSM parameter {name}"), err)),
    }
}

pub(super) async fn observe_launch_template(
    aws: &AwsClients,
    name: &str,
) -> Result<Option<ObservedLaunchTemplate>, ComponentError> {
    let templates = match aws
        .ec2
        .describe_launch_templates()
        .launch_template_names(name)
        .send()
        .await
    {
        Ok(out) => out.launch_templates().to_vec(),
        Err(err) if code(&err).is_some_and(|c| c.starts_with("InvalidLaunchTemplateName")) => vec![],
        Err(err) => return Err(classify(&format!("look up launch template {name}"), err)),
    };
    let Some(template) = templates.first() else {
        return Ok(None);
    };
    let id = template.launch_template_id().unwrap_or_default().to_owned();
    let versions = aws
        .ec2
        .describe_launch_template_versions()
        .launch_template_id(&id)
        .versions("$Latest")
        .send()
        .await
        .map_err(failed("read the latest version of launch template", name))?;
    let latest = versions.launch_template_versions().first();
    let data = latest.and_then(|v| v.launch_template_data());
    let metadata = data.and_then(|d| d.metadata_options());
    let root = data.and_then(|d| d.block_device_mappings().first());
    let root_ebs = root.and_then(|m| m.ebs());
    let tags = data
        .and_then(|d| {
            d.tag_specifications()
                .iter()
                .find(|spec| spec.resource_type() == Some(&ResourceType::Instance))
        })
        .map(|spec| from_sdk(spec.tags()))
        .unwrap_or_default();
    Ok(Some(ObservedLaunchTemplate {
        tags: from_sdk(template.tags()),
        latest_version: latest.and_then(|v| v.version_number()).unwrap_or(1),
        latest: LaunchSettings {
            image_id: data.and_then(|d| d.image_id()).unwrap_or_default().to_owned(),
            instance_type: data
                .and_then(|d| d.instance_type())
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default(),
            instance_profile_arn: data
                .and_then(|d| d.iam_instance_profile())
                .and_then(|p| p.arn())
                .unwrap_or_default()
                .to_owned(),
            security_groups: data
                .map(|d| d.security_group_ids().iter().cloned().collect())
                .unwrap_or_default(),
            imds_tokens_required: metadata.and_then(|m| m.http_tokens())
                == Some(&aws_sdk_ec2::types::LaunchTemplateHttpTokensState::Required),
            imds_hop_limit: metadata
                .and_then(|m| m.http_put_response_hop_limit())
                .unwrap_or(1),
            root_device: root.and_then(|m| m.device_name()).unwrap_or_default().to_owned(),
            root_volume_gib: root_ebs.and_then(|e| e.volume_size()).unwrap_or(0),
            root_volume_encrypted: root_ebs.and_then(|e| e.encrypted()).unwrap_or(false),
            user_data: data.and_then(|d| d.user_data()).unwrap_or_default().to_owned(),
            tags,
        },
        id,
    }))
}

pub(super) async fn observe_target_group(
    aws: &AwsClients,
    name: &str,
) -> Result<Option<ObservedTargetGroup>, ComponentError> {
    let groups = match aws.elbv2.describe_target_groups().names(name).send().await {
        Ok(out) => out.target_groups().to_vec(),
        Err(err) if code(&err) == Some("TargetGroupNotFound") => vec![],
        Err(err) => return Err(classify(&format!("look up target group {name}"), err)),
    };
    let Some(group) = groups.first() else {
        return Ok(None);
    };
    let arn = group.target_group_arn().unwrap_or_default().to_owned();
    let health = aws
        .elbv2
        .describe_target_health()
        .target_group_arn(&arn)
        .send()
        .await
        .map_err(failed("read the target health of target group", name))?;
    let healthy_targets = health
        .target_health_descriptions()
        .iter()
        .filter(|t| t.target_health().and_then(|h| h.state()) == Some(&TargetHealthStateEnum::Healthy))
        .count();
    Ok(Some(ObservedTargetGroup {
        tags: elb_resource_tags(aws, &arn).await?,
        health_check_path: group.health_check_path().map(str::to_owned),
        healthy_targets,
        arn,
    }))
}

pub(super) async fn observe_load_balancer(
    aws: &AwsClients,
    desired: &DesiredUploadTier,
) -> Result<Option<ObservedLoadBalancer>, ComponentError> {
    let name = desired.load_balancer.name.as_str();
    let balancers = match aws.elbv2.describe_load_balancers().names(name).send().await {
        Ok(out) => out.load_balancers().to_vec(),
        Err(err) if code(&err) == Some("LoadBalancerNotFound") => vec![],
        Err(err) => return Err(classify(&format!("look up load balancer {name}"), err)),
    };
    let Some(lb) = balancers.first() else {
        return Ok(None);
    };
    let arn = lb.load_balancer_arn().unwrap_or_default().to_owned();
    Ok(Some(ObservedLoadBalancer {
        tags: elb_resource_tags(aws, &arn).await?,
        dns_name: lb.dns_name().unwrap_or_default().to_owned(),
        state: lb
            .state()
            .and_then(|s| s.code())
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default(),
        subnets: lb
            .availability_zones()
            .iter()
            .filter_map(|zone| zone.subnet_id().map(str::to_owned))
            .collect(),
        security_groups: lb.security_groups().iter().cloned().collect(),
        arn,
    }))
}

pub(super) async fn observe_listeners(
    aws: &AwsClients,
    load_balancer_arn: &str,
) -> Result<Vec<ObservedListener>, ComponentError> {
    let out = aws
        .elbv2
        .describe_listeners()
        .load_balancer_arn(load_balancer_arn)
        .send()
        .await
        .map_err(failed("list the listeners of load balancer", load_balancer_arn))?;
    Ok(out
        .listeners()
        .iter()
        .map(|l| ObservedListener {
            arn: l.listener_arn().unwrap_or_default().to_owned(),
            port: l.port().unwrap_or_default(),
            protocol: l.protocol().map(|p| p.as_str().to_owned()).unwrap_or_default(),
            certificate_arn: l
                .certificates()
                .first()
                .and_then(|c| c.certificate_arn())
                .map(str::to_owned),
            ssl_policy: l.ssl_policy().map(str::to_owned),
            target_group_arn: l
                .default_actions()
                .first()
                .and_then(|a| a.target_group_arn())
                .map(str::to_owned),
        })
        .collect())
}

pub(super) async fn elb_resource_tags(
    aws: &AwsClients,
    arn: &str,
) -> Result<BTreeMap<String, String>, ComponentError> {
    let out = aws
        .elbv2
        .describe_tags()
        .resource_arns(arn)
        .send()
        .await
        .map_err(failed("read the tags of", arn))?;
    Ok(out
        .tag_descriptions()
        .iter()
        .flat_map(|d| from_sdk(d.tags()))
        .collect())
}

pub(super) async fn observe_group(
    aws: &AwsClients,
    name: &str,
) -> Result<Option<ObservedGroup>, ComponentError> {
    let out = aws
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(name)
        .send()
        .await
        .map_err(failed("look up Auto Scaling group", name))?;
    let Some(group) = out.auto_scaling_groups().first() else {
        return Ok(None);
    };
    let refreshes = aws
        .autoscaling
        .describe_instance_refreshes()
        .auto_scaling_group_name(name)
        .send()
        .await
        .map_err(failed("list the instance refreshes of Auto Scaling group", name))?;
    let refresh_in_progress = refreshes.instance_refreshes().iter().any(|r| {
        r.status().is_some_and(|s| {
            matches!(
                s.as_str(),
                "Pending" | "InProgress" | "Cancelling" | "RollbackInProgress" | "Baking"
            )
        })
    });
    let policies = aws
        .autoscaling
        .describe_policies()
        .auto_scaling_group_name(name)
        .policy_names(SCALING_POLICY_NAME)
        .send()
        .await
        .map_err(failed("read the scaling policy of Auto Scaling group", name))?;
    let cpu_target = policies
        .scaling_policies()
        .iter()
        .filter_map(|p| p.target_tracking_configuration())
        .find(|c| {
            c.predefined_metric_specification()
                .is_some_and(|m| m.predefined_metric_type() == Some(&MetricType::AsgAverageCpuUtilization))
        })
        .and_then(|c| c.target_value());
    let template = group.launch_template();
    Ok(Some(ObservedGroup {
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
        cpu_target,
    }))
}

pub(super) async fn observe_tagged_instances(
    aws: &AwsClients,
    owner: &str,
) -> Result<Vec<TaggedInstance>, ComponentError> {
    let out = aws
        .ec2
        .describe_instances()
        .filters(tag_filter(OWNER_TAG, owner))
        .filters(tag_filter(COMPONENT_TAG, UploadTier::KIND.tag_value()))
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("instance-state-name")
                .values("pending")
                .values("running")
                .values("shutting-down")
                .values("stopping")
                .values("stopped")
                .build(),
        )
        .send()
        .await
        .map_err(failed("list the upload instances of", owner))?;
    Ok(out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| TaggedInstance {
            id: i.instance_id().unwrap_or_default().to_owned(),
            state: i
                .state()
                .and_then(|s| s.name())
                .map(|n| n.as_str().to_owned())
                .unwrap_or_default(),
        })
        .collect())
}
