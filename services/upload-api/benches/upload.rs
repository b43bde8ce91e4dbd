//! What the service costs on top of the storage calls it makes, and what it
//! holds in memory. Against the AWS emulator (moto), in one run:
//!
//! - latency and throughput of 1 MiB uploads at concurrency 1, 16 and 64
//!   through the upload-api binary, and of the same S3, DynamoDB and Firehose
//!   calls made directly with the SDK (the baseline), alternated
//!   baseline–service–service–baseline so that the emulator slowing down as
//!   it fills weighs on both alike; with the CPU each upload costs on our
//!   side (the bench's SDK calls, or the service and the bench's HTTP
//!   client), which unlike latency does not depend on what else the machine
//!   runs;
//! - the CPU cost of the checks every image passes (container walk, metadata
//!   removed, every frame decoded, perceptual hash, SHA-256 of what is
//!   stored) per MiB of each image type, on one core;
//! - the service's peak RSS with 64 uploads in flight at 1, 4, 16 and 20 MiB
//!   (the default limit; 20 MiB is a 7-megapixel PNG), each in a fresh
//!   process storing into the null backend below: with 64 × 16 MiB in
//!   flight moto, one Python process, once took over 3 s to accept a
//!   connection, and the service rightly answered 502;
//! - our ceiling: the service against a null AWS backend (answers at once,
//!   discards the bytes), as MiB stored per CPU-second of the service,
//!   against the machine's limit for the work an upload cannot avoid
//!   (decode and checks, SHA-256, one copy of the bytes) on one core; and
//!   beside it the CPU the store's four AWS calls take on their own, 16 at
//!   once on one thread, and the best ratio those calls leave.
//!
//! `make bench` runs it; `BENCH_ROUNDS` scales the request counts (default 1);
//! `BENCH_ONLY` (a comma-separated list of `direct`, `checks`, `ceiling`,
//! `memory`) runs only those sections, e.g. under a profiler.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use futures::StreamExt;
use ingest_core::ImageType;
use ingest_core::contract::{prefix, table};
use ingest_core::store::Targets;
use ingest_testing::{
    Events, NullAws, PipelineStorage, bench_section_wanted, best_ratio, cpu_seconds, free_loopback_address,
    http_client, peak_rss_mib, store_calls_cpu_seconds, unavoidable_work_mib_per_s, wait_until_healthy,
};
use sha2::{Digest, Sha256};
use tokio::process::Child;

const MIB: usize = 1024 * 1024;

/// The SDK calls an upload makes, without the service: dedupe query, object,
/// event, conditional item.
struct Direct {
    s3: aws_sdk_s3::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    firehose: aws_sdk_firehose::Client,
    targets: Targets,
}

impl Direct {
    async fn store(&self, n: u64, content: Bytes) {
        let t = &self.targets;
        let sha256 = format!("{n:064x}");
        self.dynamodb
            .query()
            .table_name(&t.table)
            .index_name(table::SHA256_INDEX)
            .key_condition_expression(format!("{} = :sha256", table::SHA256_ATTRIBUTE))
            .expression_attribute_values(":sha256", AttributeValue::S(sha256.clone()))
            .send()
            .await
            .expect("query");
        let key = format!("{}bench/{n}.png", prefix::IMAGES);
        self.s3
            .put_object()
            .bucket(&t.bucket)
            .key(&key)
            .content_type("image/png")
            .metadata(ingest_core::store::SHA256_METADATA, &sha256)
            .body(ByteStream::from(content))
            .send()
            .await
            .expect("put object");
        let event = format!("{{\"id\":\"{n}\",\"key\":\"{key}\",\"sha256\":\"{sha256}\"}}\n");
        self.firehose
            .put_record()
            .delivery_stream_name(&t.delivery_stream)
            .record(
                aws_sdk_firehose::types::Record::builder()
                    .data(aws_sdk_firehose::primitives::Blob::new(event))
                    .build()
                    .expect("record"),
            )
            .send()
            .await
            .expect("put record");
        let item = HashMap::from([
            (
                table::PARTITION_KEY.to_owned(),
                AttributeValue::S(format!("bench-{n}")),
            ),
            (table::SHA256_ATTRIBUTE.to_owned(), AttributeValue::S(sha256)),
            ("key".to_owned(), AttributeValue::S(key)),
        ]);
        self.dynamodb
            .put_item()
            .table_name(&t.table)
            .set_item(Some(item))
            .condition_expression(format!("attribute_not_exists({})", table::PARTITION_KEY))
            .send()
            .await
            .expect("put item");
    }
}

