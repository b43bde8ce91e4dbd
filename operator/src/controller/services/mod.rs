//! A pipeline's two in-cluster services. Built purely from the pipeline and
//! what its AWS components published: the ConfigMap of resolved endpoints
//! (`config`), the ServiceAccount, the upload-api Deployment and Service, the
//! stream-bridge Deployment (their pods: `pods`), their
//! PodDisruptionBudgets and, when asked, the PodMonitor that has them scraped
//! (`pod_monitor`). Then applied, with the objects no longer wanted
//! removed (`apply`), and judged by how far the Deployments rolled out
//! (`health`).

mod apply;
mod config;
mod health;
mod pod_monitor;
mod pods;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount, ServicePort, ServiceSpec};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};

pub(super) use apply::apply_services;
pub use health::{ServicesHealth, services_health};
pub use pod_monitor::{POD_MONITOR_API_VERSION, PodMonitor, parse_label, pod_monitor_labels};

use crate::api::v1alpha1::ImagePipeline;
use crate::components::upload_instance_setup::{UploadInstanceConfig, UploadTargets};
use crate::engine::{ComponentError, Outputs, PipelineContext};

/// The stream-bridge image run when `spec.services.streamBridge.image` is
/// unset: the release built with this operator.
pub const DEFAULT_STREAM_BRIDGE_IMAGE: &str =
    concat!("ghcr.io/imagepipeline/stream-bridge:", env!("CARGO_PKG_VERSION"));

/// `app.kubernetes.io/managed-by` of every object the operator makes; the
/// controller watches only objects carrying it.
pub const MANAGED_BY: &str = "imagepipeline-operator";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";
const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
const VERSION_LABEL: &str = "app.kubernetes.io/version";
/// Hash of the ConfigMap on the pod template: environment taken from a
/// ConfigMap is read at container start, so a change must roll the pods.
pub const CONFIG_HASH_ANNOTATION: &str = "imagepipeline.io/config-hash";

const UPLOAD_API: &str = "upload-api";
const STREAM_BRIDGE: &str = "stream-bridge";
const SERVICE_PORT: i32 = 80;
/// Kubernetes object names are DNS labels here (Services need it).
const MAX_NAME_LEN: usize = 63;

/// What the services need that does not come from the pipeline itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceSettings {
    /// `AWS_ENDPOINT_URL` the operator itself uses (an emulator), handed on to
    /// the services so that both sides talk to the same AWS.
    pub aws_endpoint_url: Option<String>,
    /// A Secret in the pipeline's namespace whose keys become environment
    /// variables of both services: credentials where neither IRSA nor Pod
    /// Identity gives any, such as an emulator's dummy keys. Credentials never
    /// go into the endpoints ConfigMap.
    pub env_secret: Option<String>,
    /// A ConfigMap in the pipeline's namespace whose key `ca.crt` holds the
    /// certificates both services trust for AWS (`SSL_CERT_FILE`, in place of
    /// the image's roots), such as an emulator's CA.
    pub ca_config_map: Option<String>,
    /// `Some` when each pipeline gets a PodMonitor (`--pod-monitors`, and the
    /// cluster serves PodMonitors): the labels it carries besides the
    /// pipeline's, by which a Prometheus selects it.
    pub pod_monitor_labels: Option<BTreeMap<String, String>>,
}

/// The objects one pipeline's services consist of.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredServices {
    pub config_map: ConfigMap,
    pub service_account: ServiceAccount,
    pub upload_deployment: Deployment,
    pub upload_service: Service,
    /// `None` until the Kafka bootstrap servers are known.
    pub bridge_deployment: Option<Deployment>,
    /// One per Deployment with at least two replicas: a budget for a single
    /// pod would block every node drain.
    pub disruption_budgets: Vec<PodDisruptionBudget>,
    /// Only with [`ServiceSettings::pod_monitor_labels`].
    pub pod_monitor: Option<PodMonitor>,
}

/// Names of the objects a pipeline's services use.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ServiceNames {
    config_map: String,
    service_account: String,
    upload: String,
    bridge: String,
    pod_monitor: String,
}

impl ServiceNames {
    fn of(pipeline_name: &str) -> Self {
        Self {
            config_map: object_name(pipeline_name, "endpoints"),
            service_account: object_name(pipeline_name, "services"),
            upload: object_name(pipeline_name, UPLOAD_API),
            bridge: object_name(pipeline_name, STREAM_BRIDGE),
            pod_monitor: object_name(pipeline_name, "services"),
        }
    }
}

/// `<pipeline>-<suffix>`, shortened with a hash of the full name when it
/// would not fit a DNS label.
pub fn object_name(pipeline_name: &str, suffix: &str) -> String {
    let full = format!("{pipeline_name}-{suffix}");
    if full.len() <= MAX_NAME_LEN {
        return full;
    }
    let hash = hex::encode(&Sha256::digest(full.as_bytes())[..4]);
    let room = MAX_NAME_LEN - suffix.len() - hash.len() - 2;
    let prefix = pipeline_name[..room].trim_end_matches(['-', '.']);
    format!("{prefix}-{hash}-{suffix}")
}

