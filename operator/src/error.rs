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
    /// What AWS answered, when the error is an AWS answer: what a person
    /// quotes to AWS support or looks up in CloudTrail.
    /// Boxed: errors travel in every `Result` of the engine.
    pub aws: Option<Box<AwsAnswer>>,
    /// The resource it concerns, as plan names it (`S3 bucket ipl-…`); the
    /// walk sets it for errors of a resource's verbs.
    pub resource: Option<String>,
}

/// The parts of a failed AWS call's answer that identify it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AwsAnswer {
    /// The AWS error code, e.g. `AccessDenied`; none when AWS answered
    /// without one (a 503 with no body).
    pub code: Option<String>,
    /// The request id AWS gave the call (`x-amzn-RequestId`,
    /// `x-amz-request-id`, or `<RequestId>` in the body).
    pub request_id: Option<String>,
}

impl ComponentError {
    pub fn new(kind: ErrorKind, reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind,
            reason: reason.into(),
            message: message.into(),
            aws: None,
            resource: None,
        }
    }

    /// The same error, identifying the AWS answer it comes from.
    pub fn answered(mut self, aws: AwsAnswer) -> Self {
        self.aws = Some(Box::new(aws));
        self
    }

    /// The same error, naming the resource it concerns unless it names one
    /// already (an error of a nested resource keeps the inner name).
    pub fn concerning(mut self, resource: impl FnOnce() -> String) -> Self {
        if self.resource.is_none() {
            self.resource = Some(resource());
        }
        self
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
