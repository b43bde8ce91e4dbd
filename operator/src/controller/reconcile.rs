//! One reconcile of one ImagePipeline, as named steps (the shape of the
//! Stackable operators' reconcile):
//!
//! 1. `dereference`: the engine for the pipeline's region and the Secrets
//!    the spec references;
//! 2. the AWS pass: one engine pass and the events it gives, drift it
//!    corrected among them (`aws_pass`; `aws_observation` when paused,
//!    `aws_teardown` once deleted);
//! 3. `services`: the in-cluster services applied, unwanted objects
//!    removed, their rollout judged;
//! 4. `update_status`: the status, computed in one place (`status`) and
//!    written when it changed;
//! 5. `come_back`: when the next reconcile runs.

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{self, finalizer};
use kube::{Api, ResourceExt};

use super::events::{PipelineEvent, change_events, cost_rise_event, drift_events, failure_events, publish};
pub use super::requeue::{Interval, NextPass, error_policy, next_pass};
use super::requeue::{come_back, next_cleanup_pass};
use super::secrets::{self, SecretUse};
use super::services::{ServicesHealth, apply_services, desired_services, in_cluster_upload_url};
use super::status::{CLEANUP_PAUSED, ServicesStatus, Stage, pipeline_status_of, was_not, write_status};
use super::{Context, Error, FINALIZER, key};
use crate::api::v1alpha1::{ImagePipeline, ImagePipelineStatus, Phase};
use crate::engine::status::drift_corrections;
use crate::engine::{ComponentKind, Engine, Owner, PassReport, PipelineContext};

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
    ctx.metrics.reconcile_ended(started.elapsed(), &result);
    match &result {
        Ok(_) => tracing::debug!(pipeline = key(&pipeline), "reconciled"),
        Err(Error::CleanupPending { message, .. }) => {
            tracing::info!(pipeline = key(&pipeline), message, "cleanup in progress");
        }
        Err(err) => {
            tracing::warn!(pipeline = key(&pipeline), error = %err, "reconcile failed");
            let event = PipelineEvent::warning(err.event_reason(), "Reconcile", err.to_string());
            publish(&ctx, &pipeline, &[event]).await;
        }
    }
    result
}

/// Converges AWS and the services towards the spec.
async fn apply(pipeline: &ImagePipeline, api: &Api<ImagePipeline>, ctx: &Context) -> Result<Action, Error> {
    if pipeline.spec.paused {
        return observe(pipeline, api, ctx).await;
    }
    let (engine, pipeline_ctx) = dereference(pipeline, ctx, SecretUse::Apply).await?;
    let report = aws_pass(ctx, pipeline, &engine, &pipeline_ctx).await;
    let services = services(pipeline, &pipeline_ctx, &report, ctx).await?;
    let status = update_status(api, pipeline, &report, &Stage::Active(&services), ctx).await?;
    Ok(come_back(ctx, pipeline, next_pass(&report, is_ready(&status))))
}

/// `spec.paused`: AWS is observed and reported, nothing is changed, the
/// services are left as they are.
async fn observe(pipeline: &ImagePipeline, api: &Api<ImagePipeline>, ctx: &Context) -> Result<Action, Error> {
    let (engine, pipeline_ctx) = dereference(pipeline, ctx, SecretUse::Observe).await?;
    let report = aws_observation(ctx, pipeline, &engine, &pipeline_ctx).await;
    update_status(api, pipeline, &report, &Stage::Paused, ctx).await?;
    Ok(come_back(ctx, pipeline, NextPass::After(Interval::Resync)))
}

/// Tears the AWS resources down; the finalizer goes once they are gone.
/// The Kubernetes objects go with the pipeline: they are its dependents.
async fn cleanup(pipeline: &ImagePipeline, api: &Api<ImagePipeline>, ctx: &Context) -> Result<Action, Error> {
    if pipeline.spec.paused {
        return hold_cleanup(pipeline, api, ctx).await;
    }
    let (engine, pipeline_ctx) = dereference(pipeline, ctx, SecretUse::Delete).await?;
    let (report, next) = aws_teardown(ctx, pipeline, &engine, &pipeline_ctx).await;
    let status = update_status(api, pipeline, &report, &Stage::Deleting, ctx).await?;
    if report.is_removed() {
        forget(ctx, pipeline);
        Ok(Action::await_change())
    } else {
        Err(Error::CleanupPending {
            message: ready_message(&status),
            next,
        })
    }
}

/// A deleted pipeline with `spec.paused`: nothing is torn down and the
/// finalizer stays until the pause is lifted.
async fn hold_cleanup(
    pipeline: &ImagePipeline,
    api: &Api<ImagePipeline>,
    ctx: &Context,
) -> Result<Action, Error> {
    if was_not(pipeline, Phase::Deleting) {
        let event = PipelineEvent::warning("CleanupPaused", "Cleanup", CLEANUP_PAUSED);
        publish(ctx, pipeline, &[event]).await;
    }
    update_status(api, pipeline, &PassReport::default(), &Stage::DeletionPaused, ctx).await?;
    Err(Error::CleanupPending {
        message: CLEANUP_PAUSED.to_owned(),
        next: NextPass::Backoff,
    })
}

