//! The consumer loop. Records are stored concurrently, each by its own task,
//! up to a bound of records and bytes in flight; at the bound the assigned
//! partitions are paused, and the loop goes on polling (which serves
//! rebalances and keeps the member within `max.poll.interval.ms`, however
//! long an AWS outage lasts) while it collects finished records. An offset is
//! stored for commit only once every earlier record of its partition is done,
//! and stored offsets are committed before partitions are revoked and at
//! shutdown.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ingest_core::record::{KafkaPosition, Source};
use ingest_core::store::{Incoming, Store, Stored};
use ingest_core::{Content, Verified};
use jiff::Timestamp;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{BorrowedHeaders, BorrowedMessage, Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::events::EventBatcher;
use crate::metrics::{Metrics, OutcomeLabels, PartitionLabels, PoisonLabels};
use crate::offsets::Progress;
use crate::record::{Admission, Poison};
use crate::retry::delays;

/// Limits of the loop.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_in_flight_records: usize,
    pub max_in_flight_bytes: usize,
    /// How long records in flight get to finish at shutdown.
    pub drain_timeout: Duration,
}

/// Rebalance callbacks, run by librdkafka inside `recv`.
pub struct BridgeContext {
    revoked: Mutex<Vec<(String, i32)>>,
    metrics: Metrics,
    joined: AtomicBool,
}

impl BridgeContext {
    pub fn new(metrics: Metrics) -> Self {
        Self {
            revoked: Mutex::default(),
            metrics,
            joined: AtomicBool::new(false),
        }
    }

    /// Whether the consumer has joined its group: it got an assignment,
    /// possibly of no partitions (more bridges than partitions).
    pub fn has_joined(&self) -> bool {
        self.joined.load(Ordering::Relaxed)
    }
}

impl ClientContext for BridgeContext {}

impl ConsumerContext for BridgeContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            // What is done is committed before another consumer takes over;
            // what is in flight will be read again there.
            commit(consumer);
            let mut revoked = self.revoked.lock().unwrap_or_else(|p| p.into_inner());
            revoked.extend(names(partitions));
            // The eager protocol revokes every partition before assigning.
            self.metrics.partitions_assigned.set(0);
            self.metrics.lag.clear();
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            let count = partitions.count();
            tracing::info!(partitions = count, "partitions assigned");
            self.metrics.partitions_assigned.set(count as i64);
            self.joined.store(true, Ordering::Relaxed);
        }
    }
}

fn commit<C: Consumer<BridgeContext>>(consumer: &C) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => {}
        // Nothing stored since the last commit.
        Err(rdkafka::error::KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
        Err(err) => tracing::warn!(%err, "committing offsets failed; the next commit retries"),
    }
}

/// What a record task reports when its record is done (stored or
/// dead-lettered).
struct Done {
    topic: String,
    partition: i32,
    offset: i64,
    bytes: usize,
}

/// What every record task needs.
pub struct Workers {
    pub store: Store,
    /// Slots for records making S3 and DynamoDB calls; a record waiting for
    /// its Firehose batch gives its slot up meanwhile, so many records can
    /// wait for a batch to fill while AWS sees a bounded number of calls.
    pub storage_calls: Arc<Semaphore>,
    pub events: EventBatcher,
    pub admission: Admission,
    pub producer: FutureProducer,
    pub dead_letter_topic: String,
    pub metrics: Metrics,
}

