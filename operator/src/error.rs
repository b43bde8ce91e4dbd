//! Why a component could not converge, and whether trying again can help:
//! the one error type of the AWS layer, the resources and the engine.

/// Whether trying again can help.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The spec can never work as written: reported, not retried until the
    /// spec changes.
    Terminal,
    /// AWS was unavailable, throttled us, or is still settling: retried with
    /// backoff.
    Retryable,
    /// The spec may be right, but AWS refuses the caller (a missing
    /// permission, bad credentials, a used-up quota) until a person changes
    /// the account: checked again only after a long pause, never in a loop.
    Refused,
}

/// Why a component could not converge, in words for a status condition.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ComponentError {
    pub kind: ErrorKind,
    /// CamelCase reason for the condition, e.g. `BucketOwnedByAnotherPipeline`.
    pub reason: String,
    pub message: String,
}

impl ComponentError {
    pub fn new(kind: ErrorKind, reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind,
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn terminal(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Terminal, reason, message)
    }

    pub fn retryable(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Retryable, reason, message)
    }

    pub fn is_terminal(&self) -> bool {
        self.kind == ErrorKind::Terminal
    }

    /// Whether a person must act (change the spec or the account) before
    /// another try can succeed.
    pub fn needs_person(&self) -> bool {
        self.kind != ErrorKind::Retryable
    }
}
