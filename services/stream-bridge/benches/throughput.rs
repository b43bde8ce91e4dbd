//! What the bridge costs on top of the storage work it does. Against a real
//! Kafka-protocol broker (tansu) and the AWS emulator (moto), in one run:
//!
//! - the stream-bridge binary working through a pre-filled topic of 100 KiB
//!   images: records/s and MB/s from its first record to its last, the
//!   average Firehose batch and its peak RSS; with the default settings, and
//!   with a longer flush interval, which is what larger batches take when
//!   the backend stores slowly (a batch holds what arrives in one interval);
//! - the baseline: a plain loop storing the same records with the same
//!   ingest-core store operation (an event per `PutRecord`), as many at once
//!   as the bridge stores at once.
//!
//! - our ceiling: the bridge against a null AWS backend (answers at once,
//!   discards the bytes) with the real broker, in MiB per CPU-second of the
//!   bridge against the machine's limit for the work a record cannot avoid
//!   (decode and checks, SHA-256, one copy) on one core, and its batches;
//!   beside it the CPU the store's AWS calls take on their own (look-up,
//!   object, item; the events' batches left out), 16 at once on one thread,
//!   and the best ratio those calls leave.
//!
//! - the event batcher alone, fed faster than the emulator stores images:
//!   the batch size it reaches under load, events/s, against one `PutRecord`
//!   per event at the baseline's concurrency.
//!
//! Each phase gets a freshly reset emulator and pipeline; phases run
//! baseline, default, tuned, tuned, default, baseline so that drift during
//! the run weighs on all alike. `make bench` runs it; `BENCH_ROUNDS` scales the record count
//! (default 1: 1,000 records); `BENCH_ONLY` (a comma-separated list of
//! `loop`, `ceiling`, `batcher`) runs only those sections, for profiling.

use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt;
use imagepipeline_e2e::KafkaBroker;
use ingest_core::contract::kafka::{DEFAULT_TOPIC, dead_letter_topic};
use ingest_core::record::{EventRecord, ImageId, ImageItem, KafkaPosition, Source};
use ingest_core::store::{Incoming, Store};
use ingest_core::{Content, ImageRules, ImageType};
use ingest_testing::{
    Events, NullAws, PipelineStorage, bench_section_wanted, best_ratio, cpu_seconds, free_loopback_address,
    image, metric, metrics_text, peak_rss_mib, store_calls_cpu_seconds, unavoidable_work_mib_per_s,
    wait_until_healthy,
};
use jiff::Timestamp;
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use stream_bridge::events::EventBatcher;
use stream_bridge::metrics::Metrics;
use stream_bridge::record::Admission;

const TOPIC: &str = DEFAULT_TOPIC;
const PARTITIONS: i32 = 6;
const IMAGE_BYTES: usize = 100 * 1024;
/// The bridge's default `--max-concurrent-stores`, and the baseline's
/// concurrency.
const CONCURRENCY: usize = 64;

struct Record {
    value: Vec<u8>,
    partition: i32,
    offset: i64,
}

/// What one phase measured.
struct Phase {
    records: usize,
    elapsed: Duration,
    /// Bridge only: the average Firehose batch and the peak RSS in MiB.
    batch: Option<f64>,
    peak_rss_mib: Option<f64>,
    /// Bridge only: from process start, including joining the group.
    since_start: Option<Duration>,
}

impl Phase {
    fn records_per_s(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64()
    }

    fn mb_per_s(&self) -> f64 {
        (self.records * IMAGE_BYTES) as f64 / 1e6 / self.elapsed.as_secs_f64()
    }
}

