//! Test support for upload-api and stream-bridge: the bucket, table and
//! delivery stream of a pipeline, made by the operator's engine in the AWS
//! emulator as in production; counts of what landed there; sample images;
//! and, for benchmarks only, a null AWS backend.

mod null_aws;
mod store_calls;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use aws_config::SdkConfig;
use imagepipeline_e2e::AwsEmulator;
pub use imagepipeline_e2e::image_metadata::{self, Metadata, jpeg_with_a_second_picture};
pub use imagepipeline_e2e::images::{Picture, animation, image};
pub use imagepipeline_e2e::{Tool, form_data, free_loopback_address, http_client, metric, monitoring};
use imagepipeline_operator::aws::{AwsClients, CallLog};
use imagepipeline_operator::engine::Owner;
use imagepipeline_operator::manifest;
use ingest_core::ImageType;
use ingest_core::contract::prefix;
use ingest_core::store::Targets;
pub use null_aws::{NullAws, NullCounts};
pub use store_calls::{Events, best_ratio, store_calls_cpu_seconds};

/// A pipeline's storage in a leased emulator, released on drop.
pub struct PipelineStorage {
    pub emulator: AwsEmulator,
    pub config: SdkConfig,
    pub targets: Targets,
    pub s3: aws_sdk_s3::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
}

impl PipelineStorage {
    /// Applies a pipeline whose services store into the emulator: Kafka is
    /// an existing cluster (no brokers are launched), analytics is off.
    pub async fn start(retention_days: u32) -> Self {
        let manifest = format!(
            "
apiVersion: imagepipeline.io/v1alpha1
kind: ImagePipeline
metadata: {{ name: photos, namespace: media }}
spec:
  region: eu-west-1
  network: {{ availabilityZones: [eu-west-1a, eu-west-1b] }}
  kafka: {{ bootstrapServers: ['127.0.0.1:9092'], replicationFactor: 1 }}
  analytics: {{ enabled: false }}
  storage: {{ retentionDays: {retention_days} }}
"
        );
        let emulator = AwsEmulator::start().await.expect("moto server starts");
        let config = emulator.sdk_config().await;
        let engine = imagepipeline_operator::pipeline::engine(
            AwsClients::from_sdk_config(&config, CallLog::new()).unwrap(),
        );
        let spec = manifest::parse(Path::new("pipeline.yaml"), &manifest)
            .unwrap()
            .remove(0)
            .spec;
        let owner = Owner {
            namespace: "media".into(),
            name: "photos".into(),
        };
        let ctx = engine.context(owner, spec).await.unwrap();
        let mut report = engine.apply(&ctx).await;
        for _ in 0..3 {
            if report.is_ready() {
                break;
            }
            report = engine.apply(&ctx).await;
        }
        assert!(report.is_ready(), "{:#?}", report.components);
        let outputs = report.outputs;
        Self {
            targets: Targets {
                bucket: outputs.bucket.unwrap(),
                table: outputs.table.unwrap(),
                delivery_stream: outputs.delivery_stream.unwrap(),
                retention_days,
            },
            s3: engine.aws().s3.clone(),
            dynamodb: engine.aws().dynamodb.clone(),
            config,
            emulator,
        }
    }

