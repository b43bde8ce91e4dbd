//! Storing one image, the operation upload-api and stream-bridge share: the
//! object in S3, the event in Firehose, then the item in DynamoDB.
//!
//! The item is written last and only if no item has its id, so an item means
//! the object and the event exist. The id (and with it the key) follows from
//! the content and the time the caller gives, so a retry or a replay of the
//! same input writes the same object again rather than a second one; a lost
//! answer at worst repeats the event, which is at-least-once.

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use jiff::Timestamp;

use crate::content::Content;
use crate::contract::prefix;
use crate::contract::table::{
    ORIGINAL_SHA256_ATTRIBUTE, PARTITION_KEY, PHASH_ATTRIBUTE, SHA256_ATTRIBUTE, SHA256_INDEX, TTL_ATTRIBUTE,
    UPLOADED_BY_ATTRIBUTE,
};
use crate::record::{EventRecord, ImageId, ImageItem, KafkaPosition, Source, object_key};
use crate::{ImageType, Verified};

/// Object metadata key of the content's SHA-256 (`x-amz-meta-sha256`).
pub const SHA256_METADATA: &str = "sha256";

/// Where a pipeline keeps its images: DESIGN.md's service configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Targets {
    pub bucket: String,
    pub table: String,
    pub delivery_stream: String,
    pub retention_days: u32,
}

/// One image to store, decoded already.
#[derive(Clone, Debug)]
pub struct Incoming<'a> {
    pub content: &'a Content,
    pub image: Verified,
    pub source: Source,
    /// The name of the API key an upload came with; none for stream records.
    pub uploaded_by: Option<String>,
    /// The time the id and the key's date are taken from: now for an upload,
    /// the record's timestamp for a stream record (stable across replays).
    pub at: Timestamp,
    pub kafka: Option<KafkaPosition>,
}

/// What storing found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    Created(ImageItem),
    /// The same content was stored before and has not expired.
    Existing(ImageItem),
}

impl Stored {
    pub fn item(&self) -> &ImageItem {
        match self {
            Stored::Created(item) | Stored::Existing(item) => item,
        }
    }
}

/// The AWS service a failure came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    S3,
    DynamoDb,
    Firehose,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::S3 => "S3",
            Backend::DynamoDb => "DynamoDB",
            Backend::Firehose => "Firehose",
        })
    }
}

/// A backend refused or could not be reached; nothing claims the image is
/// stored. `throttled` tells callers to slow down rather than fail.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{backend} failed to {action}: {message}")]
pub struct StoreError {
    pub backend: Backend,
    pub action: &'static str,
    pub message: String,
    pub throttled: bool,
}

impl StoreError {
    pub fn from_sdk<E>(backend: Backend, action: &'static str, err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let throttled = matches!(
            err.code(),
            Some(
                "ThrottlingException"
                    | "SlowDown"
                    | "ProvisionedThroughputExceededException"
                    | "RequestLimitExceeded"
            )
        ) || err.raw_response().is_some_and(|r| r.status().as_u16() == 503);
        let message = match err.message() {
            Some(message) => format!("{}: {message}", err.code().unwrap_or("error")),
            None => aws_smithy_types::error::display::DisplayErrorContext(&err).to_string(),
        };
        Self {
            backend,
            action,
            message,
            throttled,
        }
    }

    /// The service is stopping and can no longer finish the action.
    pub fn shutting_down(action: &'static str) -> Self {
        Self {
            backend: Backend::Firehose,
            action,
            message: "the service is shutting down".to_owned(),
            throttled: false,
        }
    }

    /// A spooled image could not be read back.
    fn spool(err: std::io::Error) -> Self {
        Self {
            backend: Backend::S3,
            action: "read the received image back",
            message: err.to_string(),
            throttled: false,
        }
    }

    fn malformed(message: String) -> Self {
        Self {
            backend: Backend::DynamoDb,
            action: "read an image item",
            message,
            throttled: false,
        }
    }
}

/// The clients and names one pipeline's images are stored with.
#[derive(Clone, Debug)]
pub struct Store {
    s3: aws_sdk_s3::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    firehose: aws_sdk_firehose::Client,
    targets: Targets,
    /// What the clients were made from, for callers that sign requests
    /// themselves (upload-api's direct uploads).
    sdk_config: SdkConfig,
}

