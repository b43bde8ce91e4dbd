//! The analysts' views of `warehouse::ddl`, evaluated on events as Firehose
//! writes them: the emulator has no Redshift, so the e2e harness translates
//! the views to SQLite and runs them over the event lines (see
//! `e2e/src/warehouse/`). The events are made by `EventRecord::to_line`, as
//! the services make them, over two days and both sources, with what
//! at-least-once delivery and the bucket's lifecycle leave behind: replayed
//! events, one content stored under two ids, and an expired event.

use std::io::Write;

use imagepipeline_e2e::LocalWarehouse;
use imagepipeline_e2e::warehouse::Script;
use imagepipeline_operator::components::analytics::warehouse::{EVENT_COLUMNS, WarehouseNames, ddl};
use ingest_core::PerceptualHash;
use ingest_core::record::{EventRecord, ImageId, ImageItem, KafkaPosition, Source};
use jiff::Timestamp;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const RETENTION_DAYS: u32 = 7;
const TOPIC: &str = "images";
/// Perceptual hashes; the top bit of `BEE` is set, as a signed 64-bit
/// integer could not hold.
const LEAF: u64 = 0xffff_0000_ffff_0000;
const BEE: u64 = 0x8000_0000_0000_0000;

fn script() -> String {
    let names = WarehouseNames::new(
        "images",
        "ipl_x_events".into(),
        "arn:aws:iam::123456789012:role/x".into(),
        "bucket",
    );
    ddl(&names, "cluster", "images")
}

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// An image as the store makes it: its id from the content and the time.
fn stored(content: &str, content_type: &str, bytes: u64, source: Source, ingested_at: &str) -> EventRecord {
    let digest: [u8; 32] = Sha256::digest(content).into();
    let ingested_at = at(ingested_at);
    let id = ImageId::for_content(&digest, ingested_at);
    EventRecord {
        item: ImageItem {
            id,
            sha256: hex::encode(digest),
            original_sha256: None,
            uploaded_by: None,
            content_type: content_type.to_owned(),
            bytes,
            width: 8,
            height: 8,
            phash: None,
            bucket: "bucket".to_owned(),
            key: format!("images/{id}"),
            source,
            ingested_at,
            expires_at: ImageItem::expiry(ingested_at, RETENTION_DAYS),
        },
        kafka: None,
    }
}

/// `event` of an image whose perceptual hash is `phash` (events stored
/// before images were decoded have none).
fn looking_like(mut event: EventRecord, phash: u64) -> EventRecord {
    event.item.phash = Some(PerceptualHash(phash));
    event
}

fn from_stream(mut event: EventRecord, partition: i32, offset: i64) -> EventRecord {
    event.item.source = Source::Stream;
    event.kafka = Some(KafkaPosition {
        topic: TOPIC.to_owned(),
        partition,
        offset,
    });
    event
}

/// The same event sent again later, as a bridge replaying a record whose
/// item it had not written yet sends it: same id, a later `ingestedAt`.
fn replayed(event: &EventRecord, ingested_at: &str) -> EventRecord {
    let mut again = event.clone();
    again.item.ingested_at = at(ingested_at);
    again.item.expires_at = ImageItem::expiry(again.item.ingested_at, RETENTION_DAYS);
    again
}

struct Scenario {
    a: EventRecord,
    a_again: EventRecord,
    b: EventRecord,
    c: EventRecord,
    c_again: EventRecord,
    d: EventRecord,
    e: EventRecord,
    f: EventRecord,
    g: EventRecord,
    expired: EventRecord,
}

impl Scenario {
    fn new() -> Self {
        let a = looking_like(
            stored(
                "leaf",
                "image/png",
                100,
                Source::Api,
                "2026-11-30T09:15:00.123456789Z",
            ),
            LEAF,
        );
        let c = from_stream(
            stored(
                "cactus",
                "image/jpeg",
                300,
                Source::Stream,
                "2026-11-30T10:40:00.5Z",
            ),
            3,
            42,
        );
        Self {
            a_again: replayed(&a, "2026-11-30T09:15:04.5Z"),
            c_again: replayed(&c, "2026-11-30T10:40:07Z"),
            a,
            c,
            b: looking_like(
                from_stream(
                    stored("bee", "image/jpeg", 200, Source::Stream, "2026-11-30T10:05:00Z"),
                    3,
                    41,
                ),
                BEE,
            ),
            // The same bytes as `a`, stored under another id (two uploads
            // that both found no item for the content).
            d: looking_like(
                stored("leaf", "image/png", 150, Source::Api, "2026-11-30T16:20:00Z"),
                LEAF,
            ),
            e: looking_like(
                from_stream(
                    stored(
                        "elk",
                        "image/png",
                        400,
                        Source::Stream,
                        "2026-12-01T23:59:59.999Z",
                    ),
                    7,
                    0,
                ),
                LEAF ^ 0x0000_003f_0000_001f,
            ),
            f: looking_like(
                from_stream(
                    stored("fern", "image/jpeg", 250, Source::Stream, "2026-12-01T23:10:00Z"),
                    7,
                    1,
                ),
                BEE ^ 1,
            ),
            g: looking_like(
                stored("gull", "image/webp", 50, Source::Api, "2026-12-01T08:00:00Z"),
                LEAF ^ 0x0000_001f_0000_001f,
            ),
            // `bee`'s bytes again, long ago: were it counted, `bee` would be
            // a duplicate upload and partition 3 would start at offset 40.
            expired: looking_like(
                from_stream(
                    stored("bee", "image/gif", 999, Source::Stream, "2026-11-20T08:00:00Z"),
                    3,
                    40,
                ),
                BEE,
            ),
        }
    }

