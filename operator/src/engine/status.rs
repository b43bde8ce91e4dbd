//! The status a pass produces: phase, one condition per component plus
//! `Ready`, endpoints, and the resources made. Pure.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::{Action, Change, ComponentKind, ComponentReport, ComponentState, PassReport};
use crate::api::v1alpha1::{
    AwsErrorRecord, DriftCorrection, Endpoints, ImagePipelineStatus, Phase, PipelineCondition,
};

/// What the pass was for, which decides the phase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lifecycle {
    /// Converging towards the spec.
    #[default]
    Active,
    /// `spec.paused`: the pass only observed.
    Paused,
    /// The pipeline is being deleted: the pass tore down.
    Deleting,
}

/// A condition the engine does not produce itself: the controller's
/// `ServicesReady`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtraCondition {
    pub type_: String,
    pub ready: bool,
    pub reason: String,
    pub message: String,
}

/// Everything besides the pass that shapes the status.
#[derive(Clone, Debug, Default)]
pub struct StatusContext {
    pub lifecycle: Lifecycle,
    pub extra: Vec<ExtraCondition>,
}

/// Builds the status after a pass. Conditions keep their transition time
/// while their status does not change.
pub fn pipeline_status(
    report: &PassReport,
    context: &StatusContext,
    previous: Option<&ImagePipelineStatus>,
    observed_generation: Option<i64>,
    now: Timestamp,
) -> ImagePipelineStatus {
    let previous_conditions = previous.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let lifecycle = context.lifecycle;
    let mut conditions: Vec<PipelineCondition> = report
        .components
        .iter()
        .map(|component| {
            let (status, reason, message) = describe(component, lifecycle);
            let mut condition = condition(
                &component.kind.condition_type(),
                status,
                &reason,
                message,
                observed_generation,
            );
            if let ComponentState::Failed(err) = &component.state {
                let aws = err.aws.as_deref().cloned().unwrap_or_default();
                condition.aws_error_code = aws.code;
                condition.aws_request_id = aws.request_id;
                condition.resource = err.resource.clone();
            }
            condition
        })
        .collect();
    for extra in &context.extra {
        conditions.push(condition(
            &extra.type_,
            extra.ready,
            &extra.reason,
            extra.message.clone(),
            observed_generation,
        ));
    }
    let ready = lifecycle != Lifecycle::Deleting
        && report.is_ready()
        && context.extra.iter().all(|extra| extra.ready);
    let not_ready: Vec<String> = report
        .components
        .iter()
        .filter(|c| c.state != ComponentState::Ready)
        .map(|c| c.kind.name().to_owned())
        .chain(
            context
                .extra
                .iter()
                .filter(|extra| !extra.ready)
                .map(|extra| extra.type_.trim_end_matches("Ready").to_owned()),
        )
        .collect();
    let (reason, message) = match lifecycle {
        Lifecycle::Deleting => ("Deleting", deletion_message(report)),
        Lifecycle::Paused => (
            "ReconciliationPaused",
            format!(
                "spec.paused is true: AWS is observed, not changed; {}",
                if not_ready.is_empty() {
                    "every component matches the spec".to_owned()
                } else {
                    format!("not ready or not as specified: {}", not_ready.join(", "))
                }
            ),
        ),
        Lifecycle::Active if ready => ("AllComponentsReady", "every component is ready".to_owned()),
        Lifecycle::Active => (
            "ComponentsNotReady",
            format!("not ready: {}", not_ready.join(", ")),
        ),
    };
    conditions.insert(0, condition("Ready", ready, reason, message, observed_generation));
    for condition in &mut conditions {
        let since = previous_conditions
            .iter()
            .find(|old| old.type_ == condition.type_ && old.status == condition.status)
            .map(|old| old.last_transition_time.clone());
        condition.last_transition_time = since.unwrap_or(Time(now));
    }

    let phase = if lifecycle == Lifecycle::Deleting {
        Phase::Deleting
    } else if lifecycle == Lifecycle::Paused {
        Phase::Paused
    } else if report.terminal_error().is_some() {
        Phase::Failed
    } else if ready {
        Phase::Ready
    } else if matches!(
        previous.and_then(|s| s.phase),
        Some(Phase::Ready | Phase::Degraded)
    ) {
        Phase::Degraded
    } else {
        Phase::Provisioning
    };
    let outputs = &report.outputs;
    let endpoints = Endpoints {
        bucket: outputs.bucket.clone(),
        table: outputs.table.clone(),
        delivery_stream: outputs.delivery_stream.clone(),
        warehouse: outputs.warehouse.clone(),
        upload_url: outputs.upload_url.clone(),
        kafka_bootstrap: outputs.kafka_bootstrap.clone(),
        ..previous.and_then(|s| s.endpoints.clone()).unwrap_or_default()
    };
    let drift = match lifecycle {
        Lifecycle::Active => drift_corrections(report, previous, observed_generation),
        Lifecycle::Paused | Lifecycle::Deleting => Vec::new(),
    };
    ImagePipelineStatus {
        observed_generation,
        phase: Some(phase),
        last_aws_error: last_aws_errors(report, previous, &conditions, now),
        last_drift: last_drift(&drift, previous, now),
        conditions,
        endpoints: Some(endpoints),
        resources: outputs.resources.clone(),
        kafka_brokers: outputs.kafka_brokers.clone(),
        // It follows from the spec, not from the pass: those who hold the
        // spec add it (`cost::estimate`).
        estimated_monthly_cost: None,
    }
}

