//! The stream-bridge binary against a real Kafka-protocol broker (tansu, a
//! fresh store per test) and the pipeline's storage in the AWS emulator:
//! what lands in S3, DynamoDB, Firehose and the dead-letter topic, and what
//! the consumer group has committed.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use imagepipeline_e2e::KafkaBroker;
use ingest_core::ImageType;
use ingest_core::contract::prefix;
use ingest_testing::{
    Outage, PipelineStorage, free_loopback_address, http_client, image, metric, metrics_text,
    wait_until_healthy,
};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::process::{Child, Command};

const TOPIC: &str = "images";
const DLQ: &str = "images.dlq";
const PARTITIONS: i32 = 3;
const GROUP: &str = "bridge-test";
const MAX_IMAGE_BYTES: usize = 64 * 1024;
/// A killed bridge's partitions move on after 6 s, not the default 45.
const SESSION_TIMEOUT: Duration = Duration::from_secs(6);

struct Setup {
    storage: PipelineStorage,
    kafka: KafkaBroker,
    producer: FutureProducer,
}

async fn setup() -> Setup {
    let storage = PipelineStorage::start(7).await;
    let kafka = KafkaBroker::start().await.expect("Kafka broker");
    kafka.create_topic(TOPIC, PARTITIONS as u32).await.unwrap();
    kafka.create_topic(DLQ, 1).await.unwrap();
    let producer = ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap_servers())
        .set("message.timeout.ms", "15000")
        .create()
        .unwrap();
    Setup {
        storage,
        kafka,
        producer,
    }
}

impl Setup {
    /// The bridge's command, and the address it serves health and metrics on.
    fn bridge_command(&self, max_in_flight_records: usize) -> (Command, SocketAddr) {
        let address = free_loopback_address();
        let mut command = self.storage.service_command(env!("CARGO_BIN_EXE_stream-bridge"));
        command
            .args(["--listen", &address.to_string()])
            .args(["--bootstrap-servers", &self.kafka.bootstrap_servers()])
            .args(["--group-id", GROUP, "--firehose-flush-ms", "200"])
            .args(["--max-in-flight-records", &max_in_flight_records.to_string()])
            .args(["--session-timeout-ms", &SESSION_TIMEOUT.as_millis().to_string()])
            .args(["--max-image-bytes", &MAX_IMAGE_BYTES.to_string()])
            .args(["--lag-interval-seconds", "1"])
            .env("RUST_LOG", "warn");
        (command, address)
    }

    fn start_bridge(&self) -> Bridge {
        // Low enough that reading pauses and resumes in every test.
        Bridge::spawn(self.bridge_command(32))
    }

    async fn produce(&self, partition: i32, value: &[u8], headers: &[(&str, &str)]) {
        let mut owned = OwnedHeaders::new();
        for (key, value) in headers {
            owned = owned.insert(Header {
                key,
                value: Some(*value),
            });
        }
        self.producer
            .send(
                FutureRecord::<(), _>::to(TOPIC)
                    .partition(partition)
                    .payload(value)
                    .headers(owned),
                Duration::from_secs(15),
            )
            .await
            .expect("produced");
    }

    /// Distinct images `numbers`, of every type in turn, across the
    /// partitions, without headers.
    async fn produce_images(&self, numbers: std::ops::Range<usize>) {
        for n in numbers {
            let image = distinct(ImageType::ALL[n % ImageType::ALL.len()], n);
            self.produce((n % PARTITIONS as usize) as i32, &image, &[]).await;
        }
    }

