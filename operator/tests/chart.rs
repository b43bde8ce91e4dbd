//! The Helm chart, the kind suite and the CI workflows, checked offline: what
//! `helm install` would apply lints and renders, Kubernetes' own schemas
//! accept it from the oldest to the newest version the chart claims, the
//! operator's pod is locked down, every value does something, and the
//! scripts and workflows are sound. The permissions the chart grants are
//! checked against the operator's calls in `controller.rs`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use imagepipeline_e2e::{Tool, repo_root};
use imagepipeline_operator::admission::Admission;
use imagepipeline_operator::crd::crd_yaml;
use serde_json::{Value, json};

mod helm;
mod workflow_lint;

use helm::{CHART, VALUE_SETS};

const CHART_CRD: &str = "charts/imagepipeline-operator/crds/imagepipelines.imagepipeline.io.yaml";
const ALL_VALUES: &str = "charts/imagepipeline-operator/ci/all-values.yaml";

fn read(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml_documents(relative: &str) -> Vec<Value> {
    helm::documents(&read(relative), relative)
}

fn yaml(relative: &str) -> Value {
    serde_saphyr::from_str(&read(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// The files of a folder of the repository whose names end in `suffix`, as
/// paths relative to the repository root, sorted.
fn files_in(folder: &str, suffix: &str) -> Vec<String> {
    let dir = repo_root().join(folder);
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            entry
                .expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(suffix))
        .map(|name| format!("{folder}/{name}"))
        .collect();
    files.sort();
    files
}

fn output_text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The oldest Kubernetes the chart claims: its `kubeVersion`, `>=X.Y.Z-0`.
fn oldest_supported_kubernetes() -> String {
    let claim = yaml("charts/imagepipeline-operator/Chart.yaml")["kubeVersion"]
        .as_str()
        .expect("Chart.yaml sets kubeVersion")
        .to_owned();
    claim
        .strip_prefix(">=")
        .and_then(|version| version.strip_suffix("-0"))
        .unwrap_or_else(|| panic!("kubeVersion {claim:?} is not a lower bound `>=X.Y.Z-0`"))
        .to_owned()
}

/// The oldest Kubernetes the chart claims and the newest kubernetes-validate
/// has schemas for (its default).
fn kubernetes_versions(validate: &Path) -> [String; 2] {
    let help = Command::new(validate)
        .arg("--help")
        .output()
        .expect("kubernetes-validate --help");
    let help = String::from_utf8_lossy(&help.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let newest = help
        .split("Defaults to ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("kubernetes-validate --help names no default version: {help}"))
        .to_owned();
    [oldest_supported_kubernetes(), newest]
}

/// Validates `objects` with `kubernetes-validate --strict` against each of
/// `versions`; fails naming `what` and the errors.
fn validate_strictly(what: &str, objects: &[Value], validate: &Path, versions: &[String]) {
    let file = tempfile::Builder::new()
        .suffix(".yaml")
        .tempfile()
        .expect("temporary file");
    let text: Vec<String> = objects
        .iter()
        .map(|object| serde_json::to_string(object).expect("JSON is YAML"))
        .collect();
    std::fs::write(file.path(), text.join("\n---\n")).expect("write manifests");
    for version in versions {
        let output = Command::new(validate)
            .args(["--strict", "--quiet", "--kubernetes-version", version])
            .arg(file.path())
            .output()
            .expect("run kubernetes-validate");
        assert!(
            output.status.success() && output_text(&output).trim().is_empty(),
            "Kubernetes {version} rejects {what}:\n{}",
            output_text(&output)
        );
    }
}

#[test]
fn the_chart_lints_strictly_with_every_value_set() {
    for (what, args) in VALUE_SETS {
        let mut all = vec!["lint", "--strict", CHART];
        all.extend_from_slice(args);
        let output = helm::helm(&all);
        assert!(
            output.status.success(),
            "helm lint --strict with {what}:\n{}",
            output_text(&output)
        );
    }
}

#[test]
fn kubernetes_accepts_what_the_chart_renders_from_its_oldest_to_its_newest_version() {
    let validate = Tool::KubernetesValidate.path().unwrap_or_else(|e| panic!("{e}"));
    let versions = kubernetes_versions(&validate);
    for (what, args) in VALUE_SETS {
        let mut all = vec!["--include-crds"];
        all.extend_from_slice(args);
        let objects = helm::render(&all);
        assert!(
            objects.iter().any(|o| o["kind"] == "CustomResourceDefinition"),
            "the chart installs no CRD"
        );
        // Kubernetes has no schema for the Prometheus Operator's kinds:
        // the_service_monitor_scrapes_the_metrics_service and
        // tests/monitoring.rs check them.
        let core: Vec<Value> = objects
            .into_iter()
            .filter(|o| o["kind"] != "ServiceMonitor" && o["kind"] != "PrometheusRule")
            .collect();
        validate_strictly(&format!("the chart with {what}"), &core, &validate, &versions);
    }
}

#[test]
fn the_chart_refuses_clusters_older_than_the_crd_needs() {
    let oldest = oldest_supported_kubernetes();
    assert_eq!(
        oldest, "1.33.0",
        "the CRD's rules use the CEL IP and CIDR library, new in Kubernetes 1.33"
    );
    helm::template(&["--kube-version", oldest.as_str()]);
    let output = helm::helm(&["template", CHART, "--kube-version", "1.32.9"]);
    assert!(
        !output.status.success() && output_text(&output).contains("kubeVersion"),
        "helm installs the chart on Kubernetes 1.32:\n{}",
        output_text(&output)
    );
}

#[test]
fn the_operator_pod_is_restricted_probed_and_elects_a_leader() {
    for (what, args) in VALUE_SETS {
        let objects = helm::render(args);
        let deployment = helm::only(&objects, "Deployment");
        let pod = &deployment["spec"]["template"]["spec"];
        let [container] = pod["containers"].as_array().expect("containers").as_slice() else {
            panic!("{what}: one container");
        };
        // The restricted Pod Security Standard, as the namespace label
        // pod-security.kubernetes.io/enforce=restricted checks it.
        for (object, pointer, expected) in [
            (pod, "/securityContext/runAsNonRoot", json!(true)),
            (pod, "/securityContext/runAsUser", json!(65532)),
            (
                pod,
                "/securityContext/seccompProfile/type",
                json!("RuntimeDefault"),
            ),
            (
                container,
                "/securityContext/allowPrivilegeEscalation",
                json!(false),
            ),
            (container, "/securityContext/readOnlyRootFilesystem", json!(true)),
            (container, "/securityContext/runAsNonRoot", json!(true)),
            (container, "/securityContext/capabilities/drop", json!(["ALL"])),
        ] {
            assert_eq!(object.pointer(pointer), Some(&expected), "{what}: {pointer}");
        }
        for (object, pointer) in [
            (pod, "/hostNetwork"),
            (pod, "/hostPID"),
            (container, "/securityContext/privileged"),
            (container, "/securityContext/capabilities/add"),
        ] {
            assert_eq!(object.pointer(pointer), None, "{what}: {pointer} is set");
        }
        assert!(
            pod["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .all(|v| v["hostPath"].is_null()),
            "{what}: a hostPath volume"
        );

        assert_eq!(container["args"], json!(["run"]), "{what}");
        assert_eq!(container["ports"][0]["name"], "metrics", "{what}");
        assert_eq!(container["ports"][0]["containerPort"], 8080, "{what}");
        assert_eq!(
            helm::container_env(deployment, "IMAGEPIPELINE_LISTEN"),
            Some("0.0.0.0:8080"),
            "{what}: the probes' port is the one the operator listens on"
        );
        for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            assert_eq!(container[probe]["httpGet"]["path"], path, "{what}: {probe}");
            assert_eq!(container[probe]["httpGet"]["port"], "metrics", "{what}: {probe}");
        }
        assert!(
            container["resources"]["requests"]["memory"].is_string()
                && container["resources"]["limits"]["memory"].is_string(),
            "{what}: memory requested and limited"
        );
        // Leader election: who the replica is, and the Lease in its own namespace.
        for (name, field) in [
            ("POD_NAME", "metadata.name"),
            ("POD_NAMESPACE", "metadata.namespace"),
        ] {
            let var = container["env"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|var| var["name"] == name)
                .unwrap_or_else(|| panic!("{what}: no {name}"));
            assert_eq!(var["valueFrom"]["fieldRef"]["fieldPath"], field, "{what}: {name}");
        }
        assert!(
            helm::container_env(deployment, "IMAGEPIPELINE_LEASE_NAME").is_some(),
            "{what}"
        );
        assert!(
            pod["terminationGracePeriodSeconds"].as_u64() >= Some(60),
            "{what}: a shutdown has time to finish the reconciles under way and release the Lease"
        );
    }

    let objects = helm::render(&[]);
    let deployment = helm::only(&objects, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2, "a standby by default");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/imagepipeline/operator:0.1.0",
        "the image of the chart's appVersion"
    );
    let budget = helm::only(&objects, "PodDisruptionBudget");
    assert_eq!(budget["spec"]["maxUnavailable"], 1);
    assert_eq!(
        budget["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
}

/// The operator parses every setting the chart hands it: started with the
/// Deployment's environment and no cluster, it gets as far as connecting.
#[test]
fn the_operator_accepts_every_setting_the_chart_gives_it() {
    for (what, args) in VALUE_SETS {
        let objects = helm::render(args);
        let deployment = helm::only(&objects, "Deployment");
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        let mut command = Command::new(env!("CARGO_BIN_EXE_imagepipeline"));
        command
            .args(
                container["args"]
                    .as_array()
                    .expect("args")
                    .iter()
                    .filter_map(Value::as_str),
            )
            .env_clear()
            .env("KUBECONFIG", "/nonexistent/kubeconfig");
        for var in container["env"].as_array().expect("env") {
            let name = var["name"].as_str().expect("a name");
            // From the downward API in a cluster.
            command.env(name, var["value"].as_str().unwrap_or("from-the-downward-api"));
        }
        let output = command.output().expect("run imagepipeline");
        // A refused flag is clap's message on stderr; getting as far as the
        // cluster is a line of the controller's log, on stdout.
        let said = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
        assert!(
            said.contains("cannot reach the Kubernetes API"),
            "with {what}, `imagepipeline run` refuses the chart's settings:\n{said}"
        );
    }
}

#[test]
fn every_object_carries_the_standard_labels() {
    for (what, args) in VALUE_SETS {
        for object in helm::render(args) {
            let labels = &object["metadata"]["labels"];
            let name = format!("{what}: {} {}", object["kind"], object["metadata"]["name"]);
            for label in [
                "helm.sh/chart",
                "app.kubernetes.io/name",
                "app.kubernetes.io/instance",
                "app.kubernetes.io/version",
                "app.kubernetes.io/managed-by",
            ] {
                assert!(labels[label].is_string(), "{name} lacks the label {label}");
            }
            assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm", "{name}");
        }
    }
}

#[test]
fn aws_settings_reach_the_operator_and_its_services() {
    let objects = helm::render(&["-f", ALL_VALUES]);
    let deployment = helm::only(&objects, "Deployment");
    let env = |name| helm::container_env(deployment, name);
    assert_eq!(env("AWS_REGION"), Some("eu-central-1"));
    assert_eq!(
        env("AWS_ENDPOINT_URL"),
        Some("https://moto.aws-emulator.svc:4443")
    );
    assert_eq!(
        env("SSL_CERT_FILE"),
        Some("/etc/imagepipeline/aws-ca/emulator-ca.pem")
    );
    assert_eq!(
        env("IMAGEPIPELINE_SERVICES_ENV_SECRET"),
        Some("services-aws-credentials")
    );
    assert_eq!(
        env("IMAGEPIPELINE_SERVICES_CA_CONFIG_MAP"),
        Some("services-aws-ca")
    );
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["envFrom"],
        json!([{"secretRef": {"name": "operator-aws-credentials"}}]),
        "the credentials come from the Secret, never from a value"
    );
    let account = helm::only(&objects, "ServiceAccount");
    assert_eq!(
        account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/imagepipeline-operator"
    );

    // Nothing of it by default: the SDK's own chain and AWS itself.
    let objects = helm::render(&[]);
    let deployment = helm::only(&objects, "Deployment");
    for name in [
        "AWS_REGION",
        "AWS_ENDPOINT_URL",
        "SSL_CERT_FILE",
        "WATCH_NAMESPACE",
    ] {
        assert_eq!(
            helm::container_env(deployment, name),
            None,
            "{name} is set by default"
        );
    }
    assert!(deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"].is_null());
}

#[test]
fn the_service_monitor_scrapes_the_metrics_service() {
    let objects = helm::render(&["-f", ALL_VALUES]);
    let monitor = helm::only(&objects, "ServiceMonitor");
    let service = helm::only(&objects, "Service");
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("a selector");
    assert!(
        selector
            .iter()
            .all(|(k, v)| service["metadata"]["labels"][k] == *v),
        "the ServiceMonitor's selector {selector:?} does not select the metrics Service"
    );
    assert_eq!(
        monitor["spec"]["endpoints"][0]["port"],
        service["spec"]["ports"][0]["name"]
    );
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    assert_eq!(
        monitor["spec"]["namespaceSelector"]["matchNames"][0],
        helm::RELEASE_NAMESPACE
    );
    assert_eq!(monitor["metadata"]["labels"]["release"], "kube-prometheus-stack");
    let deployment = helm::only(&objects, "Deployment");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let service_selector = service["spec"]["selector"].as_object().expect("a selector");
    assert!(
        service_selector.iter().all(|(k, v)| pod_labels[k] == *v),
        "the metrics Service does not select the operator's pods"
    );
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "metrics");

    assert!(
        helm::render(&[]).iter().all(|o| o["kind"] != "ServiceMonitor"),
        "a ServiceMonitor by default needs the Prometheus Operator in every cluster"
    );
}

#[test]
fn pod_monitors_are_granted_and_asked_for_only_when_enabled() {
    let podmonitor_rules = |objects: &[Value]| -> Vec<Value> {
        objects
            .iter()
            .filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "Role")
            .flat_map(|role| role["rules"].as_array().cloned().unwrap_or_default())
            .filter(|rule| rule.to_string().contains("podmonitors"))
            .collect()
    };
    let objects = helm::render(&[
        "--set",
        "metrics.podMonitors.enabled=true",
        "--set",
        "metrics.podMonitors.labels.release=kube-prometheus-stack",
        "--set",
        "metrics.podMonitors.labels.example\\.com/team=media",
    ]);
    assert_eq!(
        podmonitor_rules(&objects),
        [json!({"apiGroups": ["monitoring.coreos.com"], "resources": ["podmonitors"], "verbs": ["patch"]})],
        "server-side apply is all the operator does with PodMonitors"
    );
    assert_eq!(
        helm::only(&objects, "ClusterRole")["rules"]
            .as_array()
            .map(|rules| rules.iter().any(|r| r["resources"] == json!(["podmonitors"]))),
        Some(true),
        "granted in every namespace watched"
    );
    let deployment = helm::only(&objects, "Deployment");
    assert_eq!(
        helm::container_env(deployment, "IMAGEPIPELINE_POD_MONITORS"),
        Some("true")
    );
    assert_eq!(
        helm::container_env(deployment, "IMAGEPIPELINE_POD_MONITOR_LABELS"),
        Some("example.com/team=media,release=kube-prometheus-stack")
    );

    for args in [
        &[][..],
        &[
            "--set",
            "metrics.podMonitors.labels.release=kube-prometheus-stack",
        ][..],
    ] {
        let objects = helm::render(args);
        assert_eq!(podmonitor_rules(&objects), Vec::<Value>::new(), "{args:?}");
        let deployment = helm::only(&objects, "Deployment");
        for name in ["IMAGEPIPELINE_POD_MONITORS", "IMAGEPIPELINE_POD_MONITOR_LABELS"] {
            assert_eq!(helm::container_env(deployment, name), None, "{args:?}: {name}");
        }
    }
}

/// Every leaf of `value` as `(path, value)`; an empty map or list is a leaf.
fn leaves(value: &Value, path: &str, out: &mut Vec<(String, Value)>) {
    let child = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        Value::Object(map) if !map.is_empty() => map.iter().for_each(|(k, v)| leaves(v, &child(k), out)),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| leaves(v, &child(&i.to_string()), out)),
        other => out.push((path.to_owned(), other.clone())),
    }
}

#[test]
fn ci_all_values_sets_every_value_and_each_one_reaches_a_manifest() {
    let defaults = yaml("charts/imagepipeline-operator/values.yaml");
    let all = yaml(ALL_VALUES);
    let mut default_leaves = Vec::new();
    leaves(&defaults, "", &mut default_leaves);
    let mut set_leaves = Vec::new();
    leaves(&all, "", &mut set_leaves);

    let mut problems = Vec::new();
    for (path, default) in &default_leaves {
        let set: Vec<&Value> = set_leaves
            .iter()
            .filter(|(p, _)| p == path || p.starts_with(&format!("{path}.")))
            .map(|(_, v)| v)
            .collect();
        match set.as_slice() {
            [] => problems.push(format!("{path} is not set")),
            [only] if *only == default && !default.is_boolean() => {
                problems.push(format!("{path} is set to its default {default}"))
            }
            _ => {}
        }
    }
    // Numbers and booleans are too common to find by their text.
    let rendered = helm::template(&["-f", ALL_VALUES]);
    for (path, value) in &set_leaves {
        if let Some(text) = value.as_str()
            && !rendered.contains(text)
        {
            problems.push(format!("{path}: {text:?} appears in no rendered manifest"));
        }
    }
    assert!(problems.is_empty(), "{ALL_VALUES}:\n  {}", problems.join("\n  "));
}

#[test]
fn values_files_satisfy_the_schema_and_misspelt_values_are_refused() {
    let schema: Value = serde_json::from_str(&read("charts/imagepipeline-operator/values.schema.json"))
        .expect("values.schema.json is JSON");
    let validator = jsonschema::validator_for(&schema).expect("values.schema.json is a JSON schema");
    for file in ["charts/imagepipeline-operator/values.yaml", ALL_VALUES] {
        let errors: Vec<String> = validator
            .iter_errors(&yaml(file))
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{file} breaks values.schema.json: {errors:#?}");
    }
    for (set, expected) in [
        ("controler.concurrency=2", "controler"),
        ("controller.concurency=2", "concurency"),
        ("controller.concurrency=0", "concurrency"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("aws.endpointUrl=moto:5000", "endpointUrl"),
        ("controller.requeueInterval=five minutes", "requeueInterval"),
    ] {
        let output = helm::helm(&["template", CHART, "--set", set]);
        let message = output_text(&output);
        assert!(
            !output.status.success() && message.contains(expected),
            "helm accepts --set {set}, or its message does not name {expected}:\n{message}"
        );
    }
}

#[test]
fn the_chart_ships_the_generated_crd_and_it_admits_every_example() {
    let chart_crd = read(CHART_CRD);
    assert!(
        chart_crd == crd_yaml() && chart_crd == read("crds/imagepipelines.imagepipeline.io.yaml"),
        "{CHART_CRD} is not the generated CRD: copy crds/imagepipelines.imagepipeline.io.yaml after `make crds`"
    );
    // The CRD admission is built from is therefore the chart's.
    let admission = Admission::new();
    let mut files = files_in("examples", ".yaml");
    files.push("e2e/kind/manifests/pipeline.yaml".to_owned());
    for file in files {
        let documents = yaml_documents(&file);
        assert!(!documents.is_empty(), "{file} is empty");
        for document in documents {
            if let Err(e) = admission.admit(&document, None) {
                panic!("the chart's CRD rejects {file}: {e}");
            }
        }
    }
}

#[test]
fn kubernetes_accepts_the_kind_suite_s_manifests() {
    let validate = Tool::KubernetesValidate.path().unwrap_or_else(|e| panic!("{e}"));
    let versions = kubernetes_versions(&validate);
    for file in files_in("e2e/kind/manifests", ".yaml") {
        // The ImagePipeline is admitted by the CRD in the test above.
        let objects: Vec<Value> = yaml_documents(&file)
            .into_iter()
            .filter(|o| o["kind"] != "ImagePipeline")
            .collect();
        validate_strictly(&file, &objects, &validate, &versions);
    }
}

#[test]
fn the_images_run_as_the_nonroot_user_from_distroless_and_the_kind_suite_builds_each() {
    let run_sh = read("e2e/kind/run.sh");
    for dockerfile in [
        "operator/Dockerfile",
        "services/upload-api/Dockerfile",
        "services/stream-bridge/Dockerfile",
    ] {
        let text = read(dockerfile);
        let runtime = text.rsplit("\nFROM ").next().unwrap_or_default();
        assert!(
            runtime.starts_with("gcr.io/distroless/cc-debian12:nonroot"),
            "{dockerfile}: the runtime stage is not distroless nonroot"
        );
        assert!(
            runtime.contains("\nUSER 65532:65532\n"),
            "{dockerfile}: not run as 65532, the user the pods' security contexts name"
        );
        assert!(
            run_sh.contains(dockerfile),
            "e2e/kind/run.sh does not build {dockerfile}"
        );
    }
    let ignored = read(".dockerignore");
    for excluded in [".git", "target"] {
        assert!(
            ignored.lines().any(|line| line.trim_matches('/') == excluded),
            ".dockerignore lets {excluded} into the build context"
        );
    }
}

#[test]
fn the_upload_api_image_caps_the_malloc_arenas_its_memory_was_measured_with() {
    let (_, runtime) = runtime_stage("services/upload-api/Dockerfile");
    assert!(
        runtime.lines().any(|line| line == "ENV MALLOC_ARENA_MAX=2"),
        "without it 64 uploads of 20 MiB took up to 468 MiB of the pod's 512 MiB"
    );
}

#[test]
fn shell_scripts_pass_shellcheck() {
    let mut scripts = files_in("e2e/kind", ".sh");
    scripts.extend(files_in("scripts", ".sh"));
    scripts.push(".ci/run".to_owned());
    assert!(scripts.iter().any(|s| s == "e2e/kind/run.sh"), "{scripts:?}");
    let output = Command::new("shellcheck")
        .arg("--external-sources")
        .args(&scripts)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run shellcheck ({e}): install it with scripts/prerequisites.sh install")
        });
    assert!(output.status.success(), "shellcheck:\n{}", output_text(&output));
}

/// The `run` lines of every step of every job of a workflow.
fn workflow_runs(workflow: &Value) -> Vec<String> {
    workflow["jobs"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(_, job)| job["steps"].as_array().into_iter().flatten())
        .filter_map(|step| step["run"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn the_workflows_run_make_test_and_the_kind_suite() {
    let ci = yaml(".github/workflows/ci.yml");
    assert!(
        ci["on"].get("pull_request").is_some(),
        "ci.yml does not run on pull requests"
    );
    assert!(
        workflow_runs(&ci).iter().any(|run| run.contains(".ci/run")),
        "ci.yml does not run .ci/run (make test on a fresh machine)"
    );

    let kind = yaml(".github/workflows/e2e-kind.yml");
    let runs = workflow_runs(&kind);
    assert!(
        runs.iter().any(|run| run.contains("e2e/kind/run.sh")),
        "e2e-kind.yml does not run e2e/kind/run.sh"
    );
    assert!(
        runs.iter()
            .any(|run| run.contains("kind-linux-amd64") && run.contains("sha256sum")),
        "e2e-kind.yml does not install a checksum-verified kind"
    );
    let uploads_diagnostics = kind["jobs"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(_, job)| job["steps"].as_array().into_iter().flatten())
        .any(|step| {
            step["uses"]
                .as_str()
                .is_some_and(|uses| uses.starts_with("actions/upload-artifact"))
                && step["if"]
                    .as_str()
                    .is_some_and(|condition| condition.contains("failure()"))
        });
    assert!(
        uploads_diagnostics,
        "e2e-kind.yml does not keep the diagnostics of a failed run"
    );
    let matrix: BTreeSet<&str> = kind["jobs"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(_, job)| {
            job["strategy"]["matrix"]["emulator"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .filter_map(Value::as_str)
        .collect();
    assert!(
        matrix.contains("moto"),
        "e2e-kind.yml does not run the suite against moto"
    );
}

/// The `with:` of the step of `job` that uses `action`.
fn step_with<'a>(workflow: &'a Value, job: &str, action: &str) -> &'a Value {
    workflow["jobs"][job]["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|step| step["uses"].as_str().is_some_and(|u| u.starts_with(action)))
        .map(|step| &step["with"])
        .unwrap_or_else(|| panic!("release.yml: job {job} does not use {action}"))
}

/// The `EXPOSE`d port and the `LABEL` keys of a Dockerfile's last stage.
fn runtime_stage(dockerfile: &str) -> (Vec<u16>, String) {
    let text = read(dockerfile);
    let runtime = text.rsplit("\nFROM ").next().unwrap_or_default().to_owned();
    let ports = runtime
        .lines()
        .filter_map(|l| l.strip_prefix("EXPOSE "))
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    (ports, runtime)
}

#[test]
fn a_release_tag_publishes_signed_multi_arch_images_of_what_the_chart_and_operator_run() {
    use imagepipeline_operator::components::upload_instance_setup::{DEFAULT_UPLOAD_API_IMAGE, UPLOAD_PORT};
    use imagepipeline_operator::controller::services::DEFAULT_STREAM_BRIDGE_IMAGE;

    let chart = yaml("charts/imagepipeline-operator/Chart.yaml");
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        chart["appVersion"], version,
        "the chart runs the operator of this version"
    );
    assert_eq!(
        chart["version"], version,
        "the chart is released with the binaries"
    );
    let values = yaml("charts/imagepipeline-operator/values.yaml");
    let operator_image = values["image"]["repository"].as_str().expect("image.repository");
    // What runs where, and the port each listens on: the chart's operator
    // Deployment, the pods and instances the operator makes.
    let components = [
        (
            "operator",
            "operator/Dockerfile",
            format!("{operator_image}:{version}"),
            8080,
        ),
        (
            "upload-api",
            "services/upload-api/Dockerfile",
            DEFAULT_UPLOAD_API_IMAGE.to_owned(),
            UPLOAD_PORT,
        ),
        (
            "stream-bridge",
            "services/stream-bridge/Dockerfile",
            DEFAULT_STREAM_BRIDGE_IMAGE.to_owned(),
            9090,
        ),
    ];

    let release = yaml(".github/workflows/release.yml");
    assert_eq!(
        release["on"]["push"]["tags"],
        json!(["v*"]),
        "released on version tags"
    );
    let matrix = release["jobs"]["images"]["strategy"]["matrix"]["include"]
        .as_array()
        .expect("the images job builds a matrix of components");
    let image_env = release["jobs"]["images"]["env"]["IMAGE"]
        .as_str()
        .expect("env.IMAGE");
    for (name, dockerfile, runs, port) in components {
        let entry = matrix
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("release.yml builds no {name} image"));
        assert_eq!(entry["dockerfile"], dockerfile, "{name}");
        let published = format!("{}:{version}", image_env.replace("${{ matrix.name }}", name));
        assert_eq!(
            published, runs,
            "{name}: the release publishes what is run by default"
        );
        let (ports, runtime) = runtime_stage(dockerfile);
        assert_eq!(
            ports,
            [port],
            "{dockerfile}: the port the chart and the operator use"
        );
        for label in ["source", "revision", "version"] {
            assert!(
                runtime.contains(&format!("org.opencontainers.image.{label}=")),
                "{dockerfile}: no OCI {label} label"
            );
        }
    }
    let build = step_with(&release, "images", "docker/build-push-action");
    let platforms = build["platforms"].as_str().unwrap_or_default();
    assert!(
        platforms.contains("linux/amd64") && platforms.contains("linux/arm64"),
        "{platforms}"
    );
    assert_eq!(build["tags"], "${{ env.IMAGE }}:${{ env.VERSION }}");
    assert_eq!(
        (&build["sbom"], &build["provenance"]),
        (&json!(true), &json!("mode=max"))
    );
    let runs = workflow_runs(&release);
    let signs = runs.iter().filter(|r| r.contains("cosign sign --yes")).count();
    assert_eq!(signs, 2, "the images and the chart are signed keyless");
    assert!(
        runs.iter().any(|r| r.contains("helm push")),
        "the chart is pushed"
    );
    assert_eq!(release["env"]["CHART_REPO"], "oci://ghcr.io/imagepipeline/charts");
    assert_eq!(
        release["env"]["CRD"],
        CHART_CRD.replace("charts/imagepipeline-operator/", "")
    );
    let assets = runs.join("\n");
    for asset in ["cp \"$CRD\" dist/", "dist/install.yaml", "gh release create"] {
        assert!(
            assets.contains(asset),
            "the release does not attach the CRD and install.yaml: {asset}"
        );
    }
}
