//! The images: `POST /v1/images` (raw or multipart), `GET /v1/images/{id}`
//! and `/content`, and the checks every upload passes through, whichever way
//! its bytes arrived.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use ingest_core::record::Source;
use ingest_core::store::{Incoming, Stored};
use ingest_core::{Content, ImageId, ImageInfo, ImageType, Spool};
use jiff::Timestamp;

use crate::error::{ApiError, ErrorBody};
use crate::{AppState, Caller, metrics, openapi};

/// Stores one image.
///
/// The type is read from the bytes; the image is decoded completely, its
/// metadata removed as the pipeline says, and stored unless the same
/// content is stored already.
#[utoipa::path(
    post,
    path = "/v1/images",
    tag = "images",
    request_body(
        description = "The image: raw with its type, or the field `file` of a multipart form",
        content(
            ([u8] = "image/jpeg"),
            ([u8] = "image/png"),
            ([u8] = "image/webp"),
            ([u8] = "image/gif"),
            (openapi::UploadForm = "multipart/form-data")
        )
    ),
    responses(
        (status = 201, description = "Stored", body = ingest_core::ImageItem),
        (status = 200, description = "The same content was stored already: its item", body = ingest_core::ImageItem),
        (status = 400, description = "Empty body, malformed multipart, no `file` field", body = ErrorBody),
        (status = 408, description = "The body stopped arriving", body = ErrorBody),
        (status = 413, description = "Over the size, pixel or frame limit", body = ErrorBody),
        (status = 415, description = "Not an accepted image type, not the declared type, or does not decode", body = ErrorBody),
        (status = 500, description = "The service could not spool the upload", body = ErrorBody),
        (status = 503, description = "Too many uploads in flight, or AWS throttled", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub(crate) async fn upload(
    State(state): State<Arc<AppState>>,
    axum::Extension(caller): axum::Extension<Caller>,
    request: Request,
) -> Result<Response, ApiError> {
    let _permit = state.uploads.try_acquire().map_err(|_| ApiError::Overloaded)?;
    state.metrics.in_flight.inc();
    let result = receive_and_store(&state, &caller, request).await;
    state.metrics.in_flight.dec();
    Ok(stored_answer(&state, &result?))
}

/// 201 and the new item, or 200 and the item of the same content stored
/// before.
pub(crate) fn stored_answer(state: &AppState, stored: &Stored) -> Response {
    let status = match stored {
        Stored::Created(item) => {
            state.metrics.stored_bytes.inc_by(item.bytes);
            StatusCode::CREATED
        }
        Stored::Existing(_) => StatusCode::OK,
    };
    (status, Json(stored.item().clone())).into_response()
}

async fn receive_and_store(state: &AppState, caller: &Caller, request: Request) -> Result<Stored, ApiError> {
    let received = receive(request, state.spool()).await;
    if let Ok((content, _)) = &received {
        charge_bytes(state, caller, content.len());
    }
    let (content, info) = received?;
    check_and_store(state, caller, content, info).await
}

/// Counts `bytes` received from `caller` against its key's limit and in
/// its metrics.
pub(crate) fn charge_bytes(state: &AppState, caller: &Caller, bytes: u64) {
    state.key_limits.charge_bytes(&caller.0, bytes, Instant::now());
    state
        .metrics
        .key_received_bytes
        .get_or_create(&metrics::KeyLabels {
            key: caller.0.clone(),
        })
        .inc_by(bytes);
}

/// What every upload passes through once its bytes are here, however they
/// came: an accepted type, decoded within the limits, its metadata removed,
/// then stored unless the same content is stored already.
pub(crate) async fn check_and_store(
    state: &AppState,
    caller: &Caller,
    content: Content,
    info: ImageInfo,
) -> Result<Stored, ApiError> {
    if !state.allowed.contains(&info.image_type) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "{} images are not accepted by this pipeline",
            info.image_type
        )));
    }
    if content.is_spooled() {
        state.metrics.spooled_uploads.inc();
    }
    let (content, image) = content
        .verify(info, state.image_rules, &state.decode_budget)
        .await?;
    let now = Timestamp::now();
    let incoming = Incoming {
        content: &content,
        image,
        source: Source::Api,
        uploaded_by: Some(caller.0.clone()),
        at: now,
        kafka: None,
    };
    Ok(state.store.store(&incoming, now).await?)
}

