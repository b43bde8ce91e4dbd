//! The managed brokers' part, played for the local broker.
//!
//! Emulated instances never boot, so no boot script runs here and no broker
//! writes a heartbeat; `KafkaReady` would stay False. The stand-in writes,
//! for every running broker instance in the emulator, the heartbeat its boot
//! script would write (the contract of
//! `ingest_core::contract::kafka::heartbeat`), saying `serving` only while
//! the local broker accepts connections, so the condition turns True for a
//! reason that is true. The boot script itself runs in the operator's
//! `broker_boot` test.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::Filter;
use ingest_core::contract::kafka::heartbeat::{self, BrokerHeartbeat, BrokerState};

use crate::inventory::OWNER_TAG;

/// Where the tests' pipelines get Kafka (`spec.kafka.distribution.s3Uri`):
/// a copy placed in the emulator, since tests have no internet to stage
/// Apache's. Staging from a URL has its own test in the operator.
pub const KAFKA_DISTRIBUTION_URI: &str = "s3://imagepipeline-test-kafka/kafka_2.13-4.1.1.tgz";
const KAFKA_DISTRIBUTION_BUCKET: &str = "imagepipeline-test-kafka";
const KAFKA_DISTRIBUTION_KEY: &str = "kafka_2.13-4.1.1.tgz";

/// Places the stand-in archive of [`KAFKA_DISTRIBUTION_URI`] and its
/// `.sha512` beside it, as an air-gapped user would. Emulated instances
/// never install it, so its bytes are only checked by their hash.
pub async fn place_kafka_distribution(s3: &aws_sdk_s3::Client, region: &str) -> Result<(), String> {
    let archive = b"stand-in for kafka_2.13-4.1.1.tgz: emulated instances never install it\n".to_vec();
    let sha512 = {
        use sha2::Digest;
        hex::encode(sha2::Sha512::digest(&archive))
    };
    let created = s3
        .create_bucket()
        .bucket(KAFKA_DISTRIBUTION_BUCKET)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(region.into())
                .build(),
        )
        .send()
        .await;
    if let Err(err) = created {
        let code = aws_sdk_s3::error::ProvideErrorMetadata::code(&err);
        if code != Some("BucketAlreadyOwnedByYou") {
            return Err(format!("creating {KAFKA_DISTRIBUTION_BUCKET}: {err:?}"));
        }
    }
    for (key, body) in [
        (KAFKA_DISTRIBUTION_KEY.to_owned(), archive),
        (
            format!("{KAFKA_DISTRIBUTION_KEY}.sha512"),
            format!("{sha512}  {KAFKA_DISTRIBUTION_KEY}\n").into_bytes(),
        ),
    ] {
        s3.put_object()
            .bucket(KAFKA_DISTRIBUTION_BUCKET)
            .key(&key)
            .body(body.into())
            .send()
            .await
            .map_err(|e| format!("placing {key}: {e:?}"))?;
    }
    Ok(())
}

/// Tag holding a broker instance's Kafka node id.
const BROKER_TAG: &str = "imagepipeline.io/broker";
/// More often than a broker (30 s), so that an apply does not wait long.
const BEAT_EVERY: Duration = Duration::from_secs(1);
/// The stand-in rests this many times as long as its last look took, so it
/// takes at most a fifth of the emulator: describing 300 brokers takes moto
/// over a second, and doing it every second left no time for the operator.
const REST_PER_BUSY: u32 = 4;

/// Writes heartbeats until dropped, on a thread of its own: a test that
/// blocks its runtime (waiting for a CLI process) must not stop the brokers.
pub struct BrokerStandIn {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for BrokerStandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // Joined, so that no heartbeat lands after the lease ends.
            let _ = thread.join();
        }
    }
}

