//! Downloading the archive over HTTPS into an S3 multipart upload as it
//! arrives, hashing it on the way.
//!
//! Memory stays bounded by construction: the response body is read as a
//! stream of chunks, each hashed and copied into the one part buffer of
//! [`PART_SIZE`] bytes, which is uploaded and dropped before the next part is
//! filled. No code path collects the body, so a release of any size costs one
//! part of memory. The upload is completed only when the SHA-512 of
//! everything read is the expected one; otherwise it is aborted and nothing
//! appears in the bucket.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::BytesMut;
use futures::StreamExt;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sha2::{Digest, Sha512};

use super::checksum::parse_checksum_file;
use super::source::{SHA512_FIELD, URL_FIELD};
use crate::aws::AwsClients;
use crate::error::ComponentError;
use crate::resources::sdk::failed;

/// Size of each uploaded part, and so of the memory a staging holds. S3 takes
/// parts of 5 MiB to 5 GiB (the last may be smaller) and at most 10,000 of
/// them: 8 MiB parts stage archives of up to 78 GiB; a Kafka release is
/// about 130 MiB.
pub const PART_SIZE: usize = 8 * 1024 * 1024;
const MAX_PARTS: usize = 10_000;
/// A published `.sha512` file is a few hundred bytes; anything much larger
/// is not one (an HTML error page, say).
pub(super) const MAX_CHECKSUM_FILE_BYTES: usize = 64 * 1024;
/// Object metadata holding the SHA-512 of a staged archive, read back by find.
pub(super) const SHA512_METADATA: &str = "sha512";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A server silent this long between two reads has stalled; the download is
/// retried. There is no deadline on the whole download: its size is unknown.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The HTTPS client downloads use. By default it trusts what the AWS SDK's
/// client trusts: the system's CA certificates, or only those of the file
/// `SSL_CERT_FILE` names when it is set (as the chart sets it for an AWS
/// emulator's CA). How an archive is fetched is not part of what is desired,
/// so any two compare equal.
#[derive(Clone, Debug, Default)]
pub struct ArchiveClient {
    custom: Option<reqwest::Client>,
}

impl PartialEq for ArchiveClient {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for ArchiveClient {}

impl ArchiveClient {
    /// A client trusting only the CA certificates of `ca_pem`, for a server
    /// with a private CA.
    pub fn trusting(ca_pem: &[u8]) -> Result<Self, ComponentError> {
        let invalid = |detail: String| {
            ComponentError::terminal(
                "InvalidCertificate",
                format!("the CA certificates given for downloads are unusable: {detail}"),
            )
        };
        let mut roots = RootCertStore::empty();
        for certificate in CertificateDer::pem_slice_iter(ca_pem) {
            let certificate = certificate.map_err(|err| invalid(err.to_string()))?;
            roots.add(certificate).map_err(|err| invalid(err.to_string()))?;
        }
        if roots.is_empty() {
            return Err(invalid("no PEM certificate found".to_owned()));
        }
        Ok(Self {
            custom: Some(client(roots)?),
        })
    }

    pub(super) fn http(&self) -> Result<reqwest::Client, ComponentError> {
        match &self.custom {
            Some(client) => Ok(client.clone()),
            None => system_client(),
        }
    }
}

/// One client for the process, built on first use: reading the system's
/// certificates takes a while, and the client keeps connections for reuse.
fn system_client() -> Result<reqwest::Client, ComponentError> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client.clone());
    }
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _unparsable) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
        return Err(ComponentError::terminal(
            "NoTrustedCertificates",
            format!(
                "the operator has no CA certificate to check download servers by ({}); \
                 run it with the system's CA certificates, or set SSL_CERT_FILE to a PEM file of them",
                if errors.is_empty() {
                    "none found".to_owned()
                } else {
                    errors.join("; ")
                }
            ),
        ));
    }
    let client = client(roots)?;
    Ok(CLIENT.get_or_init(|| client).clone())
}

