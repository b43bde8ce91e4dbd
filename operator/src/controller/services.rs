//! The Kubernetes objects of a pipeline's two in-cluster services, computed
//! purely from the pipeline and what its AWS components published: the
//! ConfigMap of resolved endpoints, the ServiceAccount, the upload-api
//! Deployment and Service, the stream-bridge Deployment and their
//! PodDisruptionBudgets. Also how ready the applied Deployments are.

use std::collections::BTreeMap;

use ingest_core::contract::env;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapEnvSource, ConfigMapVolumeSource, Container, ContainerPort,
    EmptyDirVolumeSource, EnvFromSource, EnvVar, HTTPGetAction, KeyToPath, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecretEnvSource, SecretVolumeSource,
    SecurityContext, Service, ServiceAccount, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};

use crate::api::v1alpha1::ImagePipeline;
use crate::components::upload_instance_setup::{UploadInstanceConfig, UploadTargets, api_keys_secret};
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
const NAME_LABEL: &str = "app.kubernetes.io/name";
const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";
const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
const VERSION_LABEL: &str = "app.kubernetes.io/version";
/// Hash of the ConfigMap on the pod template: environment taken from a
/// ConfigMap is read at container start, so a change must roll the pods.
pub const CONFIG_HASH_ANNOTATION: &str = "imagepipeline.io/config-hash";

const UPLOAD_API: &str = "upload-api";
const STREAM_BRIDGE: &str = "stream-bridge";
const UPLOAD_PORT: i32 = 8080;
const BRIDGE_PORT: i32 = 9090;
const SERVICE_PORT: i32 = 80;
/// User and group of the distroless `nonroot` images.
const NONROOT: i64 = 65532;
const API_KEYS_DIR: &str = "/run/secrets/imagepipeline";
const API_KEYS_FILE_NAME: &str = "api-keys";
const SPOOL_DIR: &str = "/var/spool/upload-api";
/// Where the CA bundle of [`ServiceSettings::ca_config_map`] is mounted.
const AWS_CA_DIR: &str = "/etc/imagepipeline/aws-ca";
/// The key of that ConfigMap, as in Kubernetes' own `kube-root-ca.crt`.
const AWS_CA_KEY: &str = "ca.crt";
/// The SDK's standard variable of the region, set for both services.
const AWS_REGION: &str = "AWS_REGION";
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
}

/// Names of the objects a pipeline's services use.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ServiceNames {
    config_map: String,
    service_account: String,
    upload: String,
    bridge: String,
}

