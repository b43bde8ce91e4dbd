//! `kubectl ipl status`: one view from the pipeline down to every AWS
//! resource and Kubernetes object it made, each with what is wrong. Pure:
//! from the pipeline as the API server holds it and the objects it owns.

use std::fmt::Write as _;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use crate::api::v1alpha1::{ImagePipeline, ImagePipelineStatus, PipelineCondition};
use crate::engine::ComponentKind;

/// A Kubernetes object the pipeline owns, as the tree shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedObject {
    /// `Deployment/photos-upload-api`.
    pub name: String,
    /// What it says of itself, e.g. `2/2 available`; empty when it has no
    /// state beyond existing.
    pub state: String,
    /// When that state last changed, where the object says.
    pub since: Option<Time>,
}

/// A kind of object the tree could not list, and why (a reader allowed to
/// see the pipeline but not its Secrets, say).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unlisted {
    pub kind: &'static str,
    pub reason: String,
}

/// One row: the tree's drawing, then the columns.
#[derive(Default)]
struct Row {
    name: String,
    ready: String,
    reason: String,
    since: String,
    message: String,
    /// A line of explanation under a component: printed whole, without
    /// columns, and not counted in their widths.
    note: bool,
}

/// The tree, as text: a header, one row per node, and under a component the
/// lines that explain it (the last AWS error, the last drift corrected).
pub fn render(pipeline: &ImagePipeline, owned: &[OwnedObject], unlisted: &[Unlisted]) -> String {
    let empty = ImagePipelineStatus::default();
    let status = pipeline.status.as_ref().unwrap_or(&empty);
    let mut rows = Vec::new();
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
    let phase = status
        .phase
        .map(|p| format!("{p:?}"))
        .unwrap_or_else(|| "Pending".into());
    let generation = match (pipeline.metadata.generation, status.observed_generation) {
        (Some(generation), Some(observed)) if generation != observed => {
            format!(" (generation {generation}, status is of {observed})")
        }
        _ => String::new(),
    };
    rows.push(condition_row(
        format!(
            "ImagePipeline/{} ({}) {phase}{generation}",
            pipeline.name_any(),
            pipeline.namespace().unwrap_or_default()
        ),
        ready,
    ));
    let components: Vec<Node> = ComponentKind::ALL
        .iter()
        .map(|kind| Node::Component(kind.name()))
        .chain([Node::Services])
        .collect();
    for (index, node) in components.iter().enumerate() {
        let last = index + 1 == components.len();
        let (branch, stem) = if last {
            ("└─ ", "   ")
        } else {
            ("├─ ", "│  ")
        };
        let (name, type_) = match node {
            Node::Component(name) => (*name, format!("{name}Ready")),
            Node::Services => ("Services", "ServicesReady".to_owned()),
        };
        let condition = status.conditions.iter().find(|c| c.type_ == type_);
        rows.push(condition_row(format!("{branch}{name}"), condition));
        let children = match node {
            Node::Component(name) => aws_children(status, name),
            Node::Services => k8s_children(owned, unlisted),
        };
        let notes = match node {
            Node::Component(name) => notes(status, name, condition),
            Node::Services => Vec::new(),
        };
        let bar = if children.is_empty() { "   " } else { "│  " };
        for note in notes {
            rows.push(Row {
                name: format!("{stem}{bar}{note}"),
                note: true,
                ..Row::default()
            });
        }
        let count = children.len();
        for (child_index, mut child) in children.into_iter().enumerate() {
            let branch = if child_index + 1 == count {
                "└─ "
            } else {
                "├─ "
            };
            child.name = format!("{stem}{branch}{}", child.name);
            rows.push(child);
        }
    }
    let mut text = table(&rows);
    if let Some(cost) = &status.estimated_monthly_cost {
        let partial = if cost.partial {
            " (partial: some items have no price)"
        } else {
            ""
        };
        let _ = writeln!(
            text,
            "\nEstimated monthly cost of the fixed resources: {} {}{partial}, list prices as of {}",
            cost.currency, cost.amount, cost.prices_as_of
        );
    }
    text
}

