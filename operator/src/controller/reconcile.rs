//! One reconcile of one ImagePipeline, and when the next one comes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::reflector::Store;
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::events::PipelineEvent;
use super::secrets::{self, SecretUse};
use super::services::{
    DesiredServices, INSTANCE_LABEL, ServicesHealth, desired_services, in_cluster_upload_url, services_health,
};
use super::{Context, Error, FIELD_MANAGER, FINALIZER, key};
use crate::api::v1alpha1::{ImagePipeline, ImagePipelineStatus, Phase};
use crate::engine::status::{ExtraCondition, Lifecycle, StatusContext, pipeline_status};
use crate::engine::{
    Action as ChangeAction, ComponentState, Engine, EngineError, ErrorKind, Owner, PassReport,
    PipelineContext,
};

/// Reconciles one pipeline: the finalizer first, then apply (or observe,
/// when paused) or, once deleted, cleanup.
pub async fn reconcile(pipeline: Arc<ImagePipeline>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    ctx.metrics.reconcile_started();
    let namespace = pipeline.namespace().unwrap_or_default();
    let api: Api<ImagePipeline> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = finalizer(&api, FINALIZER, pipeline.clone(), |event| async {
        match event {
            // The engine's futures are large: kept on the heap, not the stack.
            finalizer::Event::Apply(pipeline) => Box::pin(apply(&pipeline, &api, &ctx)).await,
            finalizer::Event::Cleanup(pipeline) => Box::pin(cleanup(&pipeline, &api, &ctx)).await,
        }
    })
    .await
    .map_err(|err| match err {
        finalizer::Error::ApplyFailed(err) | finalizer::Error::CleanupFailed(err) => err,
        other => Error::Finalizer(other.to_string()),
    });
    ctx.metrics.reconcile_finished(started.elapsed());
    match &result {
        Ok(_) => tracing::debug!(pipeline = key(&pipeline), "reconciled"),
        Err(Error::CleanupPending { message, .. }) => {
            tracing::info!(pipeline = key(&pipeline), message, "cleanup in progress");
        }
        Err(err) => {
            ctx.metrics.reconcile_failed(err.kind());
            tracing::warn!(pipeline = key(&pipeline), error = %err, "reconcile failed");
            let event = PipelineEvent::warning(err.event_reason(), "Reconcile", err.to_string());
            publish(&ctx, &pipeline, &[event]).await;
        }
    }
    result
}

/// When to come back after an error: soon while a cleanup progresses, with
/// growing, jittered delays per pipeline otherwise.
pub fn error_policy(pipeline: Arc<ImagePipeline>, error: &Error, ctx: Arc<Context>) -> Action {
    match error {
        Error::CleanupPending {
            next: NextPass::After(interval),
            ..
        } => Action::requeue(ctx.timing.interval(*interval)),
        Error::Engine(EngineError::Identity(err)) if err.kind == ErrorKind::Refused => {
            Action::requeue(ctx.timing.interval(Interval::Refused))
        }
        _ => Action::requeue(ctx.next_backoff(&pipeline)),
    }
}

async fn apply(pipeline: &ImagePipeline, api: &Api<ImagePipeline>, ctx: &Context) -> Result<Action, Error> {
    let paused = pipeline.spec.paused;
    let usage = if paused {
        SecretUse::Observe
    } else {
        SecretUse::Apply
    };
    let (engine, pipeline_ctx) = engine_for(pipeline, ctx, usage).await?;
    if paused {
        let report = Box::pin(engine.plan(&pipeline_ctx)).await;
        let status_ctx = StatusContext {
            lifecycle: Lifecycle::Paused,
            extra: vec![],
        };
        let status = status_after(pipeline, &report, &status_ctx);
        if was_not(pipeline, Phase::Paused) {
            let note = "spec.paused is true: AWS and the services are observed, not changed";
            publish(
                ctx,
                pipeline,
                &[PipelineEvent::normal("ReconciliationPaused", "Pause", note)],
            )
            .await;
        }
        write_status(api, pipeline, status, ctx).await?;
        ctx.reset_backoff(pipeline);
        return Ok(Action::requeue(ctx.timing.requeue_after));
    }

    let report = Box::pin(engine.apply(&pipeline_ctx)).await;
    let mut events = change_events(&report);
    events.extend(failure_events(pipeline, &report, "Reconcile"));
    publish(ctx, pipeline, &events).await;

    let (health, in_cluster_url) =
        match desired_services(pipeline, &pipeline_ctx, &report.outputs, &ctx.service_settings())
            .map_err(Error::Services)?
        {
            Some(desired) => (
                apply_services(pipeline, desired, ctx).await?,
                Some(in_cluster_upload_url(pipeline)),
            ),
            None => (
                ServicesHealth::waiting(
                    "WaitingForDependency",
                    "waiting for the bucket, table and delivery stream (Storage, Metadata, Delivery)",
                ),
                None,
            ),
        };
    let status_ctx = StatusContext {
        lifecycle: Lifecycle::Active,
        extra: vec![ExtraCondition {
            type_: "ServicesReady".to_owned(),
            ready: health.ready,
            reason: health.reason,
            message: health.message,
        }],
    };
    let mut status = status_after(pipeline, &report, &status_ctx);
    if let (Some(endpoints), Some(url)) = (status.endpoints.as_mut(), in_cluster_url) {
        endpoints.in_cluster_upload_url = Some(url);
    }
    let ready = status.phase == Some(Phase::Ready);
    write_status(api, pipeline, status, ctx).await?;

    match next_pass(&report, ready) {
        NextPass::Backoff => Ok(Action::requeue(ctx.next_backoff(pipeline))),
        NextPass::After(interval) => {
            ctx.reset_backoff(pipeline);
            Ok(Action::requeue(ctx.timing.interval(interval)))
        }
    }
}

