//! stream-bridge: stores the images of a Kafka topic in the pipeline's S3
//! bucket, DynamoDB table and Firehose stream (../shared/DESIGN.md,
//! "stream-bridge"), at least once and without duplicates on replay.

pub mod bridge;
pub mod config;
pub mod events;
pub mod metrics;
pub mod offsets;
pub mod record;
pub mod retry;
