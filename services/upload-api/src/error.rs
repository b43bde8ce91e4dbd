//! Errors as DESIGN.md fixes them: a status and `{"error":{"code","message"}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ingest_core::{ContentError, InspectError, SpoolError, StoreError, VerifyError};
use serde::Serialize;

use crate::limits::{Limit, Refusal};
use crate::staging::StagingError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("a valid API key is required: send `Authorization: Bearer <key>`")]
    Unauthorized,
    #[error("no image has id {0}")]
    NotFound(String),
    #[error("the image is larger than the limit of {0} bytes")]
    TooLarge(u64),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the body did not arrive within the body timeout; send it faster or in smaller images")]
    BodyTimeout,
    #[error("too many uploads in flight; retry shortly")]
    Overloaded,
    #[error("storage is unavailable: {0}")]
    Backend(StoreError),
    /// The service's own disk failed; the message names the directory.
    #[error("the upload could not be received: {0}")]
    Spool(SpoolError),
    /// The image does not decode, or is over a decoding limit.
    #[error("{0}")]
    Refused(VerifyError),
    #[error("the upload could not be read back: {0}")]
    Unreadable(std::io::Error),
    #[error(
        "the API key {key:?} is over its limit of {} per second; retry after {} s",
        if refusal.limit == Limit::Requests { "requests" } else { "bytes" },
        retry_after_seconds(refusal.retry_after)
    )]
    RateLimited { key: String, refusal: Refusal },
    /// A resumable or direct upload cannot be used as asked.
    #[error("{0}")]
    Staging(#[from] StagingError),
    #[error("send Tus-Resumable: 1.0.0, the only tus version served")]
    TusVersion,
    #[error("the body goes past the upload's length of {0} bytes")]
    PastUploadLength(u64),
}

/// The body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// What went wrong, for programs: `bad_request`, `unauthorized`,
    /// `not_found`, `request_timeout`, `too_large`, `too_many_pixels`,
    /// `too_many_frames`, `unsupported_media_type`, `not_an_image`,
    /// `rate_limited`, `internal_error`, `backend_error`,
    /// `backend_throttled`, `overloaded`; for resumable and direct uploads
    /// also `upload_expired`, `offset_mismatch`, `upload_locked`,
    /// `upload_not_received`, `unsupported_version`.
    #[schema(example = "not_an_image")]
    pub code: &'static str,
    /// What went wrong and what to do, for people.
    pub message: String,
}

/// Whole seconds, at least one, as `Retry-After` takes them.
fn retry_after_seconds(wait: std::time::Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::BodyTimeout => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            ApiError::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            ApiError::Backend(err) if err.throttled => (StatusCode::SERVICE_UNAVAILABLE, "backend_throttled"),
            ApiError::Backend(_) => (StatusCode::BAD_GATEWAY, "backend_error"),
            ApiError::Spool(_) | ApiError::Unreadable(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
            }
            ApiError::Refused(refused) if refused.is_over_a_limit() => {
                (StatusCode::PAYLOAD_TOO_LARGE, refused.code())
            }
            ApiError::Refused(refused) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, refused.code()),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Staging(err) => match err {
                StagingError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
                StagingError::Expired(_) => (StatusCode::GONE, "upload_expired"),
                StagingError::OffsetMismatch { .. } => (StatusCode::CONFLICT, "offset_mismatch"),
                StagingError::Locked { .. } => (StatusCode::LOCKED, "upload_locked"),
                StagingError::NotReceived => (StatusCode::CONFLICT, "upload_not_received"),
                StagingError::Spool(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
                StagingError::Backend(err) if err.throttled => {
                    (StatusCode::SERVICE_UNAVAILABLE, "backend_throttled")
                }
                StagingError::Backend(_) => (StatusCode::BAD_GATEWAY, "backend_error"),
            },
            ApiError::TusVersion => (StatusCode::PRECONDITION_FAILED, "unsupported_version"),
            ApiError::PastUploadLength(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status_and_code().0
    }
}

impl From<InspectError> for ApiError {
    fn from(err: InspectError) -> Self {
        match err {
            InspectError::Empty => ApiError::BadRequest("the body is empty: send the image bytes".to_owned()),
            InspectError::NotAnImage | InspectError::BadHeader(_) => {
                ApiError::UnsupportedMediaType(err.to_string())
            }
        }
    }
}

impl From<SpoolError> for ApiError {
    fn from(err: SpoolError) -> Self {
        match err {
            SpoolError::TooLarge(limit) => ApiError::TooLarge(limit),
            SpoolError::Io { .. } => ApiError::Spool(err),
        }
    }
}

impl From<ContentError> for ApiError {
    fn from(err: ContentError) -> Self {
        match err {
            ContentError::Refused(refused) => ApiError::Refused(refused),
            ContentError::Unreadable(io) => ApiError::Unreadable(io),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        ApiError::Backend(err)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::warn!(error = %self, "request failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: self.to_string(),
            },
        };
        let retry_after = match &self {
            ApiError::RateLimited { refusal, .. } => Some(retry_after_seconds(refusal.retry_after)),
            ApiError::Staging(StagingError::Locked { until }) => {
                let wait = until.duration_since(jiff::Timestamp::now());
                Some(retry_after_seconds(wait.try_into().unwrap_or_default()))
            }
            _ if status == StatusCode::SERVICE_UNAVAILABLE => Some(1),
            _ => None,
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