enum Node {
    Component(&'static str),
    Services,
}

fn condition_row(name: String, condition: Option<&PipelineCondition>) -> Row {
    match condition {
        Some(condition) => Row {
            name,
            ready: condition.status.clone(),
            reason: condition.reason.clone(),
            since: time(&condition.last_transition_time),
            message: condition.message.clone(),
            note: false,
        },
        None => Row {
            name,
            ready: "Unknown".into(),
            reason: String::new(),
            since: String::new(),
            message: "not reported yet".into(),
            note: false,
        },
    }
}

/// The AWS resources of a component (type/id and state), and for Kafka the
/// managed brokers as their heartbeats describe them.
fn aws_children(status: &ImagePipelineStatus, component: &str) -> Vec<Row> {
    let mut rows: Vec<Row> = status
        .resources
        .iter()
        .filter(|r| r.component == component)
        .map(|r| Row {
            name: format!("{}/{}", r.type_, r.id),
            ready: r.state.clone().unwrap_or_default(),
            ..Row::default()
        })
        .collect();
    if component == ComponentKind::Kafka.name() {
        rows.extend(status.kafka_brokers.iter().map(|broker| {
            Row {
                name: format!(
                    "broker {} ({})",
                    broker.node_id,
                    broker.instance_id.as_deref().unwrap_or("not launched")
                ),
                ready: broker.state.clone(),
                reason: String::new(),
                since: broker.last_heartbeat.clone().unwrap_or_default(),
                message: broker
                    .error
                    .clone()
                    .unwrap_or_else(|| format!("listens on {}", broker.address)),
                note: false,
            }
        }));
    }
    rows
}

fn k8s_children(owned: &[OwnedObject], unlisted: &[Unlisted]) -> Vec<Row> {
    owned
        .iter()
        .map(|object| Row {
            name: object.name.clone(),
            ready: object.state.clone(),
            reason: String::new(),
            since: object.since.as_ref().map(time).unwrap_or_default(),
            ..Row::default()
        })
        .chain(unlisted.iter().map(|u| Row {
            name: format!("{} (not listed)", u.kind),
            message: u.reason.clone(),
            ..Row::default()
        }))
        .collect()
}

/// What explains a component beyond its condition: the AWS answer it
/// fails with now, or the last one it met, and the last drift corrected.
fn notes(
    status: &ImagePipelineStatus,
    component: &str,
    condition: Option<&PipelineCondition>,
) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(record) = status.last_aws_error.iter().find(|r| r.component == component) {
        let failing_now = condition.is_some_and(|c| c.status != "True");
        let mut line = format!(
            "{} AWS error {}",
            if failing_now { "current" } else { "last" },
            record.code.as_deref().unwrap_or("(no code)")
        );
        if let Some(request_id) = &record.request_id {
            let _ = write!(line, ", request id {request_id}");
        }
        if let Some(resource) = &record.resource {
            let _ = write!(line, ", on {resource}");
        }
        let _ = write!(line, ", since {}", time(&record.time));
        notes.push(line);
        if !failing_now {
            notes.push(format!("  {}", record.message));
        }
    } else if let Some(condition) = condition.filter(|c| c.aws_error_code.is_some() || c.resource.is_some()) {
        let mut line = "failing on".to_owned();
        if let Some(resource) = &condition.resource {
            let _ = write!(line, " {resource}");
        }
        if let Some(code) = &condition.aws_error_code {
            let _ = write!(line, ", AWS error {code}");
        }
        if let Some(request_id) = &condition.aws_request_id {
            let _ = write!(line, ", request id {request_id}");
        }
        notes.push(line);
    }
    let drift: Vec<_> = status
        .last_drift
        .iter()
        .filter(|d| d.component == component)
        .collect();
    if let Some(first) = drift.first() {
        notes.push(format!("drift corrected {}:", time(&first.time)));
        for correction in drift {
            notes.push(format!(
                "  {}: {}",
                correction.resource,
                correction.fields.join(", ")
            ));
        }
    }
    notes
}