impl Store {
    /// Clients from the SDK's standard configuration. S3 uses path-style
    /// addressing when the endpoint is overridden (emulators serve every
    /// bucket from one host).
    pub fn new(config: &SdkConfig, targets: Targets) -> Self {
        let s3 = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(config.endpoint_url().is_some())
            .build();
        Self {
            s3: aws_sdk_s3::Client::from_conf(s3),
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            firehose: aws_sdk_firehose::Client::new(config),
            targets,
            sdk_config: config.clone(),
        }
    }

    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    pub fn s3(&self) -> &aws_sdk_s3::Client {
        &self.s3
    }

    pub fn dynamodb(&self) -> &aws_sdk_dynamodb::Client {
        &self.dynamodb
    }

    pub fn sdk_config(&self) -> &SdkConfig {
        &self.sdk_config
    }

    /// Stores `incoming` unless the same content is stored already.
    pub async fn store(&self, incoming: &Incoming<'_>, now: Timestamp) -> Result<Stored, StoreError> {
        self.store_with(incoming, now, |event| self.put_event(event))
            .await
    }

    /// [`Store::store`] with the event handed to `deliver_event`, which
    /// returns once Firehose has accepted it (stream-bridge batches events).
    pub async fn store_with<F, Fut>(
        &self,
        incoming: &Incoming<'_>,
        now: Timestamp,
        deliver_event: F,
    ) -> Result<Stored, StoreError>
    where
        F: FnOnce(EventRecord) -> Fut,
        Fut: Future<Output = Result<(), StoreError>>,
    {
        let content = incoming.content;
        let sha256 = hex::encode(content.sha256());
        if let Some(existing) = self.find_by_sha256(&sha256, now).await? {
            return Ok(Stored::Existing(existing));
        }
        let id = ImageId::for_content(content.sha256(), incoming.at);
        let image_type = incoming.image.info.image_type;
        let key = object_key(id, image_type, incoming.at);
        let item = ImageItem {
            id,
            sha256,
            original_sha256: Some(hex::encode(content.original_sha256())),
            content_type: image_type.mime_type().to_owned(),
            bytes: content.len(),
            width: incoming.image.info.width,
            height: incoming.image.info.height,
            phash: Some(incoming.image.phash),
            bucket: self.targets.bucket.clone(),
            key,
            source: incoming.source,
            uploaded_by: incoming.uploaded_by.clone(),
            ingested_at: now,
            expires_at: ImageItem::expiry(now, self.targets.retention_days),
        };
        self.put_object(&item, image_type, content).await?;
        deliver_event(EventRecord {
            item: item.clone(),
            kafka: incoming.kafka.clone(),
        })
        .await?;
        let put = self
            .dynamodb
            .put_item()
            .table_name(&self.targets.table)
            .set_item(Some(to_attributes(&item)))
            .condition_expression(format!("attribute_not_exists({PARTITION_KEY})"))
            .send()
            .await;
        match put {
            Ok(_) => Ok(Stored::Created(item)),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                // Stored by a concurrent or earlier attempt with the same id.
                match self.get(id).await? {
                    Some(existing) => Ok(Stored::Existing(existing)),
                    None => Ok(Stored::Created(item)),
                }
            }
            Err(err) => Err(StoreError::from_sdk(
                Backend::DynamoDb,
                "store the image item",
                err,
            )),
        }
    }

    async fn put_event(&self, event: EventRecord) -> Result<(), StoreError> {
        self.firehose
            .put_record()
            .delivery_stream_name(&self.targets.delivery_stream)
            .record(
                aws_sdk_firehose::types::Record::builder()
                    .data(aws_smithy_types::Blob::new(event.to_line()))
                    .build()
                    .map_err(|err| StoreError::malformed(err.to_string()))?,
            )
            .send()
            .await
            .map(drop)
            .map_err(|err| StoreError::from_sdk(Backend::Firehose, "accept the image event", err))
    }

    /// The unexpired item whose content has this SHA-256, if any. (TTL
    /// deletes up to days late, so expiry is checked here.)
    pub async fn find_by_sha256(
        &self,
        sha256: &str,
        now: Timestamp,
    ) -> Result<Option<ImageItem>, StoreError> {
        let out = self
            .dynamodb
            .query()
            .table_name(&self.targets.table)
            .index_name(SHA256_INDEX)
            .key_condition_expression(format!("{SHA256_ATTRIBUTE} = :sha256"))
            .expression_attribute_values(":sha256", AttributeValue::S(sha256.to_owned()))
            .send()
            .await
            .map_err(|err| StoreError::from_sdk(Backend::DynamoDb, "look up the image by SHA-256", err))?;
        let mut items = out
            .items()
            .iter()
            .map(from_attributes)
            .collect::<Result<Vec<_>, _>>()?;
        items.retain(|item| item.expires_at > now.as_second());
        Ok(items.into_iter().min_by_key(|item| item.id))
    }

    /// The item with this id, if any.
    pub async fn get(&self, id: ImageId) -> Result<Option<ImageItem>, StoreError> {
        let out = self
            .dynamodb
            .get_item()
            .table_name(&self.targets.table)
            .key(PARTITION_KEY, AttributeValue::S(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| StoreError::from_sdk(Backend::DynamoDb, "read the image item", err))?;
        out.item().map(from_attributes).transpose()
    }

    /// Whether DynamoDB and S3 answer with the permissions the services
    /// have (item reads, object reads under [`prefix::IMAGES`]). Any answer from S3,
    /// a missing key included, counts as reachable.
    pub async fn probe(&self) -> Result<(), StoreError> {
        self.dynamodb
            .get_item()
            .table_name(&self.targets.table)
            .key(PARTITION_KEY, AttributeValue::S("readiness-probe".to_owned()))
            .send()
            .await
            .map_err(|err| StoreError::from_sdk(Backend::DynamoDb, "answer a readiness probe", err))?;
        match self
            .s3
            .get_object()
            .bucket(&self.targets.bucket)
            .key(format!("{}readiness-probe", prefix::IMAGES))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(err)) if err.raw().status().as_u16() < 500 => Ok(()),
            Err(err) => Err(StoreError::from_sdk(Backend::S3, "answer a readiness probe", err)),
        }
    }

    /// The stored bytes of an item, as a stream.
    pub async fn content(&self, item: &ImageItem) -> Result<ByteStream, StoreError> {
        let out = self
            .s3
            .get_object()
            .bucket(&item.bucket)
            .key(&item.key)
            .send()
            .await
            .map_err(|err| StoreError::from_sdk(Backend::S3, "read the image", err))?;
        Ok(out.body)
    }

    /// The image as one object, whatever its size: S3 takes up to 5 GiB in
    /// one PutObject (a pipeline's images are at most 100 MiB), and only a
    /// single object carries the SHA-256 of all its bytes for S3 to check.
    /// In parts it would cost three more requests, a CRC32 of each part
    /// instead, and an upload left to abort after a crash.
    async fn put_object(
        &self,
        item: &ImageItem,
        image_type: ImageType,
        content: &Content,
    ) -> Result<(), StoreError> {
        let body = content.body(0..content.len()).await.map_err(StoreError::spool)?;
        self.s3
            .put_object()
            .bucket(&self.targets.bucket)
            .key(&item.key)
            .content_type(image_type.mime_type())
            .metadata(SHA256_METADATA, &item.sha256)
            // S3 refuses the object unless what it received has the
            // SHA-256 of what was checked here. Given the checksum, the
            // SDK sends a spooled body as it is, not aws-chunked with a
            // CRC32 trailer of its own.
            .checksum_sha256(aws_smithy_types::base64::encode(content.sha256()))
            .body(body)
            .customize()
            // The signed checksum header already binds the bytes, so
            // SigV4 need not hash the body a second time (an eighth of
            // stream-bridge's CPU per 100 KiB record, measured).
            .disable_payload_signing()
            .send()
            .await
            .map(drop)
            .map_err(|err| StoreError::from_sdk(Backend::S3, "store the image", err))
    }
}

