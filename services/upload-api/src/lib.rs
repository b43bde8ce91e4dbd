//! upload-api: the HTTP service that takes images in (../shared/DESIGN.md,
//! "upload-api"). Three ways in: `POST /v1/images` (raw or multipart), tus
//! resumable uploads at `/v1/resumable`, and direct uploads to S3 through
//! `/v1/uploads`; `GET /v1/images/{id}` and `/content`; `/healthz`,
//! `/readyz`, `/metrics` and `/openapi.json`.

pub mod auth;
pub mod config;
mod direct;
pub mod error;
mod images;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod resumable;
pub mod server;
pub mod staging;
mod uploads;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, head, post};
use ingest_core::store::Store;
use ingest_core::{DecodeBudget, ImageRules, ImageType, Spool, SpoolMemory};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

use crate::limits::{KeyLimitSettings, KeyLimits};
use crate::staging::Staging;

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
    /// Decoding limits and the metadata removed.
    pub image_rules: ImageRules,
    /// Memory the decodes in progress share; uploads beyond it wait.
    pub decode_budget: DecodeBudget,
    /// Where images larger than a few hundred KiB are held while they arrive,
    /// once `spool_memory` is taken.
    pub spool_dir: PathBuf,
    /// Memory the images arriving at once share before they are spooled.
    pub spool_memory: SpoolMemory,
    pub metrics: Metrics,
    /// Uploads admitted at once; beyond it the answer is 503.
    pub uploads: Arc<Semaphore>,
    /// Where resumable and direct uploads wait until they are complete.
    pub staging: Staging,
    /// Requests and bytes each key may send; unlimited unless set by
    /// [`AppState::with_key_limits`].
    pub key_limits: KeyLimits,
    readiness: Mutex<Option<(Instant, bool)>>,
}

impl AppState {
    pub fn new(
        store: Store,
        auth: Auth,
        max_image_bytes: u64,
        allowed: BTreeSet<ImageType>,
        image_rules: ImageRules,
        spool_dir: PathBuf,
        max_concurrent_uploads: usize,
    ) -> Self {
        let metrics = Metrics::new();
        Self {
            staging: Staging::new(&store, &spool_dir),
            store,
            auth,
            max_image_bytes,
            allowed,
            image_rules,
            decode_budget: DecodeBudget::default(),
            spool_dir,
            spool_memory: SpoolMemory::default().with_waits_observed_in(metrics.spool_memory_wait.clone()),
            metrics,
            uploads: Arc::new(Semaphore::new(max_concurrent_uploads)),
            key_limits: KeyLimits::default(),
            readiness: Mutex::new(None),
        }
    }

    /// A place among the uploads in flight, or 503 when they are all taken.
    fn upload_permit(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        Arc::clone(&self.uploads)
            .try_acquire_owned()
            .map_err(|_| ApiError::Overloaded)
    }

    /// Where an arriving image is held: in memory while the share has room,
    /// else in the spool directory.
    pub(crate) fn spool(&self) -> Spool {
        Spool::new(&self.spool_dir, self.max_image_bytes).with_memory(&self.spool_memory)
    }

    /// Lets arriving images share `bytes` of memory before they are spooled.
    pub fn with_spool_memory(self, bytes: u64) -> Self {
        Self {
            spool_memory: SpoolMemory::new(bytes)
                .with_waits_observed_in(self.metrics.spool_memory_wait.clone()),
            ..self
        }
    }

    /// Limits every key to `settings`.
    pub fn with_key_limits(self, settings: KeyLimitSettings) -> Self {
        Self {
            key_limits: KeyLimits::new(settings),
            ..self
        }
    }
}

/// Who sent a request: the name of its API key (never the key), put in the
/// request's and the response's extensions by [`authenticate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller(pub String);

/// The service's routes. The body limit is enforced while reading, per
/// upload, so axum's default limit is lifted.
pub fn app(state: Arc<AppState>) -> Router {
    let resumable = Router::new()
        .route(
            "/v1/resumable",
            post(resumable::create).options(resumable::discover),
        )
        .route(
            "/v1/resumable/{id}",
            head(resumable::offset)
                .patch(resumable::append)
                .delete(resumable::terminate),
        )
        .layer(middleware::map_response(resumable::with_tus_resumable));
    let api = Router::new()
        .route("/v1/images", post(images::upload))
        .route("/v1/images/{id}", get(images::metadata))
        .route("/v1/images/{id}/content", get(images::content))
        .route("/v1/uploads", post(direct::create))
        .route("/v1/uploads/{id}/complete", post(direct::complete))
        .merge(resumable)
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .merge(api)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi_json))
        .layer(middleware::from_fn_with_state(state.clone(), record_metrics))
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// Finds the caller's key name and admits the request within the key's
/// limits.
async fn authenticate(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    // tus clients ask what the server supports before they hold an upload.
    if request.method() == Method::OPTIONS {
        return next.run(request).await;
    }
    let name = match &state.auth {
        Auth::Disabled => auth::ANONYMOUS.to_owned(),
        Auth::Keys(keys) => {
            let presented = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim);
            match presented.and_then(|key| keys.accepts(key)) {
                Some(name) => name,
                None => return ApiError::Unauthorized.into_response(),
            }
        }
    };
    let caller = Caller(name);
    let upload = matches!(*request.method(), Method::POST | Method::PATCH);
    let mut response = match state.key_limits.admit(&caller.0, upload, Instant::now()) {
        Ok(()) => {
            request.extensions_mut().insert(caller.clone());
            next.run(request).await
        }
        Err(refusal) => {
            state
                .metrics
                .rate_limited
                .get_or_create(&metrics::KeyLimitLabels {
                    key: caller.0.clone(),
                    limit: refusal.limit.as_str().to_owned(),
                })
                .inc();
            ApiError::RateLimited {
                key: caller.0.clone(),
                refusal,
            }
            .into_response()
        }
    };
    response.extensions_mut().insert(caller);
    response
}

async fn record_metrics(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let metrics = &state.metrics;
    if let Some(Caller(key)) = response.extensions().get::<Caller>() {
        metrics
            .key_requests
            .get_or_create(&metrics::KeyRequestLabels {
                key: key.clone(),
                status: response.status().as_u16(),
            })
            .inc();
    }
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

/// Alive.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "The process answers", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok"
}

/// Ready: S3 and DynamoDB answer (checked at most every 5 s).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "S3 and DynamoDB answer", body = String, content_type = "text/plain"),
        (status = 503, description = "S3 or DynamoDB does not", body = String, content_type = "text/plain"),
    )
)]
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

/// Prometheus metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "OpenMetrics text", body = String, content_type = "application/openmetrics-text"))
)]
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

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object, content_type = "application/json"))
)]
async fn openapi_json() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], openapi::document()).into_response()
}
