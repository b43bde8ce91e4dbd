//! The Kafka distribution the brokers install: staged by the operator into
//! the pipeline's bucket under `artifacts/kafka/<version>/`, or a copy the
//! user placed (`spec.kafka.distribution.s3Uri`).
//!
//! Staging happens once per version: the staged object records its SHA-512
//! as metadata, and finding it there is enough. Only a `sha512` in the spec
//! that differs from the recorded one stages it again. A copy the user placed
//! is only looked at: its SHA-512 comes from the spec or the `.sha512` object
//! beside it, and the brokers check it when they install it.

mod checksum;
mod fetch;
mod placed;
mod source;

use aws_sdk_s3::operation::head_object::HeadObjectError;
use ingest_core::contract::prefix::KAFKA_ARTIFACTS;

use self::checksum::{abbreviated, is_sha512_hex};
use self::fetch::{Expected, SHA512_METADATA, Staging};
use self::placed::unusable_copy;
use self::source::{S3_URI_FIELD, SHA512_FIELD, URL_FIELD, file_and_version, https_path, s3_location};
use super::sdk::{deleted, failed};
use crate::api::v1alpha1::KafkaDistributionSpec;
use crate::api::v1alpha1::managed_kafka_defaults::DISTRIBUTION_URL;
use crate::aws::AwsClients;
use crate::aws::errors::status;
use crate::engine::resource::Resource;
use crate::error::ComponentError;
pub use fetch::{ArchiveClient, PART_SIZE};

/// Where the brokers fetch Kafka from, and what its SHA-512 must be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagedArchive {
    /// Bucket holding the archive (the pipeline's, unless `s3Uri` names another).
    pub bucket: String,
    /// Object key of the `.tgz`.
    pub key: String,
    /// Lowercase hex SHA-512 of the archive.
    pub sha512: String,
    /// Kafka version, e.g. `4.1.1`.
    pub version: String,
}

/// Where the archive comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Origin {
    /// Downloaded from this HTTPS URL into the pipeline's bucket.
    Download { url: String },
    /// A copy the user placed at this S3 URI, used where it is.
    Placed { uri: String },
}

/// The Kafka distribution as the spec wants it: where it comes from, and
/// where the brokers read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaDistribution {
    origin: Origin,
    /// `kafka_<scala>-<version>.tgz`.
    file_name: String,
    version: String,
    /// The SHA-512 the spec gives, lowercase.
    sha512: Option<String>,
    bucket: String,
    key: String,
    client: ArchiveClient,
}

/// The archive in S3, as find or a staging saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveObject {
    pub bucket: String,
    pub key: String,
    /// Lowercase hex SHA-512: recorded on the staged object; for a copy the
    /// user placed, the spec's or the `.sha512` beside it.
    pub sha512: String,
    /// Why a copy the user placed cannot be used (it is missing, or nothing
    /// gives its SHA-512): apply and plan stop with it, a teardown leaves
    /// the copy alone.
    unusable: Option<ComponentError>,
}

impl KafkaDistribution {
    /// The distribution `spec` asks for (the default release when unset),
    /// staged into `pipeline_bucket` unless it names a copy in S3. Refuses a
    /// spec that names no `kafka_<scala>-<version>.tgz`, naming its field.
    pub fn from_spec(
        spec: Option<&KafkaDistributionSpec>,
        pipeline_bucket: &str,
    ) -> Result<Self, ComponentError> {
        let (url, sha512, s3_uri) = match spec {
            Some(spec) => (
                spec.url.as_deref(),
                spec.sha512.as_deref(),
                spec.s3_uri.as_deref(),
            ),
            None => (None, None, None),
        };
        if let Some(sha512) = sha512
            && !is_sha512_hex(sha512)
        {
            return Err(invalid(format!(
                "{SHA512_FIELD} {sha512} is not a SHA-512: give the 128 hexadecimal digits `sha512sum` prints"
            )));
        }
        let sha512 = sha512.map(str::to_ascii_lowercase);
        let client = ArchiveClient::default();
        match (url, s3_uri) {
            (Some(_), Some(_)) => Err(invalid(format!(
                "{URL_FIELD} and {S3_URI_FIELD} exclude each other: remove one"
            ))),
            (None, Some(uri)) => {
                let (bucket, key) = s3_location(uri)?;
                let (file_name, version) = file_and_version(&key, S3_URI_FIELD, uri)?;
                Ok(Self {
                    origin: Origin::Placed { uri: uri.to_owned() },
                    file_name,
                    version,
                    sha512,
                    bucket,
                    key,
                    client,
                })
            }
            (url, None) => {
                let url = url.unwrap_or(DISTRIBUTION_URL);
                let (file_name, version) = file_and_version(&https_path(url)?, URL_FIELD, url)?;
                Ok(Self {
                    key: format!("{KAFKA_ARTIFACTS}{version}/{file_name}"),
                    origin: Origin::Download { url: url.to_owned() },
                    file_name,
                    version,
                    sha512,
                    bucket: pipeline_bucket.to_owned(),
                    client,
                })
            }
        }
    }

