//! The local end-to-end test: `examples/imagepipeline.yaml` applied to the
//! AWS emulator by the `imagepipeline` binary, upload-api and stream-bridge
//! running against what it made (the bridge on a real Kafka-protocol
//! broker), images sent both ways, checked where a user would look (S3,
//! DynamoDB, the Firehose objects, the dead-letter topic, the warehouse's
//! views evaluated locally), then destroyed.
//!
//! The binaries come from the workspace build: `cargo test --workspace`
//! builds them first.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use imagepipeline_e2e::images;
use imagepipeline_e2e::local::{BRIDGE_SESSION_TIMEOUT, Landed, StoredObject};
use imagepipeline_e2e::{LocalPipeline, SOURCE_HEADER, SampleRun, Samples, repo_root, sha256_hex};
use ingest_core::{ImageType, PerceptualHash};
use serde_json::{Value, json};

const CONDITIONS: [&str; 8] = [
    "Ready",
    "NetworkReady",
    "StorageReady",
    "MetadataReady",
    "DeliveryReady",
    "UploadTierReady",
    "KafkaReady",
    "AnalyticsReady",
];
const COMPONENTS: [&str; 7] = [
    "Network",
    "Storage",
    "Metadata",
    "Delivery",
    "UploadTier",
    "Kafka",
    "Analytics",
];

/// The example pipeline, applied; `progress` holds what apply printed.
async fn applied_example() -> (LocalPipeline, Vec<String>) {
    let manifest = repo_root().join("examples/imagepipeline.yaml");
    let mut pipeline = LocalPipeline::start(&manifest)
        .await
        .expect("emulator and broker start");
    let mut progress = Vec::new();
    let status = pipeline
        .apply(|line| progress.push(line.to_owned()))
        .await
        .expect("imagepipeline apply succeeds")
        .clone();
    assert_eq!(status.phase.as_deref(), Some("Ready"), "{status:#?}");
    for type_ in CONDITIONS {
        let condition = status
            .condition(type_)
            .unwrap_or_else(|| panic!("no {type_} condition in {status:#?}"));
        assert_eq!(condition.status, "True", "{condition:?}");
    }
    let endpoints = &status.endpoints;
    for (what, value) in [
        ("bucket", &endpoints.bucket),
        ("table", &endpoints.table),
        ("delivery stream", &endpoints.delivery_stream),
        ("upload URL", &endpoints.upload_url),
        ("Kafka bootstrap servers", &endpoints.kafka_bootstrap),
        ("warehouse", &endpoints.warehouse),
    ] {
        assert!(value.is_some(), "the status has no {what}: {endpoints:?}");
    }
    (pipeline, progress)
}

fn object<'a>(landed: &'a Landed, key: &str) -> &'a StoredObject {
    landed
        .images
        .iter()
        .find(|o| o.key == key)
        .unwrap_or_else(|| panic!("no object {key} among {:#?}", landed.images))
}

fn events_of<'a>(landed: &'a Landed, id: &str) -> Vec<&'a Value> {
    landed.events.iter().filter(|e| e["id"] == id).collect()
}

async fn destroy_leaves_nothing(pipeline: &mut LocalPipeline) {
    pipeline
        .destroy(|_| {})
        .await
        .expect("imagepipeline destroy succeeds");
    let left = pipeline
        .leftovers()
        .await
        .expect("the emulator lists its resources");
    assert!(
        left.is_empty(),
        "tagged as the pipeline's after destroy: {left:#?}"
    );
}

