//! The chart as the pinned helm renders it, for the tests of the chart and of
//! the permissions it grants.

use std::process::{Command, Output};

use imagepipeline_e2e::{Tool, repo_root};
use serde_json::Value;

/// The chart, relative to the repository root (helm runs there).
pub const CHART: &str = "charts/imagepipeline-operator";
/// The namespace every render installs into.
pub const RELEASE_NAMESPACE: &str = "imagepipeline-system";

/// What the chart is rendered with: each way of granting permissions it
/// offers (every namespace, one watched namespace, each with and without
/// PodMonitors), every value set, and the kind suite's values. `(what, helm
/// arguments)`; paths are relative to the repository root.
pub const VALUE_SETS: [(&str, &[&str]); 6] = [
    ("default values", &[]),
    ("one watched namespace", &["--set", "watchNamespace=media"]),
    (
        "PodMonitors, every namespace watched",
        &[
            "--set",
            "metrics.podMonitors.enabled=true",
            "--set",
            "metrics.podMonitors.labels.release=kube-prometheus-stack",
        ],
    ),
    (
        "every value set",
        &["-f", "charts/imagepipeline-operator/ci/all-values.yaml"],
    ),
    (
        "the kind suite's values with moto",
        &["-f", "e2e/kind/values.yaml", "-f", "e2e/kind/moto.values.yaml"],
    ),
    (
        "the kind suite's values with LocalStack",
        &[
            "-f",
            "e2e/kind/values.yaml",
            "-f",
            "e2e/kind/localstack.values.yaml",
        ],
    ),
];

/// helm with `args`, run in the repository root.
pub fn helm(args: &[&str]) -> Output {
    let helm = Tool::Helm.path().unwrap_or_else(|e| panic!("{e}"));
    Command::new(&helm)
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", helm.display()))
}

/// `helm template` of the chart with `args`, as YAML; panics with helm's
/// message when it refuses.
pub fn template(args: &[&str]) -> String {
    let mut all = vec![
        "template",
        "imagepipeline-operator",
        CHART,
        "--namespace",
        RELEASE_NAMESPACE,
    ];
    all.extend_from_slice(args);
    let output = helm(&all);
    assert!(
        output.status.success(),
        "helm {}:\n{}",
        all.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("helm writes UTF-8")
}

/// The objects `helm template` renders with `args`.
pub fn render(args: &[&str]) -> Vec<Value> {
    documents(&template(args), &format!("helm template {args:?}"))
}

/// The documents of a YAML stream, without empty ones; `what` names the
/// stream when it is not YAML.
pub fn documents(yaml: &str, what: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .unwrap_or_else(|e| panic!("{what} is not YAML: {e}\n{yaml}"))
        .into_iter()
        .filter(|document| !document.is_null())
        .collect()
}

/// The one rendered object of `kind`.
pub fn only<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let mut found = objects.iter().filter(|object| object["kind"] == kind);
    match (found.next(), found.next()) {
        (Some(object), None) => object,
        (None, _) => panic!("the chart renders no {kind}"),
        (Some(_), Some(_)) => panic!("the chart renders more than one {kind}"),
    }
}

/// The value of the environment variable `name` of the Deployment's first
/// container, if it is set to a plain value.
pub fn container_env<'a>(deployment: &'a Value, name: &str) -> Option<&'a str> {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()?
        .iter()
        .find(|var| var["name"] == name)?["value"]
        .as_str()
}
