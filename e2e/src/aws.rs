use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::Credentials;
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore, rustls_provider::CryptoMode};
use tempfile::TempDir;

use crate::brokers::BrokerStandIn;
use crate::{
    HarnessError, Tool,
    process::{ServiceProcess, free_loopback_port},
};

/// Region the emulator's clients use; the one of `examples/imagepipeline.yaml`.
pub const REGION: &str = "eu-west-1";

/// SDK configuration for an endpoint of ours that serves TLS with a
/// certificate from `ca_pem` (the emulator, the benchmarks' null backend):
/// [`REGION`], dummy credentials, the SDK's own HTTPS client trusting that CA
/// and nothing else, and nothing read from the machine's AWS settings.
pub async fn sdk_config_trusting(endpoint_url: &str, ca_pem: Vec<u8>) -> SdkConfig {
    let trust = TrustStore::empty().with_pem_certificate(ca_pem);
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(
            TlsContext::builder()
                .with_trust_store(trust)
                .build()
                .expect("a trust store is a valid TLS context"),
        )
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .region(Region::new(REGION))
        .endpoint_url(endpoint_url)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "aws-emulator"))
        .load()
        .await
}

/// moto imports its services lazily, and a cold machine is slow.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Tries with a new port when another process took the one picked.
const START_ATTEMPTS: usize = 3;

/// Servers not leased by a running test; they stop when the test process ends.
static IDLE: Mutex<Vec<MotoServer>> = Mutex::new(Vec::new());

struct MotoServer {
    process: ServiceProcess,
    endpoint: String,
    tls: EmulatorTls,
    // The log lives here; removed when the server is dropped.
    _dir: TempDir,
}

/// The emulator serves TLS only, like AWS, with a certificate from its own
/// CA; its clients trust that CA and nothing else.
#[derive(Clone)]
struct EmulatorTls {
    ca_file: PathBuf,
    ca_pem: Vec<u8>,
}

impl EmulatorTls {
    fn load() -> Result<Self, HarnessError> {
        let ca_file = Tool::MotoCertificate.path()?;
        let ca_pem = std::fs::read(&ca_file).map_err(|source| HarnessError::Io {
            what: format!("reading the AWS emulator's CA certificate {}", ca_file.display()),
            source,
        })?;
        Ok(Self { ca_file, ca_pem })
    }