fn to_attributes(item: &ImageItem) -> HashMap<String, AttributeValue> {
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let n = |v: String| AttributeValue::N(v);
    let source = match item.source {
        Source::Api => "api",
        Source::Stream => "stream",
    };
    let mut attributes = HashMap::from([
        (PARTITION_KEY.to_owned(), s(&item.id.to_string())),
        (SHA256_ATTRIBUTE.to_owned(), s(&item.sha256)),
        ("contentType".to_owned(), s(&item.content_type)),
        ("bytes".to_owned(), n(item.bytes.to_string())),
        ("width".to_owned(), n(item.width.to_string())),
        ("height".to_owned(), n(item.height.to_string())),
        ("bucket".to_owned(), s(&item.bucket)),
        ("key".to_owned(), s(&item.key)),
        ("source".to_owned(), s(source)),
        ("ingestedAt".to_owned(), s(&item.ingested_at.to_string())),
        (TTL_ATTRIBUTE.to_owned(), n(item.expires_at.to_string())),
    ]);
    if let Some(phash) = item.phash {
        attributes.insert(PHASH_ATTRIBUTE.to_owned(), s(&phash.to_string()));
    }
    if let Some(original) = &item.original_sha256 {
        attributes.insert(ORIGINAL_SHA256_ATTRIBUTE.to_owned(), s(original));
    }
    if let Some(name) = &item.uploaded_by {
        attributes.insert(UPLOADED_BY_ATTRIBUTE.to_owned(), s(name));
    }
    attributes
}

