//! The stream-bridge binary against a real Kafka-protocol broker (tansu, a
//! fresh store per test) and the pipeline's storage in the AWS emulator:
//! what lands in S3, DynamoDB, Firehose and the dead-letter topic, and what
//! the consumer group has committed.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use imagepipeline_e2e::KafkaBroker;
use ingest_core::ImageType;
use ingest_testing::{PipelineStorage, free_loopback_address, image};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::process::Child;

const TOPIC: &str = "images";
const DLQ: &str = "images.dlq";
const PARTITIONS: i32 = 3;
const GROUP: &str = "bridge-test";
const MAX_IMAGE_BYTES: usize = 64 * 1024;

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
    fn start_bridge(&self) -> Child {
        self.storage
            .service_command(env!("CARGO_BIN_EXE_stream-bridge"))
            .args(["--listen", &free_loopback_address().to_string()])
            .args(["--bootstrap-servers", &self.kafka.bootstrap_servers()])
            .args(["--group-id", GROUP, "--firehose-flush-ms", "200"])
            // Low enough that reading pauses and resumes in every test.
            .args(["--max-in-flight-records", "32"])
            // A killed bridge's partitions move on after 6 s, not 45.
            .args(["--session-timeout-ms", "6000"])
            .args(["--max-image-bytes", &MAX_IMAGE_BYTES.to_string()])
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("the stream-bridge binary starts")
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

/// A record value, its headers, and the error code expected for it in the
/// dead-letter topic.
type Poison = (Vec<u8>, &'static [(&'static str, &'static str)], &'static str);

/// An image of `image_type` no other test record has.
fn distinct(image_type: ImageType, n: usize) -> Vec<u8> {
    let mut bytes = image(image_type, 0, 64);
    bytes.extend_from_slice(&n.to_le_bytes());
    bytes
}

#[tokio::test]
async fn every_image_is_stored_once_poison_goes_to_the_dead_letter_topic_and_offsets_are_committed() {
    let s = setup().await;
    let types = ImageType::ALL;
    let mut images = 0;
    let poison: [Poison; 4] = [
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
    for n in 0..24 {
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
        if code == "not_an_image" {
            assert_eq!(
                value("source").as_deref(),
                Some("camera-7"),
                "original headers kept"
            );
            assert_eq!(record.payload(), Some(&b"not an image at all"[..]));
        }
        codes.insert(code);
    }
    let expected: BTreeSet<String> = poison.iter().map(|p| p.2.to_owned()).collect();
    assert_eq!(codes, expected);

    bridge.start_kill().unwrap();
}

#[tokio::test]
async fn killed_at_random_points_and_restarted_the_bridge_stores_every_image_exactly_once() {
    let s = setup().await;
    let images = 300;
    for n in 0..images {
        s.produce((n % 3) as i32, &distinct(ImageType::ALL[n % 4], n), &[])
            .await;
    }
    // Kill points vary between runs (and are printed): the bridge is killed
    // 1.5 to 6 s after it starts, until it has been killed three times in
    // the middle of the backlog.
    let seed = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_millis(),
    );
    let mut kills = Vec::new();
    for round in 0..10u64 {
        let mut bridge = s.start_bridge();
        let wait = 1500 + (seed + round * 7919) % 4500;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        bridge.start_kill().unwrap();
        bridge.wait().await.unwrap();
        let (objects, items, _) = s.storage.written().await;
        kills.push((wait, objects, items));
        let midway = kills
            .iter()
            .filter(|(_, _, items)| (1..images).contains(items))
            .count();
        if midway >= 3 || items == images {
            break;
        }
    }
    eprintln!("killed after (ms, objects, items): {kills:?}");
    assert!(
        kills
            .iter()
            .filter(|(_, _, items)| (1..images).contains(items))
            .count()
            >= 2,
        "at least two kills land in the middle of the backlog: {kills:?}"
    );
    let _bridge = s.start_bridge();
    s.wait_for_images(images, Duration::from_secs(120)).await;
    s.wait_until_all_committed(Duration::from_secs(30)).await;
    // Distinct keys equal to the count: no image stored under two keys.
    let keys = s.storage.keys("images/").await;
    assert_eq!(
        keys.iter().collect::<BTreeSet<_>>().len(),
        images,
        "after {kills:?}"
    );
    assert_eq!(s.storage.item_count().await, images, "no duplicate items");
}
