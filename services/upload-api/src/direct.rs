//! Direct uploads: the client posts the file straight to S3 with a
//! presigned POST limited to one key under `staging/` and the pipeline's
//! size limit, then asks the service to complete it. The bytes never pass
//! through the service until it checks them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde::Serialize;
use uuid::Uuid;

use crate::error::{ApiError, ErrorBody};
use crate::staging::{StagedUpload, StagingError, UploadKind};
use crate::uploads::{self, LIFETIME};
use crate::{AppState, Caller, images};

/// How long the form may be used: long enough for a large file on a slow
/// network, short enough that a leaked form is soon worthless.
const FORM_LIFETIME: Duration = Duration::from_secs(3600);

/// Where and how to post the file.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DirectUpload {
    /// The upload's id, for `POST /v1/uploads/{id}/complete`.
    pub id: Uuid,
    /// Post a `multipart/form-data` form here…
    pub url: String,
    /// …with these fields, in any order, then the file as the last field,
    /// `file`.
    pub fields: BTreeMap<String, String>,
    /// The largest file S3 accepts with this form.
    pub max_bytes: u64,
    /// When S3 stops accepting the form.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
    /// Where to complete the upload once S3 has the file.
    pub complete: String,
}

/// Starts a direct upload: a form for posting the file to S3.
#[utoipa::path(
    post,
    path = "/v1/uploads",
    tag = "direct",
    responses(
        (status = 201, description = "Post the file to `url` with `fields`, then complete", body = DirectUpload,
            headers(("Location" = String, description = "Where to complete the upload"))),
    )
)]
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Result<Response, ApiError> {
    let now = Timestamp::now();
    let upload = StagedUpload::new(
        UploadKind::Direct,
        caller.0,
        state.max_image_bytes,
        None,
        now + LIFETIME,
    );
    state.staging.create(&upload).await?;
    let expires_at = now + FORM_LIFETIME;
    let form = state.staging.presigned_post(&upload, expires_at, now).await?;
    let complete = format!("/v1/uploads/{}/complete", upload.id);
    let answer = DirectUpload {
        id: upload.id,
        url: form.url,
        fields: form.fields,
        max_bytes: upload.length,
        expires_at,
        complete: complete.clone(),
    };
    Ok((StatusCode::CREATED, [(header::LOCATION, complete)], Json(answer)).into_response())
}

/// Checks and stores the file posted to S3, as `POST /v1/images` would;
/// a refused file is removed. Completing again answers with the image.
#[utoipa::path(
    post,
    path = "/v1/uploads/{id}/complete",
    tag = "direct",
    params(("id" = String, Path, description = "The upload id")),
    responses(
        (status = 201, description = "Stored", body = ingest_core::ImageItem),
        (status = 200, description = "Stored before (this upload completed already, or the same content was stored)",
            body = ingest_core::ImageItem),
        (status = 400, description = "The posted file is empty", body = ErrorBody),
        (status = 404, description = "No such upload of this key", body = ErrorBody),
        (status = 409, description = "S3 has no file for this upload yet", body = ErrorBody),
        (status = 410, description = "The upload expired", body = ErrorBody),
        (status = 413, description = "Over the size, pixel or frame limit", body = ErrorBody),
        (status = 415, description = "Not an accepted image type, or does not decode", body = ErrorBody),
        (status = 423, description = "Another request is completing this upload", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 500, description = "The service could not spool the upload", body = ErrorBody),
        (status = 503, description = "Too many uploads in flight, or AWS throttled", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub(crate) async fn complete(
    State(state): State<Arc<AppState>>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let _permit = state.upload_permit()?;
    let mut upload = state.staging.find(&id, &caller.0, Timestamp::now()).await?;
    if upload.kind != UploadKind::Direct {
        return Err(StagingError::NotFound(id).into());
    }
    if let Some(image) = &upload.image_id {
        let item = images::find(&state, image).await?;
        return Ok((StatusCode::OK, Json(item)).into_response());
    }
    state.staging.lease(&mut upload, Timestamp::now()).await?;
    state.metrics.in_flight.inc();
    let stored = uploads::finish(&state, &caller, &mut upload).await;
    state.metrics.in_flight.dec();
    Ok(images::stored_answer(&state, &stored?))
}
