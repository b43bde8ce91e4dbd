//! Kafka: one EC2 instance per broker in the Kafka VPC's private subnets, or
//! nothing at all when `spec.kafka.bootstrapServers` names an existing
//! cluster.
//!
//! Each broker has a fixed private IP (so the bootstrap list and the KRaft
//! quorum are known before any instance boots, see [`kafka_broker_setup`]),
//! an encrypted root and data volume, and is found again by its
//! `imagepipeline.io/broker` tag. The tags are part of `RunInstances`, and its
//! client token is derived from the broker, so a crash between launching and
//! seeing the instance makes no second one; the fixed IP would refuse one too.
//!
//! [`kafka_broker_setup`]: super::kafka_broker_setup

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, HttpTokensState, InstanceMetadataEndpointState,
    InstanceMetadataOptionsRequest, InstanceStateName, ResourceType, VolumeType,
};
use sha2::{Digest, Sha256};

use super::instance_offering::check_offered;
use super::kafka_broker_setup::{
    self as setup, BrokerSetup, DATA_VOLUME_DEVICE, bootstrap_servers, encode_user_data, place_brokers,
};
use super::machine_image::{self, ImageSource, ResolvedImage};
use super::network::layout::subnet_cidrs;
use crate::api::v1alpha1::DeletionPolicy;
use crate::aws::AwsClients;
use crate::aws::errors::{Lookup, SpecReference, classify_with, code};
use crate::engine::{
    Action, COMPONENT_TAG, Change, Component, ComponentError, ComponentKind, OWNER_TAG, Outputs,
    PipelineContext, Readiness,
};
use crate::resources::sdk::{failed, tag_filter, tag_specification, terminate_instances};

pub struct KafkaBrokers;

