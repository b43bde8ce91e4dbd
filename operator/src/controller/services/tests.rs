//! The services' objects as the pipeline and its outputs make them.

use ingest_core::contract::env;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PodSpec, Probe};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;

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
        (env::MAX_IMAGE_PIXELS, "100000000"),
        (env::MAX_IMAGE_FRAMES, "1000"),
        (env::STRIP_METADATA, "all"),
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
        let path = |probe: &Option<Probe>| probe.as_ref().unwrap().http_get.as_ref().unwrap().path.clone();
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
        ..ServiceSettings::default()
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

fn with_pod_monitors(labels: &[(&str, &str)]) -> ServiceSettings {
    ServiceSettings {
        pod_monitor_labels: Some(
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ),
        ..ServiceSettings::default()
    }
}

/// Whether `selector` selects an object labelled `labels`, as the API
/// server reads it (matchLabels, and the `In` expressions used here).
fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = selector.match_expressions.iter().flatten().all(|e| {
        assert_eq!(e.operator, "In", "an operator this test does not read");
        labels
            .get(&e.key)
            .is_some_and(|v| e.values.iter().flatten().any(|w| w == v))
    });
    by_labels && by_expressions
}

#[test]
fn the_pod_monitor_scrapes_both_services_pods_on_the_ports_they_serve_metrics_on() {
    let settings = with_pod_monitors(&[("release", "kube-prometheus-stack")]);
    let services = desired_with(PIPELINE, &outputs(true), &settings).unwrap();
    let monitor = services.pod_monitor.expect("a PodMonitor when asked");
    let spec = &monitor.spec;
    let ports: Vec<&str> = spec
        .pod_metrics_endpoints
        .iter()
        .map(|e| e.port.as_str())
        .collect();
    for deployment in [&services.upload_deployment, &services.bridge_deployment.unwrap()] {
        let name = deployment.name_any();
        let pod_labels = deployment
            .spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap();
        assert!(
            selects(&spec.selector, pod_labels),
            "{name}'s pods are not selected"
        );
        let container = &pod(deployment).containers[0];
        let served: Vec<&str> = container
            .ports
            .iter()
            .flatten()
            .filter_map(|p| p.name.as_deref())
            .filter(|p| ports.contains(p))
            .collect();
        assert_eq!(served.len(), 1, "{name}: one endpoint scrapes it: {ports:?}");
        let endpoint = spec
            .pod_metrics_endpoints
            .iter()
            .find(|e| e.port == served[0])
            .unwrap();
        assert_eq!(
            endpoint.relabelings[0].replacement, name,
            "its series' job is the Deployment's name"
        );
        assert_eq!(endpoint.relabelings[0].target_label, "job");
        let liveness = container
            .liveness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap();
        assert_eq!(
            liveness.port,
            IntOrString::String(served[0].to_owned()),
            "{name}: /metrics is served where the probes are"
        );
    }
    assert!(spec.pod_metrics_endpoints.iter().all(|e| e.path == "/metrics"));

    // Another pipeline's pods, in the same namespace, are not scraped.
    let other = desired_with(
        &PIPELINE.replace("name: photos", "name: thumbs"),
        &outputs(true),
        &settings,
    )
    .unwrap();
    let other_labels = other
        .upload_deployment
        .spec
        .template
        .metadata
        .unwrap()
        .labels
        .unwrap();
    assert!(!selects(&spec.selector, &other_labels));

    // Owned and labelled as the other objects, plus the labels Prometheus selects by.
    let owner = &monitor.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("ImagePipeline", "0b6f-uid", Some(true))
    );
    let labels = monitor.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["release"], "kube-prometheus-stack");
    assert_eq!(labels[INSTANCE_LABEL], "photos");
    assert_eq!(labels[MANAGED_BY_LABEL], MANAGED_BY);
    assert_eq!(
        (
            monitor.metadata.name.as_deref(),
            monitor.metadata.namespace.as_deref()
        ),
        (Some("photos-services"), Some("media"))
    );
    let json = serde_json::to_value(&monitor).unwrap();
    assert_eq!(
        (&json["apiVersion"], &json["kind"]),
        (
            &serde_json::json!("monitoring.coreos.com/v1"),
            &serde_json::json!("PodMonitor")
        )
    );
    assert!(json["spec"]["podMetricsEndpoints"].is_array(), "{json:#}");
}

#[test]
fn extra_labels_never_replace_the_labels_the_controller_relies_on() {
    let settings = with_pod_monitors(&[(INSTANCE_LABEL, "someone-else"), ("team", "media")]);
    let services = desired_with(PIPELINE, &outputs(false), &settings).unwrap();
    let labels = services.pod_monitor.unwrap().metadata.labels.unwrap();
    assert_eq!(labels[INSTANCE_LABEL], "photos");
    assert_eq!(labels["team"], "media");
}

#[test]
fn without_pod_monitors_asked_there_is_none() {
    assert_eq!(desired(PIPELINE, &outputs(true)).unwrap().pod_monitor, None);
}

#[test]
fn pod_monitor_labels_are_checked_as_kubernetes_labels() {
    assert_eq!(
        parse_label("release=kube-prometheus-stack"),
        Ok(("release".to_owned(), "kube-prometheus-stack".to_owned()))
    );
    assert_eq!(
        parse_label("example.com/team="),
        Ok(("example.com/team".to_owned(), String::new()))
    );
    for (bad, says) in [
        ("release", "key=value"),
        ("=x", "label name"),
        ("Example.com/team=a", "prefix"),
        ("team=-media", "label value"),
        ("team=a,b", "label value"),
    ] {
        let err = parse_label(bad).expect_err(bad);
        assert!(err.contains(says), "{bad}: {err}");
    }
    assert!(parse_label(&format!("k={}", "v".repeat(64))).is_err());
}
