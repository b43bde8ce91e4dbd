//! Prometheus metrics: records consumed, stored and dead-lettered, Firehose
//! batch sizes and failures, records in flight, partitions assigned and the
//! group's lag per partition.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, linear_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `created` or `existing` (the same image was stored before).
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoisonLabels {
    pub code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub topic: String,
    pub partition: i32,
}

/// Shared by the consumer loop, the record tasks and the event sender.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub consumed: Counter,
    pub stored: Family<OutcomeLabels, Counter>,
    pub dead_lettered: Family<PoisonLabels, Counter>,
    pub batch_records: Histogram,
    pub firehose_failures: Counter,
    pub in_flight: Gauge,
    pub partitions_assigned: Gauge,
    pub lag: Family<PartitionLabels, Gauge>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("stream_bridge");
        let consumed = Counter::default();
        let stored = Family::default();
        let dead_lettered = Family::default();
        let batch_records = Histogram::new(linear_buckets(50.0, 50.0, 10));
        let firehose_failures = Counter::default();
        let in_flight = Gauge::default();
        let partitions_assigned = Gauge::default();
        let lag = Family::default();
        registry.register("records_consumed", "Records read from Kafka", consumed.clone());
        registry.register("images_stored", "Records stored, by outcome", stored.clone());
        registry.register(
            "records_dead_lettered",
            "Records sent to the dead-letter topic, by error code",
            dead_lettered.clone(),
        );
        registry.register(
            "firehose_batch_records",
            "Events per PutRecordBatch",
            batch_records.clone(),
        );
        registry.register(
            "firehose_failures",
            "Failed PutRecordBatch calls and refused events",
            firehose_failures.clone(),
        );
        registry.register("records_in_flight", "Records being stored", in_flight.clone());
        registry.register(
            "partitions_assigned",
            "Partitions this bridge consumes",
            partitions_assigned.clone(),
        );
        registry.register(
            "partition_lag",
            "Records of an assigned partition not yet committed (high watermark minus committed offset)",
            lag.clone(),
        );
        Self {
            registry: Arc::new(registry),
            consumed,
            stored,
            dead_lettered,
            batch_records,
            firehose_failures,
            in_flight,
            partitions_assigned,
            lag,
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        ingest_core::service::metrics_text(&self.registry)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
