//! `kubectl ipl`: the binary installed as `kubectl-ipl` (a link of that name,
//! as `kubectl krew` or a package would install it), run as kubectl runs a
//! plugin, against a mock apiserver on loopback (found through a kubeconfig)
//! and a real AWS emulator (moto server over HTTPS).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::IntoResponse;
use command::text;
use imagepipeline_e2e::AwsEmulator;
use imagepipeline_operator::api::v1alpha1::ImagePipeline;
use imagepipeline_operator::engine::status::{StatusContext, pipeline_status};
use imagepipeline_operator::engine::{ComponentKind, ComponentState, PassReport};
use imagepipeline_operator::manifest;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use support::{MINIMAL, photos_engine};

#[path = "support/command.rs"]
mod command;
mod support;

const PIPELINE_PATH: &str = "/apis/imagepipeline.io/v1alpha1/namespaces/media/imagepipelines/photos";
const UID: &str = "5d2a7c1e-pipeline-uid";
/// A well-formed ARN of no certificate: the listener cannot be made.
const MISSING_CERTIFICATE: &str =
    "arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-4000-8000-000000000000";

/// What the mock apiserver holds and what it was asked.
#[derive(Default)]
struct Cluster {
    pipeline: Value,
    /// `METHOD path?query`, in order.
    calls: Vec<String>,
    /// Bodies of the PATCHes of the pipeline.
    patches: Vec<(String, Value)>,
}

type Shared = Arc<Mutex<Cluster>>;

fn status_error(code: StatusCode, reason: &str) -> (StatusCode, axum::Json<Value>) {
    let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                      "reason": reason, "code": code.as_u16(), "message": format!("{reason} (mock apiserver)")});
    (code, axum::Json(body))
}

fn owner() -> Value {
    json!([{"apiVersion": "imagepipeline.io/v1alpha1", "kind": "ImagePipeline", "name": "photos",
            "uid": UID, "controller": true}])
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"kind": format!("{kind}List"), "apiVersion": "v1", "metadata": {}, "items": items})
}

/// Serves the pipeline and what it owns, as an API server in namespace
/// `media` would (plus a Deployment of someone else under the same label).
async fn answer(
    State(cluster): State<Shared>,
    method: Method,
    uri: Uri,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let path = uri.path().to_owned();
    let mut cluster = cluster.lock().unwrap();
    cluster
        .calls
        .push(format!("{method} {path}?{}", uri.query().unwrap_or_default()));
    let metadata_only = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("PartialObjectMetadataList"));
    let meta_item = |name: &str| {
        json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
               "metadata": {"name": name, "namespace": "media", "ownerReferences": owner()}})
    };
    let namespaced = path.strip_prefix("/api/v1/namespaces/media/").or_else(|| {
        [
            "/apis/apps/v1/",
            "/apis/policy/v1/",
            "/apis/monitoring.coreos.com/v1/",
        ]
        .iter()
        .find_map(|group| path.strip_prefix(group)?.strip_prefix("namespaces/media/"))
    });
    match (method.as_str(), path.as_str(), namespaced) {
        ("GET", PIPELINE_PATH, _) => axum::Json(cluster.pipeline.clone()).into_response(),
        ("PATCH", PIPELINE_PATH, _) => {
            let patch: Value = serde_json::from_slice(&body).expect("a JSON patch");
            let content_type = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let annotations = &patch["metadata"]["annotations"];
            for (key, value) in annotations.as_object().into_iter().flatten() {
                cluster.pipeline["metadata"]["annotations"][key] = value.clone();
            }
            cluster.patches.push((content_type, patch));
            axum::Json(cluster.pipeline.clone()).into_response()
        }
        ("GET", _, Some("deployments")) => {
            let deployment = |name: &str, owners: Value| {
                json!({"apiVersion": "apps/v1", "kind": "Deployment",
                       "metadata": {"name": name, "namespace": "media", "ownerReferences": owners},
                       "spec": {"replicas": 2, "selector": {}, "template": {}},
                       "status": {"availableReplicas": 2, "conditions": [
                           {"type": "Available", "status": "True", "lastTransitionTime": "2026-12-03T10:01:00Z"}]}})
            };
            let items = vec![
                deployment("photos-upload-api", owner()),
                deployment("photos-imposter", json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                                       "name": "x", "uid": "another-uid"}])),
            ];
            axum::Json(list("Deployment", items)).into_response()
        }
        ("GET", _, Some("services")) => axum::Json(list(
            "Service",
            vec![json!({"apiVersion": "v1", "kind": "Service",
                        "metadata": {"name": "photos-upload-api", "namespace": "media", "ownerReferences": owner()},
                        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.12"}})],
        ))
        .into_response(),
        ("GET", _, Some("poddisruptionbudgets")) => axum::Json(list("PodDisruptionBudget", vec![])).into_response(),
        ("GET", _, Some("configmaps" | "serviceaccounts")) if metadata_only => {
            let name = if path.ends_with("configmaps") { "photos-endpoints" } else { "photos-services" };
            axum::Json(json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                              "metadata": {}, "items": [meta_item(name)]}))
            .into_response()
        }
        // A reader who may see the pipeline but not the namespace's Secrets.
        ("GET", _, Some("secrets")) => status_error(StatusCode::FORBIDDEN, "Forbidden").into_response(),
        // No Prometheus Operator in this cluster; no pipeline of another name;
        // the generated keys Secret plan looks for is not there either.
        _ => status_error(StatusCode::NOT_FOUND, "NotFound").into_response(),
    }
}