fn time(time: &Time) -> String {
    // Whole seconds, as the API server keeps them.
    time.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Columns padded to their widest cell, by display width (the tree's
/// drawing characters are one column each).
fn table(rows: &[Row]) -> String {
    use unicode_width::UnicodeWidthStr;
    let width = |cells: &dyn Fn(&Row) -> &str, header: &str| {
        rows.iter()
            .filter(|r| !r.note)
            .map(|r| cells(r).width())
            .chain([header.width()])
            .max()
            .unwrap_or_default()
    };
    let widths = [
        width(&|r| r.name.as_str(), "NAME"),
        width(&|r| r.ready.as_str(), "READY"),
        width(&|r| r.reason.as_str(), "REASON"),
        width(&|r| r.since.as_str(), "SINCE"),
    ];
    let line = |cells: [&str; 5]| {
        let mut row = String::new();
        for (cell, width) in cells.iter().zip(widths) {
            row.push_str(cell);
            row.push_str(&" ".repeat(width - cell.width() + 2));
        }
        row.push_str(cells[4]);
        row.trim_end().to_owned()
    };
    let mut text = line(["NAME", "READY", "REASON", "SINCE", "MESSAGE"]) + "\n";
    for row in rows {
        let printed = if row.note {
            row.name.clone()
        } else {
            line([&row.name, &row.ready, &row.reason, &row.since, &row.message])
        };
        text.push_str(&printed);
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pipeline() -> ImagePipeline {
        let condition = |type_: &str, status: &str, reason: &str, message: &str| {
            json!({"type": type_, "status": status, "reason": reason, "message": message,
                   "lastTransitionTime": "2026-12-03T10:00:00Z", "observedGeneration": 2})
        };
        let mut storage = condition(
            "StorageReady",
            "False",
            "AccessDenied",
            "put lifecycle rules of S3 bucket photos failed: AccessDenied: denied; grant this permission",
        );
        storage["awsErrorCode"] = json!("AccessDenied");
        storage["awsRequestId"] = json!("7a62c49f-EXAMPLE");
        storage["resource"] = json!("S3 bucket photos lifecycle rules");
        serde_json::from_value(json!({
            "apiVersion": "imagepipeline.io/v1alpha1",
            "kind": "ImagePipeline",
            "metadata": {"name": "photos", "namespace": "media", "generation": 2, "uid": "u-1"},
            "spec": {"region": "eu-west-1", "network": {"availabilityZones": ["eu-west-1a", "eu-west-1b"]}},
            "status": {
                "observedGeneration": 2,
                "phase": "Degraded",
                "conditions": [
                    condition("Ready", "False", "ComponentsNotReady", "not ready: Storage"),
                    condition("NetworkReady", "True", "Ready", "Network is ready"),
                    storage,
                    condition("MetadataReady", "True", "Ready", "Metadata is ready"),
                    condition("ServicesReady", "True", "Available", "2 Deployments available"),
                ],
                "resources": [
                    {"component": "Network", "type": "AWS::EC2::VPC", "id": "vpc-0a1", "state": "Ready"},
                    {"component": "Storage", "type": "AWS::S3::Bucket", "id": "photos", "state": "Ready"},
                ],
                "kafkaBrokers": [{"nodeId": 1, "instanceId": "i-0b1", "address": "10.41.1.10:9092",
                                  "state": "serving", "lastHeartbeat": "2026-12-03T10:05:00Z"}],
                "lastAwsError": [{"component": "Storage", "code": "AccessDenied", "requestId": "7a62c49f-EXAMPLE",
                                  "resource": "S3 bucket photos lifecycle rules", "message": "denied",
                                  "time": "2026-12-03T09:58:00Z"}],
                "lastDrift": [{"component": "Metadata", "resource": "DynamoDB table photos point-in-time recovery",
                               "fields": ["point-in-time recovery: off → on"], "time": "2026-12-03T09:00:00Z"}],
                "estimatedMonthlyCost": {"amount": "412.35", "currency": "USD", "pricesAsOf": "2026-11-01"}
            }
        }))
        .expect("a pipeline")
    }

    #[test]
    fn the_tree_shows_each_component_its_resources_objects_and_what_explains_it() {
        let owned = [OwnedObject {
            name: "Deployment/photos-upload-api".into(),
            state: "2/2 available".into(),
            since: Some(Time("2026-12-03T10:01:00Z".parse().unwrap())),
        }];
        let unlisted = [Unlisted {
            kind: "Secret",
            reason: "you may not list Secrets here: forbidden".into(),
        }];
        let text = render(&pipeline(), &owned, &unlisted);
        let lines: Vec<&str> = text.lines().collect();
        let line = |start: &str| {
            lines
                .iter()
                .find(|l| l.trim_start_matches(['│', '├', '└', '─', ' ']).starts_with(start))
                .unwrap_or_else(|| panic!("no line starting {start:?} in\n{text}"))
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert!(
            lines[0].starts_with("NAME") && lines[0].ends_with("MESSAGE"),
            "{text}"
        );
        assert_eq!(
            line("ImagePipeline/photos"),
            "ImagePipeline/photos (media) Degraded False ComponentsNotReady 2026-12-03T10:00:00Z not ready: Storage"
        );
        assert!(
            line("Storage").starts_with("├─ Storage False AccessDenied 2026-12-03T10:00:00Z put lifecycle")
        );
        assert_eq!(
            line("current AWS error"),
            "│ │ current AWS error AccessDenied, request id 7a62c49f-EXAMPLE, on S3 bucket photos lifecycle rules, since 2026-12-03T09:58:00Z"
        );
        assert_eq!(
            line("AWS::S3::Bucket/photos"),
            "│ └─ AWS::S3::Bucket/photos Ready"
        );
        assert_eq!(line("drift corrected"), "│ drift corrected 2026-12-03T09:00:00Z:");
        assert_eq!(
            line("DynamoDB table photos"),
            "│ DynamoDB table photos point-in-time recovery: point-in-time recovery: off → on"
        );
        assert_eq!(
            line("broker 1"),
            "│ └─ broker 1 (i-0b1) serving 2026-12-03T10:05:00Z listens on 10.41.1.10:9092"
        );
        assert_eq!(
            line("UploadTier"),
            "├─ UploadTier Unknown not reported yet",
            "a component the status does not report yet"
        );
        assert_eq!(
            line("Deployment/photos-upload-api"),
            "├─ Deployment/photos-upload-api 2/2 available 2026-12-03T10:01:00Z"
        );
        assert_eq!(
            line("Secret (not listed)"),
            "└─ Secret (not listed) you may not list Secrets here: forbidden"
        );
        assert!(
            text.ends_with(
                "Estimated monthly cost of the fixed resources: USD 412.35, list prices as of 2026-11-01\n"
            ),
            "{text}"
        );
    }
}
