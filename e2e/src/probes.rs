//! Talking to a service under test over plain HTTP on loopback: a client, an
//! address to listen on, and its Prometheus metrics.

use std::net::SocketAddr;
use std::sync::Arc;

/// An HTTP client for the services under test. The workspace's reqwest has
/// no TLS provider of its own, so one is given (plain HTTP needs none, but
/// the client will not build without it).
pub fn http_client() -> reqwest::Client {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default protocol versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .expect("an HTTP client builds")
}

/// A loopback address for a service under test to listen on: bound and
/// released, then handed over, which is good enough on loopback.
pub fn free_loopback_address() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
}

/// The Prometheus text the service at `address` serves on `/metrics`.
pub async fn metrics_text(address: SocketAddr) -> Result<String, reqwest::Error> {
    http_client()
        .get(format!("http://{address}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await
}

/// The sum of every series of metric `name` (optionally with its labels, as
/// `name{label="value"}`) in a Prometheus text exposition; 0 when absent.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |sum, value| sum + value)
}

/// A `multipart/form-data` body as a browser posts a form: `fields` in
/// order, then `file` as the last field, `file`. Returns the content type
/// and the body.
pub fn form_data<N: AsRef<str>, V: AsRef<str>>(fields: &[(N, V)], file: &[u8]) -> (String, Vec<u8>) {
    let boundary = "imagepipeline-form-boundary";
    let mut body = Vec::new();
    for (name, value) in fields {
        let (name, value) = (name.as_ref(), value.as_ref());
        body.extend(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .bytes(),
        );
    }
    body.extend(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"upload\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .bytes(),
    );
    body.extend(file);
    body.extend(format!("\r\n--{boundary}--\r\n").bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}
