//! Resumable uploads with tus 1.0 (<https://tus.io/protocols/resumable-upload>):
//! the core protocol and the creation, termination and expiration
//! extensions. `POST /v1/resumable` creates an upload, `HEAD` on its URL
//! tells how much arrived, `PATCH` appends from there, `DELETE` gives it
//! up. An upload broken off anywhere resumes at any instance (its state is
//! in S3 and DynamoDB, see [`crate::staging`]); the `PATCH` that brings the
//! last byte checks and stores the image and answers with its id.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;

use crate::error::{ApiError, ErrorBody};
use crate::staging::{AppendCut, Appended, StagedUpload, UploadKind};
use crate::uploads::{self, LIFETIME};
use crate::{AppState, Caller};

/// The protocol version served, the only one.
pub const TUS_VERSION: &str = "1.0.0";
const EXTENSIONS: &str = "creation,termination,expiration";
/// The media type of a `PATCH` body.
const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

pub const TUS_RESUMABLE: HeaderName = HeaderName::from_static("tus-resumable");
const TUS_VERSION_HEADER: HeaderName = HeaderName::from_static("tus-version");
const TUS_EXTENSION: HeaderName = HeaderName::from_static("tus-extension");
const TUS_MAX_SIZE: HeaderName = HeaderName::from_static("tus-max-size");
const UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");
const UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
const UPLOAD_METADATA: HeaderName = HeaderName::from_static("upload-metadata");
const UPLOAD_EXPIRES: HeaderName = HeaderName::from_static("upload-expires");
const UPLOAD_DEFER_LENGTH: HeaderName = HeaderName::from_static("upload-defer-length");
/// Ours: the id of the image a finished upload was stored as.
pub const IMAGE_ID: HeaderName = HeaderName::from_static("image-id");

/// Every tus answer says which protocol version it speaks.
pub async fn with_tus_resumable(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(TUS_RESUMABLE, HeaderValue::from_static(TUS_VERSION));
    response
}

/// What this server supports: no key needed, as clients ask before they
/// have an upload.
#[utoipa::path(
    options,
    path = "/v1/resumable",
    tag = "resumable",
    responses((status = 204, description = "The tus versions, extensions and largest upload supported",
        headers(
            ("Tus-Resumable" = String, description = "1.0.0"),
            ("Tus-Version" = String, description = "1.0.0"),
            ("Tus-Extension" = String, description = "creation,termination,expiration"),
            ("Tus-Max-Size" = u64, description = "The largest upload, in bytes"),
        )))
)]
pub(crate) async fn discover(State(state): State<Arc<AppState>>) -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (TUS_VERSION_HEADER, HeaderValue::from_static(TUS_VERSION)),
            (TUS_EXTENSION, HeaderValue::from_static(EXTENSIONS)),
            (TUS_MAX_SIZE, HeaderValue::from(state.max_image_bytes)),
        ],
    )
        .into_response()
}

