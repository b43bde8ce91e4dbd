//! Schema defaults of the spec's fields, named by their `#[serde(default)]`.

use super::ImageContentType;

pub(super) fn default_api_vpc_cidr() -> String {
    "10.40.0.0/16".into()
}
pub(super) fn default_kafka_vpc_cidr() -> String {
    "10.41.0.0/16".into()
}
pub(super) fn default_upload_instance_type() -> String {
    "t3.small".into()
}
pub(super) fn default_min_size() -> i32 {
    2
}
pub(super) fn default_max_size() -> i32 {
    6
}
pub(super) fn default_target_cpu_percent() -> i32 {
    60
}
pub(super) fn default_max_image_bytes() -> i64 {
    20 * 1024 * 1024
}
pub(super) fn default_max_image_pixels() -> i64 {
    ingest_core::DecodeLimits::DEFAULT_MAX_PIXELS as i64
}
pub(super) fn default_max_image_frames() -> i32 {
    ingest_core::DecodeLimits::DEFAULT_MAX_FRAMES as i32
}
pub(super) fn default_allowed_content_types() -> Vec<ImageContentType> {
    use ImageContentType::*;
    vec![Jpeg, Png, Webp, Gif]
}
pub(super) fn default_api_keys_secret_key() -> String {
    "api-keys".into()
}
pub(super) fn default_topic() -> String {
    ingest_core::contract::kafka::DEFAULT_TOPIC.into()
}
pub(super) fn default_partitions() -> i32 {
    12
}
pub(super) fn default_replication_factor() -> i32 {
    3
}
pub(super) fn default_buffer_interval_seconds() -> i32 {
    60
}
pub(super) fn default_buffer_size_mib() -> i32 {
    5
}
pub(super) fn default_retention_days() -> i32 {
    7
}
pub(super) fn default_true() -> bool {
    true
}
pub(super) fn default_node_type() -> String {
    "ra3.xlplus".into()
}
pub(super) fn default_nodes() -> i32 {
    2
}
pub(super) fn default_database() -> String {
    "images".into()
}
pub(super) fn default_service_replicas() -> i32 {
    2
}