    /// Downloads with `client` instead of the default one.
    pub fn downloading_with(mut self, client: ArchiveClient) -> Self {
        self.client = client;
        self
    }

    /// The Kafka version, e.g. `4.1.1`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The bucket the brokers read the archive from.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The archive's key in [`Self::bucket`], known before it is staged.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether the operator stages the archive, and so deletes it in a
    /// teardown; a copy the user placed is neither changed nor deleted, and
    /// a teardown need not declare it.
    pub fn stages(&self) -> bool {
        matches!(self.origin, Origin::Download { .. })
    }

    /// What the brokers install, from what `Walk::ensure` returned. The
    /// spec's SHA-512, when given, is the one the archive has once the
    /// apply that found another has staged it again.
    pub fn archive(&self, observed: &ArchiveObject) -> StagedArchive {
        StagedArchive {
            bucket: observed.bucket.clone(),
            key: observed.key.clone(),
            sha512: self.sha512.clone().unwrap_or_else(|| observed.sha512.clone()),
            version: self.version.clone(),
        }
    }

    /// What the brokers would install, before anything is staged (a plan of
    /// a new pipeline): the SHA-512 is the spec's, or not known yet.
    pub fn planned_archive(&self) -> StagedArchive {
        StagedArchive {
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            sha512: self.sha512.clone().unwrap_or_default(),
            version: self.version.clone(),
        }
    }

    /// `bucket/key`, as an S3 ARN ends.
    pub fn object_path(&self) -> String {
        format!("{}/{}", self.bucket, self.key)
    }

    fn object(&self, sha512: String, unusable: Option<ComponentError>) -> ArchiveObject {
        ArchiveObject {
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            sha512,
            unusable,
        }
    }

    /// Stages the archive from `url` and returns its SHA-512.
    async fn stage(&self, aws: &AwsClients, url: &str) -> Result<String, ComponentError> {
        let http = self.client.http()?;
        let expected = match &self.sha512 {
            Some(sha512) => Expected {
                sha512: sha512.clone(),
                from: SHA512_FIELD.to_owned(),
            },
            None => {
                let checksum_url = checksum_url(url);
                let sha512 = fetch::published_sha512(&http, &checksum_url, &self.file_name).await?;
                Expected {
                    sha512,
                    from: checksum_url,
                }
            }
        };
        let staging = Staging {
            url,
            bucket: &self.bucket,
            key: &self.key,
            expected: &expected,
        };
        fetch::stage(aws, &http, &staging).await?;
        Ok(expected.sha512)
    }
}

/// Apache publishes an archive's SHA-512 beside it, at `<url>.sha512`.
fn checksum_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            let path = format!("{}.sha512", parsed.path());
            parsed.set_path(&path);
            parsed.into()
        }
        Err(_) => format!("{url}.sha512"),
    }
}

fn invalid(message: String) -> ComponentError {
    ComponentError::terminal("InvalidKafkaDistribution", message)
}

impl Resource for KafkaDistribution {
    type Observed = ArchiveObject;
    // An object in the pipeline's bucket, which the status lists.
    const TYPE: Option<&'static str> = None;

