//! One broker booted from the user data the operator renders, with the
//! emulator as its S3 and the operator's reading of its heartbeats.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpListener};
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration, VersioningConfiguration,
};
use imagepipeline_e2e::{AwsEmulator, REGION, Tool};
use imagepipeline_operator::api::v1alpha1::KafkaSpec;
use imagepipeline_operator::components::kafka_broker_setup::{
    BROKER_PORT, BrokerPlacement, BrokerSetup, cluster_id, place_brokers,
};
use imagepipeline_operator::components::kafka_brokers::health::{ExpectedBroker, assess, read_heartbeats};
use imagepipeline_operator::engine::resource::NotServing;
use imagepipeline_operator::resources::kafka_distribution::StagedArchive;
use ingest_core::contract::kafka::heartbeat::{self, BrokerHeartbeat, BrokerState};
use k8s_openapi::jiff::Timestamp;

use super::distribution;
use super::host;
use super::machine::{Machine, MachineImage};
use super::tools::CachedTool;

pub const BUCKET: &str = "ipl-media-photos-3f2a9c1d";
pub const KAFKA_VERSION: &str = "4.1.1";
const BOOT_TIMEOUT: Duration = Duration::from_secs(90);
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(30);

/// What a test boots: the image and what the bucket holds.
pub struct Scenario {
    /// What the operator staged, as the user data names it.
    pub staged: StagedArchive,
    /// What is in the bucket at `staged.key`, if anything.
    pub uploaded: Option<Vec<u8>>,
    pub image: MachineImage,
}

/// A booted broker and the AWS it reports to.
pub struct BootedBroker {
    pub machine: Machine,
    // Leased for as long as the broker reports to it.
    _emulator: AwsEmulator,
    s3: aws_sdk_s3::Client,
    placement: BrokerPlacement,
    pub staged: StagedArchive,
    pub user_data: String,
    pub instance_id: String,
    pub boot_status: i32,
}

impl BootedBroker {
    pub async fn boot(scenario: Scenario) -> BootedBroker {
        let emulator = AwsEmulator::start().await.unwrap_or_else(|err| panic!("{err}"));
        let s3 = emulator.s3().await;
        let location = CreateBucketConfiguration::builder()
            .location_constraint(BucketLocationConstraint::from(REGION))
            .build();
        s3.create_bucket()
            .bucket(BUCKET)
            .create_bucket_configuration(location)
            .send()
            .await
            .unwrap();
        // Every heartbeat is kept, so that the test sees the first one too.
        let versioning = VersioningConfiguration::builder()
            .status(BucketVersioningStatus::Enabled)
            .build();
        s3.put_bucket_versioning()
            .bucket(BUCKET)
            .versioning_configuration(versioning)
            .send()
            .await
            .unwrap();
        if let Some(bytes) = scenario.uploaded {
            s3.put_object()
                .bucket(&scenario.staged.bucket)
                .key(&scenario.staged.key)
                .body(ByteStream::from(bytes))
                .send()
                .await
                .unwrap();
        }
        let placement = place_brokers(&[("eu-west-1a", &free_loopback_subnet())], 1)
            .unwrap()
            .remove(0);
        let kafka = KafkaSpec {
            brokers: Some(1),
            replication_factor: 1,
            partitions: 3,
            ..KafkaSpec::default()
        };
        let cluster_id = cluster_id("media/photos");
        let placements = [placement.clone()];
        let setup = BrokerSetup {
            placements: &placements,
            cluster_id: &cluster_id,
            max_image_bytes: 20 * 1024 * 1024,
            kafka: &kafka,
            region: REGION,
            bucket: BUCKET,
            archive: &scenario.staged,
        };
        let user_data = setup.user_data(&placement);
        let host_before = host::snapshot();
        let machine = Machine::boot(&scenario.image, &user_data, &emulator);
        let boot_status = machine.boot_status(BOOT_TIMEOUT).await;
        assert_eq!(host::snapshot(), host_before, "the boot changed the host");
        BootedBroker {
            machine,
            _emulator: emulator,
            s3,
            placement,
            staged: scenario.staged,
            user_data,
            instance_id: scenario.image.instance_id,
            boot_status,
        }
    }