/// Tag holding a broker instance's Kafka node id.
pub const BROKER_TAG: &str = "imagepipeline.io/broker";
const DEFAULT_INSTANCE_TYPE: &str = "m7i.large";
const DEFAULT_VOLUME_GIB: i32 = 100;
const DEFAULT_BROKERS: i32 = 3;
const ROOT_VOLUME_GIB: i32 = 20;
/// Brokers need no instance credentials; one hop keeps IMDS to the host.
const BROKER_IMDS_HOP_LIMIT: i32 = 1;

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredKafka {
    pub owner: String,
    pub tags: BTreeMap<String, String>,
    /// `None`: an existing cluster is used and no instance is made.
    pub managed: Option<ManagedBrokers>,
    /// `host:port,…` the stream-bridge connects to.
    pub bootstrap: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ManagedBrokers {
    pub image: ImageSource,
    pub instance_type: String,
    pub volume_gib: i32,
    pub security_group: String,
    pub brokers: Vec<DesiredBroker>,
}

impl ManagedBrokers {
    /// What the spec names for a launch, for errors that it is missing.
    fn references(&self) -> Vec<SpecReference<'_>> {
        let mut references = vec![SpecReference::new(
            Lookup::InstanceType,
            "spec.kafka.instanceType",
            &self.instance_type,
        )];
        if let ImageSource::Spec { id, field } = &self.image {
            references.push(SpecReference::new(Lookup::Image, field, id));
        }
        references
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredBroker {
    pub node_id: u32,
    /// The `Name` tag.
    pub name: String,
    pub availability_zone: String,
    /// Subnet of the Kafka VPC in that zone; empty until the network exists.
    pub subnet_id: String,
    pub private_ip: String,
    /// Base64 of the first-boot script.
    pub user_data: String,
}

#[derive(Clone, Debug, Default)]
pub struct ObservedKafka {
    /// Only launching needs the AMI, so a missing one never blocks deletion.
    pub image: Option<Result<ResolvedImage, ComponentError>>,
    /// Every instance tagged as this pipeline's broker, terminated ones too.
    pub instances: Vec<BrokerInstance>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerInstance {
    pub id: String,
    pub node_id: Option<u32>,
    pub state: String,
}

impl BrokerInstance {
    fn is(&self, state: InstanceStateName) -> bool {
        self.state == state.as_str()
    }

    /// Holds (or will hold) its address and volumes.
    fn is_live(&self) -> bool {
        !self.is(InstanceStateName::Terminated) && !self.is(InstanceStateName::ShuttingDown)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KafkaStep {
    Launch { node_id: u32, client_token: String },
    Start { node_id: u32, id: String },
    Terminate { ids: Vec<String> },
}

impl Component for KafkaBrokers {
    const KIND: ComponentKind = ComponentKind::Kafka;
    const DEPENDS_ON: &'static [ComponentKind] = &[ComponentKind::Network];
    type Desired = DesiredKafka;
    type Observed = ObservedKafka;
    type Step = KafkaStep;

    fn desired(ctx: &PipelineContext, upstream: &Outputs) -> Result<DesiredKafka, ComponentError> {
        let kafka = &ctx.spec.kafka;
        let tags = ctx.tags(Self::KIND);
        let owner = ctx.owner.tag_value();
        if let Some(servers) = &kafka.bootstrap_servers {
            return Ok(DesiredKafka {
                owner,
                tags,
                managed: None,
                bootstrap: servers.join(","),
            });
        }
        // The subnets' CIDRs follow from the spec, so the brokers' addresses
        // (and `plan`) do not wait for the network to exist.
        let network = &ctx.spec.network;
        let subnets = subnet_cidrs(
            "spec.network.kafkaVpcCidr",
            &network.kafka_vpc_cidr,
            &network.availability_zones,
        )?;
        let zones: Vec<(&str, &str)> = subnets
            .iter()
            .map(|s| (s.availability_zone.as_str(), s.cidr.as_str()))
            .collect();
        let placements = place_brokers(&zones, kafka.brokers.unwrap_or(DEFAULT_BROKERS))?;
        let cluster_id = setup::cluster_id(&format!("{}/{}", ctx.account_id, owner));
        let broker_setup = BrokerSetup {
            placements: &placements,
            cluster_id: &cluster_id,
            max_image_bytes: ctx.spec.upload_api.max_image_bytes,
            kafka,
        };
        let name = ctx.resource_name("kafka", 200);
        let brokers = placements
            .iter()
            .map(|placement| DesiredBroker {
                node_id: placement.node_id,
                name: format!("{name}-{}", placement.node_id),
                availability_zone: placement.availability_zone.clone(),
                subnet_id: upstream
                    .private_subnets
                    .iter()
                    .find(|s| s.availability_zone == placement.availability_zone)
                    .map(|s| s.id.clone())
                    .unwrap_or_default(),
                private_ip: placement.private_ip.to_string(),
                user_data: encode_user_data(&broker_setup.user_data(placement)),
            })
            .collect();
        Ok(DesiredKafka {
            owner,
            tags,
            managed: Some(ManagedBrokers {
                image: ImageSource::new(kafka.ami_id.as_ref(), "spec.kafka.amiId"),
                instance_type: kafka
                    .instance_type
                    .clone()
                    .unwrap_or_else(|| DEFAULT_INSTANCE_TYPE.to_owned()),
                volume_gib: kafka.volume_gib.unwrap_or(DEFAULT_VOLUME_GIB),
                security_group: upstream.kafka_security_group.clone().unwrap_or_default(),
                brokers,
            }),
            bootstrap: bootstrap_servers(&placements),
        })
    }

    async fn observe(aws: &AwsClients, desired: &DesiredKafka) -> Result<ObservedKafka, ComponentError> {
        let image = match &desired.managed {
            Some(managed) => match machine_image::resolve(aws, &managed.image).await {
                Err(err) if !err.is_terminal() => return Err(err),
                image => Some(image),
            },
            None => None,
        };
        let out = aws
            .ec2
            .describe_instances()
            .filters(tag_filter(OWNER_TAG, &desired.owner))
            .filters(tag_filter(COMPONENT_TAG, Self::KIND.tag_value()))
            .send()
            .await
            .map_err(failed("list the Kafka broker instances of", &desired.owner))?;
        let instances = out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .map(|i| BrokerInstance {
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
            .collect();
        Ok(ObservedKafka { image, instances })
    }

    fn converge(desired: &DesiredKafka, observed: &ObservedKafka) -> Result<Vec<KafkaStep>, ComponentError> {
        let Some(managed) = &desired.managed else {
            // Brokers made before the spec switched to bootstrapServers.
            let (steps, _) = Self::teardown(desired, observed, DeletionPolicy::Delete);
            return Ok(steps);
        };
        if let Some(Err(err)) = &observed.image {
            return Err(err.clone());
        }
        let mut steps = Vec::new();
        for broker in &managed.brokers {
            let mine = || {
                observed
                    .instances
                    .iter()
                    .filter(|i| i.node_id == Some(broker.node_id))
            };
            if let Some(live) = mine().find(|i| i.is_live()) {
                if live.is(InstanceStateName::Stopped) {
                    steps.push(KafkaStep::Start {
                        node_id: broker.node_id,
                        id: live.id.clone(),
                    });
                }
                continue;
            }
            // Its address is free only once a terminating predecessor is gone.
            if mine().any(|i| i.is(InstanceStateName::ShuttingDown)) {
                continue;
            }
            let replaced: Vec<&str> = mine().map(|i| i.id.as_str()).collect();
            steps.push(KafkaStep::Launch {
                node_id: broker.node_id,
                client_token: client_token(&desired.owner, broker, &replaced),
            });
        }
        let unwanted: Vec<String> = observed
            .instances
            .iter()
            .filter(|i| i.is_live())
            .filter(|i| {
                !i.node_id
                    .is_some_and(|node| managed.brokers.iter().any(|b| b.node_id == node))
            })
            .map(|i| i.id.clone())
            .collect();
        if !unwanted.is_empty() {
            steps.push(KafkaStep::Terminate { ids: unwanted });
        }
        Ok(steps)
    }

    fn teardown(
        _desired: &DesiredKafka,
        observed: &ObservedKafka,
        _policy: DeletionPolicy,
    ) -> (Vec<KafkaStep>, Option<String>) {
        // Brokers are compute: removed under any deletion policy.
        let live: Vec<String> = observed
            .instances
            .iter()
            .filter(|i| i.is_live())
            .map(|i| i.id.clone())
            .collect();
        if !live.is_empty() {
            return (vec![KafkaStep::Terminate { ids: live }], None);
        }
        let waiting = observed
            .instances
            .iter()
            .find(|i| i.is(InstanceStateName::ShuttingDown))
            .map(|i| format!("waiting for Kafka broker instance {} to terminate", i.id));
        (vec![], waiting)
    }

    async fn execute(
        aws: &AwsClients,
        desired: &DesiredKafka,
        observed: &mut ObservedKafka,
        step: &KafkaStep,
    ) -> Result<(), ComponentError> {
        let action = describe_step(desired, step).resource;
        match step {
            KafkaStep::Launch {
                node_id,
                client_token,
            } => {
                let managed = desired.managed.as_ref().ok_or_else(|| not_managed(&action))?;
                let broker = managed
                    .brokers
                    .iter()
                    .find(|b| b.node_id == *node_id)
                    .ok_or_else(|| not_managed(&action))?;
                let image = match &observed.image {
                    Some(Ok(image)) => image,
                    Some(Err(err)) => return Err(err.clone()),
                    None => return Err(not_managed(&action)),
                };
                let zone = BTreeSet::from([broker.availability_zone.clone()]);
                check_offered(aws, &managed.instance_type, &zone, "spec.kafka.instanceType").await?;
                let out = launch(aws, desired, managed, broker, image, client_token).await;
                match out {
                    Ok(out) => {
                        observed
                            .instances
                            .extend(out.instances().iter().map(|i| BrokerInstance {
                                id: i.instance_id().unwrap_or_default().to_owned(),
                                node_id: Some(*node_id),
                                state: InstanceStateName::Pending.as_str().to_owned(),
                            }));
                        Ok(())
                    }
                    // The address is taken: by this broker from a pass that
                    // crashed (not visible yet), or by something else there.
                    Err(err) if code(&err) == Some("InvalidIPAddress.InUse") => {
                        Err(ComponentError::retryable(
                            "BrokerAddressInUse",
                            format!(
                                "{action}: address {} in subnet {} is in use; if no broker of this pipeline holds it, \
                             release the network interface that does",
                                broker.private_ip, broker.subnet_id
                            ),
                        ))
                    }
                    Err(err) => Err(classify_with(
                        &format!("launch {action}"),
                        &managed.references(),
                        err,
                    )),
                }
            }
            KafkaStep::Start { id, .. } => aws
                .ec2
                .start_instances()
                .instance_ids(id)
                .send()
                .await
                .map(drop)
                .map_err(failed("start", &action)),
            KafkaStep::Terminate { ids } => terminate_instances(aws, ids, &action).await,
        }
    }

    fn describe(desired: &DesiredKafka, step: &KafkaStep) -> Change {
        describe_step(desired, step)
    }

    fn readiness(desired: &DesiredKafka, observed: &ObservedKafka) -> Readiness {
        let Some(managed) = &desired.managed else {
            return Readiness::Ready;
        };
        for broker in &managed.brokers {
            let state = observed
                .instances
                .iter()
                .find(|i| i.node_id == Some(broker.node_id) && i.is_live())
                .map(|i| i.state.as_str());
            let readiness = Readiness::of(
                &format!("Kafka broker {}", broker.node_id),
                state,
                InstanceStateName::Running.as_str(),
            );
            if readiness != Readiness::Ready {
                return readiness;
            }
        }
        Readiness::Ready
    }

    fn publish(desired: &DesiredKafka, observed: &ObservedKafka, outputs: &mut Outputs) {
        outputs.kafka_bootstrap = Some(desired.bootstrap.clone());
        for instance in observed.instances.iter().filter(|i| i.is_live()) {
            outputs.resource(Self::KIND, "AWS::EC2::Instance", &instance.id, None);
        }
    }
}

/// Deterministic per broker, so a retried launch returns the instance the
/// lost answer described. Instances that held the broker before are part of
/// it: AWS keeps a token for a while after its instance terminated, and a
/// replacement must not get that terminated instance back.
fn client_token(owner: &str, broker: &DesiredBroker, replaced: &[&str]) -> String {
    let mut replaced = replaced.to_vec();
    replaced.sort_unstable();
    let digest = Sha256::digest(format!(
        "{owner}/{}/{}/{}",
        broker.node_id,
        broker.subnet_id,
        replaced.join(",")
    ));
    // RunInstances takes at most 64 ASCII characters.
    format!("ipl-{}", hex::encode(&digest[..24]))
}

async fn launch(
    aws: &AwsClients,
    desired: &DesiredKafka,
    managed: &ManagedBrokers,
    broker: &DesiredBroker,
    image: &ResolvedImage,
    client_token: &str,
) -> Result<
    aws_sdk_ec2::operation::run_instances::RunInstancesOutput,
    aws_smithy_runtime_api::client::result::SdkError<
        aws_sdk_ec2::operation::run_instances::RunInstancesError,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
> {
    let mut tags = desired.tags.clone();
    tags.insert(BROKER_TAG.to_owned(), broker.node_id.to_string());
    tags.insert("Name".to_owned(), broker.name.clone());
    let volume = |device: &str, size: i32| {
        BlockDeviceMapping::builder()
            .device_name(device)
            .ebs(
                EbsBlockDevice::builder()
                    .volume_size(size)
                    .volume_type(VolumeType::Gp3)
                    .encrypted(true)
                    .delete_on_termination(true)
                    .build(),
            )
            .build()
    };
    aws.ec2
        .run_instances()
        .image_id(&image.id)
        .instance_type(managed.instance_type.as_str().into())
        .min_count(1)
        .max_count(1)
        .client_token(client_token)
        .subnet_id(&broker.subnet_id)
        .private_ip_address(&broker.private_ip)
        .security_group_ids(&managed.security_group)
        .user_data(&broker.user_data)
        .metadata_options(
            InstanceMetadataOptionsRequest::builder()
                .http_endpoint(InstanceMetadataEndpointState::Enabled)
                .http_tokens(HttpTokensState::Required)
                .http_put_response_hop_limit(BROKER_IMDS_HOP_LIMIT)
                .build(),
        )
        .block_device_mappings(volume(&image.root_device, ROOT_VOLUME_GIB))
        .block_device_mappings(volume(DATA_VOLUME_DEVICE, managed.volume_gib))
        .tag_specifications(tag_specification(ResourceType::Instance, &tags))
        .tag_specifications(tag_specification(ResourceType::Volume, &tags))
        .send()
        .await
}

fn not_managed(action: &str) -> ComponentError {
    ComponentError::terminal(
        "InternalError",
        format!("{action}: the operator planned a launch for a broker the spec does not have"),
    )
}

fn describe_step(desired: &DesiredKafka, step: &KafkaStep) -> Change {
    match step {
        KafkaStep::Launch { node_id, .. } => {
            let mut change = Change::new(Action::Create, format!("Kafka broker {node_id}"));
            if let Some(managed) = &desired.managed
                && let Some(broker) = managed.brokers.iter().find(|b| b.node_id == *node_id)
            {
                change = change.note(format!(
                    "{} at {} in {}, {} GiB encrypted data volume",
                    managed.instance_type, broker.private_ip, broker.availability_zone, managed.volume_gib
                ));
            }
            change
        }
        KafkaStep::Start { node_id, id } => {
            Change::new(Action::Update, format!("Kafka broker {node_id} ({id})"))
                .note("start the stopped instance")
        }
        KafkaStep::Terminate { ids } => Change::new(
            Action::Delete,
            format!("Kafka broker instances {}", ids.join(", ")),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{SubnetOutput, context_from_yaml};

    fn desired_with(kafka: &str) -> DesiredKafka {
        let ctx = context_from_yaml(&format!(
            "
apiVersion: imagepipeline.io/v1alpha1
kind: ImagePipeline
metadata: {{name: photos, namespace: media}}
spec:
  region: eu-west-1
  network: {{availabilityZones: [eu-west-1a, eu-west-1b]}}
  kafka: {{ {kafka} }}
"
        ));
        let subnet = |id: &str, zone: &str| SubnetOutput {
            id: id.to_owned(),
            availability_zone: zone.to_owned(),
            cidr: String::new(),
        };
        let upstream = Outputs {
            private_subnets: vec![subnet("subnet-a", "eu-west-1a"), subnet("subnet-b", "eu-west-1b")],
            kafka_security_group: Some("sg-kafka".to_owned()),
            ..Outputs::default()
        };
        KafkaBrokers::desired(&ctx, &upstream).expect("kafka of a valid spec")
    }

    fn instance(id: &str, node: u32, state: &str) -> BrokerInstance {
        BrokerInstance {
            id: id.to_owned(),
            node_id: Some(node),
            state: state.to_owned(),
        }
    }

    fn observed(instances: Vec<BrokerInstance>) -> ObservedKafka {
        ObservedKafka {
            image: Some(Ok(ResolvedImage {
                id: "ami-0123456789abcdef0".to_owned(),
                root_device: "/dev/xvda".to_owned(),
            })),
            instances,
        }
    }

    fn launched(steps: &[KafkaStep]) -> Vec<u32> {
        steps
            .iter()
            .filter_map(|s| match s {
                KafkaStep::Launch { node_id, .. } => Some(*node_id),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn brokers_get_fixed_addresses_in_the_subnet_of_their_zone_before_anything_exists() {
        let desired = desired_with("");
        let managed = desired.managed.as_ref().unwrap();
        let placed: Vec<(&str, &str)> = managed
            .brokers
            .iter()
            .map(|b| (b.subnet_id.as_str(), b.private_ip.as_str()))
            .collect();
        assert_eq!(
            placed,
            [
                ("subnet-a", "10.41.0.10"),
                ("subnet-b", "10.41.16.10"),
                ("subnet-a", "10.41.0.11")
            ]
        );
        assert_eq!(
            desired.bootstrap,
            "10.41.0.10:9092,10.41.16.10:9092,10.41.0.11:9092"
        );
        assert_eq!(managed.instance_type, "m7i.large");
        assert_eq!(managed.volume_gib, 100);
        assert_eq!(managed.security_group, "sg-kafka");
        let steps = KafkaBrokers::converge(&desired, &observed(vec![])).unwrap();
        assert_eq!(launched(&steps), [1, 2, 3]);
    }

    #[test]
    fn an_existing_cluster_makes_no_brokers_and_removes_earlier_ones() {
        let desired = desired_with("bootstrapServers: [b-1.example:9092, b-2.example:9092]");
        assert_eq!(desired.managed, None);
        assert_eq!(desired.bootstrap, "b-1.example:9092,b-2.example:9092");
        assert_eq!(
            KafkaBrokers::converge(&desired, &observed(vec![])).unwrap(),
            vec![]
        );
        let earlier = observed(vec![instance("i-1", 1, "running")]);
        assert_eq!(
            KafkaBrokers::converge(&desired, &earlier).unwrap(),
            vec![KafkaStep::Terminate {
                ids: vec!["i-1".to_owned()]
            }]
        );
        assert_eq!(
            KafkaBrokers::readiness(&desired, &observed(vec![])),
            Readiness::Ready
        );
    }

    #[test]
    fn a_running_cluster_needs_nothing_and_a_stopped_broker_is_started() {
        let desired = desired_with("");
        let running = observed(vec![
            instance("i-1", 1, "running"),
            instance("i-2", 2, "running"),
            instance("i-3", 3, "running"),
        ]);
        assert_eq!(KafkaBrokers::converge(&desired, &running).unwrap(), vec![]);
        assert_eq!(KafkaBrokers::readiness(&desired, &running), Readiness::Ready);
        let mut stopped = running.clone();
        stopped.instances[1].state = "stopped".to_owned();
        assert_eq!(
            KafkaBrokers::converge(&desired, &stopped).unwrap(),
            vec![KafkaStep::Start {
                node_id: 2,
                id: "i-2".to_owned()
            }]
        );
    }

    #[test]
    fn a_replacement_waits_for_its_address_and_gets_a_new_client_token() {
        let desired = desired_with("brokers: 1, replicationFactor: 1");
        let first = KafkaBrokers::converge(&desired, &observed(vec![])).unwrap();
        let again = KafkaBrokers::converge(&desired, &observed(vec![])).unwrap();
        assert_eq!(first, again, "a retried launch reuses its client token");

        let terminating = observed(vec![instance("i-1", 1, "shutting-down")]);
        assert_eq!(KafkaBrokers::converge(&desired, &terminating).unwrap(), vec![]);

        let terminated = observed(vec![instance("i-1", 1, "terminated")]);
        let replacement = KafkaBrokers::converge(&desired, &terminated).unwrap();
        assert_eq!(launched(&replacement), [1]);
        assert_ne!(
            replacement, first,
            "the terminated instance's token is not reused"
        );
    }

    #[test]
    fn fewer_brokers_terminate_the_extra_ones_and_teardown_terminates_all() {
        let desired = desired_with("brokers: 2, replicationFactor: 2");
        let three = observed(vec![
            instance("i-1", 1, "running"),
            instance("i-2", 2, "running"),
            instance("i-3", 3, "running"),
        ]);
        assert_eq!(
            KafkaBrokers::converge(&desired, &three).unwrap(),
            vec![KafkaStep::Terminate {
                ids: vec!["i-3".to_owned()]
            }]
        );
        let (steps, waiting) = KafkaBrokers::teardown(&desired, &three, DeletionPolicy::Retain);
        assert_eq!(
            steps,
            vec![KafkaStep::Terminate {
                ids: vec!["i-1".to_owned(), "i-2".to_owned(), "i-3".to_owned()]
            }]
        );
        assert_eq!(waiting, None);
        let (steps, waiting) = KafkaBrokers::teardown(
            &desired,
            &observed(vec![instance("i-1", 1, "shutting-down")]),
            DeletionPolicy::Delete,
        );
        assert_eq!(steps, vec![]);
        assert!(waiting.unwrap().contains("i-1"));
    }
}