/// Step 1: what the spec references. The engine for the pipeline's region
/// with its account, and the Secrets the spec names, as `usage` allows.
async fn dereference(
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

/// Step 2, converging: AWS made as specified; an event per change made and
/// per new failure.
async fn aws_pass(
    ctx: &Context,
    pipeline: &ImagePipeline,
    engine: &Engine,
    pipeline_ctx: &PipelineContext,
) -> PassReport {
    let report = Box::pin(engine.apply(pipeline_ctx)).await;
    let drift = drift_corrections(&report, pipeline.status.as_ref(), pipeline.metadata.generation);
    let mut drifted: Vec<ComponentKind> = drift.iter().map(|(kind, _)| *kind).collect();
    drifted.dedup();
    for kind in &drifted {
        let count = drift.iter().filter(|(k, _)| k == kind).count();
        ctx.metrics
            .drift_corrected(kind.name(), u64::try_from(count).unwrap_or(u64::MAX));
    }
    let mut events = change_events(&report, &drifted);
    events.extend(drift_events(&drift));
    events.extend(failure_events(pipeline, &report, "Reconcile"));
    publish(ctx, pipeline, &events).await;
    report
}

/// Step 2, paused: AWS compared with the spec, nothing changed; one event
/// when the pause begins.
async fn aws_observation(
    ctx: &Context,
    pipeline: &ImagePipeline,
    engine: &Engine,
    pipeline_ctx: &PipelineContext,
) -> PassReport {
    let report = Box::pin(engine.plan(pipeline_ctx)).await;
    if was_not(pipeline, Phase::Paused) {
        let note = "spec.paused is true: AWS and the services are observed, not changed";
        let event = PipelineEvent::normal("ReconciliationPaused", "Pause", note);
        publish(ctx, pipeline, &[event]).await;
    }
    report
}

/// Step 2, deleted: AWS torn down; an event per removal, a `CleanupBlocked`
/// warning per new failure, `CleanedUp` at the end. Also when an unfinished
/// cleanup comes back, which depends on whether it failed anew.
async fn aws_teardown(
    ctx: &Context,
    pipeline: &ImagePipeline,
    engine: &Engine,
    pipeline_ctx: &PipelineContext,
) -> (PassReport, NextPass) {
    let report = Box::pin(engine.destroy(pipeline_ctx)).await;
    let mut events = change_events(&report, &[]);
    let failures = failure_events(pipeline, &report, "Cleanup");
    let next = next_cleanup_pass(&report, !failures.is_empty());
    events.extend(failures.into_iter().map(|mut event| {
        event.reason = "CleanupBlocked".to_owned();
        event
    }));
    if report.is_removed() {
        events.push(PipelineEvent::normal(
            "CleanedUp",
            "Cleanup",
            "every AWS resource of the pipeline is removed (or retained, as deletionPolicy says)",
        ));
    }
    publish(ctx, pipeline, &events).await;
    (report, next)
}

/// Step 3: the services' objects, once the bucket, table and delivery
/// stream they write to exist.
async fn services(
    pipeline: &ImagePipeline,
    pipeline_ctx: &PipelineContext,
    report: &PassReport,
    ctx: &Context,
) -> Result<ServicesStatus, Error> {
    let desired = desired_services(pipeline, pipeline_ctx, &report.outputs, &ctx.service_settings())
        .map_err(Error::Services)?;
    Ok(match desired {
        Some(desired) => ServicesStatus {
            health: apply_services(pipeline, desired, ctx).await?,
            in_cluster_upload_url: Some(in_cluster_upload_url(pipeline)),
        },
        None => ServicesStatus {
            health: ServicesHealth::waiting(
                "WaitingForDependency",
                "waiting for the bucket, table and delivery stream (Storage, Metadata, Delivery)",
            ),
            in_cluster_upload_url: None,
        },
    })
}

/// Step 4: the status of this reconcile, written when it changed.
async fn update_status(
    api: &Api<ImagePipeline>,
    pipeline: &ImagePipeline,
    report: &PassReport,
    stage: &Stage<'_>,
    ctx: &Context,
) -> Result<ImagePipelineStatus, Error> {
    let status = pipeline_status_of(pipeline, report, stage);
    write_status(api, pipeline, &status, ctx).await?;
    if let Some(event) = cost_rise_event(pipeline.status.as_ref(), &status) {
        publish(ctx, pipeline, &[event]).await;
    }
    Ok(status)
}

fn is_ready(status: &ImagePipelineStatus) -> bool {
    status.phase == Some(Phase::Ready)
}

/// The `Ready` condition's message: what a deletion waits for.
fn ready_message(status: &ImagePipelineStatus) -> String {
    status
        .conditions
        .first()
        .map(|ready| ready.message.clone())
        .unwrap_or_default()
}

/// A pipeline whose cleanup finished leaves no series and no backoff behind.
fn forget(ctx: &Context, pipeline: &ImagePipeline) {
    ctx.metrics.forget_pipeline(key(pipeline));
    ctx.reset_backoff(pipeline);
}
