//! The `plan`, `apply` and `destroy` commands: the engine driven from a
//! terminal instead of the controller.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::api::v1alpha1::{ImagePipeline, ImagePipelineStatus};
use crate::aws::{AwsClients, AwsConfigError, CallLog};
use crate::backoff::Backoff;
use crate::controller::Error as ControllerError;
use crate::controller::secrets::{self, SecretSource, SecretUse};
use crate::cost;
use crate::engine::status::{StatusContext, pipeline_status};
use crate::engine::{ComponentState, Engine, EngineError, Owner, PassReport, PipelineContext};

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    AwsConfig(#[from] AwsConfigError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Secret(#[from] ControllerError),
    #[error("{pipeline}: {component} cannot converge: {message} (reason {reason}); {then}")]
    Terminal {
        pipeline: String,
        component: String,
        reason: String,
        message: String,
        /// What to do before running again.
        then: &'static str,
    },
    #[error("{pipeline}: not {goal} after {waited}; last state: {state}")]
    Timeout {
        pipeline: String,
        goal: &'static str,
        waited: String,
        state: String,
    },
    #[error("cannot write the output: {0}")]
    Output(#[from] io::Error),
}

/// How `apply` prints the final status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Yaml,
    Json,
}

/// An engine for one pipeline: clients for its region and its context, with
/// the Secrets the spec names taken from the manifest's `secrets`.
pub async fn engine_for(
    pipeline: &ImagePipeline,
    secrets: &[Secret],
    usage: SecretUse,
    calls: CallLog,
) -> Result<(Engine, PipelineContext), CliError> {
    let source = ManifestSecrets {
        namespace: pipeline.namespace().unwrap_or_default(),
        secrets,
    };
    engine_with(pipeline, &source, usage, calls).await
}

/// An engine for one pipeline, with the Secrets the spec names read from
/// `source` (the cluster, for `kubectl ipl plan`).
pub async fn engine_with(
    pipeline: &ImagePipeline,
    source: &impl SecretSource,
    usage: SecretUse,
    calls: CallLog,
) -> Result<(Engine, PipelineContext), CliError> {
    let (engine, mut ctx) = context_for(pipeline, calls).await?;
    secrets::resolve(source, pipeline, &mut ctx, usage).await?;
    Ok((engine, ctx))
}

/// An engine for one pipeline and its context, without the Secrets: enough
/// for what depends only on the spec and the account (names, ARNs).
pub async fn context_for(
    pipeline: &ImagePipeline,
    calls: CallLog,
) -> Result<(Engine, PipelineContext), CliError> {
    let aws = AwsClients::from_environment(&pipeline.spec.region, calls).await?;
    let engine = crate::pipeline::engine(aws);
    let owner = Owner {
        namespace: pipeline.namespace().unwrap_or_default(),
        name: pipeline.name_any(),
    };
    let ctx = engine.context(owner, pipeline.spec.clone()).await?;
    Ok((engine, ctx))
}

/// The Secrets of a manifest file, where the CLI finds what the spec names.
struct ManifestSecrets<'a> {
    namespace: String,
    secrets: &'a [Secret],
}

impl SecretSource for ManifestSecrets<'_> {
    async fn get(&self, name: &str) -> Result<Option<Secret>, ControllerError> {
        Ok(self
            .secrets
            .iter()
            .find(|s| {
                s.metadata.name.as_deref() == Some(name)
                    && s.metadata.namespace.as_deref() == Some(&self.namespace)
            })
            .cloned())
    }

    async fn create(&self, secret: &Secret) -> Result<(), ControllerError> {
        // The CLI reads with `Observe` and `Delete`, which never generate.
        Err(ControllerError::missing_secret(
            "spec.uploadApi.apiKeysSecretRef",
            &self.namespace,
            &secret.name_any(),
            "cannot be made by the CLI",
        ))
    }

    fn absent(&self) -> &'static str {
        "is not in the manifest file: add it there as a document of kind Secret (with `stringData`), \
         or apply the pipeline with the controller"
    }
}

fn label(ctx: &PipelineContext) -> String {
    ctx.owner.tag_value()
}

/// `plan`: prints the changes; returns whether there are any.
pub async fn plan(
    pipeline: &ImagePipeline,
    secrets: &[Secret],
    out: &mut impl Write,
) -> Result<bool, CliError> {
    let source = ManifestSecrets {
        namespace: pipeline.namespace().unwrap_or_default(),
        secrets,
    };
    plan_with(pipeline, &source, out).await
}