/// Starts a resumable upload of `Upload-Length` bytes.
#[utoipa::path(
    post,
    path = "/v1/resumable",
    tag = "resumable",
    params(
        ("Tus-Resumable" = String, Header, description = "1.0.0"),
        ("Upload-Length" = u64, Header, description = "The upload's size in bytes; deferred lengths are not supported"),
        ("Upload-Metadata" = Option<String>, Header,
            description = "tus metadata: comma-separated `key base64value` pairs; `filetype`, when an image type, must match the bytes"),
    ),
    responses(
        (status = 201, description = "Created: send the bytes to `Location`",
            headers(
                ("Location" = String, description = "The upload's URL"),
                ("Upload-Expires" = String, description = "When an unfinished upload is given up (RFC 9110 date)"),
                ("Tus-Resumable" = String, description = "1.0.0"),
            )),
        (status = 400, description = "No or malformed Upload-Length or Upload-Metadata, or a deferred length", body = ErrorBody),
        (status = 412, description = "Not tus 1.0.0", body = ErrorBody),
        (status = 413, description = "Larger than the pipeline's limit", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    axum::Extension(caller): axum::Extension<Caller>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_version(&headers)?;
    if headers.contains_key(UPLOAD_DEFER_LENGTH) {
        return Err(ApiError::BadRequest(
            "deferred lengths are not supported: send Upload-Length".to_owned(),
        ));
    }
    let length = number(&headers, &UPLOAD_LENGTH)?
        .ok_or_else(|| ApiError::BadRequest("send the upload's size in bytes as Upload-Length".to_owned()))?;
    if length == 0 {
        return Err(ApiError::BadRequest("an empty upload holds no image".to_owned()));
    }
    if length > state.max_image_bytes {
        return Err(ApiError::TooLarge(state.max_image_bytes));
    }
    let metadata = match headers.get(UPLOAD_METADATA) {
        None => None,
        Some(value) => {
            let text = value
                .to_str()
                .ok()
                .filter(|t| uploads::parse_metadata(t).is_some());
            Some(
                text.ok_or_else(|| {
                    ApiError::BadRequest(
                        "Upload-Metadata must be comma-separated `key base64value` pairs".to_owned(),
                    )
                })?
                .to_owned(),
            )
        }
    };
    let now = Timestamp::now();
    let upload = StagedUpload::new(UploadKind::Resumable, caller.0, length, metadata, now + LIFETIME);
    state.staging.create(&upload).await?;
    let location = format!("/v1/resumable/{}", upload.id);
    Ok((
        StatusCode::CREATED,
        [
            (header::LOCATION, location),
            (UPLOAD_EXPIRES, http_date(upload.expires_at)),
        ],
    )
        .into_response())
}

/// How much of the upload arrived.
#[utoipa::path(
    head,
    path = "/v1/resumable/{id}",
    tag = "resumable",
    params(
        ("id" = String, Path, description = "The upload id"),
        ("Tus-Resumable" = String, Header, description = "1.0.0"),
    ),
    responses(
        (status = 200, description = "Its offset: send the bytes from there",
            headers(
                ("Upload-Offset" = u64, description = "Bytes received and kept"),
                ("Upload-Length" = u64, description = "The upload's size"),
                ("Upload-Expires" = String, description = "When it is given up unless finished"),
                ("Image-Id" = String, description = "Once finished: the stored image's id"),
                ("Tus-Resumable" = String, description = "1.0.0"),
            )),
        (status = 404, description = "No such upload of this key"),
        (status = 410, description = "The upload expired"),
        (status = 412, description = "Not tus 1.0.0"),
    )
)]
pub(crate) async fn offset(
    State(state): State<Arc<AppState>>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_version(&headers)?;
    let upload = find(&state, &caller, &id).await?;
    let mut response = progress(&upload, StatusCode::OK);
    let headers = response.headers_mut();
    headers.insert(UPLOAD_LENGTH, HeaderValue::from(upload.length));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(metadata) = upload
        .metadata
        .as_deref()
        .and_then(|m| HeaderValue::from_str(m).ok())
    {
        headers.insert(UPLOAD_METADATA, metadata);
    }
    Ok(response)
}

