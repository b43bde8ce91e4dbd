//! Errors as DESIGN.md fixes them: a status and `{"error":{"code","message"}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ingest_core::{InspectError, SpoolError, StoreError};
use serde_json::json;

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
            ApiError::Spool(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
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
        let body = json!({ "error": { "code": code, "message": self.to_string() } });
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
