//! The managed Kafka brokers' user data, executed: each test boots one broker
//! "instance" from the script the operator renders and checks what a user
//! would — Kafka installed from the verified archive, the broker serving its
//! topics, the heartbeats in the bucket, and `KafkaReady` computed from them.
//!
//! **The sandbox** (`broker_boot/machine.rs`, `machine.sh`): a mount and PID
//! namespace (`unshare`) whose PID 1 runs the user data as cloud-init would
//! (root, a plain environment, from /var/lib/cloud/instance/scripts). /etc,
//! /opt, /usr, /var, /tmp and /dev are overlays whose upper layers are in the
//! test's folder, and /run a tmpfs, so the host never changes (each test
//! checks that); ending PID 1 ends every process the boot started. The
//! instance's address is on loopback (127.0.0.0/8), so Kafka's listener binds
//! without a network namespace, and the test reaches it from outside.
//!
//! **Real**: bash, coreutils, util-linux (`losetup`, `blkid`, `mount`,
//! `findmnt`, `setpriv`, `flock`), `useradd`, `tar`, `sha512sum`, python3 (the
//! heartbeat's JSON), the AWS CLI (pinned awscli v1, as /usr/bin/aws), the
//! AWS emulator as S3 over HTTPS, reached through the SDKs' standard variables
//! (`AWS_ENDPOINT_URL`, `AWS_CA_BUNDLE` and fake keys: they stand for the S3
//! gateway endpoint's address and the instance role's credentials; the script
//! has no test hooks), the data volume (a loop device, formatted and mounted
//! through /etc/fstab by UUID), and the broker: tansu, started by the test's
//! Kafka distribution (`broker_boot/kafka/bin`) as the `kafka` user.
//!
//! **Stand-ins** (`broker_boot/image/`), for what exists only on EC2 or
//! cannot run here: `ec2-metadata` (the instance metadata service) answers the
//! test's instance id; `dnf` (the Amazon Linux repositories) logs its call and
//! installs a `java` that tells its version; `systemctl`, because there is no
//! systemd as PID 1: it starts a service's ExecStart as its User with its
//! Environment, runs a timer's service every second instead of every 30 s,
//! answers `is-active`/`is-failed`/`show -p Result`, and does not restart a
//! service that dies (a killed broker stays failed). `mkfs.xfs` is a stand-in
//! (mke2fs, ext4) only where the host has no xfsprogs. The data volume is
//! found by its udev name (/dev/sdf → the loop device); the NVMe controller
//! lookup (`ebsnvme-id`, for volumes without that link) is not exercised.
//! Java is not run: the test distribution checks that `java` runs, then
//! starts tansu, which speaks Kafka's protocol but is not Kafka.

use imagepipeline_e2e::REGION;
use imagepipeline_operator::api::v1alpha1::KafkaSpec;
use imagepipeline_operator::components::kafka_broker_setup::{BrokerSetup, cluster_id, place_brokers};
use imagepipeline_operator::resources::kafka_distribution::StagedArchive;
use ingest_core::contract::kafka::heartbeat::BrokerState;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

#[path = "broker_boot/broker.rs"]
mod broker;
#[path = "broker_boot/distribution.rs"]
mod distribution;
#[path = "broker_boot/host.rs"]
mod host;
#[path = "broker_boot/machine.rs"]
mod machine;
#[path = "broker_boot/tools.rs"]
mod tools;

use broker::{BUCKET, BootedBroker, KAFKA_VERSION, Scenario, shellcheck, staged, stock_image};
use distribution::Archive;
use machine::MachineImage;