/// The upload-api binary (release build) with its own spool directory.
struct Service {
    child: Child,
    address: SocketAddr,
    _spool: tempfile::TempDir,
}

impl Service {
    async fn start(storage: &PipelineStorage) -> Self {
        Self::start_with(storage.service_command(env!("CARGO_BIN_EXE_upload-api"))).await
    }

    /// The service storing into the null AWS backend.
    async fn start_on_null(null: &NullAws) -> Self {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_upload-api"));
        command
            .args(["--bucket", "null-bucket", "--table", "null-table"])
            .args(["--delivery-stream", "null-stream"])
            .envs(null.env())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true);
        Self::start_with(command).await
    }

    async fn start_with(mut command: tokio::process::Command) -> Self {
        // The environment the image gives the service: what its memory is
        // measured with is what a pod runs.
        command.envs(image_env());
        let address = free_loopback_address();
        let spool = tempfile::tempdir().unwrap();
        let child = command
            .args(["--listen", &address.to_string(), "--no-auth"])
            .arg("--spool-dir")
            .arg(spool.path())
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("upload-api starts");
        wait_until_healthy(address).await;
        Self {
            child,
            address,
            _spool: spool,
        }
    }

    /// Peak resident set of the process so far, in MiB.
    fn peak_rss_mib(&self) -> f64 {
        peak_rss_mib(self.child.id().expect("running"))
    }

    fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.child.id().expect("running"))
    }
}

/// A distinct real PNG of about `len` bytes for request `n` (distinct, so
/// none is a duplicate the service would answer without storing).
fn image(n: u64, len: usize) -> Bytes {
    Bytes::from(ingest_testing::image(ImageType::Png, n, len))
}

/// What one run of calls measured.
struct Run {
    latencies: Vec<Duration>,
    wall: Duration,
    /// CPU seconds this process and `also` (the service, when it is
    /// called) used during the run.
    cpu: f64,
}

/// The `ENV` settings of the service's image (its Dockerfile's last stage).
fn image_env() -> Vec<(&'static str, &'static str)> {
    include_str!("../Dockerfile")
        .rsplit("\nFROM ")
        .next()
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.strip_prefix("ENV "))
        .filter_map(|setting| setting.split_once('='))
        .collect()
}

