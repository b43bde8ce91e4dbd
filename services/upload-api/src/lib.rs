//! upload-api: the HTTP service that takes images in (../shared/DESIGN.md,
//! "upload-api"). `POST /v1/images` (raw or multipart), `GET /v1/images/{id}`
//! and `/content`, `/healthz`, `/readyz`, `/metrics`.

pub mod auth;
pub mod config;
pub mod error;
pub mod metrics;
pub mod server;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Multipart, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use ingest_core::record::Source;
use ingest_core::store::{Incoming, Store, Stored};
use ingest_core::{Content, ImageId, ImageInfo, ImageType, Spool};
use jiff::Timestamp;
use tokio::sync::{Mutex, Semaphore};

use auth::Auth;
use error::ApiError;
use metrics::{Metrics, RequestLabels, RouteLabels};

/// How long a `/readyz` answer is reused, so probes do not load the backends.
const READINESS_CACHE: Duration = Duration::from_secs(5);

/// What the handlers share.
pub struct AppState {
    pub store: Store,
    pub auth: Auth,
    pub max_image_bytes: u64,
    pub allowed: BTreeSet<ImageType>,
    /// Where images larger than a few hundred KiB are held while they arrive.
    pub spool_dir: PathBuf,
    pub metrics: Metrics,
    /// Uploads admitted at once; beyond it the answer is 503.
    pub uploads: Semaphore,
    readiness: Mutex<Option<(Instant, bool)>>,
}

impl AppState {
    pub fn new(
        store: Store,
        auth: Auth,
        max_image_bytes: u64,
        allowed: BTreeSet<ImageType>,
        spool_dir: PathBuf,
        max_concurrent_uploads: usize,
    ) -> Self {
        Self {
            store,
            auth,
            max_image_bytes,
            allowed,
            spool_dir,
            metrics: Metrics::new(),
            uploads: Semaphore::new(max_concurrent_uploads),
            readiness: Mutex::new(None),
        }
    }
}

/// The service's routes. The body limit is enforced while reading, per
/// upload, so axum's default limit is lifted.
pub fn app(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/v1/images", post(upload))
        .route("/v1/images/{id}", get(metadata))
        .route("/v1/images/{id}/content", get(content))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .merge(api)
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .layer(middleware::from_fn_with_state(state.clone(), record_metrics))
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

async fn authenticate(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    if let Auth::Keys(keys) = &state.auth {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if !presented.is_some_and(|key| keys.accepts(key)) {
            return ApiError::Unauthorized.into_response();
        }
    }
    next.run(request).await
}

async fn record_metrics(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let metrics = &state.metrics;
    metrics
        .latency
        .get_or_create(&RouteLabels { route: route.clone() })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

async fn upload(State(state): State<Arc<AppState>>, request: Request) -> Result<Response, ApiError> {
    let _permit = state.uploads.try_acquire().map_err(|_| ApiError::Overloaded)?;
    state.metrics.in_flight.inc();
    let result = receive_and_store(&state, request).await;
    state.metrics.in_flight.dec();
    let stored = result?;
    let status = match &stored {
        Stored::Created(item) => {
            state.metrics.stored_bytes.inc_by(item.bytes);
            StatusCode::CREATED
        }
        Stored::Existing(_) => StatusCode::OK,
    };
    Ok((status, Json(stored.item().clone())).into_response())
}

async fn receive_and_store(state: &Arc<AppState>, request: Request) -> Result<Stored, ApiError> {
    let (content, info) = receive(request, &state.spool_dir, state.max_image_bytes).await?;
    if !state.allowed.contains(&info.image_type) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "{} images are not accepted by this pipeline",
            info.image_type
        )));
    }
    let now = Timestamp::now();
    let incoming = Incoming {
        content: &content,
        info,
        source: Source::Api,
        at: now,
        kafka: None,
    };
    Ok(state.store.store(&incoming, now).await?)
}

/// Reads an upload, raw or multipart, and recognises the image in it: what
/// the client sent, checked against what it declared. Every failure here is
/// the client's (4xx), except a spool directory that cannot be written.
async fn receive(
    request: Request,
    spool_dir: &std::path::Path,
    limit: u64,
) -> Result<(Content, ImageInfo), ApiError> {
    let spool = Spool::new(spool_dir, limit);
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
        check_content_length(request.headers(), limit)?;
        (Some(declared), read_body(request.into_body(), spool).await?)
    };
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

/// A declared length over the limit is refused before reading anything.
fn check_content_length(headers: &HeaderMap, limit: u64) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit => Err(ApiError::TooLarge(limit)),
        _ => Ok(()),
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
fn unreadable_body(err: &(dyn std::error::Error + 'static)) -> ApiError {
    let mut cause = Some(err);
    while let Some(err) = cause {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return ApiError::BodyTimeout;
        }
        cause = err.source();
    }
    ApiError::BadRequest(format!("the body could not be read: {err}"))
}

async fn find(state: &AppState, id: &str) -> Result<ingest_core::ImageItem, ApiError> {
    let parsed = ImageId::parse(id).ok_or_else(|| ApiError::NotFound(id.to_owned()))?;
    state
        .store
        .get(parsed)
        .await?
        .ok_or_else(|| ApiError::NotFound(id.to_owned()))
}

async fn metadata(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(find(&state, &id).await?).into_response())
}

/// The image's bytes, passed on from S3 as they arrive.
async fn content(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Response, ApiError> {
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

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let mut cached = state.readiness.lock().await;
    let ready = match *cached {
        Some((at, ready)) if at.elapsed() < READINESS_CACHE => ready,
        _ => {
            let ready = match state.store.probe().await {
                Ok(()) => true,
                Err(err) => {
                    tracing::warn!(%err, "not ready");
                    false
                }
            };
            *cached = Some((Instant::now(), ready));
            ready
        }
    };
    if ready {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "backends unreachable").into_response()
    }
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
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
            .block_on(receive(request, &std::env::temp_dir(), 1024))
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