/// Appends the body at `Upload-Offset`. The request that brings the last
/// byte checks and stores the image, then answers with its id; a refused
/// image is answered as `POST /v1/images` answers it, and the upload is
/// removed.
#[utoipa::path(
    patch,
    path = "/v1/resumable/{id}",
    tag = "resumable",
    params(
        ("id" = String, Path, description = "The upload id"),
        ("Tus-Resumable" = String, Header, description = "1.0.0"),
        ("Upload-Offset" = u64, Header, description = "Where the body starts: the offset HEAD gave"),
    ),
    request_body(description = "The next bytes", content(([u8] = "application/offset+octet-stream"))),
    responses(
        (status = 204, description = "Kept; when the upload is complete, stored",
            headers(
                ("Upload-Offset" = u64, description = "Bytes received and kept"),
                ("Upload-Expires" = String, description = "When it is given up unless finished"),
                ("Image-Id" = String, description = "Once finished: the stored image's id"),
                ("Tus-Resumable" = String, description = "1.0.0"),
            )),
        (status = 400, description = "No or malformed Upload-Offset", body = ErrorBody),
        (status = 404, description = "No such upload of this key", body = ErrorBody),
        (status = 408, description = "The body stopped arriving; what came is kept", body = ErrorBody),
        (status = 409, description = "Upload-Offset is not the upload's offset", body = ErrorBody),
        (status = 410, description = "The upload expired", body = ErrorBody),
        (status = 412, description = "Not tus 1.0.0", body = ErrorBody),
        (status = 413, description = "The body goes past Upload-Length, or the image is over a limit", body = ErrorBody),
        (status = 415, description = "Not application/offset+octet-stream, or the complete upload is not an accepted image", body = ErrorBody),
        (status = 423, description = "Another request is writing this upload", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 500, description = "The service could not spool the upload", body = ErrorBody),
        (status = 503, description = "Too many uploads in flight, or AWS throttled", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub(crate) async fn append(
    State(state): State<Arc<AppState>>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let headers = request.headers();
    check_version(headers)?;
    let media_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if media_type.is_none_or(|t| !t.eq_ignore_ascii_case(OFFSET_OCTET_STREAM)) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "send the bytes as {OFFSET_OCTET_STREAM}"
        )));
    }
    let sent = number(headers, &UPLOAD_OFFSET)?
        .ok_or_else(|| ApiError::BadRequest("send Upload-Offset: the offset HEAD gave".to_owned()))?;
    let declared_length = number(headers, &header::CONTENT_LENGTH)?;
    let permit = state.upload_permit()?;
    let mut upload = find(&state, &caller, &id).await?;
    if upload.image_id.is_some() && sent == upload.length {
        // Finished already: the answer to a retried last request.
        return Ok(progress(&upload, StatusCode::NO_CONTENT));
    }
    if sent != upload.offset() {
        return Err(crate::staging::StagingError::OffsetMismatch {
            sent,
            actual: upload.offset(),
        }
        .into());
    }
    if declared_length.is_some_and(|length| sent.saturating_add(length) > upload.length) {
        return Err(ApiError::PastUploadLength(upload.length));
    }
    state.staging.lease(&mut upload, Timestamp::now()).await?;
    // The rest runs on its own task: when the client goes away midway, what
    // arrived is still kept and the lease given back.
    let body = request.into_body().into_data_stream();
    let task = tokio::spawn(async move {
        let _permit = permit;
        append_and_finish(&state, &caller, upload, body).await
    });
    task.await
        .map_err(|err| ApiError::Unreadable(std::io::Error::other(err)))?
}

async fn append_and_finish(
    state: &AppState,
    caller: &Caller,
    mut upload: StagedUpload,
    body: axum::body::BodyDataStream,
) -> Result<Response, ApiError> {
    let before = upload.offset();
    state.metrics.in_flight.inc();
    let appended = state.staging.append(&mut upload, body).await;
    state.metrics.in_flight.dec();
    crate::images::charge_bytes(state, caller, upload.offset().saturating_sub(before));
    let ended = match appended {
        Ok(ended) => ended,
        Err(err) => {
            uploads::release(state, &mut upload).await;
            return Err(err.into());
        }
    };
    match ended {
        Appended::Whole if upload.offset() == upload.length => {
            uploads::finish(state, caller, &mut upload).await?;
            Ok(progress(&upload, StatusCode::NO_CONTENT))
        }
        Appended::Whole => {
            state.staging.save(&mut upload, false, Timestamp::now()).await?;
            Ok(progress(&upload, StatusCode::NO_CONTENT))
        }
        Appended::Cut(cut) => {
            state.staging.save(&mut upload, false, Timestamp::now()).await?;
            Err(match cut {
                AppendCut::TooLong => ApiError::PastUploadLength(upload.length),
                AppendCut::Broken(err) => crate::images::unreadable_body(&err),
            })
        }
    }
}

