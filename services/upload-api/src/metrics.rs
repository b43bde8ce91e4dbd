//! Prometheus metrics: requests by route and status, latency, bytes stored,
//! uploads in flight, uploads spooled to disk.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

/// A key's name (never the key): as many values as the keys file has lines.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyLabels {
    pub key: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyRequestLabels {
    pub key: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyLimitLabels {
    pub key: String,
    pub limit: String,
}

fn latency_histogram() -> Histogram {
    // 5 ms to about 80 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub stored_bytes: Counter,
    pub in_flight: Gauge,
    pub spooled_uploads: Counter,
    /// Seconds images waited for their share of the spool memory.
    pub spool_memory_wait: Histogram,
    pub key_requests: Family<KeyRequestLabels, Counter>,
    pub key_received_bytes: Family<KeyLabels, Counter>,
    pub rate_limited: Family<KeyLimitLabels, Counter>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("upload_api");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let stored_bytes = Counter::default();
        let in_flight = Gauge::default();
        let spooled_uploads = Counter::default();
        // 1 ms to about 8 s.
        let spool_memory_wait = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        registry.register("requests", "HTTP requests by route and status", requests.clone());
        registry.register(
            "request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        registry.register(
            "stored_bytes",
            "Bytes of newly stored images",
            stored_bytes.clone(),
        );
        registry.register(
            "uploads_in_flight",
            "Uploads being received or stored",
            in_flight.clone(),
        );
        registry.register(
            "spooled_uploads",
            "Uploads written to the spool directory because the spool memory (--spool-memory-bytes) was taken",
            spooled_uploads.clone(),
        );
        registry.register(
            "spool_memory_wait_seconds",
            "Time uploads of a declared length waited for their share of the spool memory, \
             whether they got it or were spooled (those that found it free are not counted)",
            spool_memory_wait.clone(),
        );
        let key_requests = Family::<KeyRequestLabels, Counter>::default();
        let key_received_bytes = Family::<KeyLabels, Counter>::default();
        let rate_limited = Family::<KeyLimitLabels, Counter>::default();
        registry.register(
            "key_requests",
            "Authenticated requests by API key name and status",
            key_requests.clone(),
        );
        registry.register(
            "key_received_bytes",
            "Upload bytes received by API key name",
            key_received_bytes.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests refused with 429 by API key name and the limit they were over",
            rate_limited.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            stored_bytes,
            in_flight,
            spooled_uploads,
            spool_memory_wait,
            key_requests,
            key_received_bytes,
            rate_limited,
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