    /// The first day's events in one gzip object (Firehose's default), the
    /// rest in an uncompressed one, each in the order they landed.
    fn load_into(&self, warehouse: &mut LocalWarehouse) {
        let lines = |events: &[&EventRecord]| events.iter().flat_map(|e| e.to_line()).collect::<Vec<u8>>();
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gzip.write_all(&lines(&[
            &self.expired,
            &self.a,
            &self.a_again,
            &self.b,
            &self.c,
            &self.c_again,
            &self.d,
        ]))
        .unwrap();
        let first = warehouse
            .load_object(
                "events/2026/11/30/09/ipl-1-2026-11-30-09-15-00-x.gz",
                &gzip.finish().unwrap(),
            )
            .unwrap();
        let second = warehouse
            .load_object(
                "events/2026/12/01/08/ipl-1-2026-12-01-08-00-00-y",
                &lines(&[&self.g, &self.f, &self.e]),
            )
            .unwrap();
        assert_eq!(first + second, 10);
    }
}

/// The views evaluated at `now` over the scenario's events.
fn evaluated(now: &str) -> (Scenario, LocalWarehouse) {
    let scenario = Scenario::new();
    let mut warehouse = LocalWarehouse::new(&script(), at(now).as_second()).unwrap();
    scenario.load_into(&mut warehouse);
    (scenario, warehouse)
}

fn rows(warehouse: &LocalWarehouse, sql: &str) -> Vec<Value> {
    let rows = warehouse.query(sql).unwrap();
    rows.rows.into_iter().map(Value::from).collect()
}

fn id(event: &EventRecord) -> String {
    event.item.id.to_string()
}

#[test]
fn the_script_states_the_glue_table_the_operator_defines_and_every_view_translates() {
    let script = Script::parse(&script()).unwrap();
    let columns: Vec<(&str, &str, &str)> = script
        .events_table
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.hive_type.as_str(), c.json_key.as_str()))
        .collect();
    let defined: Vec<(&str, &str, &str)> = EVENT_COLUMNS
        .iter()
        .map(|c| (c.name, c.hive_type, c.json_key))
        .collect();
    assert_eq!(columns, defined);
    let warehouse = LocalWarehouse::new(&self::script(), 0).unwrap();
    let views: Vec<&str> = warehouse.views().iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        views,
        // Made in order; events and images dropped and made again, last
        // with the original SHA-256 and the uploader. The views are
        // late-binding, so near_duplicates outlives the images view it
        // reads being made again.
        [
            "images_daily",
            "duplicate_uploads",
            "stream_offsets",
            "near_duplicates",
            "events",
            "images"
        ]
    );
}

#[test]
fn near_duplicates_pairs_different_bytes_whose_hashes_differ_in_ten_bits_or_fewer() {
    let (s, warehouse) = evaluated("2026-12-03T12:00:00Z");
    let pair = |x: &EventRecord, y: &EventRecord| {
        let distance = x.item.phash.unwrap().distance(y.item.phash.unwrap());
        json!([id(x), x.item.sha256, id(y), y.item.sha256, distance])
    };
    // Leaf and its copy under another id are the same bytes, not a near
    // duplicate; elk is 11 bits from leaf; cactus has no hash; the expired
    // bee is gone.
    assert_eq!(
        rows(
            &warehouse,
            "SELECT id, sha256, similar_id, similar_sha256, distance FROM near_duplicates ORDER BY id, similar_id"
        ),
        [
            pair(&s.a, &s.g),
            pair(&s.b, &s.f),
            pair(&s.d, &s.g),
            pair(&s.g, &s.e)
        ]
    );
    let distances: Vec<u32> = [(&s.a, &s.g), (&s.b, &s.f), (&s.g, &s.e), (&s.a, &s.e)]
        .map(|(x, y)| x.item.phash.unwrap().distance(y.item.phash.unwrap()))
        .to_vec();
    assert_eq!(distances, [10, 1, 1, 11]);
}

