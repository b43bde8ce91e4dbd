//! What the chart's alerts and dashboards read, checked against what a
//! binary really exposes: a metric renamed in the code and not in an alert
//! would leave the alert silent for ever, so each binary's tests compare
//! its `/metrics` with every query naming its prefix.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

/// The chart's monitoring folder: `alerts.yaml` and `dashboards/*.json`.
pub fn monitoring_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/imagepipeline-operator/monitoring")
}

/// Every query of the alerts and dashboards, each with what it belongs
/// to (`alert ImagePipelineNotReady`, `dashboard upload-api.json: Latency`).
pub fn queries() -> Vec<(String, String)> {
    let dir = monitoring_dir();
    let mut queries = Vec::new();
    let alerts = std::fs::read_to_string(dir.join("alerts.yaml")).expect("monitoring/alerts.yaml");
    let alerts: Value = serde_saphyr::from_str(&alerts).expect("alerts.yaml is YAML");
    for rule in alerts["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
    {
        let name = rule["alert"].as_str().or(rule["record"].as_str()).unwrap_or("?");
        let expr = rule["expr"].as_str().unwrap_or_default();
        queries.push((format!("alert {name}"), expr.to_owned()));
    }
    let mut dashboards: Vec<PathBuf> = std::fs::read_dir(dir.join("dashboards"))
        .expect("monitoring/dashboards")
        .map(|entry| entry.expect("dashboard entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    dashboards.sort();
    for path in dashboards {
        let file = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("dashboard"))
            .unwrap_or_else(|err| panic!("{file} is not JSON: {err}"));
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
