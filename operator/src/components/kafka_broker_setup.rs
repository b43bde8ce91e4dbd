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

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ingest_core::contract::kafka::dead_letter_topic;
use ipnet::Ipv4Net;
use sha2::{Digest, Sha256};

use crate::api::v1alpha1::KafkaSpec;
use crate::engine::ComponentError;

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
    pub region: &'a str,
    /// The pipeline's bucket, where heartbeats go.
    pub bucket: &'a str,
    /// Where Kafka is fetched from.
    pub archive: &'a crate::resources::kafka_distribution::StagedArchive,
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
    /// Amazon Linux 2023). Kafka must already be in the AMI at /opt/kafka.
    pub fn user_data(&self, node: &BrokerPlacement) -> String {
        let properties: String = self
            .properties(node)
            .iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect();
        let mut script = format!(
            "#!/bin/bash\n\
             # Kafka broker {node_id} of an ImagePipeline (KRaft broker and controller), rendered by the operator.\n\
             set -euo pipefail\n\
             DATA_DEVICE={device}\n\
             DATA_DIR={data_dir}\n\
             CONFIG_FILE={config_file}\n\
             CLUSTER_ID={cluster_id}\n\
             {SETUP_VOLUME}\
             cat > \"$CONFIG_FILE\" <<'{PROPERTIES_HEREDOC}'\n\
             {properties}\
             {PROPERTIES_HEREDOC}\n\
             {START_KAFKA}",
            node_id = node.node_id,
            device = shell_quote(DATA_VOLUME_DEVICE),
            data_dir = shell_quote(DATA_DIR),
            config_file = shell_quote(CONFIG_FILE),
            cluster_id = shell_quote(self.cluster_id),
        );
        // One broker creates the topics; --if-not-exists makes a rerun harmless.
        if node.node_id == 1 {
            script.push_str(&format!(
                "TOPIC={topic}\nDLQ_TOPIC={dlq}\nPARTITIONS={partitions}\nREPLICATION_FACTOR={rf}\nBOOTSTRAP_SERVER={bootstrap}\n{CREATE_TOPICS}",
                topic = shell_quote(&self.kafka.topic),
                dlq = shell_quote(&dead_letter_topic(&self.kafka.topic)),
                partitions = shell_quote(&self.kafka.partitions.to_string()),
                rf = shell_quote(&self.kafka.replication_factor.to_string()),
                bootstrap = shell_quote(&format!("{}:{BROKER_PORT}", node.private_ip)),
            ));
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

fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// Checks the AMI, then finds, formats (once) and mounts the data volume.
const SETUP_VOLUME: &str = r#"KAFKA_HOME=/opt/kafka
export LOG_DIR=/var/log/kafka
log() { echo "imagepipeline-kafka: $*"; }
fail() {
  echo "imagepipeline-kafka: FATAL: $*" >&2
  echo "imagepipeline-kafka: FATAL: $*" >/dev/console 2>/dev/null || true
  exit 1
}
# The Kafka VPC has no internet gateway: nothing can be downloaded at boot.
[ -x "$KAFKA_HOME/bin/kafka-server-start.sh" ] \
  || fail "Kafka is missing: the broker AMI (spec.kafka.amiId) must have Apache Kafka installed at /opt/kafka; the Kafka VPC has no internet access to download it"
command -v java >/dev/null \
  || fail "Java is missing: the broker AMI (spec.kafka.amiId) must have a Java runtime for the Kafka at /opt/kafka"

# Nitro instances show EBS volumes as NVMe disks and Xen ones as /dev/xvdX;
# the mapped name survives only in udev symlinks and the NVMe controller data.
find_data_device() {
  local wanted="${DATA_DEVICE#/dev/}" candidate disk model root_source root_disk
  local others=()
  for candidate in "/dev/$wanted" "/dev/xvd${wanted#sd}"; do
    if [ -b "$candidate" ]; then readlink -f "$candidate"; return 0; fi
  done
  root_source="$(findmnt -nvo SOURCE /)"
  root_disk="$(lsblk -npo PKNAME "$root_source" | head -n 1)"
  root_disk="${root_disk:-$root_source}"
  while read -r disk model; do
    [ "$disk" != "$root_disk" ] || continue
    # Instance-store disks are NVMe too; only EBS can be the data volume.
    case "$model" in *"Elastic Block Store"*) ;; *) continue ;; esac
    candidate="$(ebsnvme-id -b "$disk" 2>/dev/null || true)"
    candidate="${candidate#/dev/}"
    if [ "$candidate" = "$wanted" ] || [ "$candidate" = "xvd${wanted#sd}" ]; then echo "$disk"; return 0; fi
    others+=("$disk")
  done < <(lsblk -dnpo NAME,MODEL)
  if [ "${#others[@]}" -eq 1 ]; then echo "${others[0]}"; return 0; fi
  return 1
}
device=""
for _ in $(seq 60); do
  device="$(find_data_device)" && break
  device=""
  sleep 5