#[test]
fn images_holds_each_live_image_once_as_its_last_copy_landed_which_its_item_holds() {
    let (s, warehouse) = evaluated("2026-12-03T12:00:00Z");
    let images = rows(
        &warehouse,
        "SELECT id, sha256, content_type, bytes, source, ingested_at, expires_at, s3_uri FROM images ORDER BY ingested_at",
    );
    let row = |e: &EventRecord, ingested_at: &str, expires_at: &str| {
        json!([
            id(e),
            e.item.sha256,
            e.item.content_type,
            e.item.bytes,
            e.item.source,
            ingested_at,
            expires_at,
            format!("s3://bucket/{}", e.item.key)
        ])
    };
    assert_eq!(
        images,
        [
            row(&s.a, "2026-11-30 09:15:04", "2026-12-07 09:15:04"),
            row(&s.b, "2026-11-30 10:05:00", "2026-12-07 10:05:00"),
            row(&s.c, "2026-11-30 10:40:07", "2026-12-07 10:40:07"),
            row(&s.d, "2026-11-30 16:20:00", "2026-12-07 16:20:00"),
            row(&s.g, "2026-12-01 08:00:00", "2026-12-08 08:00:00"),
            row(&s.f, "2026-12-01 23:10:00", "2026-12-08 23:10:00"),
            row(&s.e, "2026-12-01 23:59:59", "2026-12-08 23:59:59"),
        ]
    );
    assert_eq!(rows(&warehouse, "SELECT COUNT(*) FROM events"), [json!([7])]);
}

#[test]
fn images_daily_counts_images_bytes_and_contents_per_day_source_and_type() {
    let (_, warehouse) = evaluated("2026-12-03T12:00:00Z");
    assert_eq!(
        rows(
            &warehouse,
            "SELECT * FROM images_daily ORDER BY day, source, content_type"
        ),
        [
            json!(["2026-11-30", "api", "image/png", 2, 250, 1]),
            json!(["2026-11-30", "stream", "image/jpeg", 2, 500, 2]),
            json!(["2026-12-01", "api", "image/webp", 1, 50, 1]),
            json!(["2026-12-01", "stream", "image/jpeg", 1, 250, 1]),
            json!(["2026-12-01", "stream", "image/png", 1, 400, 1]),
        ]
    );
    let columns = warehouse.query("SELECT * FROM images_daily").unwrap().columns;
    assert_eq!(
        columns,
        [
            "day",
            "source",
            "content_type",
            "images",
            "bytes",
            "distinct_sha256"
        ]
    );
}

#[test]
fn duplicate_uploads_lists_the_ids_sharing_their_bytes() {
    let (s, warehouse) = evaluated("2026-12-03T12:00:00Z");
    assert_eq!(
        rows(&warehouse, "SELECT * FROM duplicate_uploads ORDER BY ingested_at"),
        [
            json!([s.a.item.sha256, 2, id(&s.a), "api", "2026-11-30 09:15:04"]),
            json!([s.d.item.sha256, 2, id(&s.d), "api", "2026-11-30 16:20:00"]),
        ]
    );
}

#[test]
fn stream_offsets_gives_first_and_last_offset_and_records_per_hour_and_partition() {
    let (_, warehouse) = evaluated("2026-12-03T12:00:00Z");
    assert_eq!(
        rows(
            &warehouse,
            "SELECT * FROM stream_offsets ORDER BY hour, topic, kafka_partition"
        ),
        [
            json!(["2026-11-30 10:00:00", TOPIC, 3, 41, 42, 2]),
            json!(["2026-12-01 23:00:00", TOPIC, 7, 0, 1, 2]),
        ]
    );
}

#[test]
fn the_expired_event_is_in_no_view() {
    let (s, warehouse) = evaluated("2026-12-03T12:00:00Z");
    let expired = id(&s.expired);
    for view in ["events", "images", "duplicate_uploads"] {
        let found = rows(
            &warehouse,
            &format!("SELECT COUNT(*) FROM {view} WHERE id = '{expired}'"),
        );
        assert_eq!(found, [json!([0])], "{view}");
    }
    let november_20 = rows(
        &warehouse,
        "SELECT COUNT(*) FROM images_daily WHERE day = '2026-11-20'",
    );
    assert_eq!(november_20, [json!([0])]);
    let offset_40 = rows(
        &warehouse,
        "SELECT COUNT(*) FROM stream_offsets WHERE kafka_partition = 3 AND first_offset <= 40",
    );
    assert_eq!(offset_40, [json!([0])]);
}

/// Expiry is per copy, before deduplication: the replay (the copy its item
/// and object were written with) stands for the image until it expires too.
#[test]
fn retention_is_evaluated_at_the_time_given_for_getdate() {
    let (s, warehouse) = evaluated("2026-12-07T09:15:02Z");
    let a = rows(
        &warehouse,
        &format!(
            "SELECT ingested_at, expires_at FROM images WHERE id = '{}'",
            id(&s.a)
        ),
    );
    assert_eq!(a, [json!(["2026-11-30 09:15:04", "2026-12-07 09:15:04"])]);
    let (_, later) = evaluated("2026-12-09T00:00:00Z");
    assert_eq!(rows(&later, "SELECT COUNT(*) FROM images"), [json!([0])]);
    assert_eq!(rows(&later, "SELECT COUNT(*) FROM stream_offsets"), [json!([0])]);
}
