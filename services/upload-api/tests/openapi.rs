//! The published contract: the OpenAPI document generated from the code is
//! the one committed, the one served, and what the running service does, as
//! a property-based fuzzer (schemathesis) finds against emulated AWS.

use std::collections::BTreeSet;
use std::sync::Arc;

use ingest_core::store::Store;
use ingest_core::{ImageRules, ImageType};
use ingest_testing::{PipelineStorage, Tool, http_client};
use upload_api::auth::{ApiKeys, Auth};
use upload_api::openapi::{COMMITTED, document};
use upload_api::{AppState, app};

const KEY: &str = "fuzz-key-0123456789abcdef";

fn committed_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(COMMITTED)
}

#[test]
fn the_committed_document_is_the_generated_one() {
    let generated = document();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(committed_path(), &generated).unwrap();
    }
    let committed = std::fs::read_to_string(committed_path()).unwrap_or_default();
    assert!(
        committed == generated,
        "services/upload-api/{COMMITTED} is stale: run `make openapi` and commit it"
    );
    let parsed: serde_json::Value = serde_json::from_str(&generated).unwrap();
    assert_eq!(parsed["openapi"], "3.1.0");
    let paths: BTreeSet<&str> = parsed["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        paths,
        BTreeSet::from([
            "/healthz",
            "/metrics",
            "/openapi.json",
            "/readyz",
            "/v1/images",
            "/v1/images/{id}",
            "/v1/images/{id}/content",
            "/v1/resumable",
            "/v1/resumable/{id}",
            "/v1/uploads",
            "/v1/uploads/{id}/complete",
        ])
    );
}

/// upload-api on the emulator's storage, in this process, at the returned
/// address.
async fn serve(storage: &PipelineStorage, keys_dir: &std::path::Path, max_image_bytes: u64) -> String {
    let keys_file = keys_dir.join("keys");
    std::fs::write(&keys_file, format!("fuzzer:{KEY}\n")).unwrap();
    let state = Arc::new(AppState::new(
        Store::new(&storage.config, storage.targets.clone()),
        Auth::Keys(ApiKeys::load(&keys_file).unwrap()),
        max_image_bytes,
        ImageType::ALL.into_iter().collect(),
        ImageRules::default(),
        keys_dir.to_owned(),
        16,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app(state)).await });
    url
}

#[tokio::test]
async fn the_service_serves_the_document() {
    let storage = PipelineStorage::start(7).await;
    let dir = tempfile::tempdir().unwrap();
    let url = serve(&storage, dir.path(), 1 << 20).await;
    let served = http_client()
        .get(format!("{url}/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "application/json");
    assert_eq!(served.text().await.unwrap(), document());
}

/// schemathesis generates requests from the document (valid and invalid
/// ones, for every operation) and checks each answer: never a 5xx, and the
/// status, content type, headers and body as the document says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fuzzer_finds_no_server_error_and_no_answer_the_document_does_not_describe() {
    let schemathesis = Tool::Schemathesis.path().unwrap_or_else(|e| panic!("{e}"));
    let storage = PipelineStorage::start(7).await;
    let dir = tempfile::tempdir().unwrap();
    let url = serve(&storage, dir.path(), 256 * 1024).await;
    let output = tokio::process::Command::new(schemathesis)
        .arg("run")
        .arg(committed_path())
        .args(["--url", &url])
        .args(["--header", &format!("Authorization: Bearer {KEY}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance",
        ])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", "40", "--seed", "20261203", "--workers", "2"])
        .args(["--suppress-health-check", "too_slow"])
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .env(
            "SCHEMATHESIS_HOOKS",
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis_hooks.py"),
        )
        .env("NO_COLOR", "1")
        .current_dir(dir.path())
        .output()
        .await
        .unwrap();
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "schemathesis found problems:\n{report}");
    assert!(report.contains("passed"), "{report}");
}