done
[ -n "$device" ] || fail "the data volume $DATA_DEVICE did not appear within 5 minutes"
udevadm settle || true
if [ -z "$(blkid -o value -s TYPE "$device" || true)" ]; then
  log "formatting the new data volume $device"
  # XFS: no lost+found directory, which Kafka would take for a broken partition.
  mkfs.xfs -q "$device"
fi
fs_type="$(blkid -o value -s TYPE "$device")"
fs_uuid="$(blkid -o value -s UUID "$device")"
mkdir -p "$DATA_DIR" /etc/kafka "$LOG_DIR"
grep -q "^UUID=$fs_uuid " /etc/fstab \
  || echo "UUID=$fs_uuid $DATA_DIR $fs_type defaults,noatime,nofail 0 2" >> /etc/fstab
mountpoint -q "$DATA_DIR" || mount "$DATA_DIR"
id kafka >/dev/null 2>&1 || useradd --system --no-create-home --home-dir "$DATA_DIR" --shell /sbin/nologin kafka
"#;

/// Formats the log dir once and runs Kafka under systemd.
const START_KAFKA: &str = r#""$KAFKA_HOME/bin/kafka-storage.sh" format --cluster-id "$CLUSTER_ID" --config "$CONFIG_FILE" --ignore-formatted
chown -R kafka:kafka "$DATA_DIR" "$LOG_DIR"
# Large records need more than Kafka's default 1 GiB heap; the rest of the
# memory is page cache, which Kafka relies on more than on heap.
heap_mib=$(( $(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo) / 4 ))
heap_mib=$(( heap_mib < 1024 ? 1024 : (heap_mib > 6144 ? 6144 : heap_mib) ))
cat > /etc/systemd/system/kafka.service <<UNIT
[Unit]
Description=Apache Kafka (KRaft broker and controller)
Wants=network-online.target
After=network-online.target
RequiresMountsFor=$DATA_DIR

[Service]
User=kafka
Group=kafka
Environment="LOG_DIR=$LOG_DIR"
Environment="KAFKA_HEAP_OPTS=-Xms${heap_mib}m -Xmx${heap_mib}m"
ExecStart="$KAFKA_HOME/bin/kafka-server-start.sh" "$CONFIG_FILE"
Restart=on-failure
RestartSec=10
LimitNOFILE=100000
TimeoutStopSec=300

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now kafka.service
"#;

/// Waits for the quorum, then creates the topic and its dead-letter topic.
const CREATE_TOPICS: &str = r#"# The other brokers boot in parallel, and a topic needs as many registered
# brokers as its replication factor: retry until they are there.
deadline=$(( $(date +%s) + 1800 ))
log "waiting for the controller quorum"
until "$KAFKA_HOME/bin/kafka-metadata-quorum.sh" --bootstrap-server "$BOOTSTRAP_SERVER" describe --status >/dev/null 2>&1; do
  [ "$(date +%s)" -lt "$deadline" ] || fail "the KRaft quorum did not form within 30 minutes; see the other brokers' console logs"
  sleep 10
done
for topic in "$TOPIC" "$DLQ_TOPIC"; do
  until "$KAFKA_HOME/bin/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP_SERVER" --create --if-not-exists \
      --topic "$topic" --partitions "$PARTITIONS" --replication-factor "$REPLICATION_FACTOR"; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "could not create topic $topic within 30 minutes (spec.kafka.replicationFactor $REPLICATION_FACTOR needs that many running brokers)"
    sleep 10
  done
  log "topic $topic exists"
