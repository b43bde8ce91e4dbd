//! What a managed Kafka broker is before it boots: its fixed place in the
//! Kafka VPC, its KRaft configuration and the user data that sets it up.
//!
//! Everything here is pure, so the KafkaBrokers component can compute the
//! whole cluster (and the bootstrap list the stream-bridge needs) before any
//! instance exists, and `plan` can show it. The component's part is:
//! [`place_brokers`] over the Kafka VPC's subnets, one [`BrokerSetup`] per
//! cluster, and for each placement `RunInstances` with
//! `PrivateIpAddress = placement.private_ip`, the data volume mapped as
//! [`DATA_VOLUME_DEVICE`] and `UserData = encode_user_data(&setup.user_data(&placement))`.
//!
//! The user data is the broker's settings, rendered and quoted here, then the
//! shell files beside this one: `boot.sh` starts the heartbeat, installs Java
//! (dnf) and the staged Kafka archive (its SHA-512 checked again) unless the
//! AMI has them, prepares the data volume and starts Kafka under systemd;
//! `heartbeat.sh` is what the broker reports every 30 s
//! (`ingest_core::contract::kafka::heartbeat`); `create_topics.sh` runs on
//! node 1. `operator/tests/broker_boot.rs` runs it in a sandbox.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ingest_core::contract::kafka::{dead_letter_topic, heartbeat};
use ipnet::Ipv4Net;
use sha2::{Digest, Sha256};

use crate::api::v1alpha1::KafkaSpec;
use crate::engine::ComponentError;
use crate::resources::kafka_distribution::StagedArchive;

/// Port of the PLAINTEXT listener clients and other brokers use.
pub const BROKER_PORT: u16 = 9092;
/// Port of the KRaft controller listener, used only between brokers.
pub const CONTROLLER_PORT: u16 = 9093;
/// Device name to give the EBS data volume in the block device mapping.
pub const DATA_VOLUME_DEVICE: &str = "/dev/sdf";
/// Mount point of the data volume, and Kafka's `log.dirs`.
pub const DATA_DIR: &str = "/var/lib/kafka/data";

/// Host offset of each subnet's first broker address. AWS reserves offsets
/// 0-3; starting at 10 keeps the addresses readable (`.10`, `.11`, …).
const FIRST_BROKER_HOST_OFFSET: u32 = 10;
/// Room above `maxImageBytes` for what wraps an image in Kafka: a record
/// batch header (61 bytes), the record's varints, its key and its headers. A
/// dead letter carries the original headers plus `error-code` and an
/// `error-message`, so the margin is generous rather than exact.
const RECORD_OVERHEAD_HEADROOM_BYTES: i64 = 1024 * 1024;
/// Kafka's default `socket.request.max.bytes`; never lowered, so small
/// images can still be batched across partitions in one request.
const DEFAULT_SOCKET_REQUEST_MAX_BYTES: i64 = 100 * 1024 * 1024;
const CONFIG_FILE: &str = "/etc/kafka/server.properties";
/// Delimiter of the server.properties heredoc; no key or value contains it.
const PROPERTIES_HEREDOC: &str = "SERVER_PROPERTIES";
/// Delimiter of the heartbeat script's heredoc; no line of it is this.
const HEARTBEAT_HEREDOC: &str = "HEARTBEAT_SCRIPT";

/// The boot script after the rendered settings: heartbeat, Java, Kafka, the
/// data volume, server.properties and the `kafka.service` unit.
pub const BOOT_SCRIPT: &str = include_str!("boot.sh");
/// What node 1 does after booting: create the topic and its dead-letter topic.
pub const CREATE_TOPICS_SCRIPT: &str = include_str!("create_topics.sh");
/// The body of `/usr/local/bin/imagepipeline-kafka-heartbeat`, which the boot
/// script installs after a `#!/bin/bash` line and the broker's settings.
pub const HEARTBEAT_SCRIPT: &str = include_str!("heartbeat.sh");

/// Where one broker runs: decided before boot, so it never changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerPlacement {
    /// Kafka `node.id`, 1-based.
    pub node_id: u32,
    pub availability_zone: String,
    /// CIDR of the Kafka VPC subnet the instance is launched into.
    pub subnet_cidr: Ipv4Net,
    /// The instance's fixed private address (`RunInstances.PrivateIpAddress`).
    pub private_ip: Ipv4Addr,
}