/// Reads an upload, raw or multipart, and recognises the image in it: what
/// the client sent, checked against what it declared. Every failure here is
/// the client's (4xx), except a spool directory that cannot be written.
async fn receive(request: Request, mut spool: Spool) -> Result<(Content, ImageInfo), ApiError> {
    let (declared, content) = if is_multipart(request.headers()) {
        let multipart = Multipart::from_request(request, &())
            .await
            .map_err(|err| ApiError::BadRequest(format!("malformed multipart body: {err}")))?;
        read_file_field(multipart, spool).await?
    } else {
        let declared = declared_type(
            request
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
        )?;
        if let Some(len) = declared_length(request.headers(), spool.limit())? {
            spool.expect(len).await;
        }
        (Some(declared), read_body(request.into_body(), spool).await?)
    };
    recognise(content, declared).await
}

/// The image in `content`, which must be of the `declared` type if one was
/// declared.
pub(crate) async fn recognise(
    content: Content,
    declared: Option<ImageType>,
) -> Result<(Content, ImageInfo), ApiError> {
    let info = content.inspect().await?;
    if let Some(declared) = declared
        && declared != info.image_type
    {
        return Err(ApiError::UnsupportedMediaType(format!(
            "the body was declared {declared} but is {}",
            info.image_type
        )));
    }
    Ok((content, info))
}

fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"))
}

/// The image type a raw upload declares; a raw body must declare one.
fn declared_type(content_type: Option<&str>) -> Result<ImageType, ApiError> {
    let content_type = content_type.ok_or_else(|| {
        ApiError::UnsupportedMediaType(
            "send the image with its Content-Type (image/jpeg, image/png, image/webp or image/gif), \
             or as multipart/form-data field `file`"
                .to_owned(),
        )
    })?;
    content_type
        .parse()
        .map_err(|err: ingest_core::image_type::UnknownImageType| {
            ApiError::UnsupportedMediaType(err.to_string())
        })
}

/// The length a body declares, if any; over the limit it is refused before
/// anything is read.
fn declared_length(headers: &HeaderMap, limit: u64) -> Result<Option<u64>, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit => Err(ApiError::TooLarge(limit)),
        _ => Ok(declared),
    }
}

/// Reads a body into `spool`, which refuses the first byte over the limit:
/// an oversized body is never held whole.
async fn read_body(body: Body, mut spool: Spool) -> Result<Content, ApiError> {
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|err| unreadable_body(&err))?;
        spool.push(&chunk).await?;
    }
    Ok(spool.finish().await?)
}

/// The `file` field of a multipart upload, with the type its part declares
/// (none when it declares `application/octet-stream` or nothing).
async fn read_file_field(
    mut multipart: Multipart,
    mut spool: Spool,
) -> Result<(Option<ImageType>, Content), ApiError> {
    let malformed = |err: axum::extract::multipart::MultipartError| match unreadable_body(&err) {
        ApiError::BodyTimeout => ApiError::BodyTimeout,
        _ => ApiError::BadRequest(format!("malformed multipart body: {}", err.body_text())),
    };
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        if field.name() != Some("file") {
            continue;
        }
        let declared = match field.content_type() {
            None | Some("application/octet-stream") => None,
            Some(declared) => Some(declared_type(Some(declared))?),
        };
        while let Some(chunk) = field.chunk().await.map_err(malformed)? {
            spool.push(&chunk).await?;
        }
        return Ok((declared, spool.finish().await?));
    }
    Err(ApiError::BadRequest(
        "the multipart body has no field named `file`".to_owned(),
    ))
}

/// A body that stopped arriving within the body timeout, or broke off.
pub(crate) fn unreadable_body(err: &(dyn std::error::Error + 'static)) -> ApiError {
    let mut cause = Some(err);
    while let Some(err) = cause {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return ApiError::BodyTimeout;
        }
        cause = err.source();
    }
    ApiError::BadRequest(format!("the body could not be read: {err}"))
}

