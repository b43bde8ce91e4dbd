//! The chart's alerts and dashboards: promtool checks the rules and runs
//! their unit tests (every alert fires in one and stays quiet in another),
//! each alert's runbook exists and says what to do, every dashboard query
//! parses, the chart ships them only when asked and exactly as written,
//! and what they read of the controller is what it exposes (the services'
//! tests check theirs).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use imagepipeline_e2e::monitoring::{self, alert_rules, dashboards, monitoring_dir, panels};
use imagepipeline_e2e::{Tool, repo_root};
use imagepipeline_operator::api::v1alpha1::{ImagePipelineStatus, KafkaBrokerStatus, Phase};
use imagepipeline_operator::aws::CallLog;
use imagepipeline_operator::controller::metrics::Metrics;
use serde_json::Value;

#[allow(dead_code, reason = "the chart tests use the rest of it")]
mod helm;

const ALL_VALUES: &str = "charts/imagepipeline-operator/ci/all-values.yaml";

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// promtool with `args`, in the monitoring folder; its output, after
/// asserting it succeeded.
fn promtool(args: &[&str], dir: &Path) -> String {
    let promtool = Tool::Promtool.path().unwrap_or_else(|e| panic!("{e}"));
    let output = Command::new(&promtool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", promtool.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {}:\n{text}", args.join(" "));
    text
}

