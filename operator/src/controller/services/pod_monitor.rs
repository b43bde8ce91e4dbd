//! The PodMonitor that has a Prometheus Operator scrape a pipeline's two
//! services (`--pod-monitors`): built purely from the pipeline, applied with
//! the other objects. Whether the cluster serves PodMonitors at all is asked
//! once, when the operator starts.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement, ObjectMeta};
use kube::{Client, CustomResource};
use serde::{Deserialize, Serialize};

use super::pods::{STREAM_BRIDGE_PORT_NAME, UPLOAD_API_PORT_NAME};
use super::{INSTANCE_LABEL, NAME_LABEL, STREAM_BRIDGE, UPLOAD_API};

/// The Prometheus Operator's API that serves PodMonitors.
pub const POD_MONITOR_API_VERSION: &str = "monitoring.coreos.com/v1";
const POD_MONITOR_PLURAL: &str = "podmonitors";
/// Where both services serve their metrics.
const METRICS_PATH: &str = "/metrics";

/// `monitoring.coreos.com/v1` PodMonitor, only the fields the operator sets
/// (the Prometheus Operator's CRD defines the rest; server-side apply leaves
/// them alone).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "monitoring.coreos.com",
    version = "v1",
    kind = "PodMonitor",
    namespaced,
    schema = "disabled",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct PodMonitorSpec {
    /// The pods scraped, in the PodMonitor's namespace.
    pub selector: LabelSelector,
    pub pod_metrics_endpoints: Vec<PodMetricsEndpoint>,
    /// Pod labels copied onto every scraped series.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pod_target_labels: Vec<String>,
}

/// One named container port of the selected pods, and the path scraped on it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PodMetricsEndpoint {
    pub port: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relabelings: Vec<RelabelConfig>,
}

/// A relabeling that sets `target_label` to `replacement` (the action
/// `replace`, Prometheus' default).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RelabelConfig {
    pub target_label: String,
    pub replacement: String,
}

/// The Deployments a pipeline's PodMonitor scrapes, by name.
pub(super) struct ScrapedDeployments<'a> {
    pub upload: &'a str,
    pub bridge: &'a str,
}

/// The PodMonitor of a pipeline's services: their pods, by the labels
/// [`super::pods::deployment`] gives them, each scraped on the port it serves
/// `/metrics` on. A port name belongs to one service only, so each endpoint
/// finds the pods of one service, and names their series' `job` after its
/// Deployment (as a ServiceMonitor would after a Service; the alerts tell
/// one pipeline's services from another's by `namespace` and `job`, where a
/// PodMonitor's own `job` would be the same for both). `metadata` carries the pipeline's labels and
/// owner reference; `extra_labels` (by which a Prometheus selects
/// PodMonitors) are added where they do not replace one of those, which the
/// controller relies on.
pub(super) fn pod_monitor(
    mut metadata: ObjectMeta,
    pipeline_name: &str,
    deployments: &ScrapedDeployments<'_>,
    extra_labels: &BTreeMap<String, String>,
) -> PodMonitor {
    let labels = metadata.labels.get_or_insert_default();
    for (key, value) in extra_labels {
        labels.entry(key.clone()).or_insert_with(|| value.clone());
    }
    let endpoint = |port: &str, job: &str| PodMetricsEndpoint {
        port: port.to_owned(),
        path: METRICS_PATH.to_owned(),
        relabelings: vec![RelabelConfig {
            target_label: "job".to_owned(),
            replacement: job.to_owned(),
        }],
    };
    PodMonitor {
        metadata,
        spec: PodMonitorSpec {
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    INSTANCE_LABEL.to_owned(),
                    pipeline_name.to_owned(),
                )])),
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: NAME_LABEL.to_owned(),
                    operator: "In".to_owned(),
                    values: Some(vec![UPLOAD_API.to_owned(), STREAM_BRIDGE.to_owned()]),
                }]),
            },
            pod_metrics_endpoints: vec![
                endpoint(UPLOAD_API_PORT_NAME, deployments.upload),
                endpoint(STREAM_BRIDGE_PORT_NAME, deployments.bridge),
            ],
            // Which pipeline and which service a series comes from.
            pod_target_labels: vec![INSTANCE_LABEL.to_owned(), NAME_LABEL.to_owned()],
        },
    }
}

/// The extra labels of each pipeline's PodMonitor, or `None` when the
/// operator makes none: `enabled` (`--pod-monitors`) is off, in which case
/// the API server is not asked, or the cluster does not serve PodMonitors
/// (one warning). Asked once: a Prometheus Operator installed later is seen
/// after the operator restarts.
pub async fn pod_monitor_labels(
    client: &Client,
    enabled: bool,
    labels: &[(String, String)],
) -> Result<Option<BTreeMap<String, String>>, kube::Error> {
    if !enabled {
        return Ok(None);
    }
    if pod_monitors_served(client).await? {
        tracing::info!("making a PodMonitor for each pipeline's services");
        Ok(Some(labels.iter().cloned().collect()))
    } else {
        tracing::warn!(
            "--pod-monitors is set, but the cluster serves no {POD_MONITOR_API_VERSION} {POD_MONITOR_PLURAL}: \
             no PodMonitor is made; install the Prometheus Operator's CRDs and restart the operator"
        );
        Ok(None)
    }
}

/// Whether the API server serves `monitoring.coreos.com/v1` `podmonitors`.
/// Discovery, which every authenticated client may read (the
/// `system:discovery` ClusterRole): the chart grants nothing for it.
async fn pod_monitors_served(client: &Client) -> Result<bool, kube::Error> {
    match client.list_api_group_resources(POD_MONITOR_API_VERSION).await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == POD_MONITOR_PLURAL)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(err) => Err(err),
    }
}

/// `--pod-monitor-label key=value`: a Kubernetes label, checked here so
/// that a bad one stops the operator at start instead of failing every
/// apply.
pub fn parse_label(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not key=value"))?;
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && !is_dns_subdomain(prefix)
    {
        return Err(format!(
            "the prefix {prefix:?} of label {key:?} is not a DNS subdomain (lower case letters, digits, '-' and '.', at most 253 characters)"
        ));
    }
    if name.is_empty() || !is_label_word(name) {
        return Err(format!(
            "label name {name:?} must be 1 to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ));
    }
    if !value.is_empty() && !is_label_word(value) {
        return Err(format!(
            "label value {value:?} must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// A label name or non-empty value: at most 63 characters of `[-_.A-Za-z0-9]`,
/// alphanumeric at both ends.
fn is_label_word(text: &str) -> bool {
    text.len() <= 63
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text.ends_with(|c: char| c.is_ascii_alphanumeric())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn is_dns_subdomain(text: &str) -> bool {
    text.len() <= 253
        && text.split('.').all(|part| {
            !part.is_empty()
                && part.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && part.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}