/// Places `brokers` brokers over the Kafka VPC's private subnets, given as
/// `(availability zone, subnet CIDR)` in spec order: broker n goes to zone
/// ((n - 1) mod zones) + 1, at the subnet's network address + 10 + its index
/// among that subnet's brokers.
pub fn place_brokers(subnets: &[(&str, &str)], brokers: i32) -> Result<Vec<BrokerPlacement>, ComponentError> {
    if subnets.is_empty() || brokers < 1 {
        let message = format!(
            "managed Kafka needs spec.kafka.brokers ≥ 1 (is {brokers}) and a zone in \
             spec.network.availabilityZones"
        );
        return Err(ComponentError::terminal("InvalidKafkaBrokers", message));
    }
    let mut parsed_subnets = Vec::with_capacity(subnets.len());
    for &(zone, cidr) in subnets {
        let net: Ipv4Net = cidr.parse().map_err(|err| {
            let message = format!("Kafka subnet {cidr} (from spec.network.kafkaVpcCidr) is not IPv4: {err}");
            ComponentError::terminal("InvalidCidr", message)
        })?;
        parsed_subnets.push((zone, net));
    }
    (0..brokers as u32)
        .map(|index| {
            let (zone, subnet) = parsed_subnets[index as usize % parsed_subnets.len()];
            let host_offset = FIRST_BROKER_HOST_OFFSET + index / parsed_subnets.len() as u32;
            // AWS reserves the last address of every subnet as well.
            let private_ip = u32::from(subnet.network())
                .checked_add(host_offset)
                .filter(|&ip| ip < u32::from(subnet.broadcast()))
                .map(Ipv4Addr::from)
                .ok_or_else(|| {
                    ComponentError::terminal(
                        "KafkaSubnetTooSmall",
                        format!(
                            "Kafka subnet {subnet} in {zone} has no room for broker {}: brokers use host \
                             addresses from .{FIRST_BROKER_HOST_OFFSET} up; make spec.network.kafkaVpcCidr \
                             larger, add availability zones, or lower spec.kafka.brokers",
                            index + 1
                        ),
                    )
                })?;
            Ok(BrokerPlacement {
                node_id: index + 1,
                availability_zone: zone.to_owned(),
                subnet_cidr: subnet,
                private_ip,
            })
        })
        .collect()
}

/// `ip:9092,…` of every broker: the stream-bridge's bootstrap servers and
/// the status's `endpoints.kafkaBootstrap`.
pub fn bootstrap_servers(placements: &[BrokerPlacement]) -> String {
    join(placements, |p| format!("{}:{BROKER_PORT}", p.private_ip))
}

/// The Kafka cluster id for `seed` (for example the pipeline's owner tag):
/// 16 bytes of SHA-256, base64url without padding, as `kafka-storage.sh`
/// expects. Stable, so a replaced broker formats into the same cluster.
pub fn cluster_id(seed: &str) -> String {
    let mut digest = Sha256::digest(format!("imagepipeline.io/kafka-cluster-id\n{seed}"));
    loop {
        let id: String = aws_smithy_types::base64::encode(&digest[..16])
            .trim_end_matches('=')
            .chars()
            .map(|c| match c {
                '+' => '-',
                '/' => '_',
                c => c,
            })
            .collect();
        // Kafka never issues ids starting with '-': command lines would read them as options.
        if !id.starts_with('-') {
            return id;
        }
        digest = Sha256::digest(digest);
    }
}

/// What every broker of one cluster shares; renders each broker's
/// configuration and user data.
#[derive(Clone, Copy, Debug)]
pub struct BrokerSetup<'a> {
    /// All brokers of the cluster, from [`place_brokers`].
    pub placements: &'a [BrokerPlacement],
    /// From [`cluster_id`].
    pub cluster_id: &'a str,
    /// `spec.uploadApi.maxImageBytes`: the largest record value to accept.
    pub max_image_bytes: i64,
    /// Topic, partitions and replication factor.
    pub kafka: &'a KafkaSpec,
    /// `spec.region`: the AWS CLI's region on the brokers.
    pub region: &'a str,
    /// The pipeline's bucket, where the brokers write their heartbeats.
    pub bucket: &'a str,
    /// The Kafka distribution the brokers install unless their AMI has one.
    pub archive: &'a StagedArchive,
}

