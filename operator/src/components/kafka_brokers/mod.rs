//! Kafka: one EC2 instance per broker in the Kafka VPC's private subnets, or
//! nothing at all when `spec.kafka.bootstrapServers` names an existing
//! cluster.
//!
//! Each broker has a fixed private IP (so the bootstrap list and the KRaft
//! quorum are known before any instance boots, see [`kafka_broker_setup`]),
//! an encrypted root and data volume, and is found again by its
//! `imagepipeline.io/broker` tag (see [`BrokerInstance`]).
//!
//! [`kafka_broker_setup`]: super::kafka_broker_setup

use super::kafka_broker_setup::{
    self as setup, BrokerSetup, bootstrap_servers, encode_user_data, place_brokers,
};
use super::network::NetworkOutputs;
use super::network::layout::subnet_cidrs;
use crate::engine::resource::{Ref, Walk, WalkMode};
use crate::engine::{ComponentError, ComponentKind, Declared, Outputs, PipelineContext, Tags};
pub use crate::resources::broker_instance::BROKER_TAG;
use crate::resources::broker_instance::{self, BrokerInstance, InstanceState, Launch};
use crate::resources::machine_image::{self, ImageSource, ResolvedImage};

pub mod health;

pub struct KafkaBrokers;

const DEFAULT_INSTANCE_TYPE: &str = "m7i.large";
const DEFAULT_VOLUME_GIB: i32 = 100;
const DEFAULT_BROKERS: i32 = 3;

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredKafka {
    pub owner: String,
    pub tags: Tags,
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
    pub security_group: Ref,
    pub brokers: Vec<DesiredBroker>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredBroker {
    pub node_id: u32,
    /// The `Name` tag.
    pub name: String,
    pub availability_zone: String,
    /// Subnet of the Kafka VPC in that zone.
    pub subnet: Ref,
    pub private_ip: String,
    /// Base64 of the first-boot script.
    pub user_data: String,
}

impl DesiredKafka {
    /// The broker's instance, launched from `image`.
    fn instance(
        &self,
        managed: &ManagedBrokers,
        broker: &DesiredBroker,
        image: &ResolvedImage,
    ) -> BrokerInstance {
        let mut tags = self.tags.clone();
        tags.insert("Name".to_owned(), broker.name.clone());
        BrokerInstance {
            owner: self.owner.clone(),
            node_id: Some(broker.node_id),
            launch: Some(Launch {
                image: image.clone(),
                image_source: managed.image.clone(),
                instance_type: managed.instance_type.clone(),
                volume_gib: managed.volume_gib,
                availability_zone: broker.availability_zone.clone(),
                subnet: broker.subnet.clone(),
                security_group: managed.security_group.clone(),
                private_ip: broker.private_ip.clone(),
                user_data: broker.user_data.clone(),
                tags,
            }),
        }
    }
}

impl Declared for KafkaBrokers {
    const KIND: ComponentKind = ComponentKind::Kafka;
    const DEPENDS_ON: &'static [ComponentKind] = &[ComponentKind::Network];
    type Desired = DesiredKafka;

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
            region: &ctx.spec.region,
            bucket: &ctx.bucket_name(),
            archive: &crate::resources::kafka_distribution::StagedArchive {
                bucket: ctx.bucket_name(),
                key: String::new(),
                sha512: String::new(),
                version: String::new(),
            },
        };
        let name = ctx.resource_name("kafka", 200);
        let network = NetworkOutputs::from_upstream(upstream);
        let brokers = placements
            .iter()
            .map(|placement| {
                let zone = &placement.availability_zone;
                let subnet = network
                    .private_subnets
                    .iter()
                    .find(|s| s.availability_zone == *zone);
                DesiredBroker {
                    node_id: placement.node_id,
                    name: format!("{name}-{}", placement.node_id),
                    availability_zone: zone.clone(),
                    subnet: Ref::to(subnet, |s| s.id.clone(), format!("private subnet in {zone}")),
                    private_ip: placement.private_ip.to_string(),
                    user_data: encode_user_data(&broker_setup.user_data(placement)),
                }
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
                security_group: network.kafka_group.clone(),
                brokers,
            }),
            bootstrap: bootstrap_servers(&placements),
        })
    }

    async fn declare(
        walk: &mut Walk<'_>,
        desired: &DesiredKafka,
        outputs: &mut Outputs,
    ) -> Result<(), ComponentError> {
        let instances = broker_instance::list(walk.aws(), &desired.owner).await?;
        let mut brokers = Vec::new();
        match (&desired.managed, walk.mode()) {
            // Brokers are compute, removed under any deletion policy. The
            // hold comes first, so every live one is terminated at once
            // before the teardown waits for those AWS is terminating.
            (_, WalkMode::Find) => walk.hold(terminating(&instances)),
            (None, _) => {}
            (Some(managed), _) => {
                // Only a launch needs the AMI, so it is not looked up to tear
                // down; a missing one stops apply and plan alike.
                let image = machine_image::resolve(walk.aws(), &managed.image).await?;
                for broker in &managed.brokers {
                    walk.ensure(&desired.instance(managed, broker, &image)).await?;
                    brokers.push(broker.node_id);
                }
            }
        }
        for stray in strays(&instances, &brokers) {
            walk.remove(&BrokerInstance::unwanted(&desired.owner, stray), stray)
                .await?;
        }
        outputs.kafka_bootstrap = Some(desired.bootstrap.clone());
        Ok(())
    }
}