fn client(roots: RootCertStore) -> Result<reqwest::Client, ComponentError> {
    let internal = |detail: String| {
        ComponentError::terminal(
            "InternalError",
            format!("the operator cannot build its HTTPS client: {detail}"),
        )
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| internal(err.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        // Redirects too: an archive is never fetched in the clear.
        .https_only(true)
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .user_agent(concat!("imagepipeline-operator/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| internal(err.to_string()))
}

/// The SHA-512 an archive must have, and who says so (for messages).
#[derive(Clone, Debug)]
pub(super) struct Expected {
    pub sha512: String,
    /// `spec.kafka.distribution.sha512`, or the URL of the checksum file.
    pub from: String,
}

/// Where an archive is staged from and to.
pub(super) struct Staging<'a> {
    pub url: &'a str,
    pub bucket: &'a str,
    pub key: &'a str,
    pub expected: &'a Expected,
}

/// The SHA-512 that the checksum file at `url` gives for `file_name`.
pub(super) async fn published_sha512(
    http: &reqwest::Client,
    url: &str,
    file_name: &str,
) -> Result<String, ComponentError> {
    let set_it = format!("set {SHA512_FIELD} to the archive's SHA-512");
    let response = get(http, url, "KafkaDistributionChecksumMissing", &set_it).await?;
    let unreadable = |why: String| {
        ComponentError::terminal(
            "KafkaDistributionChecksumUnreadable",
            format!("the checksum file {url} cannot be used: {why}; {set_it}"),
        )
    };
    let mut text = Vec::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|err| unreachable(url, err))?;
        if text.len() + chunk.len() > MAX_CHECKSUM_FILE_BYTES {
            return Err(unreadable(format!(
                "it is larger than {} KiB",
                MAX_CHECKSUM_FILE_BYTES / 1024
            )));
        }
        text.extend_from_slice(&chunk);
    }
    parse_checksum_file(&String::from_utf8_lossy(&text), file_name).map_err(unreadable)
}

/// Downloads `staging.url` into `staging.bucket`/`staging.key`, recording
/// its SHA-512 as object metadata; nothing is left behind unless the
/// download is whole and its SHA-512 the expected one.
pub(super) async fn stage(
    aws: &AwsClients,
    http: &reqwest::Client,
    staging: &Staging<'_>,
) -> Result<(), ComponentError> {
    let fix_url = format!("fix {URL_FIELD}");
    let response = get(http, staging.url, "KafkaDistributionNotFound", &fix_url).await?;
    if let Some(length) = response.content_length()
        && length > (PART_SIZE * MAX_PARTS) as u64
    {
        return Err(ComponentError::terminal(
            "KafkaDistributionTooLarge",
            format!(
                "{} is {length} bytes, more than the {} GiB the operator stages: it is no Kafka release; {fix_url}",
                staging.url,
                (PART_SIZE * MAX_PARTS) >> 30
            ),
        ));
    }
    let what = format!("s3://{}/{}", staging.bucket, staging.key);
    let upload_id = aws
        .s3
        .create_multipart_upload()
        .bucket(staging.bucket)
        .key(staging.key)
        .content_type("application/gzip")
        // Only ever completed when the archive has this SHA-512.
        .metadata(SHA512_METADATA, &staging.expected.sha512)
        .send()
        .await
        .map_err(failed("start the upload of", &what))?
        .upload_id()
        .unwrap_or_default()
        .to_owned();
    // Dropped midway (the operator stopping), the upload stays incomplete
    // and invisible until the bucket's lifecycle rule aborts it.
    let uploaded = upload_parts(aws, staging, &upload_id, response).await;
    let completed = match uploaded {
        Ok(parts) => aws
            .s3
            .complete_multipart_upload()
            .bucket(staging.bucket)
            .key(staging.key)
            .upload_id(&upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map(drop)
            .map_err(failed("complete the upload of", &what)),
        Err(err) => Err(err),
    };
    if completed.is_err() {
        abort(aws, staging, &upload_id).await;
    }
    completed
}

/// Streams the body into parts of [`PART_SIZE`] bytes; the SHA-512 of all
/// of it must be the expected one.
async fn upload_parts(
    aws: &AwsClients,
    staging: &Staging<'_>,
    upload_id: &str,
    response: reqwest::Response,
) -> Result<Vec<CompletedPart>, ComponentError> {
    let mut hasher = Sha512::new();
    let mut parts = Vec::new();
    let mut part = BytesMut::with_capacity(PART_SIZE);
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|err| unreachable(staging.url, err))?;
        hasher.update(&chunk);
        while !chunk.is_empty() {
            let taken = chunk.split_to(chunk.len().min(PART_SIZE - part.len()));
            part.extend_from_slice(&taken);
            if part.len() == PART_SIZE {
                if parts.len() + 1 == MAX_PARTS {
                    return Err(ComponentError::terminal(
                        "KafkaDistributionTooLarge",
                        format!("{} is too large to stage: it is no Kafka release", staging.url),
                    ));
                }
                // The buffer goes with the part; the next one is allocated
                // once this one is sent, so only one is ever held.
                let full = std::mem::take(&mut part);
                parts.push(upload_part(aws, staging, upload_id, parts.len() + 1, full).await?);
                part.reserve(PART_SIZE);
            }
        }
    }
    let actual = hex::encode(hasher.finalize());
    if actual != staging.expected.sha512 {
        return Err(mismatch(staging, &actual));
    }
    // The last part, or the only one of an archive smaller than a part.
    if !part.is_empty() || parts.is_empty() {
        parts.push(upload_part(aws, staging, upload_id, parts.len() + 1, part).await?);
    }
    Ok(parts)
}