    fn label(&self) -> String {
        format!(
            "Kafka {} distribution s3://{}/{}",
            self.version, self.bucket, self.key
        )
    }

    async fn find(&self, aws: &AwsClients) -> Result<Option<ArchiveObject>, ComponentError> {
        let head = aws
            .s3
            .head_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .send()
            .await;
        let not_found = |err: &HeadObjectError| err.is_not_found();
        let metadata = match (head, &self.origin) {
            (Ok(out), _) => out.metadata().cloned().unwrap_or_default(),
            (Err(err), Origin::Download { .. }) if err.as_service_error().is_some_and(not_found) => {
                return Ok(None);
            }
            (Err(err), Origin::Placed { uri })
                if err.as_service_error().is_some_and(not_found) || status(&err) == Some(301) =>
            {
                return Ok(Some(
                    self.object(String::new(), Some(unusable_copy(uri, status(&err)))),
                ));
            }
            (Err(err), _) => return Err(failed("read", &self.label())(err)),
        };
        match &self.origin {
            // An object without the SHA-512 a staging records was not staged
            // by the operator: staged again, so that its SHA-512 is known.
            Origin::Download { .. } => Ok(metadata
                .get(SHA512_METADATA)
                .filter(|sha512| is_sha512_hex(sha512))
                .map(|sha512| self.object(sha512.to_ascii_lowercase(), None))),
            Origin::Placed { uri } => self.placed(aws, uri).await.map(Some),
        }
    }

    fn delta(&self, observed: &ArchiveObject) -> Result<Vec<String>, ComponentError> {
        Ok(match (&self.origin, &self.sha512) {
            (Origin::Download { url }, Some(wanted)) if *wanted != observed.sha512 => vec![
                format!(
                    "SHA-512: {} → {}",
                    abbreviated(&observed.sha512),
                    abbreviated(wanted)
                ),
                format!("staged again from {url}"),
            ],
            _ => Vec::new(),
        })
    }

    fn create_fields(&self) -> Vec<String> {
        match &self.origin {
            Origin::Download { url } => vec![
                format!("from {url}"),
                match &self.sha512 {
                    Some(sha512) => format!("SHA-512 {}", abbreviated(sha512)),
                    None => format!("SHA-512 from {}", checksum_url(url)),
                },
            ],
            Origin::Placed { .. } => vec!["a copy you placed: nothing is staged".to_owned()],
        }
    }

    async fn create(&self, aws: &AwsClients) -> Result<ArchiveObject, ComponentError> {
        match &self.origin {
            Origin::Download { url } => {
                let sha512 = self.stage(aws, url).await?;
                Ok(self.object(sha512, None))
            }
            // Find reports a missing copy; the operator never makes one.
            Origin::Placed { uri } => Err(unusable_copy(uri, None)),
        }
    }

    async fn update(&self, aws: &AwsClients, _observed: &ArchiveObject) -> Result<(), ComponentError> {
        match &self.origin {
            Origin::Download { url } => self.stage(aws, url).await.map(drop),
            Origin::Placed { .. } => Ok(()),
        }
    }

    fn delete_fields(&self) -> Vec<String> {
        match &self.origin {
            Origin::Download { .. } => Vec::new(),
            Origin::Placed { .. } => vec!["a copy you placed: left in place".to_owned()],
        }
    }

    async fn delete(&self, aws: &AwsClients, _observed: &ArchiveObject) -> Result<(), ComponentError> {
        match &self.origin {
            Origin::Download { .. } => deleted(
                aws.s3
                    .delete_object()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .send()
                    .await,
                &["NoSuchKey"],
                &format!("delete {}", self.label()),
            ),
            Origin::Placed { .. } => Ok(()),
        }
    }

    fn id(observed: &ArchiveObject) -> String {
        format!("s3://{}/{}", observed.bucket, observed.key)
    }

    fn unavailable(&self, observed: &ArchiveObject) -> Option<ComponentError> {
        observed.unusable.clone()
    }
}

#[cfg(test)]
mod tests;
