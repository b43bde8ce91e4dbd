//! The status a pass produces: phase, one condition per component plus
//! `Ready`, endpoints, and the resources made. Pure.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use super::{ComponentReport, ComponentState, PassReport};
use crate::api::v1alpha1::{Endpoints, ImagePipelineStatus, Phase};

/// Builds the status after a pass. Conditions keep their transition time
/// while their status does not change.
pub fn pipeline_status(
    report: &PassReport,
    previous: Option<&ImagePipelineStatus>,
    observed_generation: Option<i64>,
    now: Timestamp,
) -> ImagePipelineStatus {
    let previous_conditions = previous.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let mut conditions: Vec<Condition> = report
        .components
        .iter()
        .map(|component| {
            let (status, reason, message) = describe(component);
            condition(
                &component.kind.condition_type(),
                status,
                &reason,
                message,
                observed_generation,
            )
        })
        .collect();
    let ready = report.is_ready();
    let not_ready: Vec<&str> = report
        .components
        .iter()
        .filter(|c| c.state != ComponentState::Ready)
        .map(|c| c.kind.name())
        .collect();
    let (reason, message) = if ready {
        ("AllComponentsReady", "every component is ready".to_owned())
    } else {
        (
            "ComponentsNotReady",
            format!("not ready: {}", not_ready.join(", ")),
        )
    };
    conditions.insert(0, condition("Ready", ready, reason, message, observed_generation));
    for condition in &mut conditions {
        let since = previous_conditions
            .iter()
            .find(|old| old.type_ == condition.type_ && old.status == condition.status)
            .map(|old| old.last_transition_time.clone());
        condition.last_transition_time = since.unwrap_or(Time(now));
    }

    let phase = if report.terminal_error().is_some() {
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
    }
}

fn describe(component: &ComponentReport) -> (bool, String, String) {
    match &component.state {
        ComponentState::Ready => (true, "Ready".into(), format!("{} is ready", component.kind)),
        ComponentState::Waiting(why) => (false, "Provisioning".into(), why.clone()),
        ComponentState::ChangesPending => (
            false,
            "ChangesPending".into(),
            format!("{} changes pending", component.changes.len()),
        ),
        ComponentState::Failed(err) => (false, err.reason.clone(), err.message.clone()),
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