/// Live instances no broker of `brokers` uses: those of brokers taken out of
/// the spec, all of them to tear down or once an existing cluster is used.
fn strays<'a>(instances: &'a [InstanceState], brokers: &[u32]) -> impl Iterator<Item = &'a InstanceState> {
    instances
        .iter()
        .filter(|i| i.is_live())
        .filter(|i| !i.node_id.is_some_and(|node| brokers.contains(&node)))
}

/// Why a teardown waits: an instance AWS is still terminating.
fn terminating(instances: &[InstanceState]) -> Option<String> {
    instances
        .iter()
        .find(|i| i.is_terminating())
        .map(|i| format!("waiting for Kafka broker instance {} to terminate", i.id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::resource::Resource;
    use crate::engine::{Readiness, SubnetOutput, context_from_yaml};
    use crate::resources::broker_instance::client_token;

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
        let mut upstream = Outputs::default();
        upstream.publish(NetworkOutputs {
            private_subnets: vec![subnet("subnet-a", "eu-west-1a"), subnet("subnet-b", "eu-west-1b")],
            kafka_group: Ref::Known("sg-kafka".to_owned()),
            ..NetworkOutputs::pending()
        });
        KafkaBrokers::desired(&ctx, &upstream).expect("kafka of a valid spec")
    }

    fn instance(id: &str, node: u32, state: &str) -> InstanceState {
        InstanceState {
            id: id.to_owned(),
            node_id: Some(node),
            state: state.to_owned(),
        }
    }

    /// The resource of broker `node` of `desired`.
    fn broker(desired: &DesiredKafka, node: u32) -> BrokerInstance {
        let managed = desired.managed.as_ref().unwrap();
        let broker = managed.brokers.iter().find(|b| b.node_id == node).unwrap();
        let image = ResolvedImage {
            id: "ami-0123456789abcdef0".to_owned(),
            root_device: "/dev/xvda".to_owned(),
        };
        desired.instance(managed, broker, &image)
    }

    fn ids<'a>(instances: impl Iterator<Item = &'a InstanceState>) -> Vec<&'a str> {
        instances.map(|i| i.id.as_str()).collect()
    }

    #[test]
    fn brokers_get_fixed_addresses_in_the_subnet_of_their_zone_before_anything_exists() {
        let desired = desired_with("");
        let managed = desired.managed.as_ref().unwrap();
        let placed: Vec<(String, &str)> = managed
            .brokers
            .iter()
            .map(|b| (b.subnet.to_string(), b.private_ip.as_str()))
            .collect();
        assert_eq!(
            placed,
            [
                ("subnet-a".to_owned(), "10.41.0.10"),
                ("subnet-b".to_owned(), "10.41.16.10"),
                ("subnet-a".to_owned(), "10.41.0.11")
            ]
        );
        assert_eq!(
            desired.bootstrap,
            "10.41.0.10:9092,10.41.16.10:9092,10.41.0.11:9092"
        );
        assert_eq!(managed.instance_type, "m7i.large");
        assert_eq!(managed.volume_gib, 100);
        assert_eq!(managed.security_group, Ref::Known("sg-kafka".to_owned()));
        let brokers: Vec<String> = [1, 2, 3].map(|n| broker(&desired, n).label()).into();
        assert_eq!(brokers, ["Kafka broker 1", "Kafka broker 2", "Kafka broker 3"]);
        assert_eq!(
            broker(&desired, 2).create_fields(),
            ["m7i.large at 10.41.16.10 in eu-west-1b, 100 GiB encrypted data volume"]
        );
    }

    #[test]
    fn brokers_wait_for_the_network_that_is_not_made_yet() {
        let ctx = context_from_yaml(
            "
apiVersion: imagepipeline.io/v1alpha1
kind: ImagePipeline
metadata: {name: photos, namespace: media}
spec:
  region: eu-west-1
  network: {availabilityZones: [eu-west-1a, eu-west-1b]}
",
        );
        let desired = KafkaBrokers::desired(&ctx, &Outputs::default()).unwrap();
        let broker = broker(&desired, 1);
        assert!(broker.references().iter().all(|r| r.known().is_none()));
        let launch = broker.launch.unwrap();
        assert_eq!(
            launch.subnet.to_string(),
            "(private subnet in eu-west-1a, made by this apply)"
        );
    }

    #[test]
    fn an_existing_cluster_makes_no_brokers_and_removes_earlier_ones() {
        let desired = desired_with("bootstrapServers: [b-1.example:9092, b-2.example:9092]");
        assert_eq!(desired.managed, None);
        assert_eq!(desired.bootstrap, "b-1.example:9092,b-2.example:9092");
        assert_eq!(ids(strays(&[], &[])), Vec::<&str>::new());
        let earlier = [instance("i-1", 1, "running"), instance("i-0", 1, "terminated")];
        assert_eq!(ids(strays(&earlier, &[])), ["i-1"]);
    }

    #[test]
    fn a_running_cluster_needs_nothing_and_a_stopped_broker_is_started() {
        let desired = desired_with("");
        let running = [
            instance("i-1", 1, "running"),
            instance("i-2", 2, "running"),
            instance("i-3", 3, "running"),
        ];
        assert_eq!(ids(strays(&running, &[1, 2, 3])), Vec::<&str>::new());
        for (node, observed) in (1..).zip(&running) {
            let broker = broker(&desired, node);
            assert_eq!(broker.delta(observed), Ok(vec![]));
            assert_eq!(broker.readiness(observed), Readiness::Ready);
        }
        let stopped = instance("i-2", 2, "stopped");
        assert_eq!(
            broker(&desired, 2).delta(&stopped),
            Ok(vec!["state: stopped → running".to_owned()])
        );
    }

    #[test]
    fn a_replacement_waits_for_its_address_and_gets_a_new_client_token() {
        let desired = desired_with("brokers: 1, replicationFactor: 1");
        let owner = desired.owner.as_str();
        let first = client_token(owner, 1, "subnet-a", &[]);
        let again = client_token(owner, 1, "subnet-a", &[]);
        assert_eq!(first, again, "a retried launch reuses its client token");

        let broker = broker(&desired, 1);
        let terminating = instance("i-1", 1, "shutting-down");
        assert_eq!(broker.delta(&terminating), Ok(vec![]));
        let Readiness::Waiting(reason) = broker.readiness(&terminating) else {
            panic!("a broker waits while its predecessor holds its address");
        };
        assert!(reason.contains("i-1"), "{reason}");

        let replacement = client_token(owner, 1, "subnet-a", &["i-1".to_owned()]);
        assert_ne!(
            replacement, first,
            "the terminated instance's token is not reused"
        );
        assert!(replacement.len() <= 64);
    }

    #[test]
    fn fewer_brokers_terminate_the_extra_ones_and_teardown_terminates_all() {
        let three = [
            instance("i-1", 1, "running"),
            instance("i-2", 2, "running"),
            instance("i-3", 3, "running"),
        ];
        assert_eq!(ids(strays(&three, &[1, 2])), ["i-3"]);
        // Tearing down, no broker is declared: every live one goes.
        assert_eq!(ids(strays(&three, &[])), ["i-1", "i-2", "i-3"]);
        assert_eq!(terminating(&three), None);
        let going = [
            instance("i-1", 1, "shutting-down"),
            instance("i-0", 1, "terminated"),
        ];
        assert_eq!(ids(strays(&going, &[])), Vec::<&str>::new());
        assert!(terminating(&going).unwrap().contains("i-1"));
    }
}