/// Runs `requests` calls of `call` with `concurrency` in flight.
async fn run<F, Fut>(
    requests: u64,
    concurrency: usize,
    first: u64,
    len: usize,
    also: Option<&Service>,
    call: F,
) -> Run
where
    F: Fn(u64, Bytes) -> Fut,
    Fut: Future<Output = ()>,
{
    let images: Vec<(u64, Bytes)> = (first..first + requests).map(|n| (n, image(n, len))).collect();
    let cpu = || cpu_seconds(std::process::id()) + also.map_or(0.0, Service::cpu_seconds);
    let cpu_before = cpu();
    let started = Instant::now();
    let latencies = futures::stream::iter(images)
        .map(|(n, content)| {
            let call = &call;
            async move {
                let at = Instant::now();
                call(n, content).await;
                at.elapsed()
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
    Run {
        latencies,
        wall: started.elapsed(),
        cpu: cpu() - cpu_before,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

struct Summary {
    p50: Duration,
    p99: Duration,
    cpu_ms_per_call: f64,
    mb_per_s: f64,
}

fn summarize(runs: &[Run], len: usize) -> Summary {
    let mut all: Vec<Duration> = runs.iter().flat_map(|r| r.latencies.iter().copied()).collect();
    all.sort();
    let wall: Duration = runs.iter().map(|r| r.wall).sum();
    let cpu: f64 = runs.iter().map(|r| r.cpu).sum();
    Summary {
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
        cpu_ms_per_call: cpu * 1000.0 / all.len() as f64,
        mb_per_s: (all.len() * len) as f64 / MIB as f64 / wall.as_secs_f64(),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

async fn upload(http: &reqwest::Client, address: SocketAddr, content: Bytes) {
    let response = http
        .post(format!("http://{address}/v1/images"))
        .header("content-type", "image/png")
        .body(content)
        .send()
        .await
        .expect("upload sent");
    assert_eq!(
        response.status(),
        reqwest::StatusCode::CREATED,
        "{:?}",
        response.text().await
    );
}

#[tokio::main]
async fn main() {
    let rounds: u64 = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let http = http_client();
    if bench_section_wanted("direct") {
        against_direct_calls(&http, rounds).await;
    }
    if bench_section_wanted("checks") {
        checks();
    }
    if bench_section_wanted("ceiling") {
        ceiling(&http, rounds).await;
    }
    if bench_section_wanted("memory") {
        memory(&http, rounds).await;
    }
}

async fn against_direct_calls(http: &reqwest::Client, rounds: u64) {
    let storage = PipelineStorage::start(7).await;
    // Clients made as the service makes them (ingest_core::Store::new).
    let s3 = aws_sdk_s3::config::Builder::from(&storage.config)
        .force_path_style(true)
        .build();
    let direct = Arc::new(Direct {
        s3: aws_sdk_s3::Client::from_conf(s3),
        dynamodb: aws_sdk_dynamodb::Client::new(&storage.config),
        firehose: aws_sdk_firehose::Client::new(&storage.config),
        targets: storage.targets.clone(),
    });
    let service = Service::start(&storage).await;
    let address = service.address;
    let mut next = 0;
    let direct_calls = |n: u64, c: Bytes| {
        let d = direct.clone();
        async move { d.store(n, c).await }
    };
    println!("## 1 MiB uploads: the service against direct SDK calls (same emulator, same run)\n");
    println!(
        "| concurrency | requests | direct p50 / p99 ms | service p50 / p99 ms | direct MB/s | service MB/s | p50 ratio | p99 ratio | direct / service CPU ms per upload |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for concurrency in [1usize, 16, 64] {
        let requests = rounds * (concurrency as u64 * 2).max(32);
        let mut direct_runs = Vec::new();
        let mut service_runs = Vec::new();
        // Warm both paths (connections, the service's first requests).
        run(concurrency as u64, concurrency, next, MIB, None, direct_calls).await;
        next += concurrency as u64;
        run(concurrency as u64, concurrency, next, MIB, None, |_, c| {
            upload(http, address, c)
        })
        .await;
        next += concurrency as u64;
        for order in [false, true, true, false] {
            if order {
                service_runs.push(
                    run(requests, concurrency, next, MIB, Some(&service), |_, c| {
                        upload(http, address, c)
                    })
                    .await,
                );
            } else {
                direct_runs.push(run(requests, concurrency, next, MIB, None, direct_calls).await);
            }
            next += requests;
        }
        let d = summarize(&direct_runs, MIB);
        let s = summarize(&service_runs, MIB);
        println!(
            "| {concurrency} | {} + {} | {} / {} | {} / {} | {:.1} | {:.1} | {:.2} | {:.2} | {:.1} / {:.1} |",
            requests * 2,
            requests * 2,
            ms(d.p50),
            ms(d.p99),
            ms(s.p50),
            ms(s.p99),
            d.mb_per_s,
            s.mb_per_s,
            s.p50.as_secs_f64() / d.p50.as_secs_f64(),
            s.p99.as_secs_f64() / d.p99.as_secs_f64(),
            d.cpu_ms_per_call,
            s.cpu_ms_per_call,
        );
    }
    drop(service);
}

/// The checks every image passes, per MiB of each type, on one core.
fn checks() {
    println!(
        "\n## The checks, one core (walk, metadata removed, every frame decoded, perceptual hash, SHA-256)\n"
    );
    println!("| type | image | pixels | ms per image | ms per MiB | MiB/s |");
    println!("|---|---|---|---|---|---|");
    for image_type in ImageType::ALL {
        for len in [MIB, 16 * MIB] {
            let bytes = ingest_testing::image(image_type, 1, len);
            let info = ingest_core::inspect(&bytes).expect("an image");
            let limits = ingest_core::DecodeLimits::default();
            let strip = ingest_core::StripMetadata::default();
            let repeats = (32 * MIB / len).max(2);
            let started = Instant::now();
            for _ in 0..repeats {
                let (_, stripped) =
                    ingest_core::verify::verify(&bytes, info, &limits, strip).expect("decodes");
                std::hint::black_box(Sha256::digest(stripped.as_deref().unwrap_or(&bytes)));
            }
            let each = started.elapsed().as_secs_f64() / repeats as f64;
            let mib = bytes.len() as f64 / MIB as f64;
            println!(
                "| {image_type} | {mib:.1} MiB | {}×{} | {:.1} | {:.1} | {:.0} |",
                info.width,
                info.height,
                each * 1000.0,
                each * 1000.0 / mib,
                mib / each
            );
        }
    }
}

/// Peak RSS of a fresh service per upload size, 64 uploads in flight.
async fn memory(http: &reqwest::Client, rounds: u64) {
    println!("\n## Peak RSS of the service (fresh process each), 64 uploads in flight\n");
    println!("| image size | idle MiB | peak MiB | peak − idle MiB |");
    println!("|---|---|---|---|");
    let null = NullAws::start().await;
    for len in [MIB, 4 * MIB, 16 * MIB, 20 * MIB] {
        let service = Service::start_on_null(&null).await;
        let idle = service.peak_rss_mib();
        let address = service.address;
        run(64 * rounds, 64, 0, len, None, |_, c| upload(http, address, c)).await;
        let peak = service.peak_rss_mib();
        println!(
            "| {} MiB | {idle:.1} | {peak:.1} | {:.1} |",
            len / MIB,
            peak - idle
        );
    }
}

/// The service against the null backend: what the HTTP, spool and AWS
/// plumbing cost besides the unavoidable work. The same image is sent every
/// time (the null backend finds no duplicate), so the bench's own CPU goes
/// to sending, not to making images.
async fn ceiling(http: &reqwest::Client, rounds: u64) {
    println!("\n## Our ceiling: the service against a null AWS backend, per CPU-second it uses\n");
    println!(
        "| image | concurrency | requests | MiB/s (wall) | service CPU s | MiB per service CPU-second | limit MiB/s on one core | ratio to the limit | AWS calls alone, ms CPU per upload | best ratio with those calls | TLS connections opened |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let null = NullAws::start().await;
    let service = Service::start_on_null(&null).await;
    let address = service.address;
    for len in [MIB, 16 * MIB] {
        let content = image(1, len);
        for concurrency in [1usize, 16, 64] {
            // Measured beside each row: a shared machine's speed drifts.
            let limit = unavoidable_work_mib_per_s(&content);
            let calls = store_calls_cpu_seconds(&null, &content, Events::OnePutRecordEach).await;
            let per_level = if len == MIB { 64 } else { 16 };
            let requests = rounds * (concurrency as u64).max(per_level);
            let send = |requests: u64| {
                futures::stream::iter(0..requests)
                    .map(|_| upload(http, address, content.clone()))
                    .buffer_unordered(concurrency)
                    .collect::<Vec<()>>()
            };
            send(concurrency as u64).await;
            let connections = null.counts.connections.load(std::sync::atomic::Ordering::Relaxed);
            let cpu_before = service.cpu_seconds();
            let started = Instant::now();
            send(requests).await;
            let wall = started.elapsed().as_secs_f64();
            let cpu = service.cpu_seconds() - cpu_before;
            let connections =
                null.counts.connections.load(std::sync::atomic::Ordering::Relaxed) - connections;
            let mib = (requests as usize * content.len()) as f64 / MIB as f64;
            println!(
                "| {:.1} MiB PNG | {concurrency} | {requests} | {:.0} | {cpu:.2} | {:.0} | {limit:.0} | {:.2} | {:.2} | {:.2} | {connections} |",
                content.len() as f64 / MIB as f64,
                mib / wall,
                mib / cpu,
                mib / cpu / limit,
                calls * 1e3,
                best_ratio(content.len(), limit, calls),
            );
        }
    }
    let stored = null.counts.s3_objects.load(std::sync::atomic::Ordering::Relaxed);
    println!("\n({stored} objects answered by the null backend.)");
    null.assert_no_signed_chunks();
}