/// The changes of this pass that put back what was changed outside the
/// spec: what was made, updated or removed in a component that was ready
/// for the same generation of the spec. After a spec change, or on the way to
/// ready, changes are the spec being applied.
pub fn drift_corrections<'a>(
    report: &'a PassReport,
    previous: Option<&ImagePipelineStatus>,
    generation: Option<i64>,
) -> Vec<(ComponentKind, &'a Change)> {
    let Some(previous) =
        previous.filter(|p| p.observed_generation.is_some() && p.observed_generation == generation)
    else {
        return Vec::new();
    };
    report
        .components
        .iter()
        .filter(|component| {
            let type_ = component.kind.condition_type();
            previous
                .conditions
                .iter()
                .any(|c| c.type_ == type_ && c.status == "True")
        })
        .flat_map(|component| {
            component
                .changes
                .iter()
                .map(move |change| (component.kind, change))
        })
        .collect()
}

/// What `status.lastDrift` records of a correction.
pub fn drift_fields(change: &Change) -> Vec<String> {
    let what = match change.action {
        Action::Create => "was missing: created again",
        Action::Update => return change.fields.clone(),
        Action::Delete => "is not in the spec: deleted",
    };
    vec![what.to_owned()]
}

/// The previous corrections, with those of each component corrected now
/// replaced.
fn last_drift(
    drift: &[(ComponentKind, &Change)],
    previous: Option<&ImagePipelineStatus>,
    now: Timestamp,
) -> Vec<DriftCorrection> {
    let corrected = |component: &str| drift.iter().any(|(kind, _)| kind.name() == component);
    let mut records: Vec<DriftCorrection> = previous
        .map(|p| p.last_drift.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|record| !corrected(&record.component))
        .cloned()
        .collect();
    records.extend(drift.iter().map(|(kind, change)| DriftCorrection {
        component: kind.name().to_owned(),
        resource: change.resource.clone(),
        fields: drift_fields(change),
        time: Time(now),
    }));
    records
}

/// Per component, the last AWS error: the one it fails with now, else the
/// one recorded before. An error met again (same code and resource) keeps
/// the time it was first seen.
fn last_aws_errors(
    report: &PassReport,
    previous: Option<&ImagePipelineStatus>,
    conditions: &[PipelineCondition],
    now: Timestamp,
) -> Vec<AwsErrorRecord> {
    let before = previous.map(|p| p.last_aws_error.as_slice()).unwrap_or_default();
    let mut records: Vec<AwsErrorRecord> = before.to_vec();
    for component in &report.components {
        let ComponentState::Failed(err) = &component.state else {
            continue;
        };
        let Some(aws) = &err.aws else { continue };
        let name = component.kind.name();
        let message = conditions
            .iter()
            .find(|c| c.type_ == component.kind.condition_type())
            .map_or_else(|| err.message.clone(), |c| c.message.clone());
        let time = before
            .iter()
            .find(|r| r.component == name && r.code == aws.code && r.resource == err.resource)
            .map_or(Time(now), |r| r.time.clone());
        records.retain(|r| r.component != name);
        records.push(AwsErrorRecord {
            component: name.to_owned(),
            code: aws.code.clone(),
            request_id: aws.request_id.clone(),
            resource: err.resource.clone(),
            message,
            time,
        });
    }
    records.sort_by_key(|r| ComponentKind::ALL.iter().position(|k| k.name() == r.component));
    records
}