    /// An HTTP client for the emulator's own API (readiness, reset).
    fn http_client(&self) -> Result<reqwest::Client, HarnessError> {
        let invalid = |detail: String| HarnessError::Tls {
            ca_file: self.ca_file.clone(),
            detail,
        };
        let mut roots = rustls::RootCertStore::empty();
        for certificate in rustls::pki_types::pem::PemObject::pem_slice_iter(&self.ca_pem) {
            let certificate: rustls::pki_types::CertificateDer<'_> =
                certificate.map_err(|e| invalid(e.to_string()))?;
            roots.add(certificate).map_err(|e| invalid(e.to_string()))?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        reqwest::Client::builder()
            .use_preconfigured_tls(config)
            .build()
            .map_err(|source| HarnessError::Http {
                what: "building an HTTPS client for the AWS emulator".into(),
                source,
            })
    }
}

impl MotoServer {
    async fn start() -> Result<Self, HarnessError> {
        let program = Tool::MotoServer.path()?;
        let tls = EmulatorTls::load()?;
        let http = tls.http_client()?;
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::Builder::new()
                .prefix("imagepipeline-moto-")
                .tempdir()
                .map_err(|source| HarnessError::Io {
                    what: "creating a folder for the AWS emulator".into(),
                    source,
                })?;
            let port = free_loopback_port()?;
            let args = [
                "-H".to_owned(),
                "127.0.0.1".to_owned(),
                "-p".to_owned(),
                port.to_string(),
            ];
            let mut process = ServiceProcess::spawn(
                "the AWS emulator (moto server)",
                &program,
                &args,
                dir.path(),
                dir.path().join("moto.log"),
            )?;
            let endpoint = format!("https://127.0.0.1:{port}");
            let dashboard = format!("{endpoint}/moto-api/");
            let ready = process
                .wait_until_ready(READY_TIMEOUT, || {
                    let request = http.get(&dashboard).send();
                    async move { request.await.is_ok_and(|r| r.status().is_success()) }
                })
                .await;
            match ready {
                Ok(()) => {
                    return Ok(Self {
                        process,
                        endpoint,
                        tls,
                        _dir: dir,
                    });
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    async fn reset(&self) -> Result<(), HarnessError> {
        let url = format!("{}/moto-api/reset", self.endpoint);
        let failed = |source| HarnessError::Http {
            what: format!("resetting the AWS emulator at {url}"),
            source,
        };
        self.tls
            .http_client()?
            .post(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(failed)?;
        Ok(())
    }
}

/// An AWS emulator (moto server) leased by one test: empty when the test gets
/// it, speaking every AWS API the pipeline uses on one loopback port.
///
/// Dropping the lease returns the server to a pool; the next test's lease
/// resets it first, so tests never see each other's resources, and a test
/// process starts at most as many servers as it runs tests at once.
pub struct AwsEmulator {
    server: Option<MotoServer>,
    /// Heartbeats for the brokers the test's pipelines launch, once asked.
    brokers: Option<BrokerStandIn>,
}

impl AwsEmulator {
    /// Leases a server, reset to empty, starting one when none is idle.
    pub async fn start() -> Result<Self, HarnessError> {
        loop {
            let idle = IDLE.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop();
            let Some(mut server) = idle else {
                let server = MotoServer::start().await?;
                return Ok(Self {
                    server: Some(server),
                    brokers: None,
                });
            };
            // A server that died or cannot reset is dropped, and the next tried.
            if server.process.ensure_running().is_ok() && server.reset().await.is_ok() {
                return Ok(Self {
                    server: Some(server),
                    brokers: None,
                });
            }
        }
    }

    /// Stands in for what managed brokers need and emulated instances cannot
    /// do: places the Kafka distribution the tests' pipelines name
    /// ([`crate::brokers::KAFKA_DISTRIBUTION_URI`]), and from now until the
    /// lease ends, the broker instances they launch report as their boot
    /// script would (see [`BrokerStandIn`]). `local_broker`: the broker whose
    /// answering makes them `serving`; `None`, always.
    pub async fn play_brokers(&mut self, local_broker: Option<String>) -> Result<(), HarnessError> {
        crate::brokers::place_kafka_distribution(&self.s3().await, REGION)
            .await
            .map_err(HarnessError::Scenario)?;
        self.brokers = Some(BrokerStandIn::start(self.sdk_config().await, local_broker));
        Ok(())
    }

    fn server(&self) -> &MotoServer {
        self.server.as_ref().expect("leased until dropped")
    }

    /// The URL every AWS client of the test uses (`AWS_ENDPOINT_URL`).
    pub fn endpoint_url(&self) -> &str {
        &self.server().endpoint
    }

    /// Deletes every resource in the emulator.
    pub async fn reset(&self) -> Result<(), HarnessError> {
        self.server().reset().await
    }

    /// From now until the lease ends, EC2 requests draw from AWS's token
    /// bucket for their action and are refused with `RequestLimitExceeded`
    /// when it is empty, as on AWS (`scripts/moto/ec2_limits.py`).
    pub async fn limit_ec2_requests_as_aws(&self) -> Result<(), HarnessError> {
        self.ec2_request_limits(reqwest::Method::POST).await.map(drop)
    }

    /// EC2 requests refused since [`AwsEmulator::limit_ec2_requests_as_aws`],
    /// by action.
    pub async fn ec2_requests_refused(&self) -> Result<BTreeMap<String, u64>, HarnessError> {
        let report = self.ec2_request_limits(reqwest::Method::GET).await?;
        Ok(report["refused"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(action, n)| (action.clone(), n.as_u64().unwrap_or_default()))
            .collect())
    }

    async fn ec2_request_limits(&self, method: reqwest::Method) -> Result<serde_json::Value, HarnessError> {
        let url = format!("{}/moto-api/ec2-request-limits", self.endpoint_url());
        let failed = |source| HarnessError::Http {
            what: format!("{method} {url}"),
            source,
        };
        self.https_client()
            .request(method.clone(), &url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(failed)?
            .json()
            .await
            .map_err(failed)
    }

    /// The CA certificate a client must trust to reach the emulator.
    pub fn ca_file(&self) -> &Path {
        &self.server().tls.ca_file
    }

    /// SDK configuration for this emulator: its endpoint, [`REGION`], dummy
    /// credentials and its CA, with nothing read from the machine's AWS settings.
    pub async fn sdk_config(&self) -> SdkConfig {
        sdk_config_trusting(self.endpoint_url(), self.server().tls.ca_pem.clone()).await
    }

    /// An HTTPS client trusting this emulator's CA only, for requests no SDK
    /// makes (a browser's POST upload to S3).
    pub fn https_client(&self) -> reqwest::Client {
        self.server()
            .tls
            .http_client()
            .unwrap_or_else(|err| panic!("an HTTPS client for the AWS emulator: {err}"))
    }

    /// An S3 client for this emulator. S3 needs path-style addressing here:
    /// bucket names cannot be subdomains of a loopback address.
    pub async fn s3(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::from(&self.sdk_config().await)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// The environment that points a child process (the operator, a service)
    /// at this emulator through the SDK's standard variables; `SSL_CERT_FILE`
    /// makes the emulator's CA the only one the child trusts.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SSL_CERT_FILE", self.ca_file().display().to_string()),
            ("AWS_ENDPOINT_URL", self.endpoint_url().to_owned()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ]
    }
}

impl Drop for AwsEmulator {
    fn drop(&mut self) {
        // No heartbeat may land in the next lease's emulator.
        self.brokers = None;
        if let Some(server) = self.server.take() {
            IDLE.lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(server);
        }
    }
}