#[tokio::test]
async fn a_stock_instance_installs_java_and_the_verified_kafka_serves_and_is_ready_until_its_broker_dies() {
    let (genuine, _) = distribution::archives(KAFKA_VERSION);
    let Archive { bytes, sha512 } = genuine;
    let broker = BootedBroker::boot(Scenario {
        staged: StagedArchive {
            sha512,
            ..staged(KAFKA_VERSION)
        },
        uploaded: Some(bytes),
        image: stock_image("i-0b0075c0ffee1a2b3"),
    })
    .await;
    let machine = &broker.machine;
    assert_eq!(broker.boot_status, 0, "{}", machine.console());

    let dnf_log = machine.read("/var/log/dnf.log").unwrap_or_default();
    assert!(
        dnf_log.contains("dnf install -y java-21-amazon-corretto-headless"),
        "{dnf_log}"
    );
    let start_script = machine
        .read("/opt/kafka/bin/kafka-server-start.sh")
        .expect("Kafka in /opt/kafka");
    assert!(
        start_script.contains("imagepipeline-test/tansu"),
        "the test's distribution, unpacked"
    );
    assert!(
        machine
            .read(&format!("/opt/kafka/libs/kafka-clients-{KAFKA_VERSION}.jar"))
            .is_some()
    );
    let mounted = machine.run(&["findmnt", "-no", "SOURCE,FSTYPE", "/var/lib/kafka/data"]);
    let fs_type = if machine.real_xfs { "xfs" } else { "ext4" };
    assert_eq!(
        String::from_utf8_lossy(&mounted.stdout)
            .split_whitespace()
            .collect::<Vec<_>>(),
        [machine.data_disk(), fs_type]
    );
    let meta = machine
        .read("/var/lib/kafka/data/meta.properties")
        .expect("KRaft storage formatted");
    assert!(
        meta.contains(&format!("cluster.id={}", cluster_id("media/photos"))),
        "{meta}"
    );
    assert_eq!(broker.topics(), ["images", "images.dlq"]);

    let serving = broker
        .heartbeat_when(|beat| beat.state == BrokerState::Serving)
        .await;
    assert_eq!(serving.instance_id, broker.instance_id);
    assert_eq!(serving.kafka_version, KAFKA_VERSION);
    assert!(serving.quorum_leader);
    assert_eq!(serving.error, None);
    assert_eq!(serving.under_replicated_partitions, 0);
    assert!(serving.data_free_bytes > 400 * 1024 * 1024, "{serving:?}");
    let written: Timestamp = serving.time.parse().unwrap();
    assert!(Timestamp::now().duration_since(written).abs() < SignedDuration::from_secs(60));
    assert_eq!(
        broker.kafka_ready_at(Timestamp::now()).await,
        None,
        "KafkaReady True"
    );
    let states = broker.reported_states().await;
    assert_eq!(
        states.first(),
        Some(&BrokerState::Installing),
        "the heartbeat runs before anything is installed: {states:?}"
    );

    // The scripts that ran: the user data and the heartbeat as installed.
    shellcheck("user-data", &broker.user_data);
    let installed = machine
        .read("/usr/local/bin/imagepipeline-kafka-heartbeat")
        .unwrap();
    shellcheck("imagepipeline-kafka-heartbeat", &installed);

    // The broker dies: the next heartbeat says so, and an old one is silence.
    let killed = machine.run(&["systemctl", "kill", "--signal=KILL", "kafka.service"]);
    assert!(
        killed.status.success(),
        "{}",
        String::from_utf8_lossy(&killed.stderr)
    );
    let failed = broker
        .heartbeat_when(|beat| beat.state != BrokerState::Serving)
        .await;
    assert_eq!(failed.state, BrokerState::Failed);
    let error = failed.error.unwrap();
    assert!(error.starts_with("kafka.service failed (signal)"), "{error}");
    let not_ready = broker
        .kafka_ready_at(Timestamp::now())
        .await
        .expect("KafkaReady False");
    assert_eq!(not_ready.reason, "BrokerFailed");
    assert_eq!(
        not_ready.message,
        format!("broker 1 ({}): failed: {error}", broker.instance_id)
    );
    let later = Timestamp::now()
        .checked_add(SignedDuration::from_mins(3))
        .unwrap();
    let silent = broker.kafka_ready_at(later).await.expect("KafkaReady False");
    assert_eq!(silent.reason, "BrokerSilent");
    assert_eq!(
        silent.message,
        format!("broker 1 ({}) has not reported for 3 min", broker.instance_id)
    );
}

#[tokio::test]
async fn a_tampered_archive_is_refused_and_the_heartbeat_says_why() {
    let (genuine, tampered) = distribution::archives(KAFKA_VERSION);
    let broker = BootedBroker::boot(Scenario {
        staged: StagedArchive {
            sha512: genuine.sha512.clone(),
            ..staged(KAFKA_VERSION)
        },
        uploaded: Some(tampered.bytes),
        image: stock_image("i-0badc0de5eed0001f"),
    })
    .await;
    let machine = &broker.machine;
    assert_ne!(broker.boot_status, 0, "{}", machine.console());
    assert_eq!(
        machine.read("/opt/kafka/bin/kafka-server-start.sh"),
        None,
        "Kafka is not installed"
    );
    assert_eq!(
        machine.read("/etc/systemd/system/kafka.service"),
        None,
        "nor started"
    );

    let failed = broker
        .heartbeat_when(|beat| beat.state == BrokerState::Failed)
        .await;
    let error = failed.error.expect("a failed heartbeat says why");
    let object = format!("s3://{BUCKET}/{}", broker.staged.key);
    for part in ["SHA-512 mismatch", &object, &tampered.sha512, &genuine.sha512] {
        assert!(error.contains(part), "{part} not in {error}");
    }
    assert_eq!(failed.kafka_version, KAFKA_VERSION);
    assert!(!failed.quorum_leader);
    let states = broker.reported_states().await;
    assert_eq!(states.first(), Some(&BrokerState::Installing), "{states:?}");
    let console = machine.read("/dev/console").unwrap_or_default();
    assert!(console.contains(&format!("FATAL: {error}")), "{console}");

    let not_ready = broker
        .kafka_ready_at(Timestamp::now())
        .await
        .expect("KafkaReady False");
    assert_eq!(not_ready.reason, "BrokerFailed");
    assert_eq!(
        not_ready.message,
        format!("broker 1 ({}): failed: {error}", broker.instance_id)
    );
}