/// When the next pass of a pipeline runs, from how this one ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextPass {
    /// AWS was unavailable or throttled us: growing, jittered delays.
    Backoff,
    After(Interval),
}

/// The fixed waits of [`super::Timing`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interval {
    /// Everything as specified, or a terminal error that waits for a spec
    /// change (which triggers a reconcile at once): only the drift check.
    Resync,
    /// AWS is still creating or deleting something.
    Progress,
    /// AWS refuses the caller (permission, quota): a person must act, so the
    /// call is not repeated in a loop.
    Refused,
}

/// Pure: what a pass's outcome means for the next one. Refusals outrank
/// retryable errors, so a denied call is never part of a backoff loop.
pub fn next_pass(report: &PassReport, ready: bool) -> NextPass {
    let failed_with = |kind: ErrorKind| {
        report
            .components
            .iter()
            .any(|c| matches!(&c.state, ComponentState::Failed(err) if err.kind == kind))
    };
    if failed_with(ErrorKind::Refused) {
        NextPass::After(Interval::Refused)
    } else if failed_with(ErrorKind::Retryable) {
        NextPass::Backoff
    } else if ready || failed_with(ErrorKind::Terminal) {
        NextPass::After(Interval::Resync)
    } else {
        NextPass::After(Interval::Progress)
    }
}

async fn cleanup(pipeline: &ImagePipeline, api: &Api<ImagePipeline>, ctx: &Context) -> Result<Action, Error> {
    if pipeline.spec.paused {
        let message = "spec.paused is true, so the AWS resources are left as they are and the finalizer \
                       stays; set spec.paused to false to let the cleanup run";
        if was_not(pipeline, Phase::Deleting) {
            publish(
                ctx,
                pipeline,
                &[PipelineEvent::warning("CleanupPaused", "Cleanup", message)],
            )
            .await;
        }
        let report = PassReport::default();
        let mut status = status_after(
            pipeline,
            &report,
            &StatusContext {
                lifecycle: Lifecycle::Deleting,
                extra: vec![],
            },
        );
        status.conditions.retain(|c| c.type_ == "Ready");
        if let Some(ready) = status.conditions.first_mut() {
            ready.reason = "CleanupPaused".to_owned();
            ready.message = message.to_owned();
        }
        status.conditions.extend(
            pipeline
                .status
                .iter()
                .flat_map(|s| s.conditions.iter())
                .filter(|c| c.type_ != "Ready")
                .cloned(),
        );
        write_status(api, pipeline, status, ctx).await?;
        return Err(Error::CleanupPending {
            message: message.to_owned(),
            next: NextPass::Backoff,
        });
    }

    let (engine, pipeline_ctx) = engine_for(pipeline, ctx, SecretUse::Delete).await?;
    let report = Box::pin(engine.destroy(&pipeline_ctx)).await;
    let mut events = change_events(&report);
    let failures = failure_events(pipeline, &report, "Cleanup");
    let next = if failures.is_empty() {
        NextPass::After(Interval::Progress)
    } else {
        match next_pass(&report, false) {
            // A terminal error stays until the spec changes; retry it like
            // any other blocked cleanup.
            NextPass::After(Interval::Resync) => NextPass::Backoff,
            next => next,
        }
    };
    events.extend(failures.into_iter().map(|mut event| {
        event.reason = "CleanupBlocked".to_owned();
        event
    }));
    let removed = report.is_removed();
    if removed {
        events.push(PipelineEvent::normal(
            "CleanedUp",
            "Cleanup",
            "every AWS resource of the pipeline is removed (or retained, as deletionPolicy says)",
        ));
    }
    publish(ctx, pipeline, &events).await;
    let status = status_after(
        pipeline,
        &report,
        &StatusContext {
            lifecycle: Lifecycle::Deleting,
            extra: vec![],
        },
    );
    let message = status
        .conditions
        .first()
        .map(|ready| ready.message.clone())
        .unwrap_or_default();
    write_status(api, pipeline, status, ctx).await?;
    if removed {
        ctx.metrics.set_phase(key(pipeline), None);
        ctx.reset_backoff(pipeline);
        // The Kubernetes objects go with the pipeline: they are its dependents.
        Ok(Action::await_change())
    } else {
        Err(Error::CleanupPending { message, next })
    }
}

