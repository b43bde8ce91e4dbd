//! What the Kafka component wants, from the spec alone: the brokers' places
//! and boot inputs, their role, and the S3 endpoint of the Kafka VPC.

use ingest_core::contract::prefix::BROKER_HEARTBEATS;
use serde_json::{Value, json};

use super::health::ExpectedBroker;
use super::{DesiredKafka, KafkaBrokers};
use crate::api::v1alpha1::KafkaSpec;
use crate::components::kafka_broker_setup::{
    self as setup, BROKER_PORT, BrokerPlacement, BrokerSetup, bootstrap_servers, encode_user_data,
    place_brokers,
};
use crate::components::network::NetworkOutputs;
use crate::components::network::layout::subnet_cidrs;
use crate::components::upload_instance_setup::instance_trust_policy;
use crate::engine::resource::{Ref, Walk};
use crate::engine::{ComponentError, Declared, Outputs, PipelineContext};
use crate::resources::broker_instance::{BrokerInstance, InstanceState, Launch};
use crate::resources::iam_role::{self, DesiredRole};
use crate::resources::instance_profile::InstanceProfile;
use crate::resources::kafka_distribution::{KafkaDistribution, StagedArchive};
use crate::resources::machine_image::{ImageSource, ResolvedImage};
use crate::resources::s3_gateway_endpoint::{self, S3GatewayEndpoint};

const DEFAULT_INSTANCE_TYPE: &str = "m7i.large";
const DEFAULT_VOLUME_GIB: i32 = 100;
const DEFAULT_BROKERS: i32 = 3;

#[derive(Clone, Debug, PartialEq)]
pub struct ManagedBrokers {
    pub image: ImageSource,
    pub instance_type: String,
    pub volume_gib: i32,
    pub security_group: Ref,
    pub brokers: Vec<DesiredBroker>,
    /// Where Kafka comes from, staged into the pipeline's bucket.
    pub distribution: KafkaDistribution,
    /// The pipeline's bucket: the brokers' heartbeats go there.
    pub bucket: String,
    pub region: String,
    pub cluster_id: String,
    pub max_image_bytes: i64,
    pub kafka: KafkaSpec,
    pub instance_profile_arn: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredBroker {
    pub placement: BrokerPlacement,
    /// The `Name` tag.
    pub name: String,
    /// Subnet of the Kafka VPC in its zone.
    pub subnet: Ref,
}

impl ManagedBrokers {
    /// Stages the Kafka distribution (once per version) and says where the
    /// brokers find it. In a plan of a new pipeline nothing is staged yet:
    /// the archive is then described by what the spec says.
    pub async fn stage(&self, walk: &mut Walk<'_>) -> Result<StagedArchive, ComponentError> {
        let staged = walk.ensure(&self.distribution).await?;
        Ok(match staged {
            Some(observed) => self.distribution.archive(&observed),
            None => self.distribution.planned_archive(),
        })
    }

    /// The first-boot script of `broker`, as `RunInstances` takes it.
    pub fn user_data(&self, broker: &DesiredBroker, archive: &StagedArchive) -> String {
        let placements: Vec<BrokerPlacement> = self.brokers.iter().map(|b| b.placement.clone()).collect();
        let setup = BrokerSetup {
            placements: &placements,
            cluster_id: &self.cluster_id,
            max_image_bytes: self.max_image_bytes,
            kafka: &self.kafka,
            region: &self.region,
            bucket: &self.bucket,
            archive,
        };
        encode_user_data(&setup.user_data(&broker.placement))
    }