/// The in-cluster URL of the upload-api Service.
pub fn in_cluster_upload_url(pipeline: &ImagePipeline) -> String {
    format!(
        "http://{}.{}.svc",
        ServiceNames::of(&pipeline.name_any()).upload,
        pipeline.namespace().unwrap_or_default()
    )
}

/// The services' objects, or `None` while the bucket, table and delivery
/// stream they write to do not exist yet.
pub fn desired_services(
    pipeline: &ImagePipeline,
    ctx: &PipelineContext,
    outputs: &Outputs,
    settings: &ServiceSettings,
) -> Result<Option<DesiredServices>, ComponentError> {
    let (Some(bucket), Some(table), Some(delivery_stream)) =
        (&outputs.bucket, &outputs.table, &outputs.delivery_stream)
    else {
        return Ok(None);
    };
    let targets = UploadTargets {
        bucket: bucket.clone(),
        table: table.clone(),
        delivery_stream: delivery_stream.clone(),
    };
    let upload_config = UploadInstanceConfig::new(ctx, targets)?;
    let name = pipeline.name_any();
    let namespace = pipeline.namespace().unwrap_or_default();
    let names = ServiceNames::of(&name);
    let owner = owner_reference(pipeline);
    let meta = |object_name: &str, app: &str| ObjectMeta {
        name: Some(object_name.to_owned()),
        namespace: Some(namespace.clone()),
        labels: Some(labels(&name, app)),
        owner_references: Some(vec![owner.clone()]),
        ..ObjectMeta::default()
    };

    let config_map = ConfigMap {
        metadata: meta(&names.config_map, "pipeline"),
        data: Some(config::endpoint_settings(
            pipeline,
            &upload_config,
            outputs,
            settings,
        )),
        ..ConfigMap::default()
    };
    let config_hash = config::config_hash(&config_map);
    let service_account = ServiceAccount {
        metadata: ObjectMeta {
            annotations: Some(ctx.spec.services.service_account_annotations.clone())
                .filter(|annotations| !annotations.is_empty()),
            ..meta(&names.service_account, "pipeline")
        },
        // The services reach AWS, not the Kubernetes API; IRSA and Pod
        // Identity mount their own token.
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    };

    let spec = &ctx.spec.services;
    let (upload_container, upload_volumes) =
        pods::upload_api(ctx, &upload_config, &names.config_map, settings);
    let upload_deployment = pods::deployment(
        meta(&names.upload, UPLOAD_API),
        &name,
        UPLOAD_API,
        spec.upload.replicas,
        &names.service_account,
        &config_hash,
        upload_container,
        upload_volumes,
    );
    let upload_service = Service {
        metadata: meta(&names.upload, UPLOAD_API),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(selector_labels(&name, UPLOAD_API)),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port: SERVICE_PORT,
                target_port: Some(IntOrString::String(pods::UPLOAD_API_PORT_NAME.to_owned())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };

    let bridge_deployment = outputs.kafka_bootstrap.as_ref().map(|_| {
        // One group per pipeline: two pipelines may share a Kafka cluster
        // and a topic name.
        let group = format!("imagepipeline-{namespace}-{name}");
        let (container, volumes) = pods::stream_bridge(ctx, group, &names.config_map, settings);
        pods::deployment(
            meta(&names.bridge, STREAM_BRIDGE),
            &name,
            STREAM_BRIDGE,
            spec.stream_bridge.replicas,
            &names.service_account,
            &config_hash,
            container,
            volumes,
        )
    });

    let disruption_budgets = [
        (&names.upload, UPLOAD_API, spec.upload.replicas),
        (&names.bridge, STREAM_BRIDGE, spec.stream_bridge.replicas),
    ]
    .into_iter()
    .filter(|(_, app, replicas)| *replicas >= 2 && (*app != STREAM_BRIDGE || bridge_deployment.is_some()))
    .map(|(object_name, app, _)| PodDisruptionBudget {
        metadata: meta(object_name, app),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(&name, app)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    })
    .collect();

    let pod_monitor = settings.pod_monitor_labels.as_ref().map(|extra_labels| {
        let deployments = pod_monitor::ScrapedDeployments {
            upload: &names.upload,
            bridge: &names.bridge,
        };
        pod_monitor::pod_monitor(
            meta(&names.pod_monitor, "metrics"),
            &name,
            &deployments,
            extra_labels,
        )
    });

    Ok(Some(DesiredServices {
        config_map,
        service_account,
        upload_deployment,
        upload_service,
        bridge_deployment,
        disruption_budgets,
        pod_monitor,
    }))
}

pub fn owner_reference(pipeline: &ImagePipeline) -> OwnerReference {
    OwnerReference {
        api_version: ImagePipeline::api_version(&()).into_owned(),
        kind: ImagePipeline::kind(&()).into_owned(),
        name: pipeline.name_any(),
        uid: pipeline.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn labels(pipeline_name: &str, app: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(pipeline_name, app);
    labels.insert(PART_OF_LABEL.into(), "imagepipeline".into());
    labels.insert(COMPONENT_LABEL.into(), app.into());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    labels.insert(VERSION_LABEL.into(), env!("CARGO_PKG_VERSION").into());
    labels
}

fn selector_labels(pipeline_name: &str, app: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME_LABEL.to_owned(), app.to_owned()),
        (INSTANCE_LABEL.to_owned(), pipeline_name.to_owned()),
    ])
}
