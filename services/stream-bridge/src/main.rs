//! stream-bridge: consumes until SIGTERM or Ctrl-C, then finishes the records
//! in flight, commits, and exits. Serves `/healthz` (the process runs),
//! `/readyz` (it has joined its consumer group) and `/metrics`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use clap::Parser;
use ingest_core::service::{exit_code, init_logging, shutdown_signal};
use ingest_core::store::Store;
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use stream_bridge::bridge::{self, BridgeContext, Limits, Workers};
use stream_bridge::config::Config;
use stream_bridge::events::EventBatcher;
use stream_bridge::metrics::Metrics;
use stream_bridge::record::Admission;
use tokio::sync::Semaphore;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    init_logging(config.log_json);
    exit_code("stream-bridge", run(config).await)
}

async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let metrics = Metrics::new();
    let (events, sender) = EventBatcher::start(
        aws_sdk_firehose::Client::new(&aws),
        config.pipeline.delivery_stream.clone(),
        Duration::from_millis(config.firehose_flush_ms),
        metrics.clone(),
    );
    let consumer: StreamConsumer<BridgeContext> = config
        .consumer()
        .create_with_context(BridgeContext::new(metrics.clone()))?;
    consumer.subscribe(&[&config.topic])?;
    let consumer = Arc::new(consumer);
    let producer = ClientConfig::new()
        .set("bootstrap.servers", &config.bootstrap_servers)
        .set(
            "message.max.bytes",
            (config.pipeline.max_image_bytes + 64 * 1024).to_string(),
        )
        .set("enable.idempotence", "true")
        .create()?;
    let workers = Arc::new(Workers {
        store: Store::new(&aws, config.pipeline.targets()),
        storage_calls: Arc::new(Semaphore::new(usize::try_from(config.max_concurrent_stores)?)),
        events,
        admission: Admission {
            max_image_bytes: config.pipeline.max_image_bytes,
            allowed: config.pipeline.allowed(),
            rules: config.pipeline.image_rules(),
            decode_budget: Arc::default(),
        },
        producer,
        dead_letter_topic: config.dead_letter_topic(),
        metrics: metrics.clone(),
    });

    let health = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get({
                let consumer = consumer.clone();
                move || async move {
                    if consumer.context().has_joined() {
                        (StatusCode::OK, "ok")
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "not yet a member of the consumer group: check that the Kafka bootstrap servers are reachable",
                        )
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get({
                let metrics = metrics.clone();
                move || async move { metrics.encode() }
            }),
        );
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    tracing::info!(address = %listener.local_addr()?, topic = config.topic, "stream-bridge started");
    tokio::spawn(async move { axum::serve(listener, health).await });
    let lag = tokio::spawn(bridge::report_lag(
        consumer.clone(),
        metrics.clone(),
        Duration::from_secs(config.lag_interval_seconds),
    ));

    let limits = Limits {
        max_in_flight_records: usize::try_from(config.max_in_flight_records)?,
        max_in_flight_bytes: config.max_in_flight_bytes,
        drain_timeout: Duration::from_secs(config.drain_timeout_seconds),
    };
    bridge::run(consumer, workers, limits, shutdown_signal()).await;
    lag.abort();
    // The record tasks are done; the last events are sent when the batcher's
    // senders are gone.
    let _ = sender.await;
    tracing::info!("stream-bridge stopped");
    Ok(())
}
