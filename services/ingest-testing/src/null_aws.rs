//! A null AWS backend for benchmarks, never for correctness tests: a loopback
//! HTTP server that answers the calls the services make (S3 PutObject and
//! multipart uploads, DynamoDB Query/GetItem/PutItem/UpdateItem/DeleteItem,
//! Firehose PutRecord/PutRecordBatch) at once, with valid answers, and
//! throws the bytes away. With it a benchmark measures the services' own
//! cost, not the emulator's (moto serves about 40 MB/s).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

/// What the null backend was asked, for a benchmark to check it measured
/// what it meant to.
#[derive(Debug, Default)]
pub struct NullCounts {
    pub s3_objects: AtomicU64,
    pub s3_bytes: AtomicU64,
    pub dynamodb_calls: AtomicU64,
    pub firehose_records: AtomicU64,
    pub firehose_batches: AtomicU64,
}

/// The running backend; it stops when dropped.
pub struct NullAws {
    pub address: SocketAddr,
    pub counts: Arc<NullCounts>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for NullAws {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl NullAws {
    pub async fn start() -> Self {
        let counts = Arc::new(NullCounts::default());
        // Parts and objects are as large as the services send: no body limit.
        let app = Router::new()
            .fallback(answer)
            .layer(DefaultBodyLimit::disable())
            .with_state(counts.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let address = listener.local_addr().expect("its address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            address,
            counts,
            task,
        }
    }

    /// The environment that points a service at it through the SDK's
    /// standard variables (plain HTTP: no TLS cost on either side).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", format!("http://{}", self.address)),
            ("AWS_REGION", "eu-west-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", "null".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "null".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ]
    }
}

fn json(version: &str, body: String) -> Response {
    (
        [(header::CONTENT_TYPE, format!("application/x-amz-json-{version}"))],
        body,
    )
        .into_response()
}

fn xml(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

const ETAG: &str = "\"00000000000000000000000000000000\"";

async fn answer(
    State(counts): State<Arc<NullCounts>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(target) = headers.get("x-amz-target").and_then(|t| t.to_str().ok()) {
        return match target.split_once('.') {
            Some(("DynamoDB_20120810", operation)) => {
                counts.dynamodb_calls.fetch_add(1, Ordering::Relaxed);
                let answer = match operation {
                    "Query" => r#"{"Count":0,"Items":[],"ScannedCount":0}"#,
                    _ => "{}",
                };
                json("1.0", answer.to_owned())
            }
            Some(("Firehose_20150804", "PutRecord")) => {
                counts.firehose_records.fetch_add(1, Ordering::Relaxed);
                counts.firehose_batches.fetch_add(1, Ordering::Relaxed);
                json("1.1", r#"{"RecordId":"null","Encrypted":false}"#.to_owned())
            }
            Some(("Firehose_20150804", "PutRecordBatch")) => {
                let records = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["Records"].as_array().map(Vec::len))
                    .unwrap_or(0);
                counts
                    .firehose_records
                    .fetch_add(records as u64, Ordering::Relaxed);
                counts.firehose_batches.fetch_add(1, Ordering::Relaxed);
                let responses = vec![r#"{"RecordId":"null"}"#; records].join(",");
                json(
                    "1.1",
                    format!(r#"{{"FailedPutCount":0,"Encrypted":false,"RequestResponses":[{responses}]}}"#),
                )
            }
            _ => (
                StatusCode::BAD_REQUEST,
                format!("the null backend does not answer {target}"),
            )
                .into_response(),
        };
    }
    // S3, path-style: /bucket/key?…
    let query = uri.query().unwrap_or_default();
    let has = |name: &str| {
        query
            .split('&')
            .any(|p| p == name || p.starts_with(&format!("{name}=")))
    };
    let (bucket, key) = uri
        .path()
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or((uri.path().trim_start_matches('/'), ""));
    match method {
        Method::POST if has("uploads") => xml(format!(
            "<InitiateMultipartUploadResult><Bucket>{bucket}</Bucket><Key>{key}</Key>\
             <UploadId>null-upload</UploadId></InitiateMultipartUploadResult>"
        )),
        Method::POST if has("uploadId") => {
            counts.s3_objects.fetch_add(1, Ordering::Relaxed);
            xml(format!(
                "<CompleteMultipartUploadResult><Bucket>{bucket}</Bucket><Key>{key}</Key>\
                 <ETag>{ETAG}</ETag></CompleteMultipartUploadResult>"
            ))
        }
        Method::PUT => {
            if !has("partNumber") {
                counts.s3_objects.fetch_add(1, Ordering::Relaxed);
            }
            counts.s3_bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
            ([(header::ETAG, ETAG)], "").into_response()
        }
        Method::DELETE => StatusCode::NO_CONTENT.into_response(),
        _ => (
            StatusCode::BAD_REQUEST,
            format!("the null backend does not answer {method} {uri}"),
        )
            .into_response(),
    }
}