    /// Waits until `written()` reaches `expected` images and items.
    async fn wait_for_images(&self, expected: usize, within: Duration) -> (usize, usize, usize) {
        let started = Instant::now();
        loop {
            let written = self.storage.written().await;
            if (written.0, written.1) == (expected, expected) && written.2 >= expected {
                return written;
            }
            assert!(
                started.elapsed() < within,
                "after {within:?}: {written:?} of {expected} images, items and events"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// The group's committed offset of each partition and each partition's end.
    fn committed_and_ends(&self) -> Vec<(i64, i64)> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.kafka.bootstrap_servers())
            .set("group.id", GROUP)
            .create()
            .unwrap();
        let mut partitions = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            partitions.add_partition(TOPIC, p);
        }
        let committed = consumer
            .committed_offsets(partitions, Duration::from_secs(10))
            .unwrap();
        (0..PARTITIONS)
            .map(|p| {
                let offset = match committed.find_partition(TOPIC, p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => o,
                    _ => -1,
                };
                let (_, end) = consumer
                    .fetch_watermarks(TOPIC, p, Duration::from_secs(10))
                    .unwrap();
                (offset, end)
            })
            .collect()
    }

    async fn wait_until_all_committed(&self, within: Duration) {
        let started = Instant::now();
        loop {
            let offsets = self.committed_and_ends();
            if offsets.iter().all(|(committed, end)| committed == end) {
                return;
            }
            assert!(started.elapsed() < within, "committed vs end: {offsets:?}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// A running stream-bridge process.
struct Bridge {
    process: Child,
    address: SocketAddr,
}

impl Bridge {
    fn spawn((mut command, address): (Command, SocketAddr)) -> Self {
        let process = command.spawn().expect("the stream-bridge binary starts");
        Self { process, address }
    }

    async fn metrics(&self) -> String {
        wait_until_healthy(self.address).await;
        metrics_text(self.address).await
    }

    /// Waits until the bridge's metrics satisfy `ready`, a description of
    /// which goes into the failure message.
    async fn wait_for_metrics(&self, what: &str, within: Duration, ready: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let text = self.metrics().await;
            if ready(&text) {
                return text;
            }
            assert!(
                started.elapsed() < within,
                "after {within:?}, not {what}:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// SIGTERM, then the exit status.
    async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.process.id().expect("running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        tokio::time::timeout(Duration::from_secs(40), self.process.wait())
            .await
            .expect("the bridge exits within 40 s of SIGTERM")
            .unwrap()
    }
}

/// A record value, its headers, and the error code expected for it in the
/// dead-letter topic.
type Poison = (Vec<u8>, &'static [(&'static str, &'static str)], &'static str);

/// An image of `image_type` no other test record has.
fn distinct(image_type: ImageType, n: usize) -> Vec<u8> {
    image(image_type, n as u64, 64)
}

#[tokio::test]
async fn every_image_is_stored_once_poison_goes_to_the_dead_letter_topic_and_offsets_are_committed() {
    let s = setup().await;
    let types = ImageType::ALL;
    let mut images = 0;
    let truncated = distinct(ImageType::Jpeg, 998);
    let poison: [Poison; 5] = [
        (truncated[..truncated.len() - 3].to_vec(), &[], "not_an_image"),
        (
            b"not an image at all".to_vec(),
            &[("source", "camera-7")],
            "not_an_image",
        ),
        (vec![0; MAX_IMAGE_BYTES + 1], &[], "too_large"),
        (Vec::new(), &[], "empty"),
        (
            distinct(ImageType::Png, 999),
            &[("content-type", "image/jpeg")],
            "type_mismatch",
        ),
    ];
    for n in 0..30 {
        let image_type = types[n % types.len()];
        let declared = [("content-type", image_type.mime_type())];
        let headers: &[(&str, &str)] = if n % 2 == 0 { &declared } else { &[] };
        s.produce((n % 3) as i32, &distinct(image_type, n), headers).await;
        images += 1;
        if n % 6 == 5 {
            let (value, headers, _) = &poison[n / 6];
            s.produce((n % 3) as i32, value, headers).await;
        }
    }
    let mut bridge = s.start_bridge();

    let (objects, items, events) = s.wait_for_images(images, Duration::from_secs(60)).await;
    assert_eq!((objects, items, events), (images, images, images));
    s.wait_until_all_committed(Duration::from_secs(30)).await;

    // What an operator sees on /metrics once the backlog is done.
    let total = (images + poison.len()) as f64;
    let text = bridge
        .wait_for_metrics("caught up", Duration::from_secs(20), |m| {
            metric(m, "stream_bridge_partition_lag") == 0.0
                && metric(m, "stream_bridge_records_dead_lettered_total") == poison.len() as f64
        })
        .await;
    assert_eq!(metric(&text, "stream_bridge_records_consumed_total"), total);
    assert_eq!(metric(&text, "stream_bridge_images_stored_total"), images as f64);
    assert_eq!(metric(&text, "stream_bridge_records_in_flight"), 0.0);
    assert_eq!(metric(&text, "stream_bridge_partitions_assigned"), 3.0);
    assert!(text.contains(r#"stream_bridge_records_dead_lettered_total{code="too_large"} 1"#));
    // Every event went to Firehose in some batch, none was refused.
    assert_eq!(
        metric(&text, "stream_bridge_firehose_batch_records_sum"),
        images as f64
    );
    assert_eq!(metric(&text, "stream_bridge_firehose_failures_total"), 0.0);
    // The chart's alerts and dashboards read only metrics served here.
    ingest_testing::monitoring::assert_monitoring_reads_only_exposed(&text, "stream_bridge_");

    // Every event carries its record's Kafka position, each a different one.
    let events = s.storage.events().await;
    let positions: BTreeSet<(i64, i64)> = events
        .iter()
        .map(|e| {
            assert_eq!(
                (&e["source"], &e["kafka"]["topic"]),
                (&"stream".into(), &TOPIC.into())
            );
            (
                e["kafka"]["partition"].as_i64().unwrap(),
                e["kafka"]["offset"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(positions.len(), images);

    // The dead-letter topic: each poison record, its code, message and the
    // original headers.
    let dlq: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", s.kafka.bootstrap_servers())
        .set("group.id", "dlq-reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    dlq.subscribe(&[DLQ]).unwrap();
    let mut codes = BTreeSet::new();
    for _ in 0..poison.len() {
        let record = tokio::time::timeout(Duration::from_secs(30), dlq.recv())
            .await
            .expect("a dead-lettered record within 30 s")
            .unwrap();
        let headers = record.headers().expect("headers");
        let value = |name: &str| {
            headers
                .iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let code = value("error-code").expect("error-code");
        assert!(value("error-message").is_some_and(|m| !m.is_empty()));
        if record.payload() == Some(&b"not an image at all"[..]) {
            assert_eq!(code, "not_an_image");
            assert_eq!(
                value("source").as_deref(),
                Some("camera-7"),
                "original headers kept"
            );
        }
        codes.insert(code);
    }
    let expected: BTreeSet<String> = poison.iter().map(|p| p.2.to_owned()).collect();
    assert_eq!(codes, expected);

    bridge.process.start_kill().unwrap();
}

#[tokio::test]
async fn killed_at_random_points_and_restarted_the_bridge_stores_every_image_exactly_once() {
    let s = setup().await;
    let images = 300;
    s.produce_images(0..images).await;
    // Kill points vary between runs (and are printed): each bridge is
    // killed 0 to 1.5 s after it is seen storing, that is, once it holds
    // partitions, until three kills have landed in the backlog.
    let seed = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_millis(),
    );
    let mut kills = Vec::new();
    let mut items = 0;
    for round in 0..10u64 {
        let mut bridge = s.start_bridge();
        let started = Instant::now();
        while s.storage.item_count().await == items {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "a restarted bridge stores nothing"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let wait = (seed + round * 7919) % 1500;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        bridge.process.start_kill().unwrap();
        bridge.process.wait().await.unwrap();
        let killed_after = started.elapsed().as_millis();
        // The killed bridge stays a member until its session times out. A
        // successor joining before that gets no partitions from tansu 0.6 if
        // the dead member was leader, and tansu starts no new rebalance when
        // the dead member expires, so the successor would idle for good
        // (Kafka waits for the leader to rejoin and evicts it). tansu does
        // not answer DescribeGroups, so the test waits out the session.
        tokio::time::sleep(SESSION_TIMEOUT + Duration::from_secs(2)).await;
        let (objects, stored_items, _) = s.storage.written().await;
        items = stored_items;
        kills.push((killed_after, objects, items));
        if items == images || kills.len() == 3 {
            break;
        }
    }
    eprintln!("killed after (ms since start, objects, items): {kills:?}");
    assert!(
        kills.iter().filter(|(_, _, items)| *items < images).count() >= 2,
        "at least two kills land in the middle of the backlog: {kills:?}"
    );
    let _bridge = s.start_bridge();
    s.wait_for_images(images, Duration::from_secs(120)).await;
    s.wait_until_all_committed(Duration::from_secs(30)).await;
    // Distinct keys equal to the count: no image stored under two keys.
    let keys = s.storage.keys(prefix::IMAGES).await;
    assert_eq!(
        keys.iter().collect::<BTreeSet<_>>().len(),
        images,
        "after {kills:?}"
    );
    assert_eq!(s.storage.item_count().await, images, "no duplicate items");
}

#[tokio::test]
async fn during_an_aws_outage_nothing_is_committed_or_lost_and_the_bridge_catches_up_after() {
    let s = setup().await;
    let outage = Outage::relay_to(s.storage.emulator_address()).await;
    let (mut command, address) = s.bridge_command(32);
    command.env("AWS_ENDPOINT_URL", format!("https://{}", outage.address()));
    let bridge = Bridge::spawn((command, address));
    let batch = 12;
    s.produce_images(0..batch).await;
    s.wait_for_images(batch, Duration::from_secs(60)).await;
    s.wait_until_all_committed(Duration::from_secs(30)).await;
    let before = s.committed_and_ends();

    // More records than the bridge may hold (32): it holds 32, reads no
    // more, and the lag counts all of them as not committed.
    outage.begin();
    let during_outage = 48;
    s.produce_images(batch..batch + during_outage).await;
    bridge
        .wait_for_metrics("holding 32 records", Duration::from_secs(30), |m| {
            metric(m, "stream_bridge_records_in_flight") == 32.0
                && metric(m, "stream_bridge_partition_lag") == during_outage as f64
        })
        .await;
    // Several automatic commit intervals (1 s) later, still nothing
    // committed, stored, or read beyond the limit.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let text = bridge.metrics().await;
    assert_eq!(metric(&text, "stream_bridge_records_in_flight"), 32.0);
    assert_eq!(
        metric(&text, "stream_bridge_records_consumed_total"),
        (batch + 32) as f64,
        "records read during the outage beyond the in-flight limit"
    );
    let during = s.committed_and_ends();
    let committed = |offsets: &[(i64, i64)]| offsets.iter().map(|o| o.0).collect::<Vec<_>>();
    assert_eq!(
        committed(&during),
        committed(&before),
        "committed during the outage"
    );
    assert_eq!(
        s.storage.written().await.1,
        batch,
        "items written during the outage"
    );
    assert!(
        s.storage.keys(prefix::IMAGES).await.len() == batch,
        "objects written during the outage"
    );

    outage.end().await;
    let total = batch + during_outage;
    s.wait_for_images(total, Duration::from_secs(60)).await;
    s.wait_until_all_committed(Duration::from_secs(30)).await;
    let text = bridge
        .wait_for_metrics("caught up", Duration::from_secs(20), |m| {
            metric(m, "stream_bridge_partition_lag") == 0.0
        })
        .await;
    assert_eq!(metric(&text, "stream_bridge_images_stored_total"), total as f64);
    assert_eq!(metric(&text, "stream_bridge_records_in_flight"), 0.0);
}

#[tokio::test]
async fn two_bridges_in_one_group_split_the_partitions_and_store_every_image_once() {
    let s = setup().await;
    let images = 240;
    s.produce_images(0..images).await;
    // Few records in flight, so the backlog outlasts the rebalance.
    let slow = || Bridge::spawn(s.bridge_command(4));
    let first = slow();
    let started = Instant::now();
    while s.storage.item_count().await < 20 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the first bridge stores nothing"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let second = slow();
    let started = Instant::now();
    let split = loop {
        let assigned = (
            metric(&first.metrics().await, "stream_bridge_partitions_assigned"),
            metric(&second.metrics().await, "stream_bridge_partitions_assigned"),
        );
        if assigned.0 > 0.0 && assigned.1 > 0.0 && assigned.0 + assigned.1 == 3.0 {
            break assigned;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "partitions not split after 60 s: {assigned:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };

    s.wait_for_images(images, Duration::from_secs(120)).await;
    s.wait_until_all_committed(Duration::from_secs(30)).await;
    let keys = s.storage.keys(prefix::IMAGES).await;
    assert_eq!(keys.iter().collect::<BTreeSet<_>>().len(), images);
    assert_eq!(s.storage.item_count().await, images);
    let (first, second) = (first.metrics().await, second.metrics().await);
    let consumed = |m: &str| metric(m, "stream_bridge_records_consumed_total");
    let existing = |m: &str| metric(m, r#"stream_bridge_images_stored_total{outcome="existing"}"#);
    assert!(consumed(&second) > 0.0, "the second bridge stored nothing");
    // Records in flight at the rebalance are read again by the new owner,
    // which finds them stored.
    assert!(consumed(&first) + consumed(&second) >= images as f64);
    eprintln!(
        "partitions {split:?}; consumed {} + {}; found already stored {} + {}",
        consumed(&first),
        consumed(&second),
        existing(&first),
        existing(&second)
    );
}

#[tokio::test]
async fn sigterm_finishes_the_records_in_flight_commits_exactly_what_is_stored_and_exits_0() {
    let s = setup().await;
    let images = 200;
    s.produce_images(0..images).await;
    let mut bridge = s.start_bridge();
    bridge
        .wait_for_metrics("busy", Duration::from_secs(60), |m| {
            metric(m, "stream_bridge_images_stored_total") >= 40.0
                && metric(m, "stream_bridge_records_in_flight") > 0.0
        })
        .await;
    let status = bridge.terminate().await;
    assert!(status.success(), "exit status {status}");

    // Every record below a partition's committed offset is stored, and
    // nothing stored lies beyond it: the work finished was committed.
    let committed = s.committed_and_ends();
    let expected: BTreeSet<(i64, i64)> = committed
        .iter()
        .enumerate()
        .flat_map(|(p, (offset, _))| (0..*offset).map(move |o| (p as i64, o)))
        .collect();
    let stored: BTreeSet<(i64, i64)> = s
        .storage
        .events()
        .await
        .iter()
        .map(|e| {
            (
                e["kafka"]["partition"].as_i64().unwrap(),
                e["kafka"]["offset"].as_i64().unwrap(),
            )
        })
        .collect();
    assert!(stored.len() < images, "stopped before the end: {committed:?}");
    assert_eq!(stored, expected, "committed {committed:?}");
    assert_eq!(s.storage.item_count().await, stored.len());
}

#[tokio::test]
async fn readyz_answers_503_until_the_bridge_has_joined_its_group() {
    let s = setup().await;
    // Bootstrap servers where nothing listens.
    let nowhere = free_loopback_address().to_string();
    let address = free_loopback_address();
    let mut command = s.storage.service_command(env!("CARGO_BIN_EXE_stream-bridge"));
    command
        .args(["--listen", &address.to_string()])
        .args(["--bootstrap-servers", &nowhere])
        .env("RUST_LOG", "error");
    let _lost = Bridge::spawn((command, address));
    let http = http_client();
    wait_until_healthy(address).await;
    let answer = http.get(format!("http://{address}/readyz")).send().await.unwrap();
    assert_eq!(answer.status(), 503);
    assert!(answer.text().await.unwrap().contains("bootstrap servers"));

    let bridge = s.start_bridge();
    wait_until_healthy(bridge.address).await;
    let started = Instant::now();
    loop {
        let status = http
            .get(format!("http://{}/readyz", bridge.address))
            .send()
            .await
            .unwrap()
            .status();
        if status == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "/readyz still {status} after 30 s with a reachable broker"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