/// What a deletion waits for: the first component not gone yet, and why.
fn deletion_message(report: &PassReport) -> String {
    let blocking = report
        .components
        .iter()
        .rev()
        .find(|c| !matches!(c.state, ComponentState::Removed | ComponentState::Blocked(_)));
    match blocking {
        None => "every component is removed".to_owned(),
        Some(component) => match &component.state {
            ComponentState::Failed(err) => format!(
                "cleanup is blocked at {}: {} ({}); the finalizer imagepipeline.io/cleanup stays until it succeeds",
                component.kind, err.message, err.reason
            ),
            ComponentState::Waiting(why) => format!("removing {}: {why}", component.kind),
            _ => format!("removing {}", component.kind),
        },
    }
}

fn describe(component: &ComponentReport, lifecycle: Lifecycle) -> (bool, String, String) {
    match &component.state {
        ComponentState::Ready => (true, "Ready".into(), format!("{} is ready", component.kind)),
        ComponentState::Waiting(why) if lifecycle == Lifecycle::Deleting => {
            (false, "Deleting".into(), why.clone())
        }
        ComponentState::Waiting(why) => (false, "Provisioning".into(), why.clone()),
        ComponentState::NotServing(check) => (false, check.reason.clone(), check.message.clone()),
        ComponentState::ChangesPending => (
            false,
            "ChangesPending".into(),
            format!("{} changes pending", component.changes.len()),
        ),
        ComponentState::Failed(err) => (false, err.reason.clone(), err.message.clone()),
        ComponentState::Blocked(on) if lifecycle == Lifecycle::Deleting => (
            false,
            "WaitingForDependent".into(),
            format!("waiting for {on} to be removed first"),
        ),
        ComponentState::Blocked(on) => (
            false,
            "WaitingForDependency".into(),
            format!("waiting for {on} to be ready"),
        ),
        ComponentState::Removed => (false, "Removed".into(), format!("{} is removed", component.kind)),
    }
}