/// Consumes until `shutdown` completes, then drains and commits.
pub async fn run(
    consumer: Arc<StreamConsumer<BridgeContext>>,
    workers: Arc<Workers>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let mut progress = Progress::default();
    let mut bytes_in_flight = 0usize;
    let mut paused = false;
    let mut paused_partitions = BTreeSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let context = consumer.context();
        for (topic, partition) in context
            .revoked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            progress.revoke(&topic, partition);
        }
        // Partitions are paused at the limit and resumed at three quarters
        // of it, so a full bridge does not flip on every finished record.
        let (records, bytes) = (progress.in_flight(), bytes_in_flight);
        if !paused && (records >= limits.max_in_flight_records || bytes >= limits.max_in_flight_bytes) {
            tracing::debug!(records, bytes, "in-flight limit reached: reading paused");
            paused = true;
            paused_partitions = pause(&consumer, true);
        } else if paused
            && records <= limits.max_in_flight_records * 3 / 4
            && bytes <= limits.max_in_flight_bytes / 4 * 3
        {
            tracing::debug!(records, bytes, "reading resumed");
            paused = false;
            pause(&consumer, false);
        } else if paused && partitions(&consumer) != paused_partitions {
            // A new assignment starts unpaused.
            paused_partitions = pause(&consumer, true);
        }
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(done) = done_rx.recv() => {
                bytes_in_flight -= done.bytes;
                finish(&consumer, &mut progress, &done);
            }
            received = consumer.recv() => match received {
                Ok(message) => {
                    let (message, payload) = detach(&message);
                    workers.metrics.consumed.inc();
                    let bytes = payload.len();
                    bytes_in_flight += bytes;
                    progress.received(message.topic(), message.partition(), message.offset());
                    workers.metrics.in_flight.inc();
                    let workers = workers.clone();
                    let done_tx = done_tx.clone();
                    tokio::spawn(async move {
                        let done = Done {
                            topic: message.topic().to_owned(),
                            partition: message.partition(),
                            offset: message.offset(),
                            bytes,
                        };
                        handle(&workers, &message, payload).await;
                        workers.metrics.in_flight.dec();
                        let _ = done_tx.send(done);
                    });
                }
                Err(err) => {
                    tracing::warn!(%err, "reading from Kafka failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            },
        }
    }
    tracing::info!(
        in_flight = progress.in_flight(),
        "stopping: finishing records in flight"
    );
    let drain = async {
        while progress.in_flight() > 0 {
            match done_rx.recv().await {
                Some(done) => finish(&consumer, &mut progress, &done),
                None => break,
            }
        }
    };
    if tokio::time::timeout(limits.drain_timeout, drain).await.is_err() {
        tracing::warn!("records still in flight at the drain timeout; they will be read again");
    }
    commit(consumer.as_ref());
}

/// Pauses or resumes fetching for every assigned partition; the partitions.
fn pause(consumer: &StreamConsumer<BridgeContext>, paused: bool) -> BTreeSet<(String, i32)> {
    let Ok(assignment) = consumer.assignment() else {
        return BTreeSet::new();
    };
    let result = if paused {
        consumer.pause(&assignment)
    } else {
        consumer.resume(&assignment)
    };
    if let Err(err) = result {
        tracing::warn!(%err, paused, "pausing or resuming partitions failed");
    }
    names(&assignment)
}

fn partitions(consumer: &StreamConsumer<BridgeContext>) -> BTreeSet<(String, i32)> {
    consumer.assignment().map(|a| names(&a)).unwrap_or_default()
}