    pub fn address(&self) -> String {
        format!("{}:{BROKER_PORT}", self.placement.private_ip)
    }

    /// The broker as the operator expects it: this node, on this instance.
    pub fn expected(&self) -> [ExpectedBroker; 1] {
        [ExpectedBroker {
            node_id: 1,
            instance_id: Some(self.instance_id.clone()),
            address: self.address(),
        }]
    }

    /// The heartbeats the operator reads, as `assess` judges them at `now`.
    pub async fn kafka_ready_at(&self, now: Timestamp) -> Option<NotServing> {
        let beats = read_heartbeats(&self.s3, BUCKET, &[1]).await.unwrap();
        assess(&self.expected(), &beats, now).1
    }

    /// The states of every heartbeat written so far, the first first.
    pub async fn reported_states(&self) -> Vec<BrokerState> {
        let key = heartbeat::key(1);
        let versions = self
            .s3
            .list_object_versions()
            .bucket(BUCKET)
            .prefix(&key)
            .send()
            .await
            .unwrap();
        let mut states = Vec::new();
        // S3 lists a key's versions newest first.
        for version in versions.versions().iter().rev() {
            let object = self
                .s3
                .get_object()
                .bucket(BUCKET)
                .key(&key)
                .version_id(version.version_id().unwrap())
                .send()
                .await
                .unwrap();
            let body = object.body.collect().await.unwrap().into_bytes();
            let beat: BrokerHeartbeat = serde_json::from_slice(&body).unwrap();
            states.push(beat.state);
        }
        states
    }

    /// The first heartbeat that `wanted` accepts, waiting for the timer.
    pub async fn heartbeat_when(&self, wanted: impl Fn(&BrokerHeartbeat) -> bool) -> BrokerHeartbeat {
        let deadline = Instant::now() + HEARTBEAT_TIMEOUT;
        let mut last: BTreeMap<u32, BrokerHeartbeat> = BTreeMap::new();
        while Instant::now() < deadline {
            last = read_heartbeats(&self.s3, BUCKET, &[1]).await.unwrap();
            if let Some(beat) = last.get(&1).filter(|beat| wanted(beat)) {
                return beat.clone();
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        panic!(
            "no such heartbeat within {HEARTBEAT_TIMEOUT:?}; the last: {last:?}\n{}",
            self.machine.console()
        );
    }

    /// The topics the broker at the instance's address lists.
    pub fn topics(&self) -> Vec<String> {
        let tansu = Tool::Tansu.path().unwrap_or_else(|err| panic!("{err}"));
        let output = Command::new(tansu)
            .args(["topic", "list", "--broker", &format!("tcp://{}", self.address())])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let listed: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
        let mut names: Vec<String> = listed
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    }
}

pub fn staged(version: &str) -> StagedArchive {
    StagedArchive {
        bucket: BUCKET.to_owned(),
        key: format!(
            "artifacts/kafka/{version}/{}.tgz",
            distribution::top_folder(version)
        ),
        sha512: String::new(),
        version: version.to_owned(),
    }
}

pub fn stock_image(instance_id: &str) -> MachineImage {
    MachineImage {
        instance_id: instance_id.to_owned(),
        preinstalled_kafka: None,
    }
}

/// A /24 in 127.0.0.0/8 whose broker address (`.10`) has port 9092 free:
/// tests of this and other checkouts running at once each get their own.
fn free_loopback_subnet() -> String {
    static NEXT: AtomicU8 = AtomicU8::new(0);
    let process = (std::process::id() % 200) as u8 + 20;
    for _ in 0..=u8::MAX {
        let third = NEXT.fetch_add(1, Ordering::Relaxed);
        if TcpListener::bind((Ipv4Addr::new(127, process, third, 10), BROKER_PORT)).is_ok() {
            return format!("127.{process}.{third}.0/24");
        }
    }
    panic!("no loopback subnet 127.{process}.*.0/24 has its broker port free");
}

/// Passes `script` through shellcheck under `name`.
pub fn shellcheck(name: &str, script: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(name);
    std::fs::write(&file, script).unwrap();
    let output = Command::new(CachedTool::ShellCheck.path())
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "shellcheck finds problems in {name}:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
}
