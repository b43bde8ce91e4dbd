//! What the chart's alerts and dashboards read, checked against what a
//! binary really exposes: a metric renamed in the code and not in an alert
//! would leave the alert silent for ever, so each binary's tests compare
//! its `/metrics` with every query naming its prefix.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

/// The chart's monitoring folder: `alerts.yaml` and `dashboards/*.json`, of
/// the checkout the tests run in (checkouts share a target folder, so this
/// library may have been compiled in another one).
pub fn monitoring_dir() -> PathBuf {
    crate::repo_root().join("charts/imagepipeline-operator/monitoring")
}

/// The rules of `alerts.yaml`, every group's.
pub fn alert_rules() -> Vec<Value> {
    let path = monitoring_dir().join("alerts.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let alerts: Value = serde_saphyr::from_str(&text).expect("alerts.yaml is YAML");
    alerts["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").clone())
        .collect()
}

/// The dashboards, by file name, in name order; every file of the folder
/// must be one.
pub fn dashboards() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(monitoring_dir().join("dashboards"))
        .expect("monitoring/dashboards")
        .map(|entry| entry.expect("dashboard entry").path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            assert!(name.ends_with(".json"), "{name} is not a dashboard");
            let text = std::fs::read_to_string(&path).expect("dashboard");
            let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
            (name, value)
        })
        .collect()
}

/// Every query of the alerts and dashboards, each with what it belongs
/// to (`alert ImagePipelineNotReady`, `dashboard upload-api.json: Latency`).
pub fn queries() -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for rule in alert_rules() {
        let name = rule["alert"].as_str().or(rule["record"].as_str()).unwrap_or("?");
        let expr = rule["expr"].as_str().unwrap_or_default();
        queries.push((format!("alert {name}"), expr.to_owned()));
    }
    for (file, dashboard) in dashboards() {
        for panel in panels(&dashboard) {
            let title = panel["title"].as_str().unwrap_or("?");
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    queries.push((format!("dashboard {file}: {title}"), expr.to_owned()));
                }
            }
        }
    }
    queries
}

/// A dashboard's panels, those inside collapsed rows too.
pub fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        all.push(panel);
        all.extend(panel["panels"].as_array().into_iter().flatten());
    }
    all
}

/// The metric names with `prefix` a query reads.
pub fn metric_names(expr: &str, prefix: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|token| token.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// The series names an exposition offers, from its `# TYPE` lines, so a
/// family with no series yet counts: a counter `x` is read as `x_total`,
/// a histogram as `x_bucket`, `x_sum` and `x_count`.
pub fn exposed(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (Some(name), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            "summary" => &["", "_sum", "_count"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    names
}

/// Panics naming each alert and dashboard panel that reads a metric with
/// `prefix` the exposition lacks; returns how many queries read one.
pub fn assert_monitoring_reads_only_exposed(exposition: &str, prefix: &str) -> usize {
    let exposed = exposed(exposition);
    let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut reading = 0;
    for (owner, expr) in queries() {
        let names = metric_names(&expr, prefix);
        reading += usize::from(!names.is_empty());
        for name in names.into_iter().filter(|n| !exposed.contains(n)) {
            missing.entry(name).or_default().push(owner.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "alerts and dashboards read metrics the binary does not expose: {missing:#?}\nexposed: {exposed:#?}"
    );
    assert!(
        reading > 0,
        "no alert or dashboard reads a metric starting {prefix}"
    );
    reading
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_from_queries_and_expositions_as_prometheus_spells_them() {
        let expr = r#"sum(rate(upload_api_requests_total{status=~"5.."}[5m])) / histogram_quantile(0.99, upload_api_request_duration_seconds_bucket) > on() imagepipeline_leader"#;
        assert_eq!(
            metric_names(expr, "upload_api_"),
            BTreeSet::from([
                "upload_api_request_duration_seconds_bucket".to_owned(),
                "upload_api_requests_total".to_owned()
            ])
        );
        let exposition = "# HELP upload_api_requests HTTP requests.\n# TYPE upload_api_requests counter\n\
                          # TYPE upload_api_request_duration_seconds histogram\n# TYPE upload_api_uploads_in_flight gauge\n";
        assert_eq!(
            exposed(exposition),
            BTreeSet::from(
                [
                    "upload_api_requests_total",
                    "upload_api_request_duration_seconds_bucket",
                    "upload_api_request_duration_seconds_sum",
                    "upload_api_request_duration_seconds_count",
                    "upload_api_uploads_in_flight"
                ]
                .map(str::to_owned)
            )
        );
    }
}