/// The engine for the pipeline's region, and its context with the Secrets
/// the spec points at.
async fn engine_for(
    pipeline: &ImagePipeline,
    ctx: &Context,
    usage: SecretUse,
) -> Result<(Engine, PipelineContext), Error> {
    let engine = crate::pipeline::engine(ctx.aws.clients_for(&pipeline.spec.region)?);
    let owner = Owner {
        namespace: pipeline.namespace().unwrap_or_default(),
        name: pipeline.name_any(),
    };
    let mut pipeline_ctx = engine.context(owner, pipeline.spec.clone()).await?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &pipeline_ctx.owner.namespace);
    secrets::resolve(&secrets, pipeline, &mut pipeline_ctx, usage).await?;
    Ok((engine, pipeline_ctx))
}

fn status_after(
    pipeline: &ImagePipeline,
    report: &PassReport,
    status_ctx: &StatusContext,
) -> ImagePipelineStatus {
    // The API server keeps whole seconds; so do we, so that an unchanged
    // status compares equal to the stored one.
    let now = Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH);
    pipeline_status(
        report,
        status_ctx,
        pipeline.status.as_ref(),
        pipeline.metadata.generation,
        now,
    )
}

fn was_not(pipeline: &ImagePipeline, phase: Phase) -> bool {
    pipeline.status.as_ref().and_then(|s| s.phase) != Some(phase)
}

/// Writes the status with server-side apply, and only when it changed.
async fn write_status(
    api: &Api<ImagePipeline>,
    pipeline: &ImagePipeline,
    status: ImagePipelineStatus,
    ctx: &Context,
) -> Result<(), Error> {
    ctx.metrics.set_phase(key(pipeline), status.phase);
    if pipeline.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let patch = json!({
        "apiVersion": ImagePipeline::api_version(&()),
        "kind": ImagePipeline::kind(&()),
        "status": status,
    });
    api.patch_status(
        &pipeline.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|source| {
        Error::kube(
            format!("update the status of ImagePipeline {}", key(pipeline)),
            source,
        )
    })?;
    Ok(())
}

/// Applies the services' objects, removes the ones no longer wanted, and
/// reports how far the Deployments have rolled out.
async fn apply_services(
    pipeline: &ImagePipeline,
    desired: DesiredServices,
    ctx: &Context,
) -> Result<ServicesHealth, Error> {
    let namespace = pipeline.namespace().unwrap_or_default();
    let config_maps = Api::<ConfigMap>::namespaced(ctx.client.clone(), &namespace);
    let service_accounts = Api::<ServiceAccount>::namespaced(ctx.client.clone(), &namespace);
    let deployments = Api::<Deployment>::namespaced(ctx.client.clone(), &namespace);
    let services = Api::<Service>::namespaced(ctx.client.clone(), &namespace);
    let budgets = Api::<PodDisruptionBudget>::namespaced(ctx.client.clone(), &namespace);
    let wanted_deployments: Vec<&Deployment> = std::iter::once(&desired.upload_deployment)
        .chain(desired.bridge_deployment.as_ref())
        .collect();
    let wanted_budgets: Vec<&PodDisruptionBudget> = desired.disruption_budgets.iter().collect();

    server_side_apply(&config_maps, &desired.config_map).await?;
    server_side_apply(&service_accounts, &desired.service_account).await?;
    let mut applied = Vec::new();
    for deployment in &wanted_deployments {
        applied.push(server_side_apply(&deployments, deployment).await?);
    }
    server_side_apply(&services, &desired.upload_service).await?;
    for budget in &wanted_budgets {
        server_side_apply(&budgets, budget).await?;
    }

    // Dependents first, so that nothing is left pointing at a removed object.
    remove_unwanted(
        pipeline,
        &ctx.owned.deployments,
        &deployments,
        &wanted_deployments,
    )
    .await?;
    remove_unwanted(pipeline, &ctx.owned.disruption_budgets, &budgets, &wanted_budgets).await?;
    remove_unwanted(
        pipeline,
        &ctx.owned.services,
        &services,
        &[&desired.upload_service],
    )
    .await?;
    remove_unwanted(
        pipeline,
        &ctx.owned.config_maps,
        &config_maps,
        &[&desired.config_map],
    )
    .await?;
    remove_unwanted(
        pipeline,
        &ctx.owned.service_accounts,
        &service_accounts,
        &[&desired.service_account],
    )
    .await?;
    Ok(services_health(&applied.iter().collect::<Vec<_>>()))
}