    /// A command running a service binary (`CARGO_BIN_EXE_…`) against this
    /// storage: the pipeline flags, the emulator through the SDK's standard
    /// variables, stdout discarded, killed when dropped.
    pub fn service_command(&self, program: &str) -> tokio::process::Command {
        let t = &self.targets;
        let mut command = tokio::process::Command::new(program);
        command
            .args(["--bucket", &t.bucket, "--table", &t.table])
            .args(["--delivery-stream", &t.delivery_stream])
            .envs(self.emulator.env())
            .stdout(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// The emulator's address, for an [`Outage`] to relay to.
    pub fn emulator_address(&self) -> SocketAddr {
        let url = self.emulator.endpoint_url();
        url.trim_start_matches("https://")
            .parse()
            .unwrap_or_else(|err| panic!("the emulator's endpoint {url} is not https://address:port: {err}"))
    }

    /// Keys of the bucket's objects under `prefix` ([`prefix::IMAGES`], [`prefix::EVENTS`]).
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(&self.targets.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            keys.extend(
                page.unwrap()
                    .contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        keys
    }

    pub async fn item_count(&self) -> usize {
        let mut count = 0;
        let mut pages = self
            .dynamodb
            .scan()
            .table_name(&self.targets.table)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            count += usize::try_from(page.unwrap().count()).unwrap_or_default();
        }
        count
    }

    /// The object at `key` in the pipeline's bucket, as a reader sees it.
    pub async fn object(&self, key: &str) -> StoredObject {
        let object = self
            .s3
            .get_object()
            .bucket(&self.targets.bucket)
            .key(key)
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await
            .unwrap_or_else(|err| panic!("object {key}: {err:?}"));
        StoredObject {
            content_type: object.content_type().map(str::to_owned),
            checksum_sha256: object.checksum_sha256().map(str::to_owned),
            sha256: object
                .metadata()
                .and_then(|m| m.get(ingest_core::store::SHA256_METADATA))
                .cloned(),
            bytes: object.body.collect().await.unwrap().into_bytes().to_vec(),
        }
    }

    /// The event records Firehose delivered, from every object under
    /// [`prefix::EVENTS`] (one object per delivery, one JSON line per event).
    pub async fn events(&self) -> Vec<serde_json::Value> {
        let mut events = Vec::new();
        for key in self.keys(prefix::EVENTS).await {
            let object = self.object(&key).await;
            for line in object.bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                events.push(serde_json::from_slice(line).expect("an event is one JSON line"));
            }
        }
        events
    }

    /// Image objects, items and events, the three things storing an image
    /// writes.
    pub async fn written(&self) -> (usize, usize, usize) {
        (
            self.keys(prefix::IMAGES).await.len(),
            self.item_count().await,
            self.events().await.len(),
        )
    }
}

/// An object's content type, `sha256` metadata and bytes.
#[derive(Debug)]
pub struct StoredObject {
    pub content_type: Option<String>,
    /// The SHA-256 S3 checked the object's bytes against when it stored
    /// them (base64), if it was given one.
    pub checksum_sha256: Option<String>,
    pub sha256: Option<String>,
    pub bytes: Vec<u8>,
}

/// A real PNG of `width`×`height` random pixels seeded by `tag`.
pub fn png(width: u32, height: u32, tag: u64) -> Vec<u8> {
    Picture::noise(width, height, tag).encode(ImageType::Png)
}

/// The Prometheus text the service at `address` serves on `/metrics`.
pub async fn metrics_text(address: SocketAddr) -> String {
    imagepipeline_e2e::metrics_text(address)
        .await
        .expect("/metrics answers")
}

/// Waits until the service at `address` answers `/healthz`, for at most 10 s.
pub async fn wait_until_healthy(address: SocketAddr) {
    let http = http_client();
    for _ in 0..100 {
        if http.get(format!("http://{address}/healthz")).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the service at {address} did not answer /healthz within 10 s");
}

/// Peak resident set of process `pid` so far (VmHWM), in MiB.
pub fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status");
    kib / 1024.0
}

/// The machine's limit for what storing an image cannot avoid, on one core
/// in a tight loop: the checks (every frame decoded, metadata removed,
/// perceptual hash), SHA-256 of what is stored and one copy of the bytes.
/// In MiB of `image` per CPU-second, counted as the services' CPU is (not
/// per second of the clock, which on a shared machine includes the time
/// the core ran somebody else); the best of three runs of 32 MiB or more.
pub fn unavoidable_work_mib_per_s(image: &[u8]) -> f64 {
    use sha2::Digest;
    const MIB: f64 = 1024.0 * 1024.0;
    let info = ingest_core::inspect(image).expect("an image");
    let limits = ingest_core::DecodeLimits::default();
    let strip = ingest_core::StripMetadata::default();
    let repeats = (32 * 1024 * 1024 / image.len()).max(3);
    let once = || {
        let started = thread_cpu_seconds();
        for _ in 0..repeats {
            let (_, stripped) = ingest_core::verify::verify(image, info, &limits, strip).expect("decodes");
            let stored = stripped.as_deref().unwrap_or(image);
            std::hint::black_box(sha2::Sha256::digest(stored));
            std::hint::black_box(stored.to_vec());
        }
        (repeats * image.len()) as f64 / MIB / (thread_cpu_seconds() - started)
    };
    (0..3).map(|_| once()).fold(0.0, f64::max)
}

/// CPU time the calling thread has used so far, as the scheduler counts it
/// (the first field of /proc/thread-self/schedstat, in nanoseconds): the
/// same count as a process's user and system time, finer than their ticks.
pub fn thread_cpu_seconds() -> f64 {
    let schedstat =
        std::fs::read_to_string("/proc/thread-self/schedstat").expect("/proc/thread-self/schedstat");
    let nanos: f64 = schedstat
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("nanoseconds on the CPU in /proc/thread-self/schedstat");
    nanos / 1e9
}

/// Whether a benchmark's section is to run: `BENCH_ONLY` is unset or names
/// it (a comma-separated list), so one section can run alone, e.g. under a
/// profiler.
pub fn bench_section_wanted(section: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |only| only.split(',').any(|s| s.trim() == section))
}

/// CPU time process `pid` has used so far, all its threads, user and system.
pub fn cpu_seconds(pid: u32) -> f64 {
    // Linux reports these in USER_HZ, which is 100 on every architecture
    // it exposes to user space.
    const USER_HZ: f64 = 100.0;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
    // Fields after the command (which may hold spaces) in parentheses:
    // state is the first, utime the 12th and stime the 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("a command in parentheses")
        .1
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields[i].parse::<f64>().expect("a tick count");
    (ticks(11) + ticks(12)) / USER_HZ
}

/// A TCP relay on loopback that can be cut and restored, to stand between a
/// service and the AWS emulator: cut, its port refuses connections and every
/// relayed connection is closed, as when AWS cannot be reached; restored, it
/// relays again on the same port.
pub struct Outage {
    address: SocketAddr,
    target: SocketAddr,
    relay: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Outage {
    /// A relay to `target`, passing traffic until [`Outage::begin`].
    pub async fn relay_to(target: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port for the relay");
        let address = listener.local_addr().expect("the relay's address");
        Self {
            address,
            target,
            relay: std::sync::Mutex::new(Some(tokio::spawn(relay(listener, target)))),
        }
    }

    /// The relay's address, to give the service instead of the target's.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Closes the port and every connection relayed so far.
    pub fn begin(&self) {
        if let Some(relay) = self.relay.lock().unwrap_or_else(|p| p.into_inner()).take() {
            relay.abort();
        }
    }

    /// Relays again on the same port.
    pub async fn end(&self) {
        // Binding again at once works: tokio sets SO_REUSEADDR.
        let listener = tokio::net::TcpListener::bind(self.address)
            .await
            .expect("the relay's port again");
        *self.relay.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(tokio::spawn(relay(listener, self.target)));
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        self.begin();
    }
}

async fn relay(listener: tokio::net::TcpListener, target: SocketAddr) {
    // Dropped with the relay task, which aborts every connection in it.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((mut client, _)) = accepted else { continue };
                connections.spawn(async move {
                    if let Ok(mut upstream) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
            Some(_) = connections.join_next() => {}
        }
    }
}