async fn fill_topic(kafka: &KafkaBroker, topic: &str, count: usize, bytes: usize) -> Vec<Record> {
    let filling = Instant::now();
    kafka.create_topic(topic, PARTITIONS as u32).await.unwrap();
    kafka.create_topic(&dead_letter_topic(topic), 1).await.unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap_servers())
        .set("message.timeout.ms", "60000")
        .set("linger.ms", "20")
        .create()
        .unwrap();
    let sends = (0..count).map(|n| {
        let value = image(ImageType::Png, n as u64, bytes);
        let producer = &producer;
        async move {
            let partition = (n % PARTITIONS as usize) as i32;
            let delivery = producer
                .send(
                    FutureRecord::<(), _>::to(topic)
                        .partition(partition)
                        .payload(&value),
                    Duration::from_secs(60),
                )
                .await
                .map_err(|(err, _)| err)
                .expect("produced");
            Record {
                value,
                partition,
                offset: delivery.offset,
            }
        }
    });
    let records = futures::stream::iter(sends).buffer_unordered(64).collect().await;
    eprintln!(
        "{topic} filled: {count} records of {} KiB in {:.1} s",
        bytes / 1024,
        filling.elapsed().as_secs_f64()
    );
    records
}

async fn baseline(records: &[Record]) -> Phase {
    let storage = PipelineStorage::start(7).await;
    let store = Store::new(&storage.config, storage.targets.clone());
    let admission = Admission {
        max_image_bytes: 20 * 1024 * 1024,
        allowed: ImageType::ALL.into_iter().collect(),
        rules: ImageRules::default(),
        decode_budget: Default::default(),
    };
    let started = Instant::now();
    let stores = records.iter().map(|record| {
        let (store, admission) = (&store, &admission);
        async move {
            let info = admission.check(Some(&record.value), None).expect("an image");
            let content = Content::from_bytes(record.value.clone());
            let (content, image) = admission
                .decode(content, info)
                .await
                .expect("an image that decodes");
            let incoming = Incoming {
                content: &content,
                image,
                source: Source::Stream,
                uploaded_by: None,
                at: Timestamp::now(),
                kafka: Some(KafkaPosition {
                    topic: TOPIC.to_owned(),
                    partition: record.partition,
                    offset: record.offset,
                }),
            };
            store.store(&incoming, Timestamp::now()).await.expect("stored");
        }
    });
    futures::stream::iter(stores)
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
    let elapsed = started.elapsed();
    assert_eq!(storage.item_count().await, records.len());
    Phase {
        records: records.len(),
        elapsed,
        batch: None,
        peak_rss_mib: None,
        since_start: None,
    }
}

/// Settings of a bridge run beyond the defaults.
const TUNED: &[&str] = &["--firehose-flush-ms", "6000"];

