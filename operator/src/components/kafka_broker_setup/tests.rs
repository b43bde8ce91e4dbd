use std::collections::HashSet;

use super::*;

const ZONES: [&str; 3] = ["eu-west-1a", "eu-west-1b", "eu-west-1c"];
const CIDRS: [&str; 3] = ["10.41.0.0/20", "10.41.16.0/20", "10.41.32.0/20"];
/// The network component never makes subnets smaller than /28.
const SMALLEST_SUBNETS: [(&str, &str); 2] = [("eu-west-1a", "10.41.0.0/28"), ("eu-west-1b", "10.41.0.16/28")];

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
    let archive = staged_archive();
    let setup = BrokerSetup {
        placements: &placements,
        cluster_id: &cluster_id,
        max_image_bytes: 20 * 1024 * 1024,
        kafka: &kafka,
        region: "eu-west-1",
        bucket: "ipl-media-photos-1a2b3c4d",
        archive: &archive,
    };
    test(&setup, &placements)
}

fn staged_archive() -> StagedArchive {
    StagedArchive {
        bucket: "ipl-media-photos-1a2b3c4d".to_owned(),
        key: "artifacts/kafka/4.1.1/kafka_2.13-4.1.1.tgz".to_owned(),
        sha512: "ab".repeat(64),
        version: "4.1.1".to_owned(),
    }
}

/// What bash makes of the settings lines of `script` (those before the first
/// function): `NAME=value` per variable, in the script's order.
fn settings_as_bash_reads_them(script: &str) -> Vec<(String, String)> {
    let settings: Vec<&str> = script
        .lines()
        .skip_while(|line| !line.starts_with("set -"))
        .skip(1)
        .take_while(|line| !line.contains("() {"))
        .collect();
    let names: Vec<&str> = settings
        .iter()
        .filter_map(|line| line.split_once('='))
        .map(|(name, _)| name)
        .collect();
    let print = names
        .iter()
        .map(|name| format!("printf '%s\\0' \"${name}\"\n"))
        .collect::<String>();
    let output = std::process::Command::new("bash")
        .args(["-c", &format!("{}\n{print}", settings.join("\n"))])
        .output()
        .expect("run bash");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let values = String::from_utf8(output.stdout).unwrap();
    names
        .iter()
        .map(|name| name.to_string())
        .zip(values.split_terminator('\0').map(str::to_owned))
        .collect()
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
            let other = setup.user_data(placement);
            assert!(
                !other.contains("--create"),
                "broker {} creates topics",
                placement.node_id
            );
            assert!(!other.lines().any(|l| l.starts_with("TOPIC=")));
        }
    });
}

#[test]
fn every_rendered_value_reaches_the_script_as_it_is_whatever_it_contains() {
    let hostile = StagedArchive {
        bucket: "kafka-mirror".to_owned(),
        key: "it's $(touch /tmp/pwned) `x` \"q\" \\ ; kafka.tgz".to_owned(),
        sha512: "0f".repeat(64),
        version: "4.1.1'; echo".to_owned(),
    };
    let placements = place_brokers(&subnets(2), 2).unwrap();
    let kafka = KafkaSpec::default();
    let setup = BrokerSetup {
        placements: &placements,
        cluster_id: "AAAAAAAAAAAAAAAAAAAAAA",
        max_image_bytes: 1024,
        kafka: &kafka,
        region: "eu-west-1",
        bucket: "ipl-media-photos-1a2b3c4d",
        archive: &hostile,
    };
    let read = settings_as_bash_reads_them(&setup.user_data(&placements[1]));
    let expected = [
        ("NODE_ID", "2"),
        ("REGION", "eu-west-1"),
        ("BUCKET", "ipl-media-photos-1a2b3c4d"),
        ("HEARTBEAT_KEY", "kafka/brokers/2.json"),
        ("ARCHIVE_BUCKET", "kafka-mirror"),
        ("ARCHIVE_KEY", hostile.key.as_str()),
        ("ARCHIVE_SHA512", hostile.sha512.as_str()),
        ("KAFKA_VERSION", hostile.version.as_str()),
        ("DATA_DEVICE", DATA_VOLUME_DEVICE),
        ("DATA_DIR", DATA_DIR),
        ("CONFIG_FILE", CONFIG_FILE),
        ("CLUSTER_ID", "AAAAAAAAAAAAAAAAAAAAAA"),
        ("BOOTSTRAP_SERVER", "10.41.16.10:9092"),
    ]
    .map(|(name, value)| (name.to_owned(), value.to_owned()));
    assert_eq!(read, expected);
}

#[test]
fn no_embedded_script_line_can_end_its_heredoc_early() {
    for (script, delimiter) in [
        (HEARTBEAT_SCRIPT, HEARTBEAT_HEREDOC),
        (BOOT_SCRIPT, HEARTBEAT_HEREDOC),
    ] {
        assert!(!script.lines().any(|line| line == delimiter), "{delimiter}");
    }
    assert!(
        HEARTBEAT_SCRIPT.ends_with('\n')
            && BOOT_SCRIPT.ends_with('\n')
            && CREATE_TOPICS_SCRIPT.ends_with('\n')
    );
}

#[test]
fn user_data_is_valid_bash_that_installs_java_and_the_verified_kafka() {
    with_setup(3, 3, |setup, placements| {
        let script = setup.user_data(&placements[0]);
        assert!(script.starts_with("#!/bin/bash\n") && script.contains("\nset -Eeuo pipefail\n"));
        for step in [
            "dnf install -y java-21-amazon-corretto-headless",
            "aws s3 cp --region \"$REGION\" --only-show-errors \"$archive\"",
            "[ \"$actual\" = \"$ARCHIVE_SHA512\" ]",
            "systemctl enable --now imagepipeline-kafka-heartbeat.timer",
            "systemctl enable --now kafka.service",
        ] {
            assert!(script.contains(step), "missing {step}");
        }
        // The heartbeat starts before anything is installed.
        assert!(script.find("heartbeat.timer\n").unwrap() < script.find("dnf install").unwrap());
        let check = std::process::Command::new("bash")
            .args(["-n", "-c", &script])
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
    });
}

#[test]
fn the_largest_user_data_the_spec_allows_fits_ec2s_16_kib() {
    let placements = place_brokers(&subnets(3), 9).unwrap();
    let kafka = KafkaSpec {
        brokers: Some(9),
        topic: "t".repeat(245),
        partitions: 10_000,
        replication_factor: 9,
        ..KafkaSpec::default()
    };
    let archive = StagedArchive {
        bucket: "b".repeat(63),
        key: "k".repeat(1024),
        sha512: "f".repeat(128),
        version: "4.1.1".to_owned(),
    };
    let cluster_id = cluster_id("team-a/photos");
    let setup = BrokerSetup {
        placements: &placements,
        cluster_id: &cluster_id,
        max_image_bytes: 100 * 1024 * 1024,
        kafka: &kafka,
        region: "ap-southeast-5",
        bucket: &"p".repeat(63),
        archive: &archive,
    };
    let script = setup.user_data(&placements[0]);
    assert!(
        script.len() < 16 * 1024,
        "{} bytes: EC2 takes at most 16 KiB of user data",
        script.len()
    );
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