impl BrokerStandIn {
    /// Plays the brokers of every pipeline in the emulator `sdk` reaches (a
    /// configuration used by this stand-in alone); `local_broker` is the
    /// `host:port` whose answering makes them `serving` (`None`: they
    /// always are, for tests of the AWS side alone).
    pub fn start(sdk: aws_config::SdkConfig, local_broker: Option<String>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            runtime.block_on(async move {
                let s3 = aws_sdk_s3::Client::from_conf(
                    aws_sdk_s3::config::Builder::from(&sdk)
                        .force_path_style(true)
                        .build(),
                );
                let ec2 = aws_sdk_ec2::Client::new(&sdk);
                let mut beats = Beats::default();
                while !stopped.load(Ordering::Relaxed) {
                    let serving = match &local_broker {
                        Some(address) => tokio::net::TcpStream::connect(address).await.is_ok(),
                        None => true,
                    };
                    let started = Instant::now();
                    // The bucket or the instances may not exist yet: try again.
                    let _ = beats.beat(&s3, &ec2, serving).await;
                    tokio::time::sleep(BEAT_EVERY.max(started.elapsed() * REST_PER_BUSY)).await;
                }
            });
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

/// A beat is written again after this long, well within
/// `FRESH_FOR_SECONDS`, or at once when the broker's state changes: a
/// broker's own script beats every 30 s. Writing every broker every second
/// made 100 pipelines' 300 brokers the emulator's main load.
const BEAT_AGAIN_AFTER: Duration = Duration::from_secs(20);

/// What the stand-in remembers between beats: each pipeline's bucket, and
/// when it last wrote each broker's heartbeat and with which state.
#[derive(Default)]
struct Beats {
    /// Each pipeline's bucket, by owner.
    buckets: HashMap<String, String>,
    /// The buckets whose tags were read.
    tags_read: HashSet<String>,
    written: HashMap<String, (Instant, bool)>,
}

impl Beats {
    /// The bucket tagged as `owner`'s, once the pipeline has made it. Each
    /// bucket's tags are read once: reading every bucket's for each broker
    /// was 100 calls per broker at 100 pipelines.
    async fn bucket_of(&mut self, s3: &aws_sdk_s3::Client, owner: &str) -> Result<Option<String>, String> {
        if let Some(bucket) = self.buckets.get(owner) {
            return Ok(Some(bucket.clone()));
        }
        let listed = s3
            .list_buckets()
            .send()
            .await
            .map_err(|e| format!("listing buckets: {e}"))?;
        for name in listed.buckets().iter().filter_map(|b| b.name()) {
            if self.tags_read.contains(name) {
                continue;
            }
            // A bucket just made may not carry its tags yet: read it next time.
            let Ok(tagging) = s3.get_bucket_tagging().bucket(name).send().await else {
                continue;
            };
            self.tags_read.insert(name.to_owned());
            if let Some(tag) = tagging.tag_set().iter().find(|t| t.key() == OWNER_TAG) {
                self.buckets.insert(tag.value().to_owned(), name.to_owned());
            }
        }
        Ok(self.buckets.get(owner).cloned())
    }

    /// One heartbeat for each running broker instance that is new, changed
    /// state or due; how many were written.
    async fn beat(
        &mut self,
        s3: &aws_sdk_s3::Client,
        ec2: &aws_sdk_ec2::Client,
        serving: bool,
    ) -> Result<usize, String> {
        let mut written = 0;
        for RunningBroker {
            node_id,
            instance_id,
            owner,
        } in running_brokers(ec2).await?
        {
            let (instance_id, owner) = (instance_id.as_str(), owner.as_str());
            let due = self
                .written
                .get(instance_id)
                .is_none_or(|(at, state)| *state != serving || at.elapsed() >= BEAT_AGAIN_AFTER);
            if !due {
                continue;
            }
            // The pipeline's bucket may not exist yet.
            let Some(bucket) = self.bucket_of(s3, owner).await? else {
                continue;
            };
            let beat = BrokerHeartbeat {
                node_id,
                instance_id: instance_id.to_owned(),
                state: if serving {
                    BrokerState::Serving
                } else {
                    BrokerState::Starting
                },
                error: None,
                kafka_version: "local broker (tansu)".to_owned(),
                quorum_leader: serving,
                under_replicated_partitions: 0,
                data_free_bytes: 0,
                time: heartbeat_time(std::time::SystemTime::now()),
            };
            if let Err(err) = write_heartbeat(s3, &bucket, &beat).await {
                // The bucket went (a test reset the emulator): look again.
                self.buckets.clear();
                self.tags_read.clear();
                return Err(err);
            }
            self.written
                .insert(instance_id.to_owned(), (Instant::now(), serving));
            written += 1;
        }
        Ok(written)
    }
}

/// A running instance the operator launched as a Kafka broker.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RunningBroker {
    /// The broker's node id (its `imagepipeline.io/broker` tag).
    pub node_id: u32,
    pub instance_id: String,
    /// The pipeline that owns it (its owner tag).
    pub owner: String,
}

/// Every running broker instance in the emulator, by node id within each
/// owner; instances without a node id or owner tag are left out.
pub async fn running_brokers(ec2: &aws_sdk_ec2::Client) -> Result<Vec<RunningBroker>, String> {
    // Every page: moto, like EC2, answers at most 100 reservations at once.
    let pages: Vec<_> = ec2
        .describe_instances()
        .filters(Filter::builder().name("tag-key").values(BROKER_TAG).build())
        .filters(
            Filter::builder()
                .name("instance-state-name")
                .values("running")
                .build(),
        )
        .into_paginator()
        .send()
        .collect::<Result<_, _>>()
        .await
        .map_err(|e| format!("listing the broker instances: {e}"))?;
    let mut brokers: Vec<RunningBroker> = pages
        .iter()
        .flat_map(|page| page.reservations())
        .flat_map(|r| r.instances())
        .filter_map(|instance| {
            let tag = |key: &str| {
                instance
                    .tags()
                    .iter()
                    .find(|t| t.key() == Some(key))
                    .and_then(|t| t.value())
            };
            Some(RunningBroker {
                node_id: tag(BROKER_TAG)?.parse().ok()?,
                instance_id: instance.instance_id()?.to_owned(),
                owner: tag(OWNER_TAG)?.to_owned(),
            })
        })
        .collect();
    brokers.sort();
    Ok(brokers)
}

/// `at` as a heartbeat's `time` (RFC 3339, UTC).
pub fn heartbeat_time(at: std::time::SystemTime) -> String {
    aws_smithy_types::DateTime::from(at)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .expect("a time since 1970 formats as RFC 3339")
}

/// Writes `beat` where the operator reads it, as a broker's boot script does.
pub async fn write_heartbeat(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    beat: &BrokerHeartbeat,
) -> Result<(), String> {
    let body = serde_json::to_vec(beat).map_err(|e| e.to_string())?;
    s3.put_object()
        .bucket(bucket)
        .key(heartbeat::key(beat.node_id))
        .content_type("application/json")
        .body(body.into())
        .send()
        .await
        .map(drop)
        .map_err(|e| format!("writing the heartbeat of broker {}: {e}", beat.node_id))
}
