//! The status a pass produces: phase, one condition per component plus
//! `Ready`, endpoints, and the resources made. Pure.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use super::{ComponentReport, ComponentState, PassReport};
use crate::api::v1alpha1::{Endpoints, ImagePipelineStatus, Phase};

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
    let mut conditions: Vec<Condition> = report
        .components
        .iter()
        .map(|component| {
            let (status, reason, message) = describe(component, lifecycle);
            condition(
                &component.kind.condition_type(),
                status,
                &reason,
                message,
                observed_generation,
            )
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
    ImagePipelineStatus {
        observed_generation,
        phase: Some(phase),
        conditions,
        endpoints: Some(endpoints),
        resources: outputs.resources.clone(),
        kafka_brokers: outputs.kafka_brokers.clone(),
        // It follows from the spec, not from the pass: those who hold the
        // spec add it (`cost::estimate`).
        estimated_monthly_cost: None,
    }
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

fn condition(type_: &str, ready: bool, reason: &str, message: String, generation: Option<i64>) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if ready { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation: generation,
        last_transition_time: Time(Timestamp::UNIX_EPOCH),
    }
}