#[test]
fn promtool_accepts_the_alerts_and_each_fires_in_one_unit_test_and_stays_quiet_in_another() {
    let dir = monitoring_dir();
    let checked = promtool(&["check", "rules", "alerts.yaml"], &dir);
    let alerts = alert_rules();
    assert!(
        checked.contains(&format!("SUCCESS: {} rules found", alerts.len())),
        "{checked}"
    );
    promtool(&["test", "rules", "alerts.test.yaml"], &dir);

    let tests = yaml(&dir.join("alerts.test.yaml"));
    let cases: Vec<&Value> = tests["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_array().into_iter().flatten())
        .collect();
    for alert in &alerts {
        let name = alert["alert"].as_str().expect("every rule is an alert");
        let of_alert: Vec<&&Value> = cases.iter().filter(|c| c["alertname"] == name).collect();
        let fires = |case: &&&Value| case["exp_alerts"].as_array().is_some_and(|a| !a.is_empty());
        assert!(of_alert.iter().any(fires), "no unit test where {name} fires");
        assert!(
            of_alert.iter().any(|c| !fires(c)),
            "no unit test where {name} stays quiet"
        );
    }
}

#[test]
fn every_alert_has_a_severity_and_a_runbook_that_says_what_it_means_how_to_look_and_what_to_do() {
    for alert in alert_rules() {
        let name = alert["alert"].as_str().expect("alert name");
        assert!(
            ["warning", "critical"].contains(&alert["labels"]["severity"].as_str().unwrap_or_default()),
            "{name}: severity"
        );
        for annotation in ["summary", "description"] {
            assert!(
                alert["annotations"][annotation].is_string(),
                "{name}: {annotation}"
            );
        }
        let url = alert["annotations"]["runbook_url"].as_str().unwrap_or_default();
        let runbook = format!("docs/runbooks/{name}.md");
        assert!(
            url.ends_with(&format!("/blob/main/{runbook}")),
            "{name}: runbook_url {url}"
        );
        let path = repo_root().join(&runbook);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{runbook}: {e}"));
        for heading in ["# ", "## What it means", "## How to look", "## What to do"] {
            assert!(
                text.lines().any(|l| l.starts_with(heading)),
                "{runbook} lacks {heading:?}"
            );
        }
        assert!(
            text.contains("kubectl"),
            "{runbook} shows no command to look with"
        );
    }
}

#[test]
fn dashboards_have_unique_ids_every_panel_queries_and_promtool_parses_every_query() {
    let dashboards = dashboards();
    let names: Vec<&str> = dashboards.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["operator.json", "stream-bridge.json", "upload-api.json"]);
    let uids: BTreeSet<&str> = dashboards.iter().filter_map(|(_, d)| d["uid"].as_str()).collect();
    assert_eq!(uids.len(), dashboards.len(), "every dashboard has its own uid");
    let mut rules = String::from("groups:\n  - name: dashboards\n    rules:\n");
    let mut queries = 0;
    for (name, dashboard) in &dashboards {
        assert!(dashboard["title"].is_string(), "{name}: title");
        let mut ids = BTreeSet::new();
        for panel in panels(dashboard) {
            let id = panel["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("{name}: a panel without an id"));
            assert!(ids.insert(id), "{name}: panel id {id} twice");
            if panel["type"] == "row" {
                continue;
            }
            let exprs: Vec<&str> = panel["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["expr"].as_str())
                .collect();
            assert!(
                !exprs.is_empty(),
                "{name}: panel {:?} queries nothing",
                panel["title"]
            );
            for expr in exprs {
                queries += 1;
                let expr = grafana_variables_replaced(expr);
                rules.push_str(&format!(
                    "      - record: dashboard:query{queries}\n        expr: {}\n",
                    serde_json::to_string(&expr).expect("a JSON string is a YAML string")
                ));
            }
        }
    }
    let dir = tempfile::tempdir().expect("temporary folder");
    std::fs::write(dir.path().join("queries.yaml"), rules).expect("write the queries");
    let checked = promtool(&["check", "rules", "queries.yaml"], dir.path());
    assert!(
        checked.contains(&format!("SUCCESS: {queries} rules found")),
        "{checked}"
    );
}

/// A Grafana query as Prometheus would receive it: intervals become a
/// duration, template variables match anything.
fn grafana_variables_replaced(expr: &str) -> String {
    let mut text = expr
        .replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h");
    while let Some(start) = text.find('$') {
        let rest = &text[start + 1..];
        let braced = rest.starts_with('{');
        let name_len = rest
            .trim_start_matches('{')
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len() - usize::from(braced));
        let end = start + 1 + name_len + if braced { 2 } else { 0 };
        text.replace_range(start..end, ".*");
    }
    text
}

#[test]
fn the_chart_ships_the_alerts_and_dashboards_as_written_only_when_asked() {
    let defaults = helm::render(&[]);
    assert!(
        !defaults
            .iter()
            .any(|o| o["kind"] == "PrometheusRule" || o["kind"] == "ConfigMap"),
        "neither alerts nor dashboards by default: they need the Prometheus Operator and Grafana's sidecar"
    );

    let objects = helm::render(&["-f", ALL_VALUES]);
    let rule = helm::only(&objects, "PrometheusRule");
    let written = yaml(&monitoring_dir().join("alerts.yaml"));
    assert_eq!(
        rule["spec"]["groups"], written["groups"],
        "the PrometheusRule holds alerts.yaml"
    );
    let values = yaml(&repo_root().join(ALL_VALUES));
    let wanted = &values["grafana"]["dashboards"];
    let config_maps: Vec<&Value> = objects.iter().filter(|o| o["kind"] == "ConfigMap").collect();
    let dashboards = dashboards();
    assert_eq!(config_maps.len(), dashboards.len());
    for (name, dashboard) in dashboards {
        let key = format!("imagepipeline-{name}");
        let map = config_maps
            .iter()
            .find(|m| m["data"].get(&key).is_some())
            .unwrap_or_else(|| panic!("no ConfigMap holds {key}"));
        let shipped: Value = serde_json::from_str(map["data"][&key].as_str().expect("text")).expect("JSON");
        assert_eq!(shipped, dashboard, "{key} is shipped as written");
        let label = wanted["label"].as_str().expect("label");
        assert_eq!(
            map["metadata"]["labels"][label], wanted["labelValue"],
            "{key}: sidecar label"
        );
    }
}

#[test]
fn the_alerts_and_dashboards_read_only_metrics_the_controller_exposes() {
    // A controller that has seen a pipeline with managed brokers, so that
    // the per-pipeline series have samples too.
    let metrics = Metrics::new(CallLog::new());
    let status = ImagePipelineStatus {
        phase: Some(Phase::Degraded),
        kafka_brokers: vec![KafkaBrokerStatus {
            node_id: 1,
            instance_id: Some("i-0a1b2c3d4e5f60718".into()),
            address: "10.41.0.10:9092".into(),
            state: "silent".into(),
            last_heartbeat: Some("2026-12-02T11:50:00Z".into()),
            error: None,
        }],
        ..ImagePipelineStatus::default()
    };
    metrics.observe_status("media/photos".into(), &status);
    let exposition = metrics.encode();
    for sample in [
        r#"imagepipeline_pipeline_phase{pipeline_namespace="media",pipeline="photos",phase="Degraded"} 1"#,
        r#"imagepipeline_kafka_broker_heartbeat_timestamp_seconds{pipeline_namespace="media",pipeline="photos",broker="1"} 1796212200"#,
    ] {
        assert!(
            exposition.lines().any(|l| l == sample),
            "{sample} not in\n{exposition}"
        );
    }
    let reading = monitoring::assert_monitoring_reads_only_exposed(&exposition, "imagepipeline_");
    assert!(reading >= 5, "{reading} queries read the controller's metrics");
}

#[test]
fn grafana_variables_become_what_prometheus_parses() {
    assert_eq!(
        grafana_variables_replaced(r#"rate(x{namespace=~"$namespace",job=~"${job}"}[$__rate_interval])"#),
        r#"rate(x{namespace=~".*",job=~".*"}[5m])"#
    );
}
