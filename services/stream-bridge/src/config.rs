//! Flags with environment fallbacks, named as DESIGN.md's "Service
//! configuration" table names them. AWS comes only from the SDK's own
//! configuration (`AWS_REGION`, `AWS_ENDPOINT_URL`, credentials chain).

use std::net::SocketAddr;

use clap::Parser;
use ingest_core::contract::env::stream_bridge;
use ingest_core::contract::kafka;
use ingest_core::service::PipelineArgs;
use rdkafka::ClientConfig;

#[derive(Clone, Debug, Parser)]
#[command(
    name = "stream-bridge",
    version,
    about = "Stores the images of a Kafka topic in the pipeline, at least once"
)]
pub struct Config {
    /// Address to serve health and metrics on.
    #[arg(long, env = stream_bridge::LISTEN, default_value = "0.0.0.0:9090")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Kafka bootstrap servers, comma-separated host:port.
    #[arg(long, env = stream_bridge::KAFKA_BOOTSTRAP_SERVERS)]
    pub bootstrap_servers: String,
    /// Topic of images; poison records go to `<topic>.dlq`.
    #[arg(long, env = stream_bridge::KAFKA_TOPIC, default_value = kafka::DEFAULT_TOPIC)]
    pub topic: String,
    /// Consumer group.
    #[arg(long, env = stream_bridge::KAFKA_GROUP_ID, default_value = "imagepipeline-stream-bridge")]
    pub group_id: String,
    /// How long the group waits for a silent member (a crashed bridge)
    /// before its partitions go to the others, in ms.
    #[arg(long, env = stream_bridge::KAFKA_SESSION_TIMEOUT_MS, default_value_t = 45_000)]
    pub session_timeout_ms: u32,
    /// Records being stored at once, including those waiting for their
    /// Firehose batch; at the limit the bridge stops reading.
    #[arg(long, env = stream_bridge::MAX_IN_FLIGHT_RECORDS, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_in_flight_records: u64,
    /// Records making S3 and DynamoDB calls at once.
    #[arg(long, env = stream_bridge::MAX_CONCURRENT_STORES, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_concurrent_stores: u64,
    /// Bytes of records stored at once; at the limit the bridge stops reading.
    #[arg(long, env = stream_bridge::MAX_IN_FLIGHT_BYTES, default_value_t = 256 * 1024 * 1024)]
    pub max_in_flight_bytes: usize,
    /// Longest time an event waits for its Firehose batch to fill, in ms.
    #[arg(long, env = stream_bridge::FIREHOSE_FLUSH_MS, default_value_t = 500)]
    pub firehose_flush_ms: u64,
    /// Longest time records in flight get to finish after SIGTERM, in
    /// seconds; keep it below the pod's termination grace period (30 s).
    #[arg(long, env = stream_bridge::DRAIN_TIMEOUT_SECONDS, default_value_t = 25)]
    pub drain_timeout_seconds: u64,
    /// How often the lag metric is measured, in seconds.
    #[arg(long, env = stream_bridge::LAG_INTERVAL_SECONDS, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub lag_interval_seconds: u64,
    /// Log as JSON lines.
    #[arg(long, env = stream_bridge::LOG_JSON)]
    pub log_json: bool,
}

impl Config {
    pub fn dead_letter_topic(&self) -> String {
        kafka::dead_letter_topic(&self.topic)
    }

    /// The consumer's settings: offsets stored by the bridge once a
    /// record's work is done and committed in the background from what is
    /// stored; fetches large enough for the largest image allowed.
    pub fn consumer(&self) -> ClientConfig {
        let mut consumer = ClientConfig::new();
        consumer
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("group.id", &self.group_id)
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.offset.store", "false")
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("session.timeout.ms", self.session_timeout_ms.to_string())
            .set(
                "fetch.message.max.bytes",
                (self.pipeline.max_image_bytes + 64 * 1024).to_string(),
            )
            .set("queued.max.messages.kbytes", "65536");
        consumer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command line with the required flags and `extra`.
    fn parse(extra: &[&str]) -> Result<Config, clap::Error> {
        let required = [
            "stream-bridge",
            "--bucket",
            "b",
            "--table",
            "t",
            "--delivery-stream",
            "s",
            "--bootstrap-servers",
            "10.0.0.1:9092",
        ];
        Config::try_parse_from(required.iter().chain(extra))
    }

    #[test]
    fn settings_come_from_the_documented_flags_with_defaults() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.listen.to_string(), "0.0.0.0:9090");
        assert_eq!(config.topic, "images");
        assert_eq!(config.dead_letter_topic(), "images.dlq");
        assert_eq!(config.group_id, "imagepipeline-stream-bridge");
        assert_eq!(config.pipeline.max_image_bytes, 20_971_520);
        assert_eq!(config.pipeline.allowed().len(), 4);
        assert_eq!(
            (config.max_in_flight_records, config.max_concurrent_stores),
            (1024, 64)
        );
    }

    #[test]
    fn limits_of_zero_are_refused_naming_the_flag() {
        for flag in [
            "--max-in-flight-records",
            "--max-concurrent-stores",
            "--lag-interval-seconds",
        ] {
            let err = parse(&[flag, "0"]).unwrap_err();
            assert!(err.to_string().contains(flag), "{err}");
        }
    }

    #[test]
    fn the_flags_read_exactly_the_contract_s_environment() {
        use std::collections::BTreeSet;

        use clap::CommandFactory;
        let read = ingest_core::contract::env::read_by(&Config::command());
        let contract: BTreeSet<String> = [ingest_core::contract::env::ALL, stream_bridge::ALL]
            .concat()
            .into_iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(read, contract);
    }
}