fn condition(
    type_: &str,
    ready: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
) -> PipelineCondition {
    PipelineCondition {
        type_: type_.to_owned(),
        status: if ready { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation: generation,
        last_transition_time: Time(Timestamp::UNIX_EPOCH),
        aws_error_code: None,
        aws_request_id: None,
        resource: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{ComponentError, Outputs};
    use crate::error::AwsAnswer;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    fn report(components: Vec<(ComponentKind, ComponentState, Vec<Change>)>) -> PassReport {
        PassReport {
            components: components
                .into_iter()
                .map(|(kind, state, changes)| ComponentReport { kind, state, changes })
                .collect(),
            outputs: Outputs::default(),
        }
    }

    fn denied(request_id: &str) -> ComponentState {
        ComponentState::Failed(
            ComponentError::new(
                crate::error::ErrorKind::Refused,
                "AccessDenied",
                "put lifecycle rules of S3 bucket photos failed: AccessDenied: no",
            )
            .answered(AwsAnswer {
                code: Some("AccessDenied".into()),
                request_id: Some(request_id.into()),
            })
            .concerning(|| "S3 bucket photos".into()),
        )
    }

    fn status_of(
        report: &PassReport,
        previous: Option<&ImagePipelineStatus>,
        generation: i64,
        now: i64,
    ) -> ImagePipelineStatus {
        pipeline_status(
            report,
            &StatusContext::default(),
            previous,
            Some(generation),
            at(now),
        )
    }

    #[test]
    fn a_failing_condition_names_the_aws_answer_and_the_resource_and_the_error_outlives_it() {
        let failing = report(vec![(ComponentKind::Storage, denied("req-1"), vec![])]);
        let first = status_of(&failing, None, 1, 100);
        let storage = first
            .conditions
            .iter()
            .find(|c| c.type_ == "StorageReady")
            .unwrap();
        assert_eq!(storage.aws_error_code.as_deref(), Some("AccessDenied"));
        assert_eq!(storage.aws_request_id.as_deref(), Some("req-1"));
        assert_eq!(storage.resource.as_deref(), Some("S3 bucket photos"));
        assert_eq!(storage.observed_generation, Some(1));
        assert_eq!(first.last_aws_error.len(), 1);
        assert_eq!(first.last_aws_error[0].time, Time(at(100)));

        // The same error again: the newest request id, the first time.
        let again = report(vec![(ComponentKind::Storage, denied("req-2"), vec![])]);
        let second = status_of(&again, Some(&first), 1, 200);
        assert_eq!(second.last_aws_error[0].request_id.as_deref(), Some("req-2"));
        assert_eq!(second.last_aws_error[0].time, Time(at(100)));

        // Recovered: the condition is clean, the record stays.
        let recovered = report(vec![(ComponentKind::Storage, ComponentState::Ready, vec![])]);
        let third = status_of(&recovered, Some(&second), 1, 300);
        let storage = third
            .conditions
            .iter()
            .find(|c| c.type_ == "StorageReady")
            .unwrap();
        assert_eq!(
            (storage.status.as_str(), storage.aws_error_code.as_ref()),
            ("True", None)
        );
        assert_eq!(third.last_aws_error, second.last_aws_error);
    }

    #[test]
    fn changes_to_a_ready_component_of_the_same_generation_are_drift_and_only_those() {
        use crate::engine::Action;
        let lifecycle = Change::new(Action::Update, "S3 bucket photos lifecycle rules").field(
            "expire images/ after",
            "(none)",
            "7d",
        );
        let ready = report(vec![
            (ComponentKind::Storage, ComponentState::Ready, vec![]),
            (ComponentKind::Metadata, ComponentState::Ready, vec![]),
        ]);
        let before = status_of(&ready, None, 1, 100);
        let corrected = report(vec![
            (
                ComponentKind::Storage,
                ComponentState::Ready,
                vec![lifecycle.clone()],
            ),
            (
                ComponentKind::Metadata,
                ComponentState::Ready,
                vec![Change::new(Action::Create, "DynamoDB table photos")],
            ),
        ]);
        let after = status_of(&corrected, Some(&before), 1, 200);
        assert_eq!(
            after.last_drift,
            vec![
                DriftCorrection {
                    component: "Storage".into(),
                    resource: "S3 bucket photos lifecycle rules".into(),
                    fields: vec!["expire images/ after: (none) → 7d".into()],
                    time: Time(at(200)),
                },
                DriftCorrection {
                    component: "Metadata".into(),
                    resource: "DynamoDB table photos".into(),
                    fields: vec!["was missing: created again".into()],
                    time: Time(at(200)),
                },
            ]
        );

        // A spec change applied is no drift, and the record stays.
        let applied = status_of(&corrected, Some(&after), 2, 300);
        assert_eq!(applied.last_drift, after.last_drift);
        // Nor is the way to ready.
        let provisioning = report(vec![(
            ComponentKind::Storage,
            ComponentState::Waiting("…".into()),
            vec![],
        )]);
        let unready = status_of(&provisioning, None, 1, 100);
        assert!(drift_corrections(&corrected, Some(&unready), Some(1)).is_empty());
        // Drift of one component again replaces only its own entries.
        let again = report(vec![(
            ComponentKind::Storage,
            ComponentState::Ready,
            vec![lifecycle],
        )]);
        let later = status_of(&again, Some(&after), 1, 400);
        assert_eq!(
            later
                .last_drift
                .iter()
                .map(|d| (d.component.as_str(), d.time.clone()))
                .collect::<Vec<_>>(),
            vec![("Metadata", Time(at(200))), ("Storage", Time(at(400)))]
        );
    }
}
