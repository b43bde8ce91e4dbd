//! Storing images against the AWS emulator, in the bucket, table and stream
//! the operator's engine makes: what a user would find in S3, DynamoDB and
//! the Firehose output after an image came in.

use std::path::Path;

use imagepipeline_e2e::AwsEmulator;
use imagepipeline_operator::aws::{AwsClients, CallLog};
use imagepipeline_operator::engine::{Engine, Owner};
use imagepipeline_operator::manifest;
use ingest_core::record::{KafkaPosition, Source};
use ingest_core::store::{Backend, Incoming, Store, Stored, Targets};
use ingest_core::{ImageType, inspect, sha256_hex};
use jiff::Timestamp;

const PIPELINE: &str = "
apiVersion: imagepipeline.io/v1alpha1
kind: ImagePipeline
metadata: { name: photos, namespace: media }
spec:
  region: eu-west-1
  network: { availabilityZones: [eu-west-1a, eu-west-1b] }
  kafka: { bootstrapServers: ['127.0.0.1:9092'], replicationFactor: 1 }
  analytics: { enabled: false }
  storage: { retentionDays: 3 }
";

/// A PNG of `width`×`height` whose body is `padding` bytes, so sizes and
/// contents can differ.
fn png(width: u32, height: u32, padding: usize) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
    png.extend_from_slice(&width.to_be_bytes());
    png.extend_from_slice(&height.to_be_bytes());
    png.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    png.extend(std::iter::repeat_n(0x42, padding));
    png
}

struct Pipeline {
    _emulator: AwsEmulator,
    store: Store,
    s3: aws_sdk_s3::Client,
    dynamodb: aws_sdk_dynamodb::Client,
}

async fn pipeline() -> Pipeline {
    let emulator = AwsEmulator::start().await.expect("moto server starts");
    let config = emulator.sdk_config().await;
    let engine = Engine::new(AwsClients::from_sdk_config(&config, CallLog::new()).unwrap());
    let spec = manifest::parse(Path::new("test.yaml"), PIPELINE)
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
    let targets = Targets {
        bucket: outputs.bucket.unwrap(),
        table: outputs.table.unwrap(),
        delivery_stream: outputs.delivery_stream.unwrap(),
        retention_days: 3,
    };
    Pipeline {
        store: Store::new(&config, targets),
        s3: engine.aws().s3.clone(),
        dynamodb: engine.aws().dynamodb.clone(),
        _emulator: emulator,
    }
}

impl Pipeline {
    async fn keys(&self, prefix: &str) -> Vec<String> {
        let out = self
            .s3
            .list_objects_v2()
            .bucket(&self.store.targets().bucket)
            .prefix(prefix)
            .send()
            .await
            .unwrap();
        out.contents()
            .iter()
            .map(|o| o.key().unwrap().to_owned())
            .collect()
    }

    async fn item_count(&self) -> i32 {
        let out = self
            .dynamodb
            .scan()
            .table_name(&self.store.targets().table)
            .send()
            .await
            .unwrap();
        out.count()
    }
}

fn incoming(content: &[u8], source: Source) -> Incoming<'_> {
    Incoming {
        content,
        info: inspect(content).expect("a valid image"),
        source,
        at: Timestamp::now(),
        kafka: None,
    }
}

