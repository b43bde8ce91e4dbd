//! Image events to Firehose in batches: one `PutRecordBatch` of at most 500
//! records and 4 MiB, sent when full or when the oldest event has waited the
//! flush interval. Records Firehose refuses (`FailedPutCount`) are sent
//! again until accepted, with backoff; each sender learns when its own event
//! was accepted, so an item is written only after its event.

use std::time::Duration;

use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record;
use ingest_core::{EventRecord, StoreError};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::retry::delays;

pub const MAX_BATCH_RECORDS: usize = 500;
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

struct Pending {
    line: Vec<u8>,
    accepted: oneshot::Sender<()>,
}

/// Events waiting to be sent together.
#[derive(Default)]
struct Batch {
    events: Vec<Pending>,
    bytes: usize,
}

impl Batch {
    fn has_room_for(&self, line: &[u8]) -> bool {
        self.events.len() < MAX_BATCH_RECORDS && self.bytes + line.len() <= MAX_BATCH_BYTES
    }

    fn push(&mut self, pending: Pending) {
        self.bytes += pending.line.len();
        self.events.push(pending);
    }
}

/// The sending side: cheap to clone, one per record task.
#[derive(Clone)]
pub struct EventBatcher {
    queue: mpsc::Sender<Pending>,
}

impl EventBatcher {
    /// Starts the task that batches and sends; it ends when every
    /// [`EventBatcher`] is dropped, after sending what it holds.
    pub fn start(
        firehose: aws_sdk_firehose::Client,
        delivery_stream: String,
        flush_interval: Duration,
        metrics: Metrics,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (queue, incoming) = mpsc::channel(MAX_BATCH_RECORDS * 2);
        let sender = Sender {
            firehose,
            delivery_stream,
            metrics,
        };
        let task = tokio::spawn(sender.run(incoming, flush_interval));
        (Self { queue }, task)
    }

    /// Returns once Firehose has accepted `event`.
    pub async fn deliver(&self, event: EventRecord) -> Result<(), StoreError> {
        let (accepted, answer) = oneshot::channel();
        let stopped = || StoreError::shutting_down("accept the image event");
        self.queue
            .send(Pending {
                line: event.to_line(),
                accepted,
            })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())
    }
}

struct Sender {
    firehose: aws_sdk_firehose::Client,
    delivery_stream: String,
    metrics: Metrics,
}

impl Sender {
    async fn run(self, mut incoming: mpsc::Receiver<Pending>, flush_interval: Duration) {
        let mut carried: Option<Pending> = None;
        loop {
            let first = match carried.take() {
                Some(pending) => pending,
                None => match incoming.recv().await {
                    Some(pending) => pending,
                    None => return,
                },
            };
            let deadline = Instant::now() + flush_interval;
            let mut batch = Batch::default();
            batch.push(first);
            while let Ok(Some(pending)) = tokio::time::timeout_at(deadline, incoming.recv()).await {
                if batch.has_room_for(&pending.line) {
                    batch.push(pending);
                } else {
                    carried = Some(pending);
                    break;
                }
            }
            self.send(batch).await;
        }
    }

    /// Sends until every event of `batch` is accepted: a failed call is
    /// repeated whole, refused records are repeated alone.
    async fn send(&self, batch: Batch) {
        self.metrics.batch_records.observe(batch.events.len() as f64);
        let mut waiting = batch.events;
        let mut delays = delays();
        let mut attempt = 0;
        while !waiting.is_empty() {
            if attempt > 0 {
                tokio::time::sleep(delays.next().unwrap_or(Duration::from_secs(30))).await;
            }
            attempt += 1;
            let records = waiting
                .iter()
                .map(|p| Record::builder().data(Blob::new(p.line.clone())).build())
                .collect::<Result<Vec<_>, _>>()
                .expect("a record with data always builds");
            let answer = self
                .firehose
                .put_record_batch()
                .delivery_stream_name(&self.delivery_stream)
                .set_records(Some(records))
                .send()
                .await;
            let responses = match answer {
                Ok(out) => out.request_responses,
                Err(err) => {
                    self.metrics.firehose_failures.inc();
                    let err = StoreError::from_sdk(
                        ingest_core::store::Backend::Firehose,
                        "accept image events",
                        err,
                    );
                    tracing::warn!(%err, events = waiting.len(), attempt, "Firehose batch failed; retrying");
                    continue;
                }
            };
            let mut refused = Vec::new();
            for (pending, response) in waiting.into_iter().zip(responses) {
                if response.error_code().is_some() {
                    self.metrics.firehose_failures.inc();
                    tracing::warn!(code = ?response.error_code(), "Firehose refused an event; retrying it");
                    refused.push(pending);
                } else {
                    // A sender that gave up (its task ended) needs no answer.
                    let _ = pending.accepted.send(());
                }
            }
            waiting = refused;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(len: usize) -> Pending {
        Pending {
            line: vec![b'x'; len],
            accepted: oneshot::channel().0,
        }
    }

    #[test]
    fn a_batch_holds_at_most_500_records_and_4_mib() {
        let mut batch = Batch::default();
        for _ in 0..MAX_BATCH_RECORDS {
            assert!(batch.has_room_for(&[b'x'; 10]));
            batch.push(pending(10));
        }
        assert!(!batch.has_room_for(b"x"), "501st record");

        let mut batch = Batch::default();
        batch.push(pending(MAX_BATCH_BYTES - 100));
        assert!(batch.has_room_for(&[b'x'; 100]));
        assert!(!batch.has_room_for(&[b'x'; 101]), "over 4 MiB");
    }
}
