//! What the store's AWS calls cost on their own, for the benchmarks'
//! ceilings: the part of a service's CPU per image that the plumbing to AWS
//! takes however well the rest is done.

use std::sync::atomic::Ordering;

use futures::StreamExt;
use ingest_core::{Content, DecodeLimits, Incoming, Source, Store, StripMetadata, Targets};
use jiff::Timestamp;

use crate::{NullAws, thread_cpu_seconds};

/// How an image's event reaches Firehose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Events {
    /// One `PutRecord` per image, as upload-api sends it.
    OnePutRecordEach,
    /// In batches of hundreds, as stream-bridge sends them: the event's
    /// share of a batch is left out, so the figure stays a floor.
    Batched,
}

/// Stores in flight at once, as the services have at load: calls in
/// flight together share their wake-ups, which one at a time would each
/// pay alone (twice the CPU per call for a 100 KiB image, measured).
const IN_FLIGHT: usize = 16;

/// CPU seconds one thread spends per image on `Store::store`'s calls alone
/// against the null backend: the look-up by SHA-256, the object, the event,
/// the item. Nothing is received, decoded or hashed, and the image is in
/// memory. [`IN_FLIGHT`] stores at once on a current-thread runtime, so the
/// SDK, hyper and TLS all run on the thread that is counted, away from the
/// caller's runtime (which serves the null backend). Panics unless the
/// backend was asked exactly those calls.
pub async fn store_calls_cpu_seconds(null: &NullAws, image: &[u8], events: Events) -> f64 {
    let config = null.sdk_config().await;
    let image = image.to_vec();
    let len = image.len();
    let repeats = (256 * 1024 * 1024 / len).clamp(64, 2048);
    let counts = &null.counts;
    let before = (
        counts.s3_objects.load(Ordering::Relaxed),
        counts.dynamodb_calls.load(Ordering::Relaxed),
        counts.firehose_records.load(Ordering::Relaxed),
    );
    let (tx, rx) = tokio::sync::oneshot::channel();
    // Named, so that a profile of the benchmark can pick the thread out.
    let thread = std::thread::Builder::new().name("store-calls".to_owned());
    let spawned = thread.spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let targets = Targets {
                bucket: "null-bucket".to_owned(),
                table: "null-table".to_owned(),
                delivery_stream: "null-stream".to_owned(),
                retention_days: 7,
            };
            let store = Store::new(&config, targets);
            let info = ingest_core::inspect(&image).expect("an image");
            let (verified, _) =
                ingest_core::verify::verify(&image, info, &DecodeLimits::default(), StripMetadata::default())
                    .expect("a valid image");
            let content = Content::from_bytes(image);
            let store_one = |n: usize| {
                let incoming = Incoming {
                    content: &content,
                    image: verified,
                    source: Source::Stream,
                    uploaded_by: None,
                    // A time of its own: a distinct id, as distinct images have.
                    at: Timestamp::from_second(1_800_000_000 + n as i64).expect("a time"),
                    kafka: None,
                };
                let store = &store;
                async move {
                    let stored = match events {
                        Events::OnePutRecordEach => store.store(&incoming, Timestamp::now()).await,
                        Events::Batched => {
                            store
                                .store_with(&incoming, Timestamp::now(), |_| async { Ok(()) })
                                .await
                        }
                    };
                    stored.expect("the null backend stores everything");
                }
            };
            let store_all = |numbers: std::ops::Range<usize>| {
                futures::stream::iter(numbers)
                    .map(store_one)
                    .buffer_unordered(IN_FLIGHT)
                    .collect::<Vec<()>>()
            };
            // The first calls open the connections and resolve credentials.
            store_all(0..IN_FLIGHT).await;
            let started = thread_cpu_seconds();
            store_all(IN_FLIGHT..IN_FLIGHT + repeats).await;
            let _ = tx.send((thread_cpu_seconds() - started) / repeats as f64);
        });
    });
    spawned.expect("a thread");
    let cpu = rx.await.expect("the store's calls were measured");
    let stores = (IN_FLIGHT + repeats) as u64;
    let asked = (
        counts.s3_objects.load(Ordering::Relaxed) - before.0,
        counts.dynamodb_calls.load(Ordering::Relaxed) - before.1,
        counts.firehose_records.load(Ordering::Relaxed) - before.2,
    );
    let events = if events == Events::OnePutRecordEach {
        stores
    } else {
        0
    };
    assert_eq!(
        asked,
        (stores, 2 * stores, events),
        "the null backend was asked other calls (objects, DynamoDB calls, events) than {stores} stores make"
    );
    cpu
}

/// The best ratio to the machine's limit (`limit_mib_per_s` of unavoidable
/// work, `unavoidable_work_mib_per_s`) that a service spending
/// `calls_seconds` per image on the store's calls could reach if it spent
/// nothing of its own: unavoidable ÷ (unavoidable + calls alone).
pub fn best_ratio(image_bytes: usize, limit_mib_per_s: f64, calls_seconds: f64) -> f64 {
    let unavoidable = image_bytes as f64 / (1024.0 * 1024.0) / limit_mib_per_s;
    unavoidable / (unavoidable + calls_seconds)
}