pub(crate) async fn find(state: &AppState, id: &str) -> Result<ingest_core::ImageItem, ApiError> {
    let parsed = ImageId::parse(id).ok_or_else(|| ApiError::NotFound(id.to_owned()))?;
    state
        .store
        .get(parsed)
        .await?
        .ok_or_else(|| ApiError::NotFound(id.to_owned()))
}

/// An image's item.
#[utoipa::path(
    get,
    path = "/v1/images/{id}",
    tag = "images",
    params(("id" = String, Path, description = "The image id")),
    responses(
        (status = 200, description = "The item", body = ingest_core::ImageItem),
        (status = 404, description = "No image has that id", body = ErrorBody),
    )
)]
pub(crate) async fn metadata(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(find(&state, &id).await?).into_response())
}

/// The image's bytes, passed on from S3 as they arrive.
#[utoipa::path(
    get,
    path = "/v1/images/{id}/content",
    tag = "images",
    params(("id" = String, Path, description = "The image id")),
    responses(
        (status = 200, description = "The stored bytes, with the image's type", content(
            ([u8] = "image/jpeg"),
            ([u8] = "image/png"),
            ([u8] = "image/webp"),
            ([u8] = "image/gif")
        )),
        (status = 404, description = "No image has that id", body = ErrorBody),
    )
)]
pub(crate) async fn content(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let item = find(&state, &id).await?;
    let object = state.store.content(&item).await?;
    let chunks = futures::stream::unfold(object, |mut object| async move {
        object.next().await.map(|chunk| (chunk, object))
    });
    Ok((
        [
            (header::CONTENT_TYPE, item.content_type.clone()),
            (header::CONTENT_LENGTH, item.bytes.to_string()),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;

    fn received(content_type: &str, body: Vec<u8>) -> Result<(Content, ImageInfo), ApiError> {
        let request = Request::builder()
            .method("POST")
            .uri("/v1/images")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .expect("a request");
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(receive(request, Spool::new(std::env::temp_dir(), 1024)))
    }

    /// Anything a client sends is an image or a client error; never a
    /// panic, never a server error.
    fn assert_client_outcome(result: Result<(Content, ImageInfo), ApiError>) {
        if let Err(err) = result {
            assert!(err.status().is_client_error(), "{err:?} is {}", err.status());
        }
    }

    /// Arbitrary bytes, or a well-formed image header with arbitrary bytes
    /// after it, so that images get through as well.
    fn contents() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            vec(any::<u8>(), 0..1500),
            (
                prop::sample::select(ImageType::ALL.to_vec()),
                vec(any::<u8>(), 0..1000)
            )
                .prop_map(|(image_type, tail)| [ingest_testing::image(image_type, 0, 0), tail].concat()),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_multipart_bodies_get_a_client_error_at_worst(
            preamble in vec(any::<u8>(), 0..32),
            part_headers in vec(any::<u8>(), 0..64),
            content in contents(),
            epilogue in vec(any::<u8>(), 0..32),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut body = preamble;
            body.extend_from_slice(b"--B\r\nContent-Disposition: form-data; name=\"file\"\r\n");
            body.extend_from_slice(&part_headers);
            body.extend_from_slice(b"\r\n\r\n");
            body.extend_from_slice(&content);
            body.extend_from_slice(b"\r\n--B--\r\n");
            body.extend_from_slice(&epilogue);
            let whole = body.clone();
            body.truncate(cut.index(body.len() + 1));
            assert_client_outcome(received("multipart/form-data; boundary=B", whole));
            assert_client_outcome(received("multipart/form-data; boundary=B", body));
        }

        #[test]
        fn arbitrary_raw_bodies_and_content_types_get_a_client_error_at_worst(
            content_type in "[ -~]{0,40}",
            body in contents(),
        ) {
            assert_client_outcome(received(&content_type, body.clone()));
            assert_client_outcome(received("image/png", body));
        }
    }
}