    /// Each broker with the live instance that runs it now.
    pub fn expected(&self, instances: &[InstanceState]) -> Vec<ExpectedBroker> {
        self.brokers
            .iter()
            .map(|broker| {
                let node_id = broker.placement.node_id;
                ExpectedBroker {
                    node_id,
                    instance_id: instances
                        .iter()
                        .find(|i| i.node_id == Some(node_id) && i.is_live())
                        .map(|i| i.id.clone()),
                    address: format!("{}:{BROKER_PORT}", broker.placement.private_ip),
                }
            })
            .collect()
    }
}

impl DesiredKafka {
    /// The broker's instance, launched from `image` with Kafka from `archive`.
    pub fn instance(
        &self,
        managed: &ManagedBrokers,
        broker: &DesiredBroker,
        image: &ResolvedImage,
        archive: &StagedArchive,
    ) -> BrokerInstance {
        let mut tags = self.tags.clone();
        tags.insert("Name".to_owned(), broker.name.clone());
        BrokerInstance {
            owner: self.owner.clone(),
            node_id: Some(broker.placement.node_id),
            launch: Some(Launch {
                image: image.clone(),
                image_source: managed.image.clone(),
                instance_type: managed.instance_type.clone(),
                volume_gib: managed.volume_gib,
                availability_zone: broker.placement.availability_zone.clone(),
                subnet: broker.subnet.clone(),
                security_group: managed.security_group.clone(),
                private_ip: broker.placement.private_ip.to_string(),
                instance_profile_arn: managed.instance_profile_arn.clone(),
                user_data: managed.user_data(broker, archive),
                tags,
            }),
        }
    }
}

pub fn desired(ctx: &PipelineContext, upstream: &Outputs) -> Result<DesiredKafka, ComponentError> {
    let kafka = &ctx.spec.kafka;
    let tags = ctx.tags(KafkaBrokers::KIND);
    let owner = ctx.owner.tag_value();
    let network = NetworkOutputs::from_upstream(upstream);
    let bucket = upstream.bucket.clone().unwrap_or_else(|| ctx.bucket_name());
    let name = ctx.resource_name("kafka", 64);
    let iam_arn = |kind: &str| ctx.global_arn("iam", &format!("{kind}{}{name}", iam_role::ROLE_PATH));
    let distribution = KafkaDistribution::from_spec(kafka.distribution.as_ref(), &bucket)?;
    let role = DesiredRole {
        name: name.clone(),
        arn: iam_arn("role"),
        trust_policy: instance_trust_policy(),
        policy_name: "kafka-broker".to_owned(),
        policy: broker_permissions(&ctx.partition, &bucket, &distribution),
        tags: tags.clone(),
    };
    let instance_profile = InstanceProfile {
        name: name.clone(),
        arn: iam_arn("instance-profile"),
        role: name.clone(),
        tags: tags.clone(),
    };
    let endpoint = S3GatewayEndpoint {
        vpc_id: network.kafka_vpc.clone(),
        vpc: "Kafka VPC".to_owned(),
        service_name: format!("com.amazonaws.{}.s3", ctx.region()),
        route_tables: vec![network.kafka_route_table.clone()],
        policy: s3_gateway_endpoint::policy(
            &ctx.partition,
            &[
                distribution.object_path(),
                format!("{}/*", amazon_linux_repositories(ctx.region())),
            ],
            &[format!("{bucket}/{BROKER_HEARTBEATS}*")],
        ),
        tags: tags.clone(),
    };
    if let Some(servers) = &kafka.bootstrap_servers {
        return Ok(DesiredKafka {
            owner,
            tags,
            managed: None,
            bootstrap: servers.join(","),
            endpoint,
            role,
            instance_profile,
        });
    }
    // The subnets' CIDRs follow from the spec, so the brokers' addresses
    // (and `plan`) do not wait for the network to exist.
    let spec_network = &ctx.spec.network;
    let subnets = subnet_cidrs(
        "spec.network.kafkaVpcCidr",
        &spec_network.kafka_vpc_cidr,
        &spec_network.availability_zones,
    )?;
    let zones: Vec<(&str, &str)> = subnets
        .iter()
        .map(|s| (s.availability_zone.as_str(), s.cidr.as_str()))
        .collect();
    let placements = place_brokers(&zones, kafka.brokers.unwrap_or(DEFAULT_BROKERS))?;
    let instance_name = ctx.resource_name("kafka", 200);
    let brokers = placements
        .iter()
        .map(|placement| {
            let zone = &placement.availability_zone;
            let subnet = network
                .private_subnets
                .iter()
                .find(|s| s.availability_zone == *zone);
            DesiredBroker {
                placement: placement.clone(),
                name: format!("{instance_name}-{}", placement.node_id),
                subnet: Ref::to(subnet, |s| s.id.clone(), format!("private subnet in {zone}")),
            }
        })
        .collect();
    Ok(DesiredKafka {
        managed: Some(ManagedBrokers {
            image: ImageSource::new(kafka.ami_id.as_ref(), "spec.kafka.amiId"),
            instance_type: kafka
                .instance_type
                .clone()
                .unwrap_or_else(|| DEFAULT_INSTANCE_TYPE.to_owned()),
            volume_gib: kafka.volume_gib.unwrap_or(DEFAULT_VOLUME_GIB),
            security_group: network.kafka_group.clone(),
            brokers,
            distribution,
            bucket,
            region: ctx.region().to_owned(),
            cluster_id: setup::cluster_id(&format!("{}/{}", ctx.account_id, owner)),
            max_image_bytes: ctx.spec.upload_api.max_image_bytes,
            kafka: kafka.clone(),
            instance_profile_arn: iam_arn("instance-profile"),
        }),
        owner,
        tags,
        bootstrap: bootstrap_servers(&placements),
        endpoint,
        role,
        instance_profile,
    })
}

/// The S3 bucket of the Amazon Linux 2023 repositories of `region`, which
/// `dnf` reads through the endpoint.
pub fn amazon_linux_repositories(region: &str) -> String {
    format!("al2023-repos-{region}-de612dc2")
}

/// What a broker may do: read the Kafka distribution and write its
/// heartbeat, nothing else.
fn broker_permissions(partition: &str, bucket: &str, distribution: &KafkaDistribution) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadKafkaDistribution",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": [format!("arn:{partition}:s3:::{}", distribution.object_path())]
            },
            {
                "Sid": "WriteHeartbeats",
                "Effect": "Allow",
                "Action": ["s3:PutObject"],
                "Resource": [format!("arn:{partition}:s3:::{bucket}/{BROKER_HEARTBEATS}*")]
            }
        ]
    })
}