/// `plan` of a pipeline whose Secrets are read from `source`.
pub async fn plan_with(
    pipeline: &ImagePipeline,
    source: &impl SecretSource,
    out: &mut impl Write,
) -> Result<bool, CliError> {
    let (engine, ctx) = engine_with(pipeline, source, SecretUse::Observe, CallLog::new()).await?;
    let report = engine.plan(&ctx).await;
    out.write_all(render_plan(&ctx, &report).as_bytes())?;
    fail_on_terminal_error(&ctx, &report)?;
    Ok(report.changes().next().is_some())
}

pub fn render_plan(ctx: &PipelineContext, report: &PassReport) -> String {
    let mut text = format!(
        "ImagePipeline {} in {} (account {}):\n",
        label(ctx),
        ctx.region(),
        ctx.account_id
    );
    let mut counts = [0usize; 3];
    for component in &report.components {
        if component.changes.is_empty() {
            let note = match &component.state {
                ComponentState::Failed(err) => format!("cannot plan: {}", err.message),
                _ => "no changes".to_owned(),
            };
            let _ = writeln!(text, "  {:<10} {note}", component.kind.name());
            continue;
        }
        for (index, change) in component.changes.iter().enumerate() {
            let name = if index == 0 { component.kind.name() } else { "" };
            let _ = writeln!(
                text,
                "  {name:<10} {} {} {}",
                change.action.symbol(),
                change.action.verb(),
                change.resource
            );
            for field in &change.fields {
                let _ = writeln!(text, "  {:<10}     {field}", "");
            }
            counts[change.action as usize] += 1;
        }
    }
    let _ = writeln!(
        text,
        "Plan: {} to create, {} to update, {} to delete.",
        counts[0], counts[1], counts[2]
    );
    text.push_str(&cost::plan_text(&cost::estimate(&ctx.spec, cost::aws_prices())));
    text
}

/// `apply`: passes until every component is ready, a terminal error, or the
/// timeout. Progress goes to `progress`; the returned status is the last one.
pub async fn apply(
    pipeline: &ImagePipeline,
    secrets: &[Secret],
    timeout: Duration,
    progress: &mut impl Write,
) -> Result<ImagePipelineStatus, CliError> {
    let mut status: Option<ImagePipelineStatus> = None;
    repeat_passes(pipeline, secrets, Verb::Apply, timeout, progress, |report| {
        let generation = pipeline.metadata.generation;
        let mut next = pipeline_status(
            report,
            &StatusContext::default(),
            status.as_ref(),
            generation,
            Timestamp::now(),
        );
        next.estimated_monthly_cost = Some(cost::estimate(&pipeline.spec, cost::aws_prices()).status());
        status = Some(next);
    })
    .await?;
    Ok(status.unwrap_or_default())
}

/// `destroy`: passes until everything is gone (or retained), a terminal
/// error, or the timeout.
pub async fn destroy(
    pipeline: &ImagePipeline,
    secrets: &[Secret],
    timeout: Duration,
    progress: &mut impl Write,
) -> Result<(), CliError> {
    repeat_passes(pipeline, secrets, Verb::Destroy, timeout, progress, |_| {}).await
}

#[derive(Clone, Copy)]
enum Verb {
    Apply,
    Destroy,
}