/// A mock apiserver on loopback and a kubeconfig whose current context
/// points at it, in namespace `media`.
async fn mock_apiserver(pipeline: Value, dir: &Path) -> (Shared, PathBuf) {
    let cluster: Shared = Arc::new(Mutex::new(Cluster {
        pipeline,
        ..Cluster::default()
    }));
    let app = Router::new().fallback(answer).with_state(cluster.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: mock\n\
             clusters: [{{name: mock, cluster: {{server: 'http://{address}'}}}}]\n\
             users: [{{name: tester, user: {{token: not-a-secret}}}}]\n\
             contexts: [{{name: mock, context: {{cluster: mock, user: tester, namespace: media}}}}]\n"
        ),
    )
    .unwrap();
    (cluster, kubeconfig)
}

/// `kubectl-ipl ARGS`, as kubectl runs the plugin it finds on the PATH.
async fn kubectl_ipl(dir: &Path, kubeconfig: &Path, emulator: &AwsEmulator, args: &[&str]) -> Output {
    let plugin = dir.join("kubectl-ipl");
    if !plugin.exists() {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_imagepipeline"), &plugin).unwrap();
    }
    let mut command = Command::new(plugin);
    command
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .envs(emulator.env());
    tokio::task::spawn_blocking(move || command.output().expect("run kubectl-ipl"))
        .await
        .unwrap()
}

fn pipeline_manifest() -> ImagePipeline {
    let yaml = format!("{MINIMAL}  uploadApi: {{ certificateArn: \"{MISSING_CERTIFICATE}\" }}\n");
    let mut pipeline = manifest::parse(Path::new("photos.yaml"), &yaml)
        .expect("a valid manifest")
        .remove(0);
    pipeline.metadata.uid = Some(UID.into());
    pipeline.metadata.generation = Some(1);
    pipeline
}

/// Engine passes as the controller makes them, until one fails for good.
async fn apply_until_terminal(emulator: &AwsEmulator, pipeline: &ImagePipeline) -> PassReport {
    let (engine, ctx) = photos_engine(emulator, pipeline.spec.clone()).await;
    let mut last = None;
    for _ in 0..5 {
        let report = engine.apply(&ctx).await;
        if report.terminal_error().is_some() {
            return report;
        }
        last = Some(report.components);
    }
    panic!("no terminal error after 5 passes: {last:#?}");
}