#[tokio::test]
async fn the_example_pipeline_stores_every_image_from_the_api_and_from_kafka_and_destroy_leaves_nothing() {
    let (mut pipeline, progress) = applied_example().await;
    for component in COMPONENTS {
        assert!(
            progress
                .iter()
                .any(|l| l.trim_start().starts_with(component) && l.ends_with("ready")),
            "apply reports {component} ready: {progress:#?}"
        );
    }
    pipeline.start_upload_api().await.expect("upload-api starts");
    pipeline
        .start_stream_bridge()
        .await
        .expect("stream-bridge starts");
    let samples = Samples::load().expect("e2e/samples");
    assert_eq!(
        (samples.upload.len(), samples.kafka.len()),
        (4, 4),
        "one of each type each way"
    );
    let run = SampleRun::send(&pipeline, &samples)
        .await
        .expect("the samples are sent");
    let landed = &run.landed;
    let status = pipeline.status().unwrap().clone();
    let bucket = status.endpoints.bucket.clone().unwrap();

    // Each upload: 201 with its item; the object, the same item in
    // DynamoDB, and one event.
    for (sample, upload) in &run.uploads {
        assert_eq!(upload.status, 201, "{}: {}", sample.name, upload.body);
        let item = &upload.body;
        assert_eq!(item["sha256"], sample.sha256(), "{}", sample.name);
        assert_eq!(item["contentType"], sample.content_type);
        assert_eq!(item["bytes"], sample.bytes.len());
        assert_eq!(item["source"], "api");
        assert_eq!(item["bucket"], bucket.as_str());
        let key = item["key"].as_str().unwrap();
        let stored = object(landed, key);
        assert_eq!(stored.content_type.as_deref(), Some(sample.content_type));
        assert_eq!(stored.sha256.as_deref(), Some(sample.sha256().as_str()));
        assert_eq!(stored.size, sample.bytes.len() as i64);
        let id = item["id"].as_str().unwrap();
        let in_table = landed.items.iter().find(|i| i["id"] == id);
        assert_eq!(in_table, Some(item), "the DynamoDB item is what the API answered");
        let events = events_of(landed, id);
        assert_eq!(events.len(), 1, "one event for {}: {events:?}", sample.name);
        assert_eq!(events[0], item, "the event carries the item's fields");
    }

    // The bad file: 415 with a JSON error, nothing stored.
    let (bad, refused) = &run.bad_upload;
    assert_eq!(refused.status, 415, "{}", refused.body);
    assert!(refused.body["error"]["code"].is_string(), "{}", refused.body);
    assert!(refused.body["error"]["message"].is_string(), "{}", refused.body);
    assert!(
        landed.items.iter().all(|i| i["sha256"] != bad.sha256()),
        "the refused file left an item"
    );

    // Each record: object, item and event, the event naming the record.
    let topic = &pipeline.manifest.topic;
    for (sample, produced) in &run.produced {
        let items: Vec<&Value> = landed
            .items
            .iter()
            .filter(|i| i["sha256"] == sample.sha256())
            .collect();
        assert_eq!(items.len(), 1, "one item for {}: {items:?}", sample.name);
        let item = items[0];
        assert_eq!(item["source"], "stream");
        assert_eq!(item["contentType"], sample.content_type);
        let stored = object(landed, item["key"].as_str().unwrap());
        assert_eq!(stored.sha256.as_deref(), Some(sample.sha256().as_str()));
        let events = events_of(landed, item["id"].as_str().unwrap());
        assert_eq!(events.len(), 1, "one event for {}: {events:?}", sample.name);
        assert_eq!(
            events[0]["kafka"],
            json!({"topic": topic, "partition": produced.partition, "offset": produced.offset}),
            "{}",
            sample.name
        );
    }

    // The poison record: in the dead-letter topic with its error and headers.
    let (poison, _) = &run.poison;
    assert_eq!(landed.dead_letters.len(), 1, "{:#?}", landed.dead_letters);
    let dead = &landed.dead_letters[0];
    assert_eq!(dead.payload, poison.bytes);
    assert!(
        dead.error_code.is_some() && dead.error_message.is_some(),
        "{dead:?}"
    );
    assert_eq!(
        dead.headers.get("source").map(String::as_str),
        Some(SOURCE_HEADER.1),
        "the original headers are kept"
    );

    // Nothing else: one object, item and event per image.
    let images = samples.upload.len() + samples.kafka.len();
    assert_eq!(
        (landed.images.len(), landed.items.len(), landed.events.len()),
        (images, images, images)
    );

    // The same bytes again within retention: 200 with the existing item.
    let (first, answered) = &run.uploads[0];
    let again = pipeline
        .upload(first.bytes.clone(), first.content_type)
        .await
        .expect("the upload is answered");
    assert_eq!((again.status, &again.body), (200, &answered.body));
    assert_eq!(
        pipeline.landed().await.unwrap().images.len(),
        images,
        "no second object"
    );

    the_views_show_each_stored_image_once(&pipeline, &run).await;

    let plan = pipeline.plan().await.expect("imagepipeline plan runs");
    assert!(
        !plan.changes_pending,
        "plan after apply shows changes:\n{}",
        plan.text
    );
    // Applied again, as `make demo` does to show it: the table a user reads.
    let table = pipeline.apply_for_status_table().await.expect("apply again");
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("demo "))
        .unwrap_or_else(|| panic!("no row of the pipeline demo:\n{table}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[1..3], ["True", "Ready"], "READY and PHASE:\n{table}");
    assert!(
        row[3].parse::<f64>().is_ok_and(|usd| usd > 0.0),
        "COST/MONTH is the estimate's amount:\n{table}"
    );
    destroy_leaves_nothing(&mut pipeline).await;
}

/// The warehouse's views, from `imagepipeline warehouse ddl`, over the event
/// objects that landed, with duplicates made on purpose: what an analyst
/// expects is each stored image once, whatever at-least-once delivery wrote.
async fn the_views_show_each_stored_image_once(pipeline: &LocalPipeline, run: &SampleRun) {
    // A delivered event sent to Firehose again, as the bridge does when it
    // cannot tell whether Firehose took a batch: the same id twice.
    let (_, produced) = &run.produced[0];
    let delivered = run
        .landed
        .events
        .iter()
        .find(|e| e["kafka"]["partition"] == produced.partition && e["kafka"]["offset"] == produced.offset)
        .expect("the first record's event");
    pipeline
        .put_event(format!("{delivered}\n").as_bytes())
        .await
        .expect("Firehose takes the event again");
    // The same new bytes uploaded twice at once. The store looks the content
    // up before it writes, so which of three things happens is timing: both
    // miss and store it under two ids (a duplicate upload), both miss within
    // one millisecond and make the same id (two events, one item), or one
    // finds the other's item (one event). Each is compared with DynamoDB.
    let bytes = images::image(ImageType::Png, 1_000_000, 1000);
    let (one, two) = tokio::join!(
        pipeline.upload(bytes.clone(), "image/png"),
        pipeline.upload(bytes.clone(), "image/png")
    );
    let (one, two) = (one.expect("answered"), two.expect("answered"));
    assert!(
        [one.status, two.status].contains(&201),
        "{}, {}",
        one.body,
        two.body
    );

    // One picture at two sizes in two formats: different bytes that look
    // alike, a near duplicate.
    let mut scene = Vec::new();
    for (width, height, image_type) in [(320, 240, ImageType::Png), (160, 120, ImageType::Jpeg)] {
        let bytes = images::Picture::scene(width, height, 9).encode(image_type);
        let upload = pipeline
            .upload(bytes, image_type.mime_type())
            .await
            .expect("uploaded");
        assert_eq!(upload.status, 201, "{}", upload.body);
        scene.push(text(&upload.body["id"]));
    }

    let landed = pipeline.landed().await.unwrap();
    let warehouse = pipeline
        .local_warehouse(&landed)
        .await
        .expect("the views evaluate over the events");
    let twice = landed
        .events
        .iter()
        .filter(|e| e["id"] == delivered["id"])
        .count();
    assert_eq!(twice, 2, "the resent event landed beside the first");
    let sha = sha256_hex(&bytes);
    let items_of_bytes = landed.items.iter().filter(|i| i["sha256"] == sha).count();
    eprintln!(
        "uploaded twice at once: {} and {}, {items_of_bytes} item(s), {} event(s)",
        one.status,
        two.status,
        landed.events.iter().filter(|e| e["sha256"] == sha).count()
    );

    // `images`: each item once, as DynamoDB holds it.
    let images = warehouse
        .query("SELECT id, sha256, content_type, bytes, source, ingested_at, s3_uri FROM images ORDER BY id")
        .unwrap();
    let expected: Vec<Value> = landed
        .items
        .iter()
        .map(|i| {
            json!([
                i["id"],
                i["sha256"],
                i["contentType"],
                i["bytes"],
                i["source"],
                seconds(&i["ingestedAt"]),
                format!("s3://{}/{}", text(&i["bucket"]), text(&i["key"]))
            ])
        })
        .collect();
    assert_eq!(rows(&images), expected, "images is the table's items, once each");
    assert!(
        landed.events.len() > landed.items.len(),
        "the views had duplicates to hide"
    );

    // `images_daily`: the items counted per UTC day, source and type.
    let mut daily: BTreeMap<[String; 3], Vec<&Value>> = BTreeMap::new();
    for item in &landed.items {
        let day = text(&item["ingestedAt"])[..10].to_owned();
        let group = [day, text(&item["source"]), text(&item["contentType"])];
        daily.entry(group).or_default().push(item);
    }
    let expected: Vec<Value> = daily
        .into_iter()
        .map(|([day, source, type_], items)| {
            let bytes: u64 = items.iter().map(|i| i["bytes"].as_u64().unwrap()).sum();
            let contents: BTreeSet<String> = items.iter().map(|i| text(&i["sha256"])).collect();
            json!([day, source, type_, items.len(), bytes, contents.len()])
        })
        .collect();
    let images_daily = warehouse
        .query("SELECT * FROM images_daily ORDER BY day, source, content_type")
        .unwrap();
    assert_eq!(rows(&images_daily), expected);

    // `duplicate_uploads`: the ids of each content stored more than once.
    let mut by_sha: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for item in &landed.items {
        by_sha
            .entry(text(&item["sha256"]))
            .or_default()
            .push(text(&item["id"]));
    }
    let expected: Vec<Value> = by_sha
        .into_iter()
        .filter(|(_, ids)| ids.len() > 1)
        .flat_map(|(sha, ids)| {
            let uploads = ids.len();
            ids.into_iter().map(move |id| json!([sha, uploads, id]))
        })
        .collect();
    let duplicates = warehouse
        .query("SELECT sha256, uploads, id FROM duplicate_uploads ORDER BY sha256, id")
        .unwrap();
    assert_eq!(rows(&duplicates), expected);

    // `stream_offsets`: each produced record once, at its partition and offset.
    let mut offsets: BTreeMap<(String, i32), Vec<i64>> = BTreeMap::new();
    for (sample, produced) in &run.produced {
        let item = landed
            .items
            .iter()
            .find(|i| i["sha256"] == sample.sha256())
            .unwrap();
        let hour = format!("{}:00:00", &seconds(&item["ingestedAt"])[..13]);
        offsets
            .entry((hour, produced.partition))
            .or_default()
            .push(produced.offset);
    }
    let topic = &pipeline.manifest.topic;
    let expected: Vec<Value> = offsets
        .into_iter()
        .map(|((hour, partition), o)| {
            json!([hour, topic, partition, o.iter().min(), o.iter().max(), o.len()])
        })
        .collect();
    let stream_offsets = warehouse
        .query("SELECT * FROM stream_offsets ORDER BY hour, kafka_partition")
        .unwrap();
    assert_eq!(rows(&stream_offsets), expected);

    // `near_duplicates`: every pair of different bytes whose perceptual
    // hashes differ in at most 10 bits, as computed here from the items; the
    // two sizes of the scene among them.
    let mut hashed: Vec<(String, String, PerceptualHash)> = landed
        .items
        .iter()
        .map(|i| {
            (
                text(&i["id"]),
                text(&i["sha256"]),
                text(&i["phash"]).parse().expect("16 hex digits"),
            )
        })
        .collect();
    hashed.sort();
    let mut expected = Vec::new();
    for (n, (id, sha256, phash)) in hashed.iter().enumerate() {
        for (similar_id, similar_sha256, similar) in &hashed[n + 1..] {
            let distance = phash.distance(*similar);
            if sha256 != similar_sha256 && distance <= 10 {
                expected.push(json!([id, similar_id, distance]));
            }
        }
    }
    let near = warehouse
        .query("SELECT id, similar_id, distance FROM near_duplicates ORDER BY id, similar_id")
        .unwrap();
    assert_eq!(rows(&near), expected);
    assert!(
        expected
            .iter()
            .any(|pair| pair[0] == scene[0] && pair[1] == scene[1]),
        "the scene's two sizes are near duplicates: {expected:?}"
    );
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not text: {value}"))
        .to_owned()
}

/// An RFC 3339 time as the views show it: to the second, UTC, no `T`.
fn seconds(value: &Value) -> String {
    text(value)[..19].replace('T', " ")
}

fn rows(rows: &imagepipeline_e2e::warehouse::Rows) -> Vec<Value> {
    rows.rows.iter().cloned().map(Value::from).collect()
}

/// `count` distinct real images of about 1 KB, of each type in turn.
fn backlog(count: usize) -> Vec<(Vec<u8>, &'static str)> {
    (0..count)
        .map(|n| {
            let image_type = ImageType::ALL[n % ImageType::ALL.len()];
            (images::image(image_type, n as u64, 1000), image_type.mime_type())
        })
        .collect()
}

#[tokio::test]
async fn a_bridge_killed_in_the_middle_of_a_backlog_and_restarted_loses_and_duplicates_nothing() {
    let (mut pipeline, _) = applied_example().await;
    let records = backlog(300);
    for (bytes, content_type) in &records {
        pipeline
            .produce(bytes, &[("content-type", content_type)])
            .await
            .expect("produced");
    }

    pipeline
        .start_stream_bridge()
        .await
        .expect("stream-bridge starts");
    let started = Instant::now();
    while pipeline.stream_items().await.unwrap() < records.len() / 10 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the bridge stores nothing"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bridge = pipeline.bridge().expect("running");
    let pid = bridge.pid();
    bridge.kill().await.expect("SIGKILL");
    let at_kill = pipeline.stream_items().await.unwrap();
    eprintln!(
        "bridge {pid:?} killed {:?} after it started, with {at_kill} of {} records stored",
        started.elapsed(),
        records.len()
    );
    assert!(
        at_kill < records.len(),
        "the kill lands in the middle of the backlog"
    );

    // tansu hands the partitions to a new member only once the killed
    // one's session has ended.
    tokio::time::sleep(BRIDGE_SESSION_TIMEOUT + Duration::from_secs(2)).await;
    pipeline
        .start_stream_bridge()
        .await
        .expect("stream-bridge restarts");
    pipeline
        .wait_until_stored(records.len(), 0, Duration::from_secs(120))
        .await
        .expect("the restarted bridge stores the rest");

    let landed = pipeline.landed().await.unwrap();
    let mut items_by_sha: BTreeMap<String, usize> = BTreeMap::new();
    for item in &landed.items {
        *items_by_sha
            .entry(item["sha256"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    for (n, (bytes, _)) in records.iter().enumerate() {
        assert_eq!(
            items_by_sha.get(&sha256_hex(bytes)),
            Some(&1),
            "record {n}: one item"
        );
    }
    assert_eq!(landed.items.len(), records.len(), "no item but the records'");
    let keys: BTreeSet<&str> = landed.images.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(
        keys.len(),
        records.len(),
        "one object per record, no second key for a replay"
    );
    for item in &landed.items {
        assert!(keys.contains(item["key"].as_str().unwrap()), "{item}");
    }
    // Events are at least once: one killed between an event and its item
    // sends it again on replay. None may be missing.
    let event_ids: BTreeSet<&str> = landed.events.iter().filter_map(|e| e["id"].as_str()).collect();
    let item_ids: BTreeSet<&str> = landed.items.iter().filter_map(|i| i["id"].as_str()).collect();
    assert_eq!(
        event_ids, item_ids,
        "an event for every item, and none for anything else"
    );
    eprintln!(
        "{} events for {} images: {} sent again after the kill",
        landed.events.len(),
        records.len(),
        landed.events.len() - records.len()
    );
    // What an analyst sees of them: each image once, as its item holds it,
    // and every record's offset counted once (computed locally: the
    // emulator has no warehouse engine).
    let warehouse = pipeline.local_warehouse(&landed).await.unwrap();
    let images = warehouse
        .query("SELECT id, ingested_at FROM images ORDER BY id")
        .unwrap();
    let expected: Vec<Value> = {
        let mut items: Vec<&Value> = landed.items.iter().collect();
        items.sort_by_key(|i| i["id"].as_str().unwrap_or_default().to_owned());
        items
            .iter()
            .map(|i| {
                let at = i["ingestedAt"].as_str().unwrap_or_default();
                json!([i["id"], at[..19].replace('T', " ")])
            })
            .collect()
    };
    let seen: Vec<Value> = images.rows.into_iter().map(Value::from).collect();
    assert_eq!(seen, expected, "each image once, as its item holds it");
    let offsets = warehouse
        .query("SELECT SUM(records) FROM stream_offsets")
        .unwrap();
    assert_eq!(
        offsets.rows,
        [vec![json!(records.len())]],
        "each record once in stream_offsets"
    );
    destroy_leaves_nothing(&mut pipeline).await;
}