fn from_attributes(attributes: &HashMap<String, AttributeValue>) -> Result<ImageItem, StoreError> {
    let field = |name: &str| -> Result<&str, StoreError> {
        match attributes.get(name) {
            Some(AttributeValue::S(v) | AttributeValue::N(v)) => Ok(v.as_str()),
            _ => Err(StoreError::malformed(format!("the image item lacks {name}"))),
        }
    };
    let number = |name: &str| -> Result<i64, StoreError> {
        field(name)?
            .parse()
            .map_err(|_| StoreError::malformed(format!("{name} of the image item is not a number")))
    };
    let id = field(PARTITION_KEY)?;
    Ok(ImageItem {
        id: ImageId::parse(id).ok_or_else(|| StoreError::malformed(format!("{id} is not an image id")))?,
        sha256: field(SHA256_ATTRIBUTE)?.to_owned(),
        original_sha256: match attributes.get(ORIGINAL_SHA256_ATTRIBUTE) {
            None => None,
            Some(_) => Some(field(ORIGINAL_SHA256_ATTRIBUTE)?.to_owned()),
        },
        content_type: field("contentType")?.to_owned(),
        bytes: u64::try_from(number("bytes")?).unwrap_or_default(),
        width: u32::try_from(number("width")?).unwrap_or_default(),
        height: u32::try_from(number("height")?).unwrap_or_default(),
        phash: match attributes.get(PHASH_ATTRIBUTE) {
            None => None,
            Some(_) => Some(field(PHASH_ATTRIBUTE)?.parse().map_err(|_| {
                StoreError::malformed(format!(
                    "{PHASH_ATTRIBUTE} of the image item is not 16 hex digits"
                ))
            })?),
        },
        bucket: field("bucket")?.to_owned(),
        key: field("key")?.to_owned(),
        source: match field("source")? {
            "stream" => Source::Stream,
            _ => Source::Api,
        },
        uploaded_by: match attributes.get(UPLOADED_BY_ATTRIBUTE) {
            None => None,
            Some(_) => Some(field(UPLOADED_BY_ATTRIBUTE)?.to_owned()),
        },
        ingested_at: field("ingestedAt")?
            .parse()
            .map_err(|_| StoreError::malformed("ingestedAt of the image item is not RFC 3339".to_owned()))?,
        expires_at: number(TTL_ATTRIBUTE)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_survives_the_round_trip_through_dynamodb_attributes() {
        let at: Timestamp = "2026-11-24T10:00:00Z".parse().unwrap();
        let id = ImageId::for_content(&[7; 32], at);
        let item = ImageItem {
            id,
            sha256: "ab".repeat(32),
            original_sha256: Some("cd".repeat(32)),
            content_type: "image/gif".to_owned(),
            bytes: 123,
            width: 3,
            height: 2,
            phash: Some(crate::PerceptualHash(u64::MAX - 7)),
            bucket: "photos".to_owned(),
            key: object_key(id, ImageType::Gif, at),
            source: Source::Stream,
            uploaded_by: Some("mobile-app".to_owned()),
            ingested_at: at,
            expires_at: ImageItem::expiry(at, 7),
        };
        assert_eq!(from_attributes(&to_attributes(&item)), Ok(item.clone()));
        let before_decoding = ImageItem {
            phash: None,
            original_sha256: None,
            uploaded_by: None,
            ..item
        };
        assert_eq!(
            from_attributes(&to_attributes(&before_decoding)),
            Ok(before_decoding)
        );
    }
}