async fn bridge(kafka: &KafkaBroker, records: usize, group: &str, settings: &[&str]) -> Phase {
    let storage = PipelineStorage::start(7).await;
    let address = free_loopback_address();
    let started = Instant::now();
    let mut process = storage
        .service_command(env!("CARGO_BIN_EXE_stream-bridge"))
        .args(["--listen", &address.to_string()])
        .args(["--bootstrap-servers", &kafka.bootstrap_servers()])
        .args(["--group-id", group])
        .args(settings)
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("the stream-bridge binary starts");
    wait_until_healthy(address).await;
    let mut first = None;
    let text = loop {
        let text = metrics_text(address).await;
        if first.is_none() && metric(&text, "stream_bridge_records_consumed_total") > 0.0 {
            first = Some(Instant::now());
        }
        if metric(&text, "stream_bridge_images_stored_total") >= records as f64 {
            break text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "the bridge did not finish in 30 min"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let done = Instant::now();
    let peak = peak_rss_mib(process.id().expect("running"));
    process.start_kill().unwrap();
    assert_eq!(storage.item_count().await, records);
    Phase {
        records,
        elapsed: done - first.expect("a first record"),
        batch: Some(
            metric(&text, "stream_bridge_firehose_batch_records_sum")
                / metric(&text, "stream_bridge_firehose_batch_records_count"),
        ),
        peak_rss_mib: Some(peak),
        since_start: Some(done - started),
    }
}

/// The bridge storing into the null AWS backend: how fast it goes when AWS
/// costs nothing, in MiB per CPU-second of the bridge, against the
/// machine's limit for the work each record cannot avoid; and the batches
/// it then makes.
async fn bridge_on_null(kafka: &KafkaBroker, topic: &str, records: usize, group: &str) -> (Phase, f64) {
    let null = NullAws::start().await;
    let address = free_loopback_address();
    let started = Instant::now();
    let mut process = tokio::process::Command::new(env!("CARGO_BIN_EXE_stream-bridge"))
        .args(["--bucket", "null-bucket", "--table", "null-table"])
        .args(["--delivery-stream", "null-stream"])
        .args(["--topic", topic])
        .envs(null.env())
        .args(["--listen", &address.to_string()])
        .args(["--bootstrap-servers", &kafka.bootstrap_servers()])
        .args(["--group-id", group])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the stream-bridge binary starts");
    let pid = process.id().expect("running");
    wait_until_healthy(address).await;
    let mut first = None;
    let text = loop {
        let text = metrics_text(address).await;
        if first.is_none() && metric(&text, "stream_bridge_records_consumed_total") > 0.0 {
            first = Some((Instant::now(), cpu_seconds(pid)));
        }
        if metric(&text, "stream_bridge_images_stored_total") >= records as f64 {
            break text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the bridge did not finish in 10 min against the null backend"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (done, cpu_done) = (Instant::now(), cpu_seconds(pid));
    let peak = peak_rss_mib(pid);
    process.start_kill().unwrap();
    let (first_at, cpu_first) = first.expect("a first record");
    let stored = null.counts.s3_objects.load(std::sync::atomic::Ordering::Relaxed);
    assert!(stored >= records as u64, "{stored} objects of {records}");
    null.assert_no_signed_chunks();
    let phase = Phase {
        records,
        elapsed: done - first_at,
        batch: Some(
            metric(&text, "stream_bridge_firehose_batch_records_sum")
                / metric(&text, "stream_bridge_firehose_batch_records_count"),
        ),
        peak_rss_mib: Some(peak),
        since_start: Some(done - started),
    };
    (phase, cpu_done - cpu_first)
}

/// Delivers `count` events through an [`EventBatcher`] with `senders` at
/// once: events/s and the average batch.
async fn batcher_under_load(count: usize, senders: usize) -> (f64, f64) {
    let storage = PipelineStorage::start(7).await;
    let metrics = Metrics::new();
    let (events, sender) = EventBatcher::start(
        aws_sdk_firehose::Client::new(&storage.config),
        storage.targets.delivery_stream.clone(),
        Duration::from_millis(500),
        metrics.clone(),
    );
    let started = Instant::now();
    let deliveries = (0..count).map(|n| {
        let events = &events;
        async move { events.deliver(event(n)).await.expect("accepted") }
    });
    futures::stream::iter(deliveries)
        .buffer_unordered(senders)
        .collect::<Vec<()>>()
        .await;
    let elapsed = started.elapsed();
    drop(events);
    sender.await.unwrap();
    let text = metrics.encode();
    let batch = metric(&text, "stream_bridge_firehose_batch_records_sum")
        / metric(&text, "stream_bridge_firehose_batch_records_count");
    (count as f64 / elapsed.as_secs_f64(), batch)
}

/// `count` events, each in its own `PutRecord`, `concurrency` at once.
async fn one_put_record_each(count: usize, concurrency: usize) -> f64 {
    let storage = PipelineStorage::start(7).await;
    let firehose = aws_sdk_firehose::Client::new(&storage.config);
    let stream = storage.targets.delivery_stream.clone();
    let started = Instant::now();
    let puts = (0..count).map(|n| {
        let (firehose, stream) = (&firehose, &stream);
        async move {
            let record = aws_sdk_firehose::types::Record::builder()
                .data(aws_sdk_firehose::primitives::Blob::new(event(n).to_line()))
                .build()
                .expect("a record with data");
            firehose
                .put_record()
                .delivery_stream_name(stream)
                .record(record)
                .send()
                .await
                .expect("accepted");
        }
    });
    futures::stream::iter(puts)
        .buffer_unordered(concurrency)
        .collect::<Vec<()>>()
        .await;
    count as f64 / started.elapsed().as_secs_f64()
}

/// An event as the bridge sends it for record `n`.
fn event(n: usize) -> EventRecord {
    let at = Timestamp::now();
    let id = ImageId::for_content(&[0; 32], at);
    EventRecord {
        item: ImageItem {
            id,
            sha256: format!("{n:064x}"),
            original_sha256: Some(format!("{n:064x}")),
            content_type: "image/png".to_owned(),
            bytes: IMAGE_BYTES as u64,
            width: 640,
            height: 480,
            phash: None,
            bucket: "bench".to_owned(),
            key: format!("images/bench/{n}.png"),
            source: Source::Stream,
            uploaded_by: None,
            ingested_at: at,
            expires_at: at.as_second() + 7 * 86_400,
        },
        kafka: Some(KafkaPosition {
            topic: TOPIC.to_owned(),
            partition: 0,
            offset: n as i64,
        }),
    }
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let count = 1000 * rounds;
    let kafka = KafkaBroker::start().await.expect("Kafka broker");
    if bench_section_wanted("loop") {
        let records = fill_topic(&kafka, TOPIC, count, IMAGE_BYTES).await;
        against_a_plain_loop(&kafka, &records).await;
    }
    if bench_section_wanted("ceiling") {
        println!(
            "\n## Our ceiling: the bridge against a null AWS backend (real broker), per CPU-second it uses\n"
        );
        println!(
            "| record | run | records/s | MiB/s (wall) | bridge CPU s | MiB per bridge CPU-second | limit MiB/s on one core | ratio to the limit | AWS calls alone, ms CPU per record | best ratio with those calls | avg Firehose batch | peak RSS MiB |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
        // Enough records that Firehose batches are made under sustained load.
        let small = fill_topic(&kafka, "ceiling-100k", 4000 * rounds, IMAGE_BYTES).await;
        let small_read = ceiling(&kafka, "ceiling-100k", &small).await;
        // As large as the broker's default message.max.bytes allows.
        let large = fill_topic(&kafka, "ceiling-900k", 300 * rounds, 900 * 1024).await;
        let large_read = ceiling(&kafka, "ceiling-900k", &large).await;
        println!(
            "\nThe broker read alone (a consumer with the bridge's fetch settings, doing nothing with the \
             records): {small_read:.0} MiB/s of 100 KiB records, {large_read:.0} MiB/s of 900 KiB records."
        );
    }
    if bench_section_wanted("batcher") {
        batcher(rounds).await;
    }
}

async fn against_a_plain_loop(kafka: &KafkaBroker, records: &[Record]) {
    let count = records.len();
    let mut baselines = Vec::new();
    let mut defaults = Vec::new();
    let mut tuned = Vec::new();
    for (n, run) in ["baseline", "default", "tuned", "tuned", "default", "baseline"]
        .into_iter()
        .enumerate()
    {
        let group = format!("bench-{n}");
        match run {
            "default" => defaults.push(bridge(kafka, count, &group, &[]).await),
            "tuned" => tuned.push(bridge(kafka, count, &group, TUNED).await),
            _ => baselines.push(baseline(records).await),
        }
    }

    println!(
        "## stream-bridge: {count} records of 100 KiB from a pre-filled topic ({PARTITIONS} partitions)\n"
    );
    println!("- baseline loop: ingest-core's store, {CONCURRENCY} at once, one PutRecord per event");
    println!(
        "- bridge, default settings: 1,024 records in flight, {CONCURRENCY} storing at once, 500 ms flush"
    );
    println!("- bridge, tuned: `{}`\n", TUNED.join(" "));
    println!(
        "| run | records/s | MB/s | vs baseline | avg Firehose batch | peak RSS MiB | from process start s |"
    );
    println!("|---|---|---|---|---|---|---|");
    let baseline_rate = baselines.iter().map(Phase::records_per_s).sum::<f64>() / baselines.len() as f64;
    for (name, phase) in baselines
        .iter()
        .map(|p| ("baseline loop", p))
        .chain(defaults.iter().map(|p| ("bridge, default", p)))
        .chain(tuned.iter().map(|p| ("bridge, tuned", p)))
    {
        println!(
            "| {name} | {:.1} | {:.1} | {:.2} | {} | {} | {} |",
            phase.records_per_s(),
            phase.mb_per_s(),
            phase.records_per_s() / baseline_rate,
            phase.batch.map_or("–".to_owned(), |b| format!("{b:.0}")),
            phase.peak_rss_mib.map_or("–".to_owned(), |m| format!("{m:.1}")),
            phase
                .since_start
                .map_or("–".to_owned(), |d| format!("{:.1}", d.as_secs_f64())),
        );
    }
}

/// Two bridge runs through `topic` against the null backend, printed as
/// table rows; returns the MiB/s of the broker read alone.
async fn ceiling(kafka: &KafkaBroker, topic: &str, records: &[Record]) -> f64 {
    let count = records.len();
    let bytes = records[0].value.len();
    let mib = (count * bytes) as f64 / (1024.0 * 1024.0);
    let read_alone = read_alone(kafka, topic, count).await;
    let null = NullAws::start().await;
    for n in 0..2 {
        // Measured beside each row: a shared machine's speed drifts.
        let limit = unavoidable_work_mib_per_s(&records[0].value);
        let calls = store_calls_cpu_seconds(&null, &records[0].value, Events::Batched).await;
        let (phase, cpu) = bridge_on_null(kafka, topic, count, &format!("bench-null-{topic}-{n}")).await;
        println!(
            "| {} KiB | {} | {:.0} | {:.1} | {cpu:.2} | {:.1} | {limit:.1} | {:.2} | {:.2} | {:.2} | {:.0} | {:.1} |",
            bytes / 1024,
            n + 1,
            phase.records_per_s(),
            mib / phase.elapsed.as_secs_f64(),
            mib / cpu,
            mib / cpu / limit,
            calls * 1e3,
            best_ratio(bytes, limit, calls),
            phase.batch.unwrap_or_default(),
            phase.peak_rss_mib.unwrap_or_default(),
        );
    }
    mib / read_alone.elapsed.as_secs_f64()
}

/// How fast the broker hands the topic to one consumer configured as the
/// bridge's: what paces the bridge when AWS costs nothing.
async fn read_alone(kafka: &KafkaBroker, topic: &str, count: usize) -> Phase {
    let config = stream_bridge::config::Config::parse_from([
        "stream-bridge",
        "--bucket=b",
        "--table=t",
        "--delivery-stream=s",
        "--group-id=bench-read-alone",
        &format!("--bootstrap-servers={}", kafka.bootstrap_servers()),
    ]);
    let consumer: StreamConsumer = config.consumer().create().expect("a consumer");
    consumer.subscribe(&[topic]).expect("subscribed");
    let mut first = None;
    for _ in 0..count {
        consumer.recv().await.expect("a record");
        first.get_or_insert_with(Instant::now);
    }
    Phase {
        records: count,
        elapsed: first.expect("a first record").elapsed(),
        batch: None,
        peak_rss_mib: None,
        since_start: None,
    }
}

async fn batcher(rounds: usize) {
    let events = 5000 * rounds;
    let (batched_rate, batch) = batcher_under_load(events, 2048).await;
    let single_rate = one_put_record_each(events, CONCURRENCY).await;
    println!("\n## Firehose events alone: {events} events, 2,048 senders at once, 500 ms flush\n");
    println!("| run | events/s | avg batch | vs one PutRecord each |");
    println!("|---|---|---|---|");
    println!("| one PutRecord per event, {CONCURRENCY} at once | {single_rate:.0} | 1 | 1.00 |");
    println!(
        "| EventBatcher | {batched_rate:.0} | {batch:.0} | {:.2} |",
        batched_rate / single_rate
    );
}