impl ServiceNames {
    fn of(pipeline_name: &str) -> Self {
        Self {
            config_map: object_name(pipeline_name, "endpoints"),
            service_account: object_name(pipeline_name, "services"),
            upload: object_name(pipeline_name, UPLOAD_API),
            bridge: object_name(pipeline_name, STREAM_BRIDGE),
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
        data: Some(endpoint_settings(pipeline, &upload_config, outputs, settings)),
        ..ConfigMap::default()
    };
    let config_hash = config_hash(&config_map);
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
    let api_keys = api_keys_secret(ctx);
    let mut upload_container = Container {
        name: UPLOAD_API.to_owned(),
        image: Some(upload_config.image().to_owned()),
        args: None,
        env: Some(env(&[
            (env::upload_api::LISTEN, format!("0.0.0.0:{UPLOAD_PORT}")),
            (
                env::upload_api::API_KEYS_FILE,
                format!("{API_KEYS_DIR}/{API_KEYS_FILE_NAME}"),
            ),
            (env::upload_api::SPOOL_DIR, SPOOL_DIR.to_owned()),
            (env::upload_api::LOG_JSON, "true".to_owned()),
        ])),
        ports: Some(vec![port("http", UPLOAD_PORT)]),
        volume_mounts: Some(vec![
            mount("api-keys", API_KEYS_DIR, true),
            mount("spool", SPOOL_DIR, false),
            mount("tmp", "/tmp", false),
        ]),
        resources: Some(
            spec.upload
                .resources
                .clone()
                .unwrap_or_else(|| resources("100m", "128Mi", "1", "512Mi")),
        ),
        ..service_container(&names.config_map, "http")
    };
    let mut upload_volumes = vec![
        Volume {
            name: "api-keys".to_owned(),
            // A directory mount, not subPath: a rotated key reaches the pod,
            // and upload-api reloads its keys file.
            secret: Some(SecretVolumeSource {
                secret_name: Some(api_keys.name),
                items: Some(vec![KeyToPath {
                    key: api_keys.key,
                    path: API_KEYS_FILE_NAME.to_owned(),
                    mode: Some(0o400),
                    ..KeyToPath::default()
                }]),
                default_mode: Some(0o400),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        },
        // Uploads above 256 KiB are spooled while they arrive: disk, not memory.
        empty_dir("spool", None),
        empty_dir("tmp", Some("64Mi")),
    ];
    add_aws_access(&mut upload_container, &mut upload_volumes, settings);
    let upload_deployment = deployment(
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
                target_port: Some(IntOrString::String("http".to_owned())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };

    let bridge_deployment = outputs.kafka_bootstrap.as_ref().map(|_| {
        let mut container = Container {
            name: STREAM_BRIDGE.to_owned(),
            image: Some(
                spec.stream_bridge
                    .image
                    .clone()
                    .unwrap_or_else(|| DEFAULT_STREAM_BRIDGE_IMAGE.to_owned()),
            ),
            env: Some(env(&[
                (env::stream_bridge::LISTEN, format!("0.0.0.0:{BRIDGE_PORT}")),
                // One group per pipeline: two pipelines may share a Kafka
                // cluster and a topic name.
                (
                    env::stream_bridge::KAFKA_GROUP_ID,
                    format!("imagepipeline-{namespace}-{name}"),
                ),
                (env::stream_bridge::LOG_JSON, "true".to_owned()),
            ])),
            ports: Some(vec![port("metrics", BRIDGE_PORT)]),
            volume_mounts: Some(vec![mount("tmp", "/tmp", false)]),
            // Worst case: 256 MiB of records in flight, librdkafka's 64 MiB
            // prefetch and the process itself.
            resources: Some(
                spec.stream_bridge
                    .resources
                    .clone()
                    .unwrap_or_else(|| resources("100m", "256Mi", "1", "512Mi")),
            ),
            ..service_container(&names.config_map, "metrics")
        };
        let mut volumes = vec![empty_dir("tmp", Some("64Mi"))];
        add_aws_access(&mut container, &mut volumes, settings);
        deployment(
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

    Ok(Some(DesiredServices {
        config_map,
        service_account,
        upload_deployment,
        upload_service,
        bridge_deployment,
        disruption_budgets,
    }))
}

/// The ConfigMap's content: the names of DESIGN.md's service configuration
/// table, plus the endpoints for anything else in the namespace to read.
fn endpoint_settings(
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

fn config_hash(config_map: &ConfigMap) -> String {
    let mut hasher = Sha256::new();
    for (key, value) in config_map.data.iter().flatten() {
        hasher.update(key.as_bytes());
        hasher.update([0]);
        hasher.update(value.as_bytes());
        hasher.update([0]);
    }
    hex::encode(&hasher.finalize()[..8])
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

/// A container locked down as the restricted Pod Security Standard asks,
/// configured from the ConfigMap, probed on `/healthz` and `/readyz`.
fn service_container(config_map: &str, port_name: &str) -> Container {
    let probe = |path: &str, period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String(port_name.to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Probe::default()
    };
    Container {
        env_from: Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: config_map.to_owned(),
                optional: Some(false),
            }),
            ..EnvFromSource::default()
        }]),
        liveness_probe: Some(probe("/healthz", 10, 3)),
        readiness_probe: Some(probe("/readyz", 5, 2)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

/// What [`ServiceSettings`] adds to a service's pod: environment from the
/// Secret after the ConfigMap's (so the Secret wins a name both hold), and the
/// CA bundle as the only roots trusted.
fn add_aws_access(container: &mut Container, volumes: &mut Vec<Volume>, settings: &ServiceSettings) {
    if let Some(secret) = &settings.env_secret {
        container.env_from.get_or_insert_default().push(EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: secret.clone(),
                optional: Some(false),
            }),
            ..EnvFromSource::default()
        });
    }
    if let Some(config_map) = &settings.ca_config_map {
        volumes.push(Volume {
            name: "aws-ca".to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map.clone(),
                items: Some(vec![KeyToPath {
                    key: AWS_CA_KEY.to_owned(),
                    path: AWS_CA_KEY.to_owned(),
                    ..KeyToPath::default()
                }]),
                optional: Some(false),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        });
        container
            .volume_mounts
            .get_or_insert_default()
            .push(mount("aws-ca", AWS_CA_DIR, true));
        container
            .env
            .get_or_insert_default()
            .extend(env(&[("SSL_CERT_FILE", format!("{AWS_CA_DIR}/{AWS_CA_KEY}"))]));
    }
}

#[allow(clippy::too_many_arguments)]
fn deployment(
    metadata: ObjectMeta,
    pipeline_name: &str,
    app: &str,
    replicas: i32,
    service_account: &str,
    config_hash: &str,
    container: Container,
    volumes: Vec<Volume>,
) -> Deployment {
    Deployment {
        spec: DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(selector_labels(pipeline_name, app)),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::Int(1)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: metadata.labels.clone(),
                    annotations: Some(BTreeMap::from([(
                        CONFIG_HASH_ANNOTATION.to_owned(),
                        config_hash.to_owned(),
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(service_account.to_owned()),
                    automount_service_account_token: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(NONROOT),
                        run_as_group: Some(NONROOT),
                        fs_group: Some(NONROOT),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".to_owned(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    containers: vec![container],
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        },
        metadata,
        ..Deployment::default()
    }
}

fn env(pairs: &[(&str, String)]) -> Vec<EnvVar> {
    pairs
        .iter()
        .map(|(name, value)| EnvVar {
            name: (*name).to_owned(),
            value: Some(value.clone()),
            ..EnvVar::default()
        })
        .collect()
}

fn port(name: &str, number: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: number,
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }
}

fn mount(volume: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: volume.to_owned(),
        mount_path: path.to_owned(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    }
}

fn empty_dir(name: &str, size_limit: Option<&str>) -> Volume {
    Volume {
        name: name.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource {
            size_limit: size_limit.map(|size| Quantity(size.to_owned())),
            ..EmptyDirVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn resources(
    cpu_request: &str,
    memory_request: &str,
    cpu_limit: &str,
    memory_limit: &str,
) -> ResourceRequirements {
    let quantities = |cpu: &str, memory: &str| {
        BTreeMap::from([
            ("cpu".to_owned(), Quantity(cpu.to_owned())),
            ("memory".to_owned(), Quantity(memory.to_owned())),
        ])
    };
    ResourceRequirements {
        requests: Some(quantities(cpu_request, memory_request)),
        limits: Some(quantities(cpu_limit, memory_limit)),
        ..ResourceRequirements::default()
    }
}

/// How far the applied Deployments have rolled out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicesHealth {
    pub ready: bool,
    pub reason: String,
    pub message: String,
}

impl ServicesHealth {
    pub fn waiting(reason: &str, message: impl Into<String>) -> Self {
        Self {
            ready: false,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

/// Ready when every Deployment has rolled out its current template and has
/// all its replicas available.
pub fn services_health(deployments: &[&Deployment]) -> ServicesHealth {
    let mut pending = Vec::new();
    for deployment in deployments {
        let wanted = deployment.spec.replicas.unwrap_or(1);
        let status = deployment.status.clone().unwrap_or_default();
        let current = status.observed_generation >= deployment.metadata.generation;
        let available = status.available_replicas.unwrap_or(0);
        let updated = status.updated_replicas.unwrap_or(0);
        if !current || updated < wanted || available < wanted {
            pending.push(format!(
                "{}: {available}/{wanted} available, {updated} updated",
                deployment.name_any()
            ));
        }
    }
    if pending.is_empty() {
        ServicesHealth {
            ready: true,
            reason: "Available".into(),
            message: "every service pod is available".into(),
        }
    } else {
        ServicesHealth::waiting("RollingOut", pending.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest;

    const PIPELINE: &str = "
apiVersion: imagepipeline.io/v1alpha1
kind: ImagePipeline
metadata: { name: photos, namespace: media, uid: 0b6f-uid }
spec:
  region: eu-west-1
  network: { availabilityZones: [eu-west-1a, eu-west-1b] }
  uploadApi: { allowedContentTypes: [image/png, image/jpeg] }
  services:
    upload: { replicas: 3 }
    streamBridge: { replicas: 1, image: registry.example/bridge:1 }
    serviceAccountAnnotations: { eks.amazonaws.com/role-arn: 'arn:aws:iam::123456789012:role/photos' }
";

    fn pipeline(yaml: &str) -> ImagePipeline {
        manifest::parse(std::path::Path::new("test.yaml"), yaml)
            .unwrap_or_else(|err| panic!("{err}"))
            .remove(0)
    }

    fn outputs(kafka: bool) -> Outputs {
        Outputs {
            bucket: Some("photos-bucket".into()),
            table: Some("photos-table".into()),
            delivery_stream: Some("photos-stream".into()),
            kafka_bootstrap: kafka.then(|| "10.41.0.10:9092,10.41.1.10:9092".into()),
            upload_url: Some("http://photos-alb.example".into()),
            ..Outputs::default()
        }
    }

    fn desired(yaml: &str, outputs: &Outputs) -> Option<DesiredServices> {
        let settings = ServiceSettings {
            aws_endpoint_url: Some("http://moto:5000".into()),
            ..ServiceSettings::default()
        };
        desired_with(yaml, outputs, &settings)
    }

    fn desired_with(yaml: &str, outputs: &Outputs, settings: &ServiceSettings) -> Option<DesiredServices> {
        let pipeline = pipeline(yaml);
        let mut ctx = crate::engine::context_from_yaml(yaml);
        ctx.owner.namespace = "media".into();
        desired_services(&pipeline, &ctx, outputs, settings).expect("valid")
    }

    fn pod(deployment: &Deployment) -> &PodSpec {
        deployment.spec.template.spec.as_ref().unwrap()
    }

    #[test]
    fn nothing_is_made_before_bucket_table_and_stream_exist() {
        let partial = Outputs {
            bucket: Some("b".into()),
            ..Outputs::default()
        };
        assert_eq!(desired(PIPELINE, &partial), None);
    }

    #[test]
    fn the_config_map_holds_the_resolved_endpoints_by_the_contract_names() {
        let services = desired(PIPELINE, &outputs(true)).unwrap();
        let data = services.config_map.data.unwrap();
        let expected = [
            (env::BUCKET, "photos-bucket"),
            (env::TABLE, "photos-table"),
            (env::DELIVERY_STREAM, "photos-stream"),
            (env::RETENTION_DAYS, "7"),
            (env::MAX_IMAGE_BYTES, "20971520"),
            (env::ALLOWED_CONTENT_TYPES, "image/jpeg,image/png"),
            ("AWS_REGION", "eu-west-1"),
            (
                env::stream_bridge::KAFKA_BOOTSTRAP_SERVERS,
                "10.41.0.10:9092,10.41.1.10:9092",
            ),
            (env::stream_bridge::KAFKA_TOPIC, "images"),
            (env::published::UPLOAD_URL, "http://photos-alb.example"),
            (
                env::published::IN_CLUSTER_UPLOAD_URL,
                "http://photos-upload-api.media.svc",
            ),
            ("AWS_ENDPOINT_URL", "http://moto:5000"),
        ];
        for (key, value) in expected {
            assert_eq!(data.get(key).map(String::as_str), Some(value), "{key}");
        }
        assert_eq!(data.len(), expected.len(), "{data:#?}");
        assert_eq!(
            services.config_map.metadata.name.as_deref(),
            Some("photos-endpoints")
        );
    }

    #[test]
    fn every_object_is_owned_by_the_pipeline_and_labelled() {
        let services = desired(PIPELINE, &outputs(true)).unwrap();
        let bridge = services.bridge_deployment.clone().unwrap();
        let metas = [
            &services.config_map.metadata,
            &services.service_account.metadata,
            &services.upload_deployment.metadata,
            &services.upload_service.metadata,
            &bridge.metadata,
        ];
        for meta in metas {
            let owner = &meta.owner_references.as_ref().unwrap()[0];
            assert_eq!(
                (
                    owner.kind.as_str(),
                    owner.name.as_str(),
                    owner.uid.as_str(),
                    owner.controller
                ),
                ("ImagePipeline", "photos", "0b6f-uid", Some(true))
            );
            let labels = meta.labels.as_ref().unwrap();
            assert_eq!(labels[MANAGED_BY_LABEL], MANAGED_BY);
            assert_eq!(labels[INSTANCE_LABEL], "photos");
            assert_eq!(meta.namespace.as_deref(), Some("media"));
        }
    }

    #[test]
    fn pods_are_restricted_probed_and_bounded() {
        let services = desired(PIPELINE, &outputs(true)).unwrap();
        for deployment in [&services.upload_deployment, &services.bridge_deployment.unwrap()] {
            let pod = pod(deployment);
            let pod_security = pod.security_context.as_ref().unwrap();
            assert_eq!(pod_security.run_as_non_root, Some(true));
            assert_eq!(
                pod_security.seccomp_profile.as_ref().unwrap().type_,
                "RuntimeDefault"
            );
            assert_eq!(pod.automount_service_account_token, Some(false));
            assert_eq!(pod.service_account_name.as_deref(), Some("photos-services"));
            let container = &pod.containers[0];
            let security = container.security_context.as_ref().unwrap();
            assert_eq!(security.allow_privilege_escalation, Some(false));
            assert_eq!(security.read_only_root_filesystem, Some(true));
            assert_eq!(
                security.capabilities.as_ref().unwrap().drop,
                Some(vec!["ALL".to_owned()])
            );
            let resources = container.resources.as_ref().unwrap();
            assert!(resources.requests.as_ref().unwrap().contains_key("memory"));
            assert!(resources.limits.as_ref().unwrap().contains_key("memory"));
            let path =
                |probe: &Option<Probe>| probe.as_ref().unwrap().http_get.as_ref().unwrap().path.clone();
            assert_eq!(path(&container.liveness_probe).as_deref(), Some("/healthz"));
            assert_eq!(path(&container.readiness_probe).as_deref(), Some("/readyz"));
            let env_from = container.env_from.as_ref().unwrap()[0]
                .config_map_ref
                .as_ref()
                .unwrap();
            assert_eq!(env_from.name, "photos-endpoints");
            // Every writable path is a volume: the root filesystem is read-only.
            let mounts: Vec<&str> = container
                .volume_mounts
                .iter()
                .flatten()
                .filter(|m| m.read_only != Some(true))
                .map(|m| m.mount_path.as_str())
                .collect();
            assert!(mounts.contains(&"/tmp"), "{mounts:?}");
        }
    }

    #[test]
    fn upload_api_reads_its_keys_from_the_secret_and_spools_to_an_empty_dir() {
        let services = desired(PIPELINE, &outputs(false)).unwrap();
        let pod = pod(&services.upload_deployment);
        let secret = pod
            .volumes
            .iter()
            .flatten()
            .find_map(|v| v.secret.clone())
            .unwrap();
        assert_eq!(secret.secret_name.as_deref(), Some("photos-upload-api-keys"));
        let env = pod.containers[0].env.as_ref().unwrap();
        let value = |name: &str| env.iter().find(|e| e.name == name).and_then(|e| e.value.clone());
        assert_eq!(
            value(env::upload_api::API_KEYS_FILE).as_deref(),
            Some("/run/secrets/imagepipeline/api-keys")
        );
        assert_eq!(
            value(env::upload_api::SPOOL_DIR).as_deref(),
            Some("/var/spool/upload-api")
        );
        assert_eq!(services.upload_deployment.spec.replicas, Some(3));
        assert_eq!(
            pod.containers[0].image.as_deref(),
            Some(crate::components::upload_instance_setup::DEFAULT_UPLOAD_API_IMAGE)
        );
    }

    #[test]
    fn the_bridge_waits_for_the_brokers_and_budgets_need_two_replicas() {
        let services = desired(PIPELINE, &outputs(false)).unwrap();
        assert_eq!(services.bridge_deployment, None);
        let budgets: Vec<_> = services.disruption_budgets.iter().map(|b| b.name_any()).collect();
        assert_eq!(budgets, ["photos-upload-api"]);

        let services = desired(PIPELINE, &outputs(true)).unwrap();
        let bridge = services.bridge_deployment.unwrap();
        let container = &pod(&bridge).containers[0];
        assert_eq!(container.image.as_deref(), Some("registry.example/bridge:1"));
        let group = container
            .env
            .iter()
            .flatten()
            .find(|e| e.name == env::stream_bridge::KAFKA_GROUP_ID)
            .unwrap();
        assert_eq!(group.value.as_deref(), Some("imagepipeline-media-photos"));
        // The bridge has one replica here: no budget for it.
        assert_eq!(services.disruption_budgets.len(), 1);
    }

    #[test]
    fn an_emulator_s_credentials_and_ca_reach_both_services_from_their_own_objects() {
        let settings = ServiceSettings {
            aws_endpoint_url: Some("https://moto.aws-emulator.svc".into()),
            env_secret: Some("aws-emulator-credentials".into()),
            ca_config_map: Some("aws-emulator-ca".into()),
        };
        let services = desired_with(PIPELINE, &outputs(true), &settings).unwrap();
        for deployment in [&services.upload_deployment, &services.bridge_deployment.unwrap()] {
            let pod = pod(deployment);
            let container = &pod.containers[0];
            let sources: Vec<(Option<&str>, Option<&str>)> = container
                .env_from
                .iter()
                .flatten()
                .map(|source| {
                    (
                        source.config_map_ref.as_ref().map(|c| c.name.as_str()),
                        source.secret_ref.as_ref().map(|s| s.name.as_str()),
                    )
                })
                .collect();
            assert_eq!(
                sources,
                [
                    (Some("photos-endpoints"), None),
                    (None, Some("aws-emulator-credentials"))
                ],
                "{}: the Secret comes last, so that it wins",
                deployment.name_any()
            );
            let cert_file = container
                .env
                .iter()
                .flatten()
                .find(|e| e.name == "SSL_CERT_FILE")
                .and_then(|e| e.value.as_deref());
            assert_eq!(cert_file, Some("/etc/imagepipeline/aws-ca/ca.crt"));
            let mount = container
                .volume_mounts
                .iter()
                .flatten()
                .find(|m| m.name == "aws-ca")
                .expect("the CA is mounted");
            assert_eq!(
                (mount.mount_path.as_str(), mount.read_only),
                ("/etc/imagepipeline/aws-ca", Some(true))
            );
            let volume = pod.volumes.iter().flatten().find(|v| v.name == "aws-ca").unwrap();
            assert_eq!(
                volume.config_map.as_ref().map(|c| c.name.as_str()),
                Some("aws-emulator-ca")
            );
        }
    }

    #[test]
    fn without_settings_the_services_take_nothing_but_the_config_map() {
        let services = desired(PIPELINE, &outputs(true)).unwrap();
        for deployment in [&services.upload_deployment, &services.bridge_deployment.unwrap()] {
            let container = &pod(deployment).containers[0];
            assert_eq!(container.env_from.as_ref().map(Vec::len), Some(1));
            assert!(
                !container.env.iter().flatten().any(|e| e.name == "SSL_CERT_FILE"),
                "the image's own roots are trusted"
            );
        }
    }

    #[test]
    fn the_service_account_carries_the_annotations_for_aws_credentials() {
        let services = desired(PIPELINE, &outputs(true)).unwrap();
        let annotations = services.service_account.metadata.annotations.unwrap();
        assert_eq!(
            annotations["eks.amazonaws.com/role-arn"],
            "arn:aws:iam::123456789012:role/photos"
        );
        assert_eq!(
            services.service_account.automount_service_account_token,
            Some(false)
        );
    }

    #[test]
    fn a_config_change_changes_the_pod_template() {
        let hash = |outputs: &Outputs| {
            let services = desired(PIPELINE, outputs).unwrap();
            services
                .upload_deployment
                .spec
                .template
                .metadata
                .unwrap()
                .annotations
                .unwrap()[CONFIG_HASH_ANNOTATION]
                .clone()
        };
        let mut changed = outputs(true);
        changed.bucket = Some("other".into());
        assert_eq!(hash(&outputs(true)), hash(&outputs(true)));
        assert_ne!(hash(&outputs(true)), hash(&changed));
    }

    #[test]
    fn long_pipeline_names_give_dns_label_object_names_that_stay_distinct() {
        let long_a = "a".repeat(60);
        let long_b = format!("{}b", "a".repeat(59));
        let a = object_name(&long_a, "stream-bridge");
        let b = object_name(&long_b, "stream-bridge");
        assert!(a.len() <= 63 && b.len() <= 63, "{a} {b}");
        assert_ne!(a, b);
        assert!(a.ends_with("-stream-bridge"));
        assert_eq!(object_name("photos", "stream-bridge"), "photos-stream-bridge");
    }

    #[test]
    fn services_are_ready_when_every_replica_of_the_current_template_is_available() {
        let mut deployment = desired(PIPELINE, &outputs(true)).unwrap().upload_deployment;
        deployment.metadata.generation = Some(2);
        deployment.status = Some(k8s_openapi::api::apps::v1::DeploymentStatus {
            observed_generation: Some(2),
            available_replicas: Some(2),
            updated_replicas: Some(3),
            ..Default::default()
        });
        let health = services_health(&[&deployment]);
        assert!(!health.ready);
        assert_eq!(health.message, "photos-upload-api: 2/3 available, 3 updated");
        deployment.status.as_mut().unwrap().available_replicas = Some(3);
        assert!(services_health(&[&deployment]).ready);
        deployment.metadata.generation = Some(3);
        assert!(
            !services_health(&[&deployment]).ready,
            "a new template is not rolled out yet"
        );
    }
}
