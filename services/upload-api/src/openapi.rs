//! The OpenAPI 3.1 document of the service, generated from the handlers'
//! annotations and the types they answer with; served at `/openapi.json`
//! and committed as `services/upload-api/openapi.json` (a test fails when
//! the two differ).

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
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
    modifiers(&ApiKeyAuth)
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

/// A `multipart/form-data` upload: the image in the field `file`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "only its schema is used, by the document")]
pub struct UploadForm {
    /// The image; its part's `Content-Type`, when not
    /// `application/octet-stream`, must match the bytes.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}