fn words(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_ipl_shows_the_tree_asks_for_a_resync_and_plans_the_live_pipeline() {
    let mut emulator = AwsEmulator::start().await.expect("moto server starts");
    emulator.play_brokers(None).await.expect("brokers' stand-ins");
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline_manifest();
    let (cluster, kubeconfig) = mock_apiserver(serde_json::to_value(&pipeline).unwrap(), dir.path()).await;

    // plan, with the caller's AWS credentials: everything is to be made.
    let plan = kubectl_ipl(
        dir.path(),
        &kubeconfig,
        &emulator,
        &["plan", "photos", "--detailed-exitcode"],
    )
    .await;
    let stdout = text(&plan.stdout);
    assert_eq!(plan.status.code(), Some(2), "{stdout}{}", text(&plan.stderr));
    assert!(
        stdout.starts_with("ImagePipeline media/photos in eu-west-1"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("Plan: ") && l.contains(" to create")),
        "{stdout}"
    );

    // The controller's passes: every component made but the upload tier,
    // whose HTTPS listener names a certificate AWS does not have.
    let report = apply_until_terminal(&emulator, &pipeline).await;
    let (kind, err) = report.terminal_error().unwrap();
    assert_eq!(kind, ComponentKind::UploadTier, "{err:?}");
    let status = pipeline_status(
        &report,
        &StatusContext::default(),
        None,
        Some(1),
        Timestamp::now(),
    );
    let condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == "UploadTierReady")
        .unwrap();
    assert_eq!(
        condition.aws_error_code.as_deref(),
        Some("CertificateNotFound"),
        "{condition:?}"
    );
    let request_id = condition
        .aws_request_id
        .clone()
        .unwrap_or_else(|| panic!("AWS gives every answer a request id: {condition:?}"));
    let resource = condition.resource.clone().expect("the listener");
    assert!(resource.contains("listener"), "{resource}");
    assert!(
        report
            .components
            .iter()
            .any(|c| c.kind == ComponentKind::Storage && c.state == ComponentState::Ready)
    );
    cluster.lock().unwrap().pipeline["status"] = serde_json::to_value(&status).unwrap();

    // status: the namespace is the context's.
    let shown = kubectl_ipl(dir.path(), &kubeconfig, &emulator, &["status", "photos"]).await;
    let tree = text(&shown.stdout);
    assert!(shown.status.success(), "{tree}{}", text(&shown.stderr));
    let line = |start: &str| {
        tree.lines()
            .map(words)
            .find(|l| l.trim_start_matches(['│', '├', '└', '─', ' ']).starts_with(start))
            .unwrap_or_else(|| panic!("no line starting {start:?} in\n{tree}"))
    };
    assert!(
        line("ImagePipeline/photos (media) Failed").contains(" False "),
        "{tree}"
    );
    assert!(
        line("UploadTier").starts_with("├─ UploadTier False CertificateNotFound "),
        "{tree}"
    );
    assert_eq!(
        line("current AWS error").split(", since").next().unwrap(),
        format!("│ │ current AWS error CertificateNotFound, request id {request_id}, on {resource}")
    );
    let bucket = status.endpoints.as_ref().and_then(|e| e.bucket.clone()).unwrap();
    assert!(
        line(&format!("AWS::S3::Bucket/{bucket}")).ends_with(&format!("─ AWS::S3::Bucket/{bucket} Ready"))
    );
    assert!(line("Deployment/photos-upload-api").contains("2/2 available 2026-12-03T10:01:00Z"));
    assert!(line("Service/photos-upload-api").contains("ClusterIP 10.96.0.12"));
    assert!(line("ConfigMap/photos-endpoints").starts_with("├─"));
    assert!(line("Secret (not listed)").contains("you may not list Secrets here"));
    assert!(
        !tree.contains("photos-imposter"),
        "only what the pipeline owns:\n{tree}"
    );
    assert!(
        !tree.contains("PodMonitor"),
        "no Prometheus Operator here:\n{tree}"
    );

    // resync: the annotation the controller answers, set to now.
    let resync = kubectl_ipl(
        dir.path(),
        &kubeconfig,
        &emulator,
        &["resync", "photos", "-n", "media"],
    )
    .await;
    assert!(resync.status.success(), "{}", text(&resync.stderr));
    let patches = cluster.lock().unwrap().patches.clone();
    assert_eq!(patches.len(), 1, "{patches:?}");
    let (content_type, patch) = &patches[0];
    assert_eq!(content_type, "application/merge-patch+json");
    let requested: Timestamp = patch["metadata"]["annotations"]["imagepipeline.io/reconcile-requested-at"]
        .as_str()
        .expect("the annotation")
        .parse()
        .expect("an RFC 3339 time");
    let age = Timestamp::now().duration_since(requested);
    assert!(age.as_secs() < 60 && age.as_secs() >= 0, "{requested}");
    assert!(
        text(&resync.stdout).contains(&requested.to_string()),
        "{}",
        text(&resync.stdout)
    );

    // A name that is not there: one clear error, exit 1.
    let missing = kubectl_ipl(dir.path(), &kubeconfig, &emulator, &["status", "portraits"]).await;
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        text(&missing.stderr).trim(),
        "error: ImagePipeline media/portraits not found; `kubectl get ipl -n media` lists the pipelines there"
    );
    let calls = cluster.lock().unwrap().calls.clone();
    let writes: BTreeMap<&str, usize> = calls.iter().fold(BTreeMap::new(), |mut counts, call| {
        let method = call.split(' ').next().unwrap();
        *counts.entry(method).or_default() += 1;
        counts
    });
    assert_eq!(
        writes.keys().copied().collect::<Vec<_>>(),
        vec!["GET", "PATCH"],
        "status and plan only read; resync patches once: {calls:#?}"
    );
}