async fn upload_part(
    aws: &AwsClients,
    staging: &Staging<'_>,
    upload_id: &str,
    number: usize,
    content: BytesMut,
) -> Result<CompletedPart, ComponentError> {
    let number = i32::try_from(number).unwrap_or(i32::MAX);
    let out = aws
        .s3
        .upload_part()
        .bucket(staging.bucket)
        .key(staging.key)
        .upload_id(upload_id)
        .part_number(number)
        .body(ByteStream::from(content.freeze()))
        .send()
        .await
        .map_err(failed(
            &format!("upload part {number} of"),
            &format!("s3://{}/{}", staging.bucket, staging.key),
        ))?;
    Ok(CompletedPart::builder()
        .set_e_tag(out.e_tag().map(str::to_owned))
        .part_number(number)
        .build())
}

/// Best effort: an upload left behind is invisible, and the bucket's
/// lifecycle rule aborts it within a day.
async fn abort(aws: &AwsClients, staging: &Staging<'_>, upload_id: &str) {
    let aborted = aws
        .s3
        .abort_multipart_upload()
        .bucket(staging.bucket)
        .key(staging.key)
        .upload_id(upload_id)
        .send()
        .await;
    if let Err(err) = aborted {
        tracing::warn!(
            bucket = staging.bucket,
            key = staging.key,
            upload_id,
            error = %crate::aws::errors::classify("abort the upload", err),
            "an incomplete upload of the Kafka distribution is left for the bucket's lifecycle rule"
        );
    }
}

fn mismatch(staging: &Staging<'_>, actual: &str) -> ComponentError {
    let Expected { sha512, from } = staging.expected;
    ComponentError::terminal(
        "KafkaDistributionChecksumMismatch",
        format!(
            "the Kafka distribution downloaded from {} has SHA-512 {actual}, but {from} gives {sha512}: \
             it was not staged. Check that {URL_FIELD} names the release you meant and that {SHA512_FIELD}, \
             when set, is that release's published SHA-512",
            staging.url
        ),
    )
}

/// GETs `url`. An answer that the file is not there is terminal (with
/// `reason` and `what_to_do`), as is any other refusal a retry cannot change;
/// a server error or a network failure is retried.
async fn get(
    http: &reqwest::Client,
    url: &str,
    reason: &str,
    what_to_do: &str,
) -> Result<reqwest::Response, ComponentError> {
    let response = http.get(url).send().await.map_err(|err| unreachable(url, err))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let answered = format!("GET {url} answered {status}");
    Err(match status.as_u16() {
        404 | 410 => {
            ComponentError::terminal(reason, format!("{answered}: there is no such file; {what_to_do}"))
        }
        408 | 429 | 500.. => ComponentError::retryable("KafkaDistributionUnavailable", answered),
        _ => ComponentError::terminal("KafkaDistributionRefused", format!("{answered}; {what_to_do}")),
    })
}

/// A download that failed on the way: retried.
fn unreachable(url: &str, err: reqwest::Error) -> ComponentError {
    // The message names the URL once, not again in each cause.
    let err = err.without_url();
    let mut detail = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    ComponentError::retryable(
        "KafkaDistributionUnreachable",
        format!("download of {url} failed: {detail}"),
    )
}
