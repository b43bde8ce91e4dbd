//! Kubernetes Events about a pipeline: one per AWS change the engine made,
//! one per component that fails, as `kubectl describe ipl` shows them.
//!
//! kube-runtime's `Recorder` folds every event with the same reason and action
//! into a series that keeps the first event's note; our notes name different
//! resources under the same reason ("Created"), so each is published as its
//! own event.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client, Resource};

use super::{Context, key};
use crate::api::v1alpha1::{ImagePipeline, ImagePipelineStatus};
use crate::cost;
use crate::engine::status::drift_fields;
use crate::engine::{Action as ChangeAction, Change, ComponentKind, ComponentState, PassReport};

/// `reportingController` of every event.
pub const REPORTING_CONTROLLER: &str = "imagepipeline.io/operator";
/// The API caps an event's note at 1 kB.
const MAX_NOTE_BYTES: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Normal,
    Warning,
}

/// One event to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineEvent {
    pub severity: Severity,
    /// CamelCase, e.g. `Created`, `BucketOwnedByAnotherPipeline`.
    pub reason: String,
    /// CamelCase verb, e.g. `Create`, `Reconcile`, `Cleanup`.
    pub action: String,
    pub note: String,
}

impl PipelineEvent {
    pub fn normal(reason: &str, action: &str, note: impl Into<String>) -> Self {
        Self::new(Severity::Normal, reason, action, note)
    }

    pub fn warning(reason: &str, action: &str, note: impl Into<String>) -> Self {
        Self::new(Severity::Warning, reason, action, note)
    }

    fn new(severity: Severity, reason: &str, action: &str, note: impl Into<String>) -> Self {
        Self {
            severity,
            reason: reason.to_owned(),
            action: action.to_owned(),
            note: note.into(),
        }
    }
}

/// Publishes events as this operator instance.
#[derive(Clone)]
pub struct EventPublisher {
    client: Client,
    instance: String,
}

impl EventPublisher {
    pub fn new(client: Client, instance: impl Into<String>) -> Self {
        Self {
            client,
            instance: instance.into(),
        }
    }

    pub async fn publish(&self, pipeline: &ImagePipeline, event: &PipelineEvent) -> Result<(), kube::Error> {
        let regarding = pipeline.object_ref(&());
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        api.create(
            &PostParams::default(),
            &self.render(&regarding, event, Timestamp::now()),
        )
        .await
        .map(drop)
    }