fn names(partitions: &TopicPartitionList) -> BTreeSet<(String, i32)> {
    partitions
        .elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

fn finish(consumer: &StreamConsumer<BridgeContext>, progress: &mut Progress, done: &Done) {
    let Some(next) = progress.done(&done.topic, done.partition, done.offset) else {
        return;
    };
    let mut offsets = TopicPartitionList::new();
    let stored = offsets
        .add_partition_offset(&done.topic, done.partition, Offset::Offset(next))
        .and_then(|()| consumer.store_offsets(&offsets));
    if let Err(err) = stored {
        // A partition revoked meanwhile: its new owner reads from the last commit.
        tracing::debug!(%err, topic = done.topic, partition = done.partition, "offset not stored");
    }
}

/// Stores one record, or dead-letters it; retries AWS and Kafka failures
/// until they succeed (an outage stalls this record, it never drops it).
async fn handle(workers: &Workers, message: &OwnedMessage, payload: Bytes) {
    let declared = header(message, "content-type");
    let info = match workers.admission.check(Some(&payload), declared.as_deref()) {
        Ok(info) => info,
        Err(poison) => return dead_letter(workers, message, &payload, &poison).await,
    };
    let content = Content::from_bytes(payload.clone());
    match workers.admission.decode(content, info).await {
        Ok((content, image)) => store(workers, message, content, image).await,
        Err(poison) => dead_letter(workers, message, &payload, &poison).await,
    }
}

/// The record without its payload, and the payload: copied out of
/// librdkafka's buffer once, into what is stored (`detach` would copy it
/// twice over a record's life, doubling the memory of records in flight).
fn detach(message: &BorrowedMessage<'_>) -> (OwnedMessage, Bytes) {
    let payload = Bytes::copy_from_slice(message.payload().unwrap_or_default());
    let record = OwnedMessage::new(
        None,
        message.key().map(<[u8]>::to_vec),
        message.topic().to_owned(),
        message.timestamp(),
        message.partition(),
        message.offset(),
        message.headers().map(BorrowedHeaders::detach),
    );
    (record, payload)
}

async fn store(workers: &Workers, message: &OwnedMessage, content: Content, image: Verified) {
    // The record's own time, so a replay derives the same id and key.
    let at = message
        .timestamp()
        .to_millis()
        .and_then(|ms| Timestamp::from_millisecond(ms).ok())
        .unwrap_or_else(Timestamp::now);
    let incoming = Incoming {
        content: &content,
        image,
        source: Source::Stream,
        uploaded_by: None,
        at,
        kafka: Some(KafkaPosition {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
        }),
    };
    let mut delays = delays();
    loop {
        let slot = Mutex::new(Some(storage_call_slot(workers).await));
        let stored = workers
            .store
            .store_with(&incoming, Timestamp::now(), |event| async {
                drop(slot.lock().unwrap_or_else(|p| p.into_inner()).take());
                workers.events.deliver(event).await?;
                let again = storage_call_slot(workers).await;
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(again);
                Ok(())
            })
            .await;
        drop(slot);
        match stored {
            Ok(stored) => {
                let outcome = match stored {
                    Stored::Created(_) => "created",
                    Stored::Existing(_) => "existing",
                };
                workers
                    .metrics
                    .stored
                    .get_or_create(&OutcomeLabels { outcome })
                    .inc();
                return;
            }
            Err(err) => {
                tracing::warn!(%err, partition = message.partition(), offset = message.offset(), "storing a record failed; retrying");
                tokio::time::sleep(delays.next().unwrap_or(Duration::from_secs(30))).await;
            }
        }
    }
}

async fn storage_call_slot(workers: &Workers) -> OwnedSemaphorePermit {
    workers
        .storage_calls
        .clone()
        .acquire_owned()
        .await
        .expect("the storage call semaphore is never closed")
}

async fn dead_letter(workers: &Workers, message: &OwnedMessage, payload: &[u8], poison: &Poison) {
    tracing::info!(code = poison.code(), %poison, partition = message.partition(), offset = message.offset(), "dead-lettering a record");
    let reason = poison.to_string();
    let mut headers = OwnedHeaders::new()
        .insert(Header {
            key: "error-code",
            value: Some(poison.code()),
        })
        .insert(Header {
            key: "error-message",
            value: Some(reason.as_str()),
        });
    if let Some(original) = message.headers() {
        for header in original.iter() {
            headers = headers.insert(header);
        }
    }
    let mut delays = delays();
    loop {
        let mut record = FutureRecord::to(&workers.dead_letter_topic)
            .headers(headers.clone())
            .payload(payload);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        match workers.producer.send(record, Duration::from_secs(30)).await {
            Ok(_) => {
                workers
                    .metrics
                    .dead_lettered
                    .get_or_create(&PoisonLabels { code: poison.code() })
                    .inc();
                return;
            }
            Err((err, _)) => {
                tracing::warn!(%err, topic = workers.dead_letter_topic, "dead-lettering failed; retrying");
                tokio::time::sleep(delays.next().unwrap_or(Duration::from_secs(30))).await;
            }
        }
    }
}

fn header(message: &OwnedMessage, name: &str) -> Option<String> {
    message
        .headers()?
        .iter()
        .find(|h| h.key.eq_ignore_ascii_case(name))
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Publishes every `interval` how far the group's committed offset of each
/// assigned partition is behind the partition's end: what is neither stored
/// nor dead-lettered yet, or done but not yet committed.
pub async fn report_lag(consumer: Arc<StreamConsumer<BridgeContext>>, metrics: Metrics, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let consumer = consumer.clone();
        // Both calls ask the broker and block.
        let lags = tokio::task::spawn_blocking(move || {
            let timeout = Duration::from_secs(5);
            let committed = consumer.committed(timeout).ok()?;
            let lags: Vec<_> = committed
                .elements()
                .iter()
                .filter_map(|e| {
                    let (low, high) = consumer
                        .fetch_watermarks(e.topic(), e.partition(), timeout)
                        .ok()?;
                    let from = match e.offset() {
                        Offset::Offset(committed) => committed,
                        _ => low,
                    };
                    Some((e.topic().to_owned(), e.partition(), (high - from).max(0)))
                })
                .collect();
            Some(lags)
        })
        .await
        .ok()
        .flatten();
        let Some(lags) = lags else {
            tracing::debug!("lag not measured: the broker did not answer");
            continue;
        };
        for (topic, partition, lag) in lags {
            metrics
                .lag
                .get_or_create(&PartitionLabels { topic, partition })
                .set(lag);
        }
    }
}