/// Runs passes of `verb`, pausing with backoff between them, until it is
/// done, a terminal error, or the timeout; `each` sees every pass.
async fn repeat_passes(
    pipeline: &ImagePipeline,
    secrets: &[Secret],
    verb: Verb,
    timeout: Duration,
    progress: &mut impl Write,
    mut each: impl FnMut(&PassReport),
) -> Result<(), CliError> {
    // Apply reads what the manifest holds and generates nothing, as `plan`
    // does; destroy needs no Secret values.
    let usage = match verb {
        Verb::Apply => SecretUse::Observe,
        Verb::Destroy => SecretUse::Delete,
    };
    let (engine, ctx) = engine_for(pipeline, secrets, usage, CallLog::new()).await?;
    let started = Instant::now();
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    let mut shown = Vec::new();
    loop {
        let (report, done, goal) = match verb {
            Verb::Apply => {
                let report = engine.apply(&ctx).await;
                let done = report.is_ready();
                (report, done, "ready")
            }
            Verb::Destroy => {
                let report = engine.destroy(&ctx).await;
                let done = report.is_removed();
                (report, done, "destroyed")
            }
        };
        report_progress(&report, &mut shown, progress)?;
        each(&report);
        fail_on_terminal_error(&ctx, &report)?;
        if done {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(timeout_error(&ctx, goal, started, &report));
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

fn fail_on_terminal_error(ctx: &PipelineContext, report: &PassReport) -> Result<(), CliError> {
    match report.terminal_error() {
        Some((component, err)) => Err(CliError::Terminal {
            pipeline: label(ctx),
            component: component.to_string(),
            reason: err.reason.clone(),
            message: err.message.clone(),
            then: if err.is_terminal() {
                "fix the spec and run again"
            } else {
                "run again once the AWS account allows it"
            },
        }),
        None => Ok(()),
    }
}

fn timeout_error(
    ctx: &PipelineContext,
    goal: &'static str,
    started: Instant,
    report: &PassReport,
) -> CliError {
    let state = report
        .components
        .iter()
        .filter(|c| !matches!(c.state, ComponentState::Ready | ComponentState::Removed))
        .map(|c| format!("{}: {}", c.kind, state_text(&c.state)))
        .collect::<Vec<_>>()
        .join("; ");
    CliError::Timeout {
        pipeline: label(ctx),
        goal,
        waited: humantime::format_duration(Duration::from_secs(started.elapsed().as_secs())).to_string(),
        state,
    }
}

fn state_text(state: &ComponentState) -> String {
    match state {
        ComponentState::Ready => "ready".to_owned(),
        ComponentState::Waiting(why) => format!("waiting: {why}"),
        ComponentState::NotServing(check) => format!("not serving: {} ({})", check.message, check.reason),
        ComponentState::ChangesPending => "changes pending".to_owned(),
        ComponentState::Failed(err) if err.needs_person() => format!("{} ({})", err.message, err.reason),
        ComponentState::Failed(err) => format!("{} ({}), retrying", err.message, err.reason),
        ComponentState::Blocked(on) => format!("waiting for {on}"),
        ComponentState::Removed => "removed".to_owned(),
    }
}

/// Prints each change as it is made, and each component's state when it
/// changes from the last pass.
fn report_progress(report: &PassReport, shown: &mut Vec<String>, out: &mut impl Write) -> io::Result<()> {
    for (kind, change) in report.changes() {
        writeln!(
            out,
            "  {:<10} {} {}",
            kind.name(),
            change.action.symbol(),
            change.resource
        )?;
    }
    let states: Vec<String> = report
        .components
        .iter()
        .map(|c| format!("{:<10} {}", c.kind.name(), state_text(&c.state)))
        .collect();
    for (index, line) in states.iter().enumerate() {
        if shown.get(index) != Some(line) {
            writeln!(out, "  {line}")?;
        }
    }
    *shown = states;
    Ok(())
}

/// The status as `-o` asks for it.
pub fn render_status(pipeline: &ImagePipeline, status: &ImagePipelineStatus, format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => serde_json::to_string_pretty(status).unwrap_or_default() + "\n",
        OutputFormat::Yaml => serde_saphyr::to_string(status).unwrap_or_default(),
        OutputFormat::Table => render_status_table(pipeline, status),
    }
}

fn render_status_table(pipeline: &ImagePipeline, status: &ImagePipelineStatus) -> String {
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map_or("Unknown", |c| c.status.as_str());
    let phase = status.phase.map(|p| format!("{p:?}")).unwrap_or_default();
    let url = status
        .endpoints
        .as_ref()
        .and_then(|e| e.upload_url.clone())
        .unwrap_or_else(|| "<none>".to_owned());
    let cost = status
        .estimated_monthly_cost
        .as_ref()
        .map_or("<none>", |cost| cost.amount.as_str());
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{:<24} {:<6} {:<13} {:<11} UPLOAD URL",
        "NAME", "READY", "PHASE", "COST/MONTH"
    );
    let _ = writeln!(
        text,
        "{:<24} {:<6} {:<13} {cost:<11} {url}",
        pipeline.name_any(),
        ready,
        phase
    );
    let _ = writeln!(
        text,
        "\n{:<18} {:<7} {:<22} MESSAGE",
        "CONDITION", "STATUS", "REASON"
    );
    for condition in &status.conditions {
        let _ = writeln!(
            text,
            "{:<18} {:<7} {:<22} {}",
            condition.type_, condition.status, condition.reason, condition.message
        );
    }
    if let Some(endpoints) = &status.endpoints {
        let _ = writeln!(text);
        for (name, value) in [
            ("bucket", &endpoints.bucket),
            ("table", &endpoints.table),
            ("deliveryStream", &endpoints.delivery_stream),
            ("warehouse", &endpoints.warehouse),
        ] {
            if let Some(value) = value {
                let _ = writeln!(text, "{name:<15} {value}");
            }
        }
    }
    text
}
