//! A target-tracking scaling policy keeping an Auto Scaling group's average
//! CPU at a target. Found by its group and name.

use aws_sdk_autoscaling::types::{MetricType, PredefinedMetricSpecification, TargetTrackingConfiguration};

use super::sdk::{deleted, failed};
use crate::aws::AwsClients;
use crate::engine::field;
use crate::engine::resource::{Ref, Resource};
use crate::error::ComponentError;

#[derive(Clone, Debug, PartialEq)]
pub struct ScalingPolicy {
    /// Its group's name, and the same once the group exists.
    pub group_name: String,
    pub group: Ref,
    pub name: String,
    pub target_cpu_percent: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PolicyState {
    pub name: String,
    /// Target of its average-CPU tracking, if it tracks that.
    pub cpu_target: Option<f64>,
}

impl ScalingPolicy {
    async fn put(&self, aws: &AwsClients) -> Result<(), ComponentError> {
        let metric = PredefinedMetricSpecification::builder()
            .predefined_metric_type(MetricType::AsgAverageCpuUtilization)
            .build();
        let target = TargetTrackingConfiguration::builder()
            .predefined_metric_specification(metric)
            .target_value(self.target_cpu_percent)
            .build();
        aws.autoscaling
            .put_scaling_policy()
            .auto_scaling_group_name(self.group.id())
            .policy_name(&self.name)
            .policy_type("TargetTrackingScaling")
            .target_tracking_configuration(target)
            .send()
            .await
            .map(drop)
            .map_err(failed("put", &self.label()))
    }
}

impl Resource for ScalingPolicy {
    type Observed = PolicyState;
    // Part of its group.
    const TYPE: Option<&'static str> = None;

    fn label(&self) -> String {
        format!("Auto Scaling group {}: scaling policy", self.group_name)
    }

    fn references(&self) -> Vec<&Ref> {
        vec![&self.group]
    }

    async fn find(&self, aws: &AwsClients) -> Result<Option<PolicyState>, ComponentError> {
        let policies = aws
            .autoscaling
            .describe_policies()
            .auto_scaling_group_name(self.group.id())
            .policy_names(&self.name)
            .send()
            .await
            .map_err(failed("read", &self.label()))?;
        Ok(policies.scaling_policies().first().map(|policy| PolicyState {
            name: self.name.clone(),
            cpu_target: policy
                .target_tracking_configuration()
                .filter(|c| {
                    c.predefined_metric_specification().is_some_and(|m| {
                        m.predefined_metric_type() == Some(&MetricType::AsgAverageCpuUtilization)
                    })
                })
                .and_then(|c| c.target_value()),
        }))
    }

    fn delta(&self, observed: &PolicyState) -> Result<Vec<String>, ComponentError> {
        Ok(match observed.cpu_target {
            Some(target) if target == self.target_cpu_percent => vec![],
            Some(target) => vec![field("average CPU target", format!("{target}%"), self.target())],
            None => vec![field("average CPU target", "(none)", self.target())],
        })
    }

    fn create_fields(&self) -> Vec<String> {
        vec![format!("average CPU target {}", self.target())]
    }

    async fn create(&self, aws: &AwsClients) -> Result<PolicyState, ComponentError> {
        self.put(aws).await?;
        Ok(PolicyState {
            name: self.name.clone(),
            cpu_target: Some(self.target_cpu_percent),
        })
    }

    async fn update(&self, aws: &AwsClients, _observed: &PolicyState) -> Result<(), ComponentError> {
        self.put(aws).await
    }

    async fn delete(&self, aws: &AwsClients, _observed: &PolicyState) -> Result<(), ComponentError> {
        deleted(
            aws.autoscaling
                .delete_policy()
                .auto_scaling_group_name(self.group.id())
                .policy_name(&self.name)
                .send()
                .await,
            // Auto Scaling says a group or policy is gone with this code.
            &["ValidationError"],
            &format!("delete {}", self.label()),
        )
    }

    fn id(observed: &PolicyState) -> String {
        observed.name.clone()
    }
}

impl ScalingPolicy {
    fn target(&self) -> String {
        format!("{}%", self.target_cpu_percent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_tracking_another_target_is_put_back() {
        let policy = ScalingPolicy {
            group_name: "ipl-media-photos-upload".into(),
            group: Ref::Known("ipl-media-photos-upload".into()),
            name: "cpu-target-tracking".into(),
            target_cpu_percent: 60.0,
        };
        let mut observed = PolicyState {
            name: policy.name.clone(),
            cpu_target: Some(60.0),
        };
        assert_eq!(policy.delta(&observed).unwrap(), Vec::<String>::new());
        observed.cpu_target = Some(40.0);
        assert_eq!(
            policy.delta(&observed).unwrap(),
            ["average CPU target: 40% → 60%"]
        );
        observed.cpu_target = None;
        assert_eq!(
            policy.delta(&observed).unwrap(),
            ["average CPU target: (none) → 60%"]
        );
        let pending = ScalingPolicy {
            group: Ref::Pending("Auto Scaling group ipl-media-photos-upload".into()),
            ..policy
        };
        assert_eq!(
            pending.references(),
            [&pending.group],
            "not looked up before its group exists"
        );
    }
}