    fn render(&self, regarding: &ObjectReference, event: &PipelineEvent, now: Timestamp) -> Event {
        let name = regarding.name.clone().unwrap_or_default();
        Event {
            metadata: ObjectMeta {
                name: Some(format!("{name}.{:x}", now.as_nanosecond())),
                namespace: regarding.namespace.clone(),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some(
                match event.severity {
                    Severity::Normal => "Normal",
                    Severity::Warning => "Warning",
                }
                .to_owned(),
            ),
            reason: Some(event.reason.clone()),
            action: Some(event.action.clone()),
            note: Some(truncate(&event.note, MAX_NOTE_BYTES)),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(REPORTING_CONTROLLER.to_owned()),
            reporting_instance: Some(self.instance.clone()),
            ..Event::default()
        }
    }
}

/// One event per component and kind of change, naming each resource;
/// the components in `drifted` are told by [`drift_events`] instead.
pub(super) fn change_events(report: &PassReport, drifted: &[ComponentKind]) -> Vec<PipelineEvent> {
    let mut grouped: BTreeMap<(usize, ChangeAction), Vec<&str>> = BTreeMap::new();
    for (index, component) in report.components.iter().enumerate() {
        if drifted.contains(&component.kind) {
            continue;
        }
        for change in &component.changes {
            grouped
                .entry((index, change.action))
                .or_default()
                .push(&change.resource);
        }
    }
    grouped
        .into_iter()
        .map(|((index, action), resources)| {
            let (reason, verb) = match action {
                ChangeAction::Create => ("Created", "Create"),
                ChangeAction::Update => ("Updated", "Update"),
                ChangeAction::Delete => ("Deleted", "Delete"),
            };
            let component = report.components[index].kind;
            PipelineEvent::normal(reason, verb, format!("{component}: {}", resources.join("; ")))
        })
        .collect()
}

/// One `DriftCorrected` event per component whose resources were put back
/// as the spec says, naming each resource and what was corrected.
pub(super) fn drift_events(drift: &[(ComponentKind, &Change)]) -> Vec<PipelineEvent> {
    let mut grouped: BTreeMap<ComponentKind, Vec<String>> = BTreeMap::new();
    for (kind, change) in drift {
        grouped.entry(*kind).or_default().push(format!(
            "{} ({})",
            change.resource,
            drift_fields(change).join(", ")
        ));
    }
    grouped
        .into_iter()
        .map(|(kind, corrected)| {
            PipelineEvent::normal(
                "DriftCorrected",
                "Reconcile",
                format!(
                    "{kind}: put back as the spec says after a change outside the operator: {}",
                    corrected.join("; ")
                ),
            )
        })
        .collect()
}

/// A warning per failing component whose condition says something new, so
/// that a retry that fails the same way adds no event.
pub(super) fn failure_events(
    pipeline: &ImagePipeline,
    report: &PassReport,
    action: &str,
) -> Vec<PipelineEvent> {
    let previous = pipeline
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    report
        .components
        .iter()
        .filter_map(|component| match &component.state {
            ComponentState::Failed(err) => {
                let type_ = component.kind.condition_type();
                let known = previous
                    .iter()
                    .any(|c| c.type_ == type_ && c.reason == err.reason && c.message == err.message);
                (!known).then(|| {
                    PipelineEvent::warning(
                        &err.reason,
                        action,
                        format!("{}: {}", component.kind, err.message),
                    )
                })
            }
            _ => None,
        })
        .collect()
}

/// A Normal event when the new status's cost estimate is more than
/// [`cost::SHARP_RISE`] above the one the pipeline had, with both figures.
pub(super) fn cost_rise_event(
    previous: Option<&ImagePipelineStatus>,
    next: &ImagePipelineStatus,
) -> Option<PipelineEvent> {
    let before = previous?.estimated_monthly_cost.as_ref()?;
    let after = next.estimated_monthly_cost.as_ref()?;
    cost::raised_sharply(before, after).then(|| {
        let partial = if after.partial {
            " (partial: some items have no price and are not counted)"
        } else {
            ""
        };
        PipelineEvent::normal(
            "EstimatedCostRaised",
            "Reconcile",
            format!(
                "the estimated monthly cost of the fixed resources rises from {} {} to {} {}{partial}, \
                 at on-demand list prices as of {}",
                before.currency, before.amount, after.currency, after.amount, after.prices_as_of
            ),
        )
    })
}

/// Events are for people; a failure to publish one is logged, not fatal.
pub(super) async fn publish(ctx: &Context, pipeline: &ImagePipeline, events: &[PipelineEvent]) {
    for event in events {
        if let Err(err) = ctx.events.publish(pipeline, event).await {
            tracing::warn!(pipeline = key(pipeline), reason = event.reason, error = %err, "cannot publish an event");
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::v1alpha1::EstimatedMonthlyCost;

    fn costing(amount: &str, partial: bool) -> ImagePipelineStatus {
        ImagePipelineStatus {
            estimated_monthly_cost: Some(EstimatedMonthlyCost {
                amount: amount.into(),
                currency: "USD".into(),
                partial,
                unpriced: vec![],
                prices_as_of: "2024-07-01".into(),
            }),
            ..ImagePipelineStatus::default()
        }
    }

    #[test]
    fn a_cost_rise_of_more_than_a_fifth_is_a_normal_event_with_both_figures() {
        let event = cost_rise_event(Some(&costing("300.00", false)), &costing("420.50", false))
            .expect("+40 % is announced");
        assert_eq!(event.severity, Severity::Normal);
        assert_eq!(event.reason, "EstimatedCostRaised");
        assert_eq!(
            event.note,
            "the estimated monthly cost of the fixed resources rises from USD 300.00 to USD 420.50, \
             at on-demand list prices as of 2024-07-01"
        );
        let partial = cost_rise_event(Some(&costing("300.00", false)), &costing("900.00", true)).unwrap();
        assert!(partial.note.contains("(partial: "), "{}", partial.note);

        assert_eq!(
            cost_rise_event(Some(&costing("300.00", false)), &costing("360.00", false)),
            None,
            "+20 % is not more than 20 %"
        );
        assert_eq!(
            cost_rise_event(None, &costing("420.50", false)),
            None,
            "a first estimate"
        );
        assert_eq!(
            cost_rise_event(Some(&ImagePipelineStatus::default()), &costing("420.50", false)),
            None,
            "a status from before estimates"
        );
    }

    #[test]
    fn notes_are_cut_to_the_api_limit_on_a_character_boundary() {
        assert_eq!(truncate("short", 1024), "short");
        let long = "é".repeat(600);
        let cut = truncate(&long, 1024);
        assert!(cut.len() <= 1024 && cut.ends_with('…'), "{}", cut.len());
    }
}
