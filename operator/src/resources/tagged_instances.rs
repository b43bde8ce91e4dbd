//! The EC2 instances tagged as one component's: what a teardown waits for
//! while AWS terminates them, and terminates when nothing else will
//! (instances an Auto Scaling group left behind when it was deleted). Never
//! made here: their group launches them.

use aws_sdk_ec2::types::InstanceStateName;

use super::sdk::terminate_instances;
use super::shared_lists::{self, tag_filter, tagged};
use crate::aws::AwsClients;
use crate::engine::resource::Resource;
use crate::engine::{COMPONENT_TAG, OWNER_TAG};
use crate::error::ComponentError;

/// States of an instance that is not terminated yet.
const NOT_TERMINATED: [InstanceStateName; 5] = [
    InstanceStateName::Pending,
    InstanceStateName::Running,
    InstanceStateName::ShuttingDown,
    InstanceStateName::Stopping,
    InstanceStateName::Stopped,
];

#[derive(Clone, Debug, PartialEq)]
pub struct TaggedInstances {
    pub owner: String,
    /// The value of their component tag.
    pub component: &'static str,
    /// What one is, for messages: `upload instance`.
    pub what: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstancesState {
    pub instances: Vec<TaggedInstance>,
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

impl TaggedInstances {
    /// Why what they stand on must wait.
    pub fn waiting(&self, observed: &InstancesState) -> String {
        let first = observed.instances.first().map_or("", |i| i.id.as_str());
        format!(
            "waiting for {} {first} to terminate ({} left)",
            self.what,
            observed.instances.len()
        )
    }

    /// Those not terminating yet: what a teardown terminates.
    pub fn running(observed: &InstancesState) -> Option<InstancesState> {
        let instances: Vec<TaggedInstance> = observed
            .instances
            .iter()
            .filter(|i| !i.terminating())
            .cloned()
            .collect();
        (!instances.is_empty()).then_some(InstancesState { instances })
    }
}

impl Resource for TaggedInstances {
    type Observed = InstancesState;
    const TYPE: Option<&'static str> = None;

    fn label(&self) -> String {
        format!("{}s of {}", self.what, self.owner)
    }

    async fn find(&self, aws: &AwsClients) -> Result<Option<InstancesState>, ComponentError> {
        let narrow = vec![
            tag_filter(OWNER_TAG, &self.owner),
            tag_filter(COMPONENT_TAG, self.component),
        ];
        let instances: Vec<TaggedInstance> = shared_lists::instances(aws, narrow)
            .await?
            .iter()
            .filter(|i| {
                tagged(i.tags(), OWNER_TAG, &self.owner) && tagged(i.tags(), COMPONENT_TAG, self.component)
            })
            .filter(|i| {
                i.state()
                    .and_then(|s| s.name())
                    .is_some_and(|n| NOT_TERMINATED.contains(n))
            })
            .map(|i| TaggedInstance {
                id: i.instance_id().unwrap_or_default().to_owned(),
                state: i
                    .state()
                    .and_then(|s| s.name())
                    .map(|n| n.as_str().to_owned())
                    .unwrap_or_default(),
            })
            .collect();
        Ok((!instances.is_empty()).then_some(InstancesState { instances }))
    }

    fn delta(&self, _observed: &InstancesState) -> Result<Vec<String>, ComponentError> {
        Ok(vec![])
    }

    async fn create(&self, _aws: &AwsClients) -> Result<InstancesState, ComponentError> {
        Err(ComponentError::terminal(
            "InternalError",
            format!("the operator tried to launch {} itself", self.label()),
        ))
    }

    async fn update(&self, _aws: &AwsClients, _observed: &InstancesState) -> Result<(), ComponentError> {
        Ok(())
    }

    async fn delete(&self, aws: &AwsClients, observed: &InstancesState) -> Result<(), ComponentError> {
        let ids: Vec<String> = observed.instances.iter().map(|i| i.id.clone()).collect();
        terminate_instances(aws, &ids, &format!("{}s {}", self.what, ids.join(", "))).await
    }

    fn id(observed: &InstancesState) -> String {
        let ids: Vec<&str> = observed.instances.iter().map(|i| i.id.as_str()).collect();
        ids.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instances(states: &[(&str, &str)]) -> InstancesState {
        InstancesState {
            instances: states
                .iter()
                .map(|(id, state)| TaggedInstance {
                    id: id.to_string(),
                    state: state.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn running_instances_are_terminated_and_terminating_ones_waited_for() {
        let tagged = TaggedInstances {
            owner: "media/photos".into(),
            component: "upload-tier",
            what: "upload instance",
        };
        let found = instances(&[("i-9", "running"), ("i-8", "shutting-down")]);
        assert_eq!(
            TaggedInstances::running(&found),
            Some(instances(&[("i-9", "running")]))
        );
        assert_eq!(
            tagged.waiting(&found),
            "waiting for upload instance i-9 to terminate (2 left)"
        );
        let terminating = instances(&[("i-9", "shutting-down")]);
        assert_eq!(
            TaggedInstances::running(&terminating),
            None,
            "nothing left to terminate, only to wait for"
        );
    }
}