#[tokio::test]
async fn an_image_lands_in_s3_dynamodb_and_firehose_once() {
    let p = pipeline().await;
    let content = png(640, 480, 1000);
    let now = Timestamp::now();
    let stored = p
        .store
        .store(&incoming(&content, Source::Api), now)
        .await
        .unwrap();
    let Stored::Created(item) = stored else {
        panic!("a new image is created: {stored:?}")
    };

    // S3: the object under the date layout, with its type and SHA-256.
    assert!(item.key.starts_with("images/") && item.key.ends_with(&format!("{}.png", item.id)));
    let object =
        p.s3.get_object()
            .bucket(&item.bucket)
            .key(&item.key)
            .send()
            .await
            .unwrap();
    assert_eq!(object.content_type(), Some("image/png"));
    assert_eq!(
        object.metadata().unwrap().get("sha256").map(String::as_str),
        Some(sha256_hex(&content).as_str())
    );
    assert_eq!(
        object.body.collect().await.unwrap().into_bytes().as_ref(),
        content.as_slice()
    );

    // DynamoDB: the item, expiring after the retention.
    let read = p.store.get(item.id).await.unwrap().expect("the item is stored");
    assert_eq!(read, item);
    assert_eq!(
        (read.width, read.height, read.bytes),
        (640, 480, content.len() as u64)
    );
    assert_eq!(read.expires_at, read.ingested_at.as_second() + 3 * 86_400);
    assert_eq!(read.content_type, ImageType::Png.mime_type());

    // Firehose: one event line with the item's fields (moto delivers at once).
    let events = p.keys("events/").await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event =
        p.s3.get_object()
            .bucket(&item.bucket)
            .key(&events[0])
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes();
    let event: serde_json::Value = serde_json::from_slice(&event).unwrap();
    assert_eq!(event["id"], item.id.to_string());
    assert_eq!(event["source"], "api");

    // The same bytes again: the existing item, no second object or event.
    let again = p
        .store
        .store(&incoming(&content, Source::Api), Timestamp::now())
        .await
        .unwrap();
    assert_eq!(again, Stored::Existing(item));
    assert_eq!(p.keys("images/").await.len(), 1);
    assert_eq!(p.keys("events/").await.len(), 1);
    assert_eq!(p.item_count().await, 1);
}

#[tokio::test]
async fn a_replayed_stream_record_writes_the_same_key_and_a_large_image_goes_in_parts() {
    let p = pipeline().await;
    // Larger than one part: a multipart upload of three parts.
    let content = png(4000, 3000, 17 * 1024 * 1024);
    let record = Incoming {
        kafka: Some(KafkaPosition {
            topic: "images".into(),
            partition: 2,
            offset: 7,
        }),
        at: "2026-11-24T10:00:00Z".parse().unwrap(),
        ..incoming(&content, Source::Stream)
    };
    let first = p.store.store(&record, Timestamp::now()).await.unwrap();
    let Stored::Created(item) = &first else {
        panic!("{first:?}")
    };
    assert!(item.key.starts_with("images/2026/11/24/"), "{}", item.key);
    let head =
        p.s3.head_object()
            .bucket(&item.bucket)
            .key(&item.key)
            .send()
            .await
            .unwrap();
    assert_eq!(head.content_length(), Some(content.len() as i64));
    assert_eq!(head.content_type(), Some("image/png"));

    // As after a crash before the item was written: the replay finds the
    // same id, so the object is overwritten, not duplicated.
    p.dynamodb
        .delete_item()
        .table_name(&p.store.targets().table)
        .key(
            "id",
            aws_sdk_dynamodb::types::AttributeValue::S(item.id.to_string()),
        )
        .send()
        .await
        .unwrap();
    let replay = p.store.store(&record, Timestamp::now()).await.unwrap();
    assert_eq!(replay.item().id, item.id);
    assert_eq!(p.keys("images/").await, std::slice::from_ref(&item.key));
    assert_eq!(p.item_count().await, 1);
}

#[tokio::test]
async fn an_unreachable_backend_is_an_error_never_a_stored_image() {
    let p = pipeline().await;
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .endpoint_url("https://127.0.0.1:9")
        .credentials_provider(aws_sdk_s3::config::Credentials::for_tests())
        .load()
        .await;
    let down = Store::new(&config, p.store.targets().clone());
    let content = png(1, 1, 10);
    let err = down
        .store(&incoming(&content, Source::Api), Timestamp::now())
        .await
        .expect_err("nothing is stored when AWS cannot be reached");
    assert_eq!(err.backend, Backend::DynamoDb, "the lookup comes first: {err}");
    assert_eq!(p.keys("images/").await, Vec::<String>::new());
    assert_eq!(p.item_count().await, 0);
}
