//! A Kafka broker: one EC2 instance per Kafka node id, found by the
//! pipeline's owner tag and its [`BROKER_TAG`].
//!
//! The tags are part of `RunInstances`, and its client token is derived from
//! the broker, so a crash between launching and seeing the instance makes no
//! second one; the broker's fixed private IP would refuse one too.

mod launch;

use aws_sdk_ec2::types::InstanceStateName;

pub use self::launch::{Launch, ROOT_VOLUME_GIB, client_token};
use super::sdk::{failed, terminate_instances};
use super::shared_lists::{self, tag_filter, tagged};
use crate::aws::AwsClients;
use crate::engine::resource::{Ref, Resource};
use crate::engine::{COMPONENT_TAG, ComponentError, ComponentKind, OWNER_TAG, Readiness, field};

/// Tag holding a broker instance's Kafka node id.
pub const BROKER_TAG: &str = "imagepipeline.io/broker";

#[derive(Clone, Debug, PartialEq)]
pub struct BrokerInstance {
    pub owner: String,
    /// Its Kafka node id, the value of [`BROKER_TAG`].
    pub node_id: Option<u32>,
    /// How it is launched; `None` for an instance no broker of the spec
    /// uses, which is only ever terminated.
    pub launch: Option<Launch>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceState {
    pub id: String,
    pub node_id: Option<u32>,
    pub state: String,
}

impl InstanceState {
    pub fn is(&self, state: InstanceStateName) -> bool {
        self.state == state.as_str()
    }

    /// Holds (or will hold) its address and volumes.
    pub fn is_live(&self) -> bool {
        !self.is(InstanceStateName::Terminated) && !self.is_terminating()
    }

    /// Still holds its address, until AWS has terminated it.
    pub fn is_terminating(&self) -> bool {
        self.is(InstanceStateName::ShuttingDown)
    }
}

impl BrokerInstance {
    /// An instance found that no broker of the spec uses, as the resource to
    /// terminate.
    pub fn unwanted(owner: &str, observed: &InstanceState) -> Self {
        Self {
            owner: owner.to_owned(),
            node_id: observed.node_id,
            launch: None,
        }
    }

    fn not_declared(&self) -> ComponentError {
        ComponentError::terminal(
            "InternalError",
            format!(
                "{}: the operator planned a launch for a broker the spec does not have",
                self.label()
            ),
        )
    }
}

impl Resource for BrokerInstance {
    type Observed = InstanceState;
    const TYPE: Option<&'static str> = Some("AWS::EC2::Instance");

    fn label(&self) -> String {
        match self.node_id {
            Some(node_id) => format!("Kafka broker {node_id}"),
            None => "Kafka broker instance without a node id".to_owned(),
        }
    }

    fn references(&self) -> Vec<&Ref> {
        self.launch
            .iter()
            .flat_map(|launch| [&launch.subnet, &launch.security_group])
            .collect()
    }

    /// The broker's live instance, else the one shutting down that still
    /// holds its address.
    async fn find(&self, aws: &AwsClients) -> Result<Option<InstanceState>, ComponentError> {
        let mine: Vec<InstanceState> = list(aws, &self.owner)
            .await?
            .into_iter()
            .filter(|i| i.node_id == self.node_id)
            .collect();
        let live = mine.iter().find(|i| i.is_live());
        let going = || mine.iter().find(|i| i.is_terminating());
        Ok(live.or_else(going).cloned())
    }

    fn delta(&self, observed: &InstanceState) -> Result<Vec<String>, ComponentError> {
        Ok(if observed.is(InstanceStateName::Stopped) {
            vec![field("state", "stopped", "running")]
        } else {
            vec![]
        })
    }

    fn create_fields(&self) -> Vec<String> {
        self.launch
            .iter()
            .map(|l| {
                format!(
                    "{} at {} in {}, {} GiB encrypted data volume",
                    l.instance_type, l.private_ip, l.availability_zone, l.volume_gib
                )
            })
            .collect()
    }

    async fn create(&self, aws: &AwsClients) -> Result<InstanceState, ComponentError> {
        let (Some(node_id), Some(launch)) = (self.node_id, &self.launch) else {
            return Err(self.not_declared());
        };
        // Only terminated instances are left of this broker, or `find` would
        // have found one: a replacement needs a token of its own.
        let replaced: Vec<String> = list(aws, &self.owner)
            .await?
            .into_iter()
            .filter(|i| i.node_id == self.node_id)
            .map(|i| i.id)
            .collect();
        let id = launch
            .run(aws, &self.owner, node_id, &self.label(), &replaced)
            .await?;
        Ok(InstanceState {
            id,
            node_id: self.node_id,
            state: InstanceStateName::Pending.as_str().to_owned(),
        })
    }

    async fn update(&self, aws: &AwsClients, observed: &InstanceState) -> Result<(), ComponentError> {
        aws.ec2
            .start_instances()
            .instance_ids(&observed.id)
            .send()
            .await
            .map(drop)
            .map_err(failed("start", &format!("{} ({})", self.label(), observed.id)))
    }

    async fn delete(&self, aws: &AwsClients, observed: &InstanceState) -> Result<(), ComponentError> {
        let what = format!("{} ({})", self.label(), observed.id);
        terminate_instances(aws, std::slice::from_ref(&observed.id), &what).await
    }

    fn id(observed: &InstanceState) -> String {
        observed.id.clone()
    }

    fn readiness(&self, observed: &InstanceState) -> Readiness {
        if observed.is_terminating() {
            // Its address is free only once the instance before it is gone.
            return Readiness::Waiting(format!(
                "{} does not exist yet: instance {} still holds its address",
                self.label(),
                observed.id
            ));
        }
        let running = InstanceStateName::Running.as_str();
        Readiness::of(&self.label(), Some(&observed.state), running)
    }
}

/// Every instance tagged as one of the pipeline's brokers, terminated ones
/// too.
pub async fn list(aws: &AwsClients, owner: &str) -> Result<Vec<InstanceState>, ComponentError> {
    let kafka = ComponentKind::Kafka.tag_value();
    let narrow = vec![tag_filter(OWNER_TAG, owner), tag_filter(COMPONENT_TAG, kafka)];
    Ok(shared_lists::instances(aws, narrow)
        .await?
        .iter()
        .filter(|i| tagged(i.tags(), OWNER_TAG, owner) && tagged(i.tags(), COMPONENT_TAG, kafka))
        .map(|i| InstanceState {
            id: i.instance_id().unwrap_or_default().to_owned(),
            node_id: i
                .tags()
                .iter()
                .find(|t| t.key() == Some(BROKER_TAG))
                .and_then(|t| t.value())
                .and_then(|v| v.parse().ok()),
            state: i
                .state()
                .and_then(|s| s.name())
                .map(|n| n.as_str().to_owned())
                .unwrap_or_default(),
        })
        .collect())
}
