//! A null AWS backend for benchmarks, never for correctness tests: a loopback
//! HTTPS server that answers the calls the services make (S3 PutObject,
//! DynamoDB Query/GetItem/PutItem/UpdateItem/DeleteItem,
//! Firehose PutRecord/PutRecordBatch) at once, with valid answers, and
//! throws the bytes away. With it a benchmark measures the services' own
//! cost, not the emulator's (moto serves about 40 MB/s).
//!
//! It speaks TLS, as AWS does, because the SDK behaves differently over
//! plain HTTP: it signs every chunk of a streamed body there (a SHA-256 pass
//! over a spooled image's bytes that real AWS never causes), and sends it
//! unsigned with a checksum trailer over HTTPS. The services' side of TLS is
//! a cost they pay on AWS too.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::serve::Listener;
use imagepipeline_e2e::Tool;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// What the null backend was asked, for a benchmark to check it measured
/// what it meant to.
#[derive(Debug, Default)]
pub struct NullCounts {
    pub s3_objects: AtomicU64,
    pub s3_bytes: AtomicU64,
    pub dynamodb_calls: AtomicU64,
    pub firehose_records: AtomicU64,
    pub firehose_batches: AtomicU64,
    /// S3 requests whose body SigV4 signed chunk by chunk, which AWS, over
    /// HTTPS, never makes the SDK do: a benchmark that counts one measured
    /// the wrong thing.
    pub s3_signed_chunked_requests: AtomicU64,
    /// TLS connections accepted: each is a handshake the service paid for.
    pub connections: AtomicU64,
}

/// The running backend; it stops when dropped.
pub struct NullAws {
    pub address: SocketAddr,
    pub counts: Arc<NullCounts>,
    /// The CA certificate a client must trust to reach it.
    ca_file: PathBuf,
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
        // The AWS emulator's certificate (scripts/moto/certificate.py):
        // its CA is what the services trust in every other test.
        let ca_file = Tool::MotoCertificate
            .path()
            .expect("the AWS emulator's CA certificate");
        let tls = ca_file.parent().expect("the certificate's directory");
        let chain = CertificateDer::pem_file_iter(tls.join("server.pem"))
            .and_then(Iterator::collect)
            .expect("the emulator's server certificate");
        let key = PrivateKeyDer::from_pem_file(tls.join("server-key.pem")).expect("its key");
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("a TLS configuration");
        let listener = TlsListener {
            counts: counts.clone(),
            tcp: TcpListener::bind("127.0.0.1:0").await.expect("a loopback port"),
            acceptor: TlsAcceptor::from(Arc::new(config)),
        };
        let address = listener.tcp.local_addr().expect("its address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            address,
            counts,
            ca_file,
            task,
        }
    }

    /// Panics if any body went signed chunk by chunk, as the SDK sends them
    /// only over plain HTTP: a benchmark that saw one measured something
    /// AWS never makes the services do.
    pub fn assert_no_signed_chunks(&self) {
        assert_eq!(
            self.counts.s3_signed_chunked_requests.load(Ordering::Relaxed),
            0,
            "bodies went signed chunk by chunk, which AWS over HTTPS never asks for"
        );
    }

    /// SDK configuration for calls from this process, as [`NullAws::env`]
    /// gives a service: its endpoint, a region, dummy credentials, its CA.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        let ca_pem = std::fs::read(&self.ca_file).expect("the emulator's CA certificate");
        imagepipeline_e2e::sdk_config_trusting(&format!("https://{}", self.address), ca_pem).await
    }

    /// The environment that points a service at it through the SDK's
    /// standard variables, trusting its CA.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SSL_CERT_FILE", self.ca_file.display().to_string()),
            ("AWS_ENDPOINT_URL", format!("https://{}", self.address)),
            ("AWS_REGION", "eu-west-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", "null".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "null".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ]
    }
}

/// Accepts TLS connections; one whose handshake fails is dropped.
struct TlsListener {
    counts: Arc<NullCounts>,
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (tcp, address) = Listener::accept(&mut self.tcp).await;
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                self.counts.connections.fetch_add(1, Ordering::Relaxed);
                return (tls, address);
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

fn json(version: &str, body: String) -> Response {
    (
        [(header::CONTENT_TYPE, format!("application/x-amz-json-{version}"))],
        body,
    )
        .into_response()
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
    // S3, path-style: /bucket/key. Whole objects only, as the services
    // store them: a multipart upload is refused, and its bench fails.
    let multipart = uri
        .query()
        .is_some_and(|query| query.contains("uploads") || query.contains("uploadId"));
    match method {
        Method::PUT if !multipart => {
            let signed_chunks = headers
                .get("x-amz-content-sha256")
                .is_some_and(|v| v.as_bytes().starts_with(b"STREAMING-AWS4-HMAC-SHA256"));
            if signed_chunks {
                counts.s3_signed_chunked_requests.fetch_add(1, Ordering::Relaxed);
            }
            counts.s3_objects.fetch_add(1, Ordering::Relaxed);
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