/// Gives the upload up: its bytes and its record are removed. A finished
/// upload's image stays.
#[utoipa::path(
    delete,
    path = "/v1/resumable/{id}",
    tag = "resumable",
    params(
        ("id" = String, Path, description = "The upload id"),
        ("Tus-Resumable" = String, Header, description = "1.0.0"),
    ),
    responses(
        (status = 204, description = "Removed", headers(("Tus-Resumable" = String, description = "1.0.0"))),
        (status = 404, description = "No such upload of this key", body = ErrorBody),
        (status = 410, description = "The upload expired", body = ErrorBody),
        (status = 412, description = "Not tus 1.0.0", body = ErrorBody),
        (status = 423, description = "Another request is writing this upload", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub(crate) async fn terminate(
    State(state): State<Arc<AppState>>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_version(&headers)?;
    let mut upload = find(&state, &caller, &id).await?;
    if upload.image_id.is_none() {
        // Not while a request writes to it.
        state.staging.lease(&mut upload, Timestamp::now()).await?;
    }
    state.staging.remove(&upload).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn find(state: &AppState, caller: &Caller, id: &str) -> Result<StagedUpload, ApiError> {
    let upload = state.staging.find(id, &caller.0, Timestamp::now()).await?;
    if upload.kind != UploadKind::Resumable {
        return Err(ApiError::Staging(crate::staging::StagingError::NotFound(
            id.to_owned(),
        )));
    }
    Ok(upload)
}

/// An answer with the upload's offset and expiry, and its image once stored.
fn progress(upload: &StagedUpload, status: StatusCode) -> Response {
    let mut response = status.into_response();
    let headers = response.headers_mut();
    headers.insert(UPLOAD_OFFSET, HeaderValue::from(upload.offset()));
    if let Ok(expires) = HeaderValue::from_str(&http_date(upload.expires_at)) {
        headers.insert(UPLOAD_EXPIRES, expires);
    }
    if let Some(image) = upload
        .image_id
        .as_deref()
        .and_then(|id| HeaderValue::from_str(id).ok())
    {
        headers.insert(IMAGE_ID, image);
    }
    response
}

fn check_version(headers: &HeaderMap) -> Result<(), ApiError> {
    match headers.get(TUS_RESUMABLE) {
        Some(version) if version == TUS_VERSION => Ok(()),
        _ => Err(ApiError::TusVersion),
    }
}

/// A header holding a non-negative integer, if present.
fn number(headers: &HeaderMap, name: &HeaderName) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    let parsed = value
        .to_str()
        .ok()
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse().ok());
    parsed
        .map(Some)
        .ok_or_else(|| ApiError::BadRequest(format!("{name} must be a non-negative integer")))
}

/// An HTTP date (RFC 9110 IMF-fixdate), as `Upload-Expires` takes it.
fn http_date(at: Timestamp) -> String {
    at.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_an_http_date() {
        let at: Timestamp = "2026-12-03T09:05:07Z".parse().unwrap();
        assert_eq!(http_date(at), "Thu, 03 Dec 2026 09:05:07 GMT");
    }

    #[test]
    fn offsets_and_lengths_are_plain_non_negative_integers() {
        let mut headers = HeaderMap::new();
        assert_eq!(number(&headers, &UPLOAD_OFFSET).unwrap(), None);
        for good in ["0", "42", "18446744073709551615"] {
            headers.insert(UPLOAD_OFFSET, HeaderValue::from_static(good));
            assert_eq!(number(&headers, &UPLOAD_OFFSET).unwrap(), good.parse().ok());
        }
        for bad in ["", "-1", "+1", "1.5", " 1", "18446744073709551616", "0x10"] {
            headers.insert(UPLOAD_OFFSET, HeaderValue::from_static(bad));
            assert!(number(&headers, &UPLOAD_OFFSET).is_err(), "{bad:?}");
        }
    }
}
