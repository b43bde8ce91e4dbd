//! Turning SDK errors into what the engine needs to know: which AWS error it
//! was, and whether trying again can help.

use std::error::Error as StdError;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::engine::{ComponentError, ErrorKind};

/// Error codes AWS uses when a caller exceeds a request rate.
const THROTTLING_CODES: [&str; 8] = [
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
];

/// Error codes meaning the request as written can never succeed: the spec (or
/// a name in it) must change.
const TERMINAL_CODES: [&str; 9] = [
    "ValidationException",
    "ValidationError",
    "InvalidParameterValue",
    "InvalidParameterValueException",
    "InvalidParameterCombination",
    "InvalidArgumentException",
    "InvalidBucketName",
    "BucketAlreadyExists",
    "MalformedPolicyDocument",
];

/// The AWS error code of a failed call, if AWS answered with one.
pub fn code<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<&str> {
    err.code()
}

/// The HTTP status AWS answered with, if it answered.
pub fn status<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|response| response.status().as_u16())
}

/// Classifies a failed call. `action` says what the engine was doing, in words
/// a user reads in a condition message ("create S3 bucket photos").
pub fn classify<E>(action: &str, err: SdkError<E, HttpResponse>) -> ComponentError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let code = code(&err).map(str::to_owned);
    let detail = err
        .message()
        .map(str::to_owned)
        .unwrap_or_else(|| describe_chain(&err));
    let (kind, reason) = match code.as_deref() {
        Some(code) if THROTTLING_CODES.contains(&code) => (ErrorKind::Retryable, "Throttled"),
        Some(code) if TERMINAL_CODES.contains(&code) => (ErrorKind::Terminal, "InvalidSpec"),
        Some("AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation") => {
            (ErrorKind::Retryable, "AccessDenied")
        }
        Some(_) => (ErrorKind::Retryable, "AwsError"),
        None => match status(&err) {
            Some(status) if status >= 500 => (ErrorKind::Retryable, "AwsUnavailable"),
            Some(_) => (ErrorKind::Retryable, "AwsError"),
            None => (ErrorKind::Retryable, "AwsUnreachable"),
        },
    };
    let code_text = code.map(|code| format!("{code}: ")).unwrap_or_default();
    ComponentError::new(kind, reason, format!("{action} failed: {code_text}{detail}"))
}

fn describe_chain(err: &dyn StdError) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
