//! When the next reconcile of a pipeline runs: after a pass, from how it
//! ended; after an error, from the error.

use std::sync::Arc;

use kube::runtime::controller::Action;

use super::{Context, Error};
use crate::api::v1alpha1::ImagePipeline;
use crate::engine::{ComponentState, EngineError, ErrorKind, PassReport};

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

/// Pure: when an unfinished cleanup comes back. Soon while it progresses
/// without a new failure; after one, as after any pass, except that a
/// terminal error is retried like any other blocked cleanup (a deletion
/// waits for no spec change).
pub fn next_cleanup_pass(report: &PassReport, new_failure: bool) -> NextPass {
    if !new_failure {
        return NextPass::After(Interval::Progress);
    }
    match next_pass(report, false) {
        NextPass::After(Interval::Resync) => NextPass::Backoff,
        next => next,
    }
}

/// The requeue of `next`. A pass that does not back off ends the pipeline's
/// run of failures, so its backoff starts over.
pub(super) fn come_back(ctx: &Context, pipeline: &ImagePipeline, next: NextPass) -> Action {
    match next {
        NextPass::Backoff => Action::requeue(ctx.next_backoff(pipeline)),
        NextPass::After(interval) => {
            ctx.reset_backoff(pipeline);
            Action::requeue(ctx.timing.interval(interval))
        }
    }
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

#[cfg(test)]
mod tests {
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

    #[test]
    fn a_blocked_cleanup_retries_a_terminal_error_with_backoff_and_polls_otherwise() {
        let terminal = report(vec![failed(ErrorKind::Terminal)]);
        assert_eq!(next_cleanup_pass(&terminal, true), NextPass::Backoff);
        assert_eq!(
            next_cleanup_pass(&terminal, false),
            NextPass::After(Interval::Progress)
        );
        let refused = report(vec![failed(ErrorKind::Refused)]);
        assert_eq!(
            next_cleanup_pass(&refused, true),
            NextPass::After(Interval::Refused)
        );
    }
}
