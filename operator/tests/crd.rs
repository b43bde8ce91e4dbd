//! The committed CRD is what the code generates, Kubernetes accepts it, and
//! `kubectl explain` has something to say about every field.

use std::{path::PathBuf, process::Command};

use imagepipeline_e2e::Tool;
use imagepipeline_operator::crd::crd_yaml;
use serde_json::Value;

const COMMITTED_CRD: &str = "crds/imagepipelines.imagepipeline.io.yaml";

/// Oldest and newest Kubernetes the CRD supports: its CEL rules use the IP and
/// CIDR library, and k8s-openapi's oldest API level is 1.33.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.33.0", "1.37.0"];

/// A file of this checkout (not `env!("CARGO_MANIFEST_DIR")`: checkouts
/// share a target folder, so a test binary may come from another checkout).
fn repo_path(relative: &str) -> PathBuf {
    imagepipeline_e2e::repo_root().join(relative)
}

fn committed_crd() -> String {
    std::fs::read_to_string(repo_path(COMMITTED_CRD)).expect("committed CRD")
}

#[test]
fn committed_crd_is_the_generated_one() {
    assert!(
        committed_crd() == crd_yaml(),
        "{COMMITTED_CRD} is out of date: regenerate it with `make crds`"
    );
}

#[test]
fn crd_command_prints_the_committed_crd() {
    let output = Command::new(env!("CARGO_BIN_EXE_imagepipeline"))
        .arg("crd")
        .output()
        .expect("imagepipeline crd");
    assert!(output.status.success());
    assert!(
        output.stdout == committed_crd().as_bytes(),
        "`imagepipeline crd` differs from {COMMITTED_CRD}: regenerate it with `make crds`"
    );
}

#[test]
fn kubernetes_accepts_the_crd_strictly() {
    let validate = Tool::KubernetesValidate.path().unwrap_or_else(|e| panic!("{e}"));
    for version in KUBERNETES_VERSIONS {
        let output = Command::new(&validate)
            .args(["--strict", "--kubernetes-version", version])
            .arg(repo_path(COMMITTED_CRD))
            .output()
            .expect("run kubernetes-validate");
        assert!(
            output.status.success(),
            "Kubernetes {version} rejects the CRD:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn names_columns_and_subresources_are_what_users_type_and_see() {
    let crd: Value = serde_saphyr::from_str(&committed_crd()).expect("CRD YAML");
    let spec = &crd["spec"];
    assert_eq!(crd["metadata"]["name"], "imagepipelines.imagepipeline.io");
    assert_eq!(spec["group"], "imagepipeline.io");
    assert_eq!(spec["scope"], "Namespaced");
    assert_eq!(spec["names"]["kind"], "ImagePipeline");
    assert_eq!(spec["names"]["plural"], "imagepipelines");
    assert_eq!(spec["names"]["shortNames"], serde_json::json!(["ipl"]));

    let [version] = spec["versions"].as_array().expect("versions").as_slice() else {
        panic!("exactly one version");
    };
    assert_eq!(version["name"], "v1alpha1");
    assert_eq!(version["served"], true);
    assert_eq!(version["storage"], true);
    assert_eq!(version["subresources"]["status"], serde_json::json!({}));
    let columns: Vec<(&str, &str)> = version["additionalPrinterColumns"]
        .as_array()
        .expect("printer columns")
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["jsonPath"].as_str().unwrap()))
        .collect();
    assert_eq!(
        columns,
        [
            ("Ready", r#".status.conditions[?(@.type=="Ready")].status"#),
            ("Phase", ".status.phase"),
            ("Cost/Month", ".status.estimatedMonthlyCost.amount"),
            ("Upload URL", ".status.endpoints.uploadUrl"),
            ("Age", ".metadata.creationTimestamp"),
        ]
    );
}

#[test]
fn every_field_has_a_description_for_kubectl_explain() {
    let crd: Value = serde_saphyr::from_str(&committed_crd()).expect("CRD YAML");
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let mut undocumented = Vec::new();
    for root in ["spec", "status"] {
        undocumented_fields(&schema["properties"][root], root, &mut undocumented);
    }
    assert!(
        undocumented.is_empty(),
        "fields without a description: {undocumented:?}"
    );
}

fn undocumented_fields(schema: &Value, path: &str, out: &mut Vec<String>) {
    if schema
        .get("description")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        out.push(path.to_owned());
    }
    for (name, property) in schema
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        undocumented_fields(property, &format!("{path}.{name}"), out);
    }
    if let Some(items) = schema
        .get("items")
        .filter(|items| items.get("properties").is_some())
    {
        for (name, property) in items["properties"].as_object().into_iter().flatten() {
            undocumented_fields(property, &format!("{path}[].{name}"), out);
        }
    }
}