done
"#;

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    const ZONES: [&str; 3] = ["eu-west-1a", "eu-west-1b", "eu-west-1c"];
    const CIDRS: [&str; 3] = ["10.41.0.0/20", "10.41.16.0/20", "10.41.32.0/20"];
    /// The network component never makes subnets smaller than /28.
    const SMALLEST_SUBNETS: [(&str, &str); 2] =
        [("eu-west-1a", "10.41.0.0/28"), ("eu-west-1b", "10.41.0.16/28")];

    fn subnets(zones: usize) -> Vec<(&'static str, &'static str)> {
        ZONES.into_iter().zip(CIDRS).take(zones).collect()
    }

    fn with_setup<T>(
        brokers: i32,
        replication_factor: i32,
        test: impl Fn(&BrokerSetup, &[BrokerPlacement]) -> T,
    ) -> T {
        let placements = place_brokers(&subnets(3), brokers).unwrap();
        let kafka = KafkaSpec {
            brokers: Some(brokers),
            replication_factor,
            ..KafkaSpec::default()
        };
        let cluster_id = cluster_id("team-a/photos");
        let archive = crate::resources::kafka_distribution::StagedArchive {
            bucket: "b".to_owned(),
            key: "k".to_owned(),
            sha512: String::new(),
            version: "4.1.1".to_owned(),
        };
        let setup = BrokerSetup {
            placements: &placements,
            cluster_id: &cluster_id,
            max_image_bytes: 20 * 1024 * 1024,
            kafka: &kafka,
            region: "eu-west-1",
            bucket: "b",
            archive: &archive,
        };
        test(&setup, &placements)
    }

    #[test]
    fn brokers_go_round_robin_over_zones_at_unique_unreserved_addresses_in_their_subnet() {
        for zones in [2, 3] {
            for brokers in [1, 3, 4, 6] {
                let placements = place_brokers(&subnets(zones), brokers).unwrap();
                assert_eq!(placements.len(), brokers as usize);
                let mut ips = HashSet::new();
                for (index, placement) in placements.iter().enumerate() {
                    assert_eq!(placement.node_id as usize, index + 1);
                    assert_eq!(placement.availability_zone, ZONES[index % zones]);
                    assert_eq!(placement.subnet_cidr.to_string(), CIDRS[index % zones]);
                    let net = placement.subnet_cidr;
                    let ip = u32::from(placement.private_ip);
                    assert!(net.contains(&placement.private_ip), "{placement:?}");
                    assert!(ip >= u32::from(net.network()) + 4 && ip < u32::from(net.broadcast()));
                    assert!(ips.insert(placement.private_ip), "duplicate IP in {placements:?}");
                }
            }
        }
    }

    #[test]
    fn nine_brokers_fit_in_two_of_the_smallest_subnets_the_network_makes() {
        let placements = place_brokers(&SMALLEST_SUBNETS, 9).unwrap();
        assert_eq!(placements[8].private_ip, Ipv4Addr::new(10, 41, 0, 14));
    }

    #[test]
    fn a_subnet_too_small_for_its_brokers_is_a_terminal_error_naming_the_spec_fields() {
        let err = place_brokers(&SMALLEST_SUBNETS, 12).unwrap_err();
        assert!(err.is_terminal());
        assert_eq!(err.reason, "KafkaSubnetTooSmall");
        assert!(
            err.message.contains("spec.network.kafkaVpcCidr"),
            "{}",
            err.message
        );
        assert!(err.message.contains("spec.kafka.brokers"), "{}", err.message);
    }

    #[test]
    fn every_broker_has_the_same_quorum_voters_naming_every_broker() {
        with_setup(4, 3, |setup, placements| {
            let expected = "1@10.41.0.10:9093,2@10.41.16.10:9093,3@10.41.32.10:9093,4@10.41.0.11:9093";
            for placement in placements {
                let properties = setup.properties(placement);
                assert_eq!(properties["controller.quorum.voters"], expected);
                assert_eq!(properties["node.id"], placement.node_id.to_string());
                assert_eq!(
                    properties["advertised.listeners"],
                    format!("PLAINTEXT://{}:9092", placement.private_ip)
                );
            }
            assert_eq!(
                bootstrap_servers(placements),
                "10.41.0.10:9092,10.41.16.10:9092,10.41.32.10:9092,10.41.0.11:9092"
            );
        });
    }

    #[test]
    fn brokers_accept_records_larger_than_the_largest_image() {
        with_setup(3, 3, |setup, placements| {
            let properties = setup.properties(&placements[0]);
            for key in [
                "message.max.bytes",
                "replica.fetch.max.bytes",
                "socket.request.max.bytes",
            ] {
                let limit: i64 = properties[key].parse().unwrap();
                assert!(limit > setup.max_image_bytes, "{key} = {limit}");
            }
        });
    }

    #[test]
    fn durability_settings_follow_replication_factor_and_broker_count() {
        const DURABILITY_KEYS: [&str; 4] = [
            "default.replication.factor",
            "min.insync.replicas",
            "offsets.topic.replication.factor",
            "auto.create.topics.enable",
        ];
        let settings = |brokers, rf| {
            with_setup(brokers, rf, |setup, placements| {
                let properties = setup.properties(&placements[0]);
                DURABILITY_KEYS.map(|key| properties[key].clone())
            })
        };
        assert_eq!(settings(1, 1), ["1", "1", "1", "false"]);
        assert_eq!(settings(2, 2), ["2", "2", "2", "false"]);
        assert_eq!(settings(5, 3), ["3", "2", "3", "false"]);
    }

    #[test]
    fn user_data_embeds_exactly_the_broker_properties() {
        with_setup(3, 3, |setup, placements| {
            for placement in placements {
                let embedded = properties_from_user_data(&setup.user_data(placement));
                assert_eq!(embedded, Some(setup.properties(placement)));
            }
        });
        assert_eq!(properties_from_user_data("#!/bin/bash\necho hi\n"), None);
    }

    #[test]
    fn encoded_user_data_decodes_to_the_script() {
        with_setup(3, 3, |setup, placements| {
            let script = setup.user_data(&placements[0]);
            let decoded = aws_smithy_types::base64::decode(encode_user_data(&script)).unwrap();
            assert_eq!(String::from_utf8(decoded).unwrap(), script);
        });
    }

    #[test]
    fn only_node_one_creates_the_topic_and_its_dlq_with_the_spec_partitions_and_replication() {
        with_setup(3, 2, |setup, placements| {
            let first = setup.user_data(&placements[0]);
            let settings = ["TOPIC='images'", "DLQ_TOPIC='images.dlq'", "PARTITIONS='12'"];
            for line in settings.into_iter().chain(["REPLICATION_FACTOR='2'"]) {
                assert!(first.lines().any(|l| l == line), "missing {line}");
            }
            assert!(first.contains("--create --if-not-exists"));
            for placement in &placements[1..] {
                assert!(!setup.user_data(placement).contains("kafka-topics.sh"));
            }
        });
    }

    #[test]
    fn user_data_is_valid_bash_that_fails_loudly_without_kafka_and_fits_ec2() {
        with_setup(3, 3, |setup, placements| {
            let script = setup.user_data(&placements[0]);
            assert!(script.starts_with("#!/bin/bash\n") && script.contains("set -euo pipefail"));
            assert!(script.contains("spec.kafka.amiId) must have Apache Kafka installed at /opt/kafka"));
            assert!(script.len() < 16 * 1024, "EC2 takes at most 16 KiB of user data");
            let check = std::process::Command::new("bash")
                .args(["-n", "-c", &script])
                .output();
            let check = check.unwrap();
            assert!(
                check.status.success(),
                "{}",
                String::from_utf8_lossy(&check.stderr)
            );
        });
    }

    #[test]
    fn cluster_id_is_22_url_safe_chars_stable_per_seed_and_distinct_across_seeds() {
        let id = cluster_id("team-a/photos");
        assert_eq!(id.len(), 22);
        assert!(
            id.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-_".contains(&c)),
            "{id}"
        );
        assert!(!id.starts_with('-'));
        assert_eq!(cluster_id("team-a/photos"), id);
        assert_ne!(cluster_id("team-b/photos"), id);
    }
}
