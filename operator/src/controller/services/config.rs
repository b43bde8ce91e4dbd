//! The endpoints ConfigMap: the pipeline settings both services read, by
//! the names of the contract (`ingest_core::contract::env`), and the
//! endpoints other workloads of the namespace may read.

use std::collections::BTreeMap;

use ingest_core::contract::env;
use k8s_openapi::api::core::v1::ConfigMap;
use sha2::{Digest, Sha256};

use super::{ServiceSettings, in_cluster_upload_url};
use crate::api::v1alpha1::ImagePipeline;
use crate::components::upload_instance_setup::UploadInstanceConfig;
use crate::engine::Outputs;

/// The SDK's standard variable of the region, set for both services.
const AWS_REGION: &str = "AWS_REGION";

/// The ConfigMap's content: the names of DESIGN.md's service configuration
/// table, plus the endpoints for anything else in the namespace to read.
pub(super) fn endpoint_settings(
    pipeline: &ImagePipeline,
    upload_config: &UploadInstanceConfig,
    outputs: &Outputs,
    settings: &ServiceSettings,
) -> BTreeMap<String, String> {
    // What both services read of the upload instances' environment: the
    // pipeline settings and the SDK's region.
    let shared = |name: &str| env::ALL.contains(&name) || name == AWS_REGION;
    let mut data: BTreeMap<String, String> = upload_config
        .environment()
        .into_iter()
        .filter(|(name, _)| shared(name))
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
    data.insert(
        env::stream_bridge::KAFKA_TOPIC.into(),
        pipeline.spec.kafka.topic.clone(),
    );
    let optional = [
        (
            env::stream_bridge::KAFKA_BOOTSTRAP_SERVERS,
            outputs.kafka_bootstrap.clone(),
        ),
        (env::published::UPLOAD_URL, outputs.upload_url.clone()),
        (
            env::published::IN_CLUSTER_UPLOAD_URL,
            Some(in_cluster_upload_url(pipeline)),
        ),
        (env::published::WAREHOUSE, outputs.warehouse.clone()),
        ("AWS_ENDPOINT_URL", settings.aws_endpoint_url.clone()),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            data.insert(key.to_owned(), value);
        }
    }
    data
}

pub(super) fn config_hash(config_map: &ConfigMap) -> String {
    let mut hasher = Sha256::new();
    for (key, value) in config_map.data.iter().flatten() {
        hasher.update(key.as_bytes());
        hasher.update([0]);
        hasher.update(value.as_bytes());
        hasher.update([0]);
    }
    hex::encode(&hasher.finalize()[..8])
}