impl BrokerSetup<'_> {
    /// The broker's server.properties: KRaft broker and controller in one
    /// process, every broker a voter.
    pub fn properties(&self, node: &BrokerPlacement) -> BTreeMap<String, String> {
        let brokers = self.placements.len() as i64;
        let replication_factor = i64::from(self.kafka.replication_factor);
        let internal_topic_replication = brokers.min(3);
        let message_max_bytes = self.max_image_bytes + RECORD_OVERHEAD_HEADROOM_BYTES;
        let ip = node.private_ip;
        let voters = join(self.placements, |p| {
            format!("{}@{}:{CONTROLLER_PORT}", p.node_id, p.private_ip)
        });
        let socket_request_max_bytes =
            DEFAULT_SOCKET_REQUEST_MAX_BYTES.max(message_max_bytes + RECORD_OVERHEAD_HEADROOM_BYTES);
        let mut properties = BTreeMap::new();
        let mut set = |key: &str, value: &dyn std::fmt::Display| {
            properties.insert(key.to_owned(), value.to_string());
        };
        set("process.roles", &"broker,controller");
        set("node.id", &node.node_id);
        set("controller.quorum.voters", &voters);
        set(
            "listeners",
            &format!("PLAINTEXT://{ip}:{BROKER_PORT},CONTROLLER://{ip}:{CONTROLLER_PORT}"),
        );
        set("advertised.listeners", &format!("PLAINTEXT://{ip}:{BROKER_PORT}"));
        set(
            "listener.security.protocol.map",
            &"PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        );
        set("controller.listener.names", &"CONTROLLER");
        set("inter.broker.listener.name", &"PLAINTEXT");
        // Rack-aware assignment puts a partition's replicas in different zones.
        set("broker.rack", &node.availability_zone);
        set("log.dirs", &DATA_DIR);
        set("message.max.bytes", &message_max_bytes);
        set("replica.fetch.max.bytes", &message_max_bytes);
        set("socket.request.max.bytes", &socket_request_max_bytes);
        set("auto.create.topics.enable", &false);
        set("default.replication.factor", &replication_factor);
        set("min.insync.replicas", &replication_factor.min(2));
        set("unclean.leader.election.enable", &false);
        set("offsets.topic.replication.factor", &internal_topic_replication);
        set(
            "transaction.state.log.replication.factor",
            &internal_topic_replication,
        );
        set(
            "transaction.state.log.min.isr",
            &internal_topic_replication.min(2),
        );
        properties
    }

    /// The broker's first-boot script (bash, run as root by cloud-init on
    /// Amazon Linux 2023): the broker's settings, then [`BOOT_SCRIPT`], and
    /// on node 1 [`CREATE_TOPICS_SCRIPT`]. Every rendered value is quoted.
    pub fn user_data(&self, node: &BrokerPlacement) -> String {
        let properties: String = self
            .properties(node)
            .iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect();
        let settings = [
            ("NODE_ID", node.node_id.to_string()),
            ("REGION", self.region.to_owned()),
            ("BUCKET", self.bucket.to_owned()),
            ("HEARTBEAT_KEY", heartbeat::key(node.node_id)),
            ("ARCHIVE_BUCKET", self.archive.bucket.clone()),
            ("ARCHIVE_KEY", self.archive.key.clone()),
            ("ARCHIVE_SHA512", self.archive.sha512.clone()),
            ("KAFKA_VERSION", self.archive.version.clone()),
            ("DATA_DEVICE", DATA_VOLUME_DEVICE.to_owned()),
            ("DATA_DIR", DATA_DIR.to_owned()),
            ("CONFIG_FILE", CONFIG_FILE.to_owned()),
            ("CLUSTER_ID", self.cluster_id.to_owned()),
            ("BOOTSTRAP_SERVER", format!("{}:{BROKER_PORT}", node.private_ip)),
        ];
        let mut script = format!(
            "#!/bin/bash\n\
             # Kafka broker {node_id} of an ImagePipeline (KRaft broker and controller), rendered by the operator.\n\
             set -Eeuo pipefail\n\
             {settings}\
             server_properties() {{\ncat <<'{PROPERTIES_HEREDOC}'\n{properties}{PROPERTIES_HEREDOC}\n}}\n\
             heartbeat_body() {{\ncat <<'{HEARTBEAT_HEREDOC}'\n{HEARTBEAT_SCRIPT}{HEARTBEAT_HEREDOC}\n}}\n\
             {BOOT_SCRIPT}",
            node_id = node.node_id,
            settings = assignments(&settings),
        );
        // One broker creates the topics; --if-not-exists makes a rerun harmless.
        if node.node_id == 1 {
            script.push_str(&assignments(&[
                ("TOPIC", self.kafka.topic.clone()),
                ("DLQ_TOPIC", dead_letter_topic(&self.kafka.topic)),
                ("PARTITIONS", self.kafka.partitions.to_string()),
                ("REPLICATION_FACTOR", self.kafka.replication_factor.to_string()),
            ]));
            script.push_str(CREATE_TOPICS_SCRIPT);
        }
        script.push_str("log \"broker ready\"\n");
        script
    }
}

/// User data as `RunInstances` takes it: base64 of the script.
pub fn encode_user_data(script: &str) -> String {
    aws_smithy_types::base64::encode(script)
}

/// The server.properties embedded in a script from [`BrokerSetup::user_data`],
/// or `None` when the script embeds none.
pub fn properties_from_user_data(script: &str) -> Option<BTreeMap<String, String>> {
    let start = format!("<<'{PROPERTIES_HEREDOC}'");
    let mut lines = script.lines().skip_while(|line| !line.ends_with(&start)).skip(1);
    let mut properties = BTreeMap::new();
    loop {
        let line = lines.next()?;
        if line == PROPERTIES_HEREDOC {
            return Some(properties);
        }
        if let Some((key, value)) = line.split_once('=') {
            properties.insert(key.to_owned(), value.to_owned());
        }
    }
}

fn join(placements: &[BrokerPlacement], render: impl Fn(&BrokerPlacement) -> String) -> String {
    placements.iter().map(render).collect::<Vec<_>>().join(",")
}

/// `NAME='value'` lines.
fn assignments(settings: &[(&str, String)]) -> String {
    settings
        .iter()
        .map(|(name, value)| format!("{name}={}\n", shell_quote(value)))
        .collect()
}

fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests;
