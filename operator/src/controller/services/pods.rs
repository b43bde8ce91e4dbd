//! The pods of the two services: containers locked down as the restricted
//! Pod Security Standard asks, configured from the endpoints ConfigMap plus
//! what each service needs of its own, and the Deployments that run them.

use std::collections::BTreeMap;

use ingest_core::contract::env;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapEnvSource, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvFromSource, EnvVar, HTTPGetAction, KeyToPath, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, SecretEnvSource, SecretVolumeSource, SecurityContext, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    CONFIG_HASH_ANNOTATION, DEFAULT_STREAM_BRIDGE_IMAGE, STREAM_BRIDGE, ServiceSettings, UPLOAD_API,
    selector_labels,
};
use crate::components::upload_instance_setup::{UploadInstanceConfig, api_keys_secret};
use crate::engine::PipelineContext;

const UPLOAD_PORT: i32 = 8080;
const BRIDGE_PORT: i32 = 9090;
/// The named container port upload-api serves its API, probes and
/// `/metrics` on.
pub(super) const UPLOAD_API_PORT_NAME: &str = "http";
/// The named container port stream-bridge serves its probes and `/metrics` on.
pub(super) const STREAM_BRIDGE_PORT_NAME: &str = "metrics";
/// User and group of the distroless `nonroot` images.
const NONROOT: i64 = 65532;
const API_KEYS_DIR: &str = "/run/secrets/imagepipeline";
const API_KEYS_FILE_NAME: &str = "api-keys";
const SPOOL_DIR: &str = "/var/spool/upload-api";
/// Where the CA bundle of [`ServiceSettings::ca_config_map`] is mounted.
const AWS_CA_DIR: &str = "/etc/imagepipeline/aws-ca";
/// The key of that ConfigMap, as in Kubernetes' own `kube-root-ca.crt`.
const AWS_CA_KEY: &str = "ca.crt";

/// upload-api's container and volumes: the image of `image`, its API keys
/// from the keys Secret, a spool directory for large uploads.
pub(super) fn upload_api(
    ctx: &PipelineContext,
    upload_config: &UploadInstanceConfig,
    config_map: &str,
    settings: &ServiceSettings,
) -> (Container, Vec<Volume>) {
    let spec = &ctx.spec.services;
    let api_keys = api_keys_secret(ctx);
    let mut container = Container {
        name: UPLOAD_API.to_owned(),
        image: Some(upload_config.image().to_owned()),
        args: None,
        env: Some(env_vars(
            &[
                (env::upload_api::LISTEN, format!("0.0.0.0:{UPLOAD_PORT}")),
                (
                    env::upload_api::API_KEYS_FILE,
                    format!("{API_KEYS_DIR}/{API_KEYS_FILE_NAME}"),
                ),
                (env::upload_api::SPOOL_DIR, SPOOL_DIR.to_owned()),
                (env::upload_api::LOG_JSON, "true".to_owned()),
            ]
            .into_iter()
            .chain(upload_config.key_limit_environment())
            .collect::<Vec<_>>(),
        )),
        ports: Some(vec![port(UPLOAD_API_PORT_NAME, UPLOAD_PORT)]),
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
        ..service_container(config_map, UPLOAD_API_PORT_NAME)
    };
    let mut volumes = vec![
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
        // Uploads above 256 KiB that find the service's spool memory (64 MiB)
        // taken are spooled while they arrive: disk, not memory.
        empty_dir("spool", None),
        empty_dir("tmp", Some("64Mi")),
    ];
    add_aws_access(&mut container, &mut volumes, settings);
    (container, volumes)
}

/// stream-bridge's container and volumes, consuming as `group`.
pub(super) fn stream_bridge(
    ctx: &PipelineContext,
    group: String,
    config_map: &str,
    settings: &ServiceSettings,
) -> (Container, Vec<Volume>) {
    let spec = &ctx.spec.services;
    let mut container = Container {
        name: STREAM_BRIDGE.to_owned(),
        image: Some(
            spec.stream_bridge
                .image
                .clone()
                .unwrap_or_else(|| DEFAULT_STREAM_BRIDGE_IMAGE.to_owned()),
        ),
        env: Some(env_vars(&[
            (env::stream_bridge::LISTEN, format!("0.0.0.0:{BRIDGE_PORT}")),
            (env::stream_bridge::KAFKA_GROUP_ID, group),
            (env::stream_bridge::LOG_JSON, "true".to_owned()),
        ])),
        ports: Some(vec![port(STREAM_BRIDGE_PORT_NAME, BRIDGE_PORT)]),
        volume_mounts: Some(vec![mount("tmp", "/tmp", false)]),
        // Worst case: 256 MiB of records in flight, librdkafka's 64 MiB
        // prefetch and the process itself.
        resources: Some(
            spec.stream_bridge
                .resources
                .clone()
                .unwrap_or_else(|| resources("100m", "256Mi", "1", "512Mi")),
        ),
        ..service_container(config_map, STREAM_BRIDGE_PORT_NAME)
    };
    let mut volumes = vec![empty_dir("tmp", Some("64Mi"))];
    add_aws_access(&mut container, &mut volumes, settings);
    (container, volumes)
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
        container.env.get_or_insert_default().extend(env_vars(&[(
            "SSL_CERT_FILE",
            format!("{AWS_CA_DIR}/{AWS_CA_KEY}"),
        )]));
    }
}

/// A Deployment of `container` that rolls one new pod at a time and never
/// goes below the wanted replicas, restarting its pods when `config_hash`
/// changes.
#[allow(clippy::too_many_arguments)]
pub(super) fn deployment(
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

fn env_vars(pairs: &[(&str, String)]) -> Vec<EnvVar> {
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