#[tokio::test]
async fn a_custom_image_with_java_and_kafka_installs_neither_and_reports_its_own_kafka() {
    const IMAGE_KAFKA_VERSION: &str = "4.0.0";
    let image_files = tempfile::tempdir().unwrap();
    let kafka = distribution::unpacked(image_files.path(), IMAGE_KAFKA_VERSION);
    // Nothing is staged: a download would fail the boot.
    let broker = BootedBroker::boot(Scenario {
        staged: StagedArchive {
            sha512: "0".repeat(128),
            ..staged(KAFKA_VERSION)
        },
        uploaded: None,
        image: MachineImage {
            instance_id: "i-0c057a1d5e6f7a8b9".to_owned(),
            preinstalled_kafka: Some(kafka),
        },
    })
    .await;
    let machine = &broker.machine;
    assert_eq!(broker.boot_status, 0, "{}", machine.console());
    assert_eq!(machine.read("/var/log/dnf.log"), None, "dnf was not run");
    assert_eq!(broker.topics(), ["images", "images.dlq"]);
    let serving = broker
        .heartbeat_when(|beat| beat.state == BrokerState::Serving)
        .await;
    assert_eq!(serving.kafka_version, IMAGE_KAFKA_VERSION);
    assert_eq!(
        broker.kafka_ready_at(Timestamp::now()).await,
        None,
        "KafkaReady True"
    );
}

#[tokio::test]
async fn an_unexpected_failure_is_reported_with_the_command_that_failed_quotes_and_all() {
    let image_files = tempfile::tempdir().unwrap();
    let kafka = distribution::unpacked(image_files.path(), KAFKA_VERSION);
    std::fs::write(
        kafka.join("bin/kafka-storage.sh"),
        "#!/bin/sh\necho 'a \"broken\" storage tool' >&2\nexit 3\n",
    )
    .unwrap();
    let broker = BootedBroker::boot(Scenario {
        staged: StagedArchive {
            sha512: "0".repeat(128),
            ..staged(KAFKA_VERSION)
        },
        uploaded: None,
        image: MachineImage {
            instance_id: "i-0fee1bad0c4d5e6f7".to_owned(),
            preinstalled_kafka: Some(kafka),
        },
    })
    .await;
    assert_ne!(broker.boot_status, 0, "{}", broker.machine.console());
    let failed = broker
        .heartbeat_when(|beat| beat.state == BrokerState::Failed)
        .await;
    // The failing line as bash saw it: quotes and `$` survive the JSON.
    let error = failed.error.unwrap();
    let command = r#""$KAFKA_HOME/bin/kafka-storage.sh" format --cluster-id "$CLUSTER_ID" --config "$CONFIG_FILE" --ignore-formatted"#;
    assert!(error.starts_with("boot script line "), "{error}");
    assert!(
        error.ends_with(&format!(": {command} exited with status 3")),
        "{error}"
    );
    let not_ready = broker.kafka_ready_at(Timestamp::now()).await.unwrap();
    assert_eq!(not_ready.reason, "BrokerFailed");
    assert!(not_ready.message.ends_with(&error), "{}", not_ready.message);
}

#[test]
fn every_user_data_the_operator_renders_passes_shellcheck() {
    let zones = [
        ("eu-west-1a", "10.41.0.0/20"),
        ("eu-west-1b", "10.41.16.0/20"),
        ("eu-west-1c", "10.41.32.0/20"),
    ];
    let placements = place_brokers(&zones, 3).unwrap();
    let kafka = KafkaSpec::default();
    let archive = StagedArchive {
        sha512: "ab".repeat(64),
        ..staged(KAFKA_VERSION)
    };
    let setup = BrokerSetup {
        placements: &placements,
        cluster_id: &cluster_id("media/photos"),
        max_image_bytes: 20 * 1024 * 1024,
        kafka: &kafka,
        region: REGION,
        bucket: BUCKET,
        archive: &archive,
    };
    // Node 1 also creates the topics; the others do not.
    for placement in &placements[..2] {
        let name = format!("user-data-of-broker-{}", placement.node_id);
        shellcheck(&name, &setup.user_data(placement));
    }
}

#[test]
fn the_sandbox_s_own_scripts_pass_shellcheck() {
    let stand_ins = ["systemctl", "dnf", "ec2-metadata", "mkfs.xfs"].map(|name| format!("image/{name}"));
    let distribution = [
        "kafka-server-start.sh",
        "kafka-storage.sh",
        "kafka-topics.sh",
        "kafka-metadata-quorum.sh",
    ]
    .map(|name| format!("kafka/bin/{name}"));
    for name in stand_ins
        .iter()
        .chain(&distribution)
        .map(String::as_str)
        .chain(["machine.sh"])
    {
        let script = std::fs::read_to_string(tools::fixture(name)).unwrap();
        shellcheck(&name.replace('/', "-"), &script);
    }
}
