//! The OpenAPI 3.1 document of the service, generated from the handlers'
//! annotations and the types they answer with; served at `/openapi.json`
//! and committed as `services/upload-api/openapi.json` (a test fails when
//! the two differ).

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::error::{ErrorBody, ErrorDetail};

/// Where the committed document lives, from the crate's folder.
pub const COMMITTED: &str = "openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ImagePipeline upload API",
        description = "Takes images in and stores them in the pipeline: decoded, stripped of \
                       metadata, deduplicated by content. Every error is `{\"error\": {\"code\", \"message\"}}`."
    ),
    paths(
        crate::images::upload,
        crate::images::metadata,
        crate::images::content,
        crate::resumable::discover,
        crate::resumable::create,
        crate::resumable::offset,
        crate::resumable::append,
        crate::resumable::terminate,
        crate::direct::create,
        crate::direct::complete,
        crate::healthz,
        crate::readyz,
        crate::metrics_text,
        crate::openapi_json
    ),
    components(schemas(ingest_core::ImageItem, ErrorBody, ErrorDetail, UploadForm, crate::direct::DirectUpload)),
    modifiers(&ApiKeyAuth, &KeyedOperations)
)]
pub struct ApiDoc;

/// The document as served and committed: pretty JSON ending in a newline.
pub fn document() -> String {
    let mut text = ApiDoc::openapi().to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}

/// The name of the security scheme the `/v1` operations require.
pub const API_KEY: &str = "api_key";

struct ApiKeyAuth;

impl Modify for ApiKeyAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.description = Some("An API key of the pipeline's keys file".to_owned());
        components.add_security_scheme(API_KEY, SecurityScheme::Http(bearer));
    }
}

/// What every keyed operation may also answer: the key check runs before
/// each one (401, 429), and each calls AWS (502, 503). Added here once
/// rather than repeated in every handler's annotation; a handler that says
/// more about one of these statuses keeps its own description.
struct KeyedOperations;

/// The operations that take a key: all of `/v1` but tus discovery, which
/// clients ask before they have an upload.
fn keyed<'a>(path: &str, item: &'a mut PathItem) -> Vec<(bool, &'a mut Operation)> {
    if !path.starts_with("/v1/") {
        return Vec::new();
    }
    [
        (false, item.get.as_mut()),
        (false, item.post.as_mut()),
        (false, item.put.as_mut()),
        (false, item.patch.as_mut()),
        (false, item.delete.as_mut()),
        (true, item.head.as_mut()),
    ]
    .into_iter()
    .filter_map(|(head, operation)| operation.map(|o| (head, o)))
    .collect()
}

impl Modify for KeyedOperations {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in &mut openapi.paths.paths {
            for (head, operation) in keyed(path, item) {
                operation.security = Some(vec![SecurityRequirement::new::<_, _, &str>(API_KEY, [])]);
                let rows = [
                    ("401", "No or wrong API key", false),
                    ("429", "The key is over its limits", true),
                    ("502", "AWS failed", false),
                    ("503", "AWS throttled", true),
                ];
                for (status, description, retry_after) in rows {
                    let responses = &mut operation.responses.responses;
                    if !responses.contains_key(status) {
                        responses.insert(status.to_owned(), error_response(description, head, retry_after));
                    }
                }
            }
        }
    }
}

/// An error answer; `HEAD` answers carry no body.
fn error_response(description: &str, head: bool, retry_after: bool) -> RefOr<Response> {
    let mut response = ResponseBuilder::new().description(description);
    if !head {
        let body = ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build();
        response = response.content("application/json", body);
    }
    if retry_after {
        let seconds = HeaderBuilder::new()
            .schema(<u64 as utoipa::PartialSchema>::schema())
            .description(Some("Seconds to wait"))
            .build();
        response = response.header("Retry-After", seconds);
    }
    RefOr::T(response.build())
}

/// A `multipart/form-data` upload: the image in the field `file`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "only its schema is used, by the document")]
pub struct UploadForm {
    /// The image; its part's `Content-Type`, when not
    /// `application/octet-stream`, must match the bytes.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}