async fn server_side_apply<K>(api: &Api<K>, object: &K) -> Result<K, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let name = object.name_any();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(|source| Error::kube(format!("apply {} {name}", K::kind(&())), source))
}

/// Deletes objects of this pipeline (by owner uid) that the watch has seen
/// and that are no longer wanted, such as a PodDisruptionBudget after the
/// replicas went below two.
async fn remove_unwanted<K>(
    pipeline: &ImagePipeline,
    store: &Store<K>,
    api: &Api<K>,
    wanted: &[&K],
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let uid = pipeline.uid();
    let name = pipeline.name_any();
    let namespace = pipeline.namespace();
    for object in store.state() {
        let ours = object.namespace() == namespace
            && object.labels().get(INSTANCE_LABEL) == Some(&name)
            && object
                .owner_references()
                .iter()
                .any(|o| Some(&o.uid) == uid.as_ref());
        if !ours || wanted.iter().any(|w| w.name_any() == object.name_any()) {
            continue;
        }
        let object_name = object.name_any();
        match api.delete(&object_name, &DeleteParams::background()).await {
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => {
                return Err(Error::kube(
                    format!("delete {} {object_name}", K::kind(&())),
                    source,
                ));
            }
            Ok(_) => {
                tracing::info!(pipeline = key(pipeline), kind = %K::kind(&()), name = object_name, "removed an object no longer wanted");
            }
        }
    }
    Ok(())
}

/// One event per component and kind of change, naming each resource.
fn change_events(report: &PassReport) -> Vec<PipelineEvent> {
    let mut grouped: BTreeMap<(usize, ChangeAction), Vec<&str>> = BTreeMap::new();
    for (index, component) in report.components.iter().enumerate() {
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

/// A warning per failing component whose condition says something new, so
/// that a retry that fails the same way adds no event.
fn failure_events(pipeline: &ImagePipeline, report: &PassReport, action: &str) -> Vec<PipelineEvent> {
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

/// Events are for people; a failure to publish one is logged, not fatal.
async fn publish(ctx: &Context, pipeline: &ImagePipeline, events: &[PipelineEvent]) {
    for event in events {
        if let Err(err) = ctx.events.publish(pipeline, event).await {
            tracing::warn!(pipeline = key(pipeline), reason = event.reason, error = %err, "cannot publish an event");
        }
    }
}

#[cfg(test)]
mod next_pass_tests {
    use super::*;
    use crate::engine::{ComponentError, ComponentKind, ComponentReport};

    fn report(states: Vec<ComponentState>) -> PassReport {
        PassReport {
            components: states
                .into_iter()
                .zip(ComponentKind::ALL)
                .map(|(state, kind)| ComponentReport {
                    kind,
                    state,
                    changes: vec![],
                })
                .collect(),
            ..PassReport::default()
        }
    }

    fn failed(kind: ErrorKind) -> ComponentState {
        ComponentState::Failed(ComponentError::new(kind, "Reason", "message"))
    }

    #[test]
    fn a_refused_call_waits_for_the_long_recheck_even_beside_a_retryable_failure() {
        let refused = report(vec![failed(ErrorKind::Retryable), failed(ErrorKind::Refused)]);
        assert_eq!(next_pass(&refused, false), NextPass::After(Interval::Refused));
        assert_eq!(
            super::super::Timing::default().interval(Interval::Refused),
            std::time::Duration::from_secs(600)
        );
    }

    #[test]
    fn retryable_failures_back_off_terminal_ones_wait_for_a_change_and_progress_is_polled() {
        assert_eq!(
            next_pass(&report(vec![failed(ErrorKind::Retryable)]), false),
            NextPass::Backoff
        );
        assert_eq!(
            next_pass(&report(vec![failed(ErrorKind::Terminal)]), false),
            NextPass::After(Interval::Resync)
        );
        assert_eq!(
            next_pass(&report(vec![ComponentState::Waiting("cluster".into())]), false),
            NextPass::After(Interval::Progress)
        );
        assert_eq!(
            next_pass(&report(vec![ComponentState::Ready]), true),
            NextPass::After(Interval::Resync)
        );
    }
}
