//! Storing images against the AWS emulator, in the bucket, table and stream
//! the operator's engine makes: what a user would find in S3, DynamoDB and
//! the Firehose output after an image came in.

use std::path::Path;

use ingest_core::contract::prefix;
use ingest_core::record::{KafkaPosition, Source};
use ingest_core::store::{Backend, Incoming, Store, Stored};
use ingest_core::{Content, DecodeBudget, ImageRules, ImageType, Spool, sha256_hex};
use ingest_testing::{PipelineStorage, png};
use jiff::Timestamp;
use sha2::{Digest, Sha256};

struct Pipeline {
    storage: PipelineStorage,
    store: Store,
}

async fn pipeline() -> Pipeline {
    let storage = PipelineStorage::start(3).await;
    Pipeline {
        store: Store::new(&storage.config, storage.targets.clone()),
        storage,
    }
}

/// `bytes` received as an upload is: chunk by chunk through a spool, so
/// larger images are read back from a file.
async fn received(bytes: &[u8], spool_dir: &Path) -> Content {
    let mut spool = Spool::new(spool_dir, u64::MAX);
    for chunk in bytes.chunks(64 * 1024) {
        spool.push(chunk).await.unwrap();
    }
    spool.finish().await.unwrap()
}

/// `content`, decoded as the services decode it (the test images carry no
/// metadata, so what would be stored is `content` itself).
async fn incoming(content: &Content, source: Source) -> Incoming<'_> {
    let info = content.inspect().await.expect("a valid image");
    let copy = Content::from_bytes(content.to_bytes().await.unwrap());
    let (stored, image) = copy
        .verify(info, ImageRules::default(), &DecodeBudget::default())
        .await
        .expect("an image that decodes");
    assert_eq!(stored.sha256(), content.sha256(), "no metadata to remove");
    Incoming {
        content,
        image,
        source,
        uploaded_by: None,
        at: Timestamp::now(),
        kafka: None,
    }
}

#[tokio::test]
async fn an_image_lands_in_s3_dynamodb_and_firehose_once() {
    let p = pipeline().await;
    let content = png(640, 480, 1000);
    let image = Content::from_bytes(content.clone());
    let now = Timestamp::now();
    let stored = p
        .store
        .store(&incoming(&image, Source::Api).await, now)
        .await
        .unwrap();
    let Stored::Created(item) = stored else {
        panic!("a new image is created: {stored:?}")
    };

    // S3: the object under the date layout, with its type and SHA-256.
    assert!(item.key.starts_with(prefix::IMAGES) && item.key.ends_with(&format!("{}.png", item.id)));
    let object = p.storage.object(&item.key).await;
    assert_eq!(object.content_type.as_deref(), Some("image/png"));
    assert_eq!(object.sha256, Some(sha256_hex(&content)));
    assert_eq!(
        object.checksum_sha256,
        Some(aws_smithy_types::base64::encode(Sha256::digest(&content))),
        "S3 stored it only after checking its bytes have the SHA-256 checked here"
    );
    assert_eq!(object.bytes, content);

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
    let events = p.storage.keys(prefix::EVENTS).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event = p.storage.object(&events[0]).await.bytes;
    let event: serde_json::Value = serde_json::from_slice(&event).unwrap();
    assert_eq!(event["id"], item.id.to_string());
    assert_eq!(event["source"], "api");
    let phash = read.phash.expect("a decoded image has a perceptual hash");
    assert_eq!(event["phash"], phash.to_string());

    // The same bytes again: the existing item, no second object or event.
    let again = p
        .store
        .store(&incoming(&image, Source::Api).await, Timestamp::now())
        .await
        .unwrap();
    assert_eq!(again, Stored::Existing(item));
    assert_eq!(p.storage.keys(prefix::IMAGES).await.len(), 1);
    assert_eq!(p.storage.keys(prefix::EVENTS).await.len(), 1);
    assert_eq!(p.storage.item_count().await, 1);
}

#[tokio::test]
async fn a_replayed_stream_record_writes_the_same_key_and_a_large_image_goes_whole_with_its_checksum() {
    let p = pipeline().await;
    let spool_dir = tempfile::tempdir().unwrap();
    // A large image, read back from the spool file: one object, which S3
    // keeps only if it has the image's SHA-256.
    let content = png(2600, 2400, 2);
    let large = received(&content, spool_dir.path()).await;
    assert!(large.is_spooled());
    let record = Incoming {
        kafka: Some(KafkaPosition {
            topic: "images".into(),
            partition: 2,
            offset: 7,
        }),
        at: "2026-11-24T10:00:00Z".parse().unwrap(),
        ..incoming(&large, Source::Stream).await
    };
    let first = p.store.store(&record, Timestamp::now()).await.unwrap();
    let Stored::Created(item) = &first else {
        panic!("{first:?}")
    };
    assert!(item.key.starts_with("images/2026/11/24/"), "{}", item.key);
    let object = p.storage.object(&item.key).await;
    assert_eq!(object.content_type.as_deref(), Some("image/png"));
    assert!(object.bytes == content, "the object is the image");
    assert_eq!(
        object.checksum_sha256,
        Some(aws_smithy_types::base64::encode(Sha256::digest(&content))),
        "checked by S3 whole, as a small one is"
    );

    // As after a crash before the item was written: the replay finds the
    // same id, so the object is overwritten, not duplicated.
    p.storage
        .dynamodb
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
    assert_eq!(
        p.storage.keys(prefix::IMAGES).await,
        std::slice::from_ref(&item.key)
    );
    assert_eq!(p.storage.item_count().await, 1);

    // Spooled, smaller: a PutObject streamed from the file as well.
    let medium = png(800, 600, 3);
    let image = received(&medium, spool_dir.path()).await;
    assert!(image.is_spooled());
    let stored = p
        .store
        .store(&incoming(&image, Source::Api).await, Timestamp::now())
        .await
        .unwrap();
    let Stored::Created(item) = &stored else {
        panic!("{stored:?}")
    };
    let object = p.storage.object(&item.key).await;
    assert_eq!(object.sha256, Some(sha256_hex(&medium)));
    assert_eq!(
        object.checksum_sha256,
        Some(aws_smithy_types::base64::encode(Sha256::digest(&medium))),
        "checked by S3 as the in-memory one is"
    );
    assert!(object.bytes == medium, "the spooled file is the object");
    drop((image, large));
    assert_eq!(
        std::fs::read_dir(spool_dir.path()).unwrap().count(),
        0,
        "spool files are removed with their content"
    );
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
    let image = Content::from_bytes(png(1, 1, 4));
    let err = down
        .store(&incoming(&image, Source::Api).await, Timestamp::now())
        .await
        .expect_err("nothing is stored when AWS cannot be reached");
    assert_eq!(err.backend, Backend::DynamoDb, "the lookup comes first: {err}");
    assert_eq!(p.storage.keys(prefix::IMAGES).await, Vec::<String>::new());
    assert_eq!(p.storage.item_count().await, 0);
}
