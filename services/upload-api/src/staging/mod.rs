//! Uploads that take more than one request. A tus resumable upload arrives
//! in pieces, perhaps at different instances behind the load balancer; a
//! direct upload goes from the client straight to S3 with a presigned POST.
//! Until upload-api checks and stores them as images, their bytes wait in
//! the bucket under `staging/<upload-id>/` and their progress in the
//! table's `upload#<upload-id>` item, so that any instance can continue or
//! finish them and none keeps an upload on its own disk.
//!
//! Full parts of [`PART_BYTES`] go to an S3 multipart upload; the bytes
//! after them wait in a tail object until a part is full. The item is
//! leased while a request writes, so two requests never append at once;
//! a lease runs out by itself when its instance dies.

mod bytes;

pub use bytes::{AppendCut, Appended};
pub mod item;
pub mod post_policy;

use std::time::Duration;

use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_dynamodb::types::AttributeValue;
use ingest_core::contract::prefix::STAGING;
use ingest_core::contract::table::PARTITION_KEY;
use ingest_core::store::{Backend, Store, StoreError};
use jiff::Timestamp;
use uuid::Uuid;

pub use item::{Lease, PART_BYTES, StagedUpload, UploadKind};
pub use post_policy::PresignedPost;

/// How long a request may hold an upload without writing a part; a
/// request that is still writing renews it with every part.
const LEASE: Duration = Duration::from_secs(120);

/// Why a staged upload cannot be used as asked.
#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    #[error("no upload has id {0}")]
    NotFound(String),
    #[error("the upload {0} expired; start a new one")]
    Expired(Uuid),
    #[error("the upload is at offset {actual}, not {sent}: ask for its offset with HEAD and send from there")]
    OffsetMismatch { sent: u64, actual: u64 },
    #[error("another request is writing this upload; retry after it ends")]
    Locked { until: Timestamp },
    #[error("the bytes have not been posted to S3 yet: post the file with the fields given, then complete")]
    NotReceived,
    #[error("{0}")]
    Backend(#[from] StoreError),
    /// The service's own disk failed.
    #[error("the upload's next part could not be written to the spool directory: {0}")]
    Spool(std::io::Error),
}

/// The clients and names uploads are staged with.
#[derive(Clone, Debug)]
pub struct Staging {
    store: Store,
    region: String,
    post_url: String,
    /// Where a part waits while it fills.
    spool_dir: std::path::PathBuf,
}

impl Staging {
    pub fn new(store: &Store, spool_dir: &std::path::Path) -> Self {
        let config = store.sdk_config();
        let region = config
            .region()
            .map_or_else(|| "us-east-1".to_owned(), ToString::to_string);
        let post_url = post_policy::post_url(config.endpoint_url(), &store.targets().bucket, &region);
        Self {
            store: store.clone(),
            region,
            post_url,
            spool_dir: spool_dir.to_owned(),
        }
    }

    fn table(&self) -> &str {
        &self.store.targets().table
    }

    fn bucket(&self) -> &str {
        &self.store.targets().bucket
    }

    /// Records a new upload; its bytes come later.
    pub async fn create(&self, upload: &StagedUpload) -> Result<(), StagingError> {
        self.store
            .dynamodb()
            .put_item()
            .table_name(self.table())
            .set_item(Some(upload.to_item()))
            .condition_expression(format!("attribute_not_exists({PARTITION_KEY})"))
            .send()
            .await
            .map_err(|err| StoreError::from_sdk(Backend::DynamoDb, "record the upload", err))?;
        Ok(())
    }

    /// The upload `id` of `caller`: another key's upload is not found, as
    /// if it did not exist.
    pub async fn find(&self, id: &str, caller: &str, now: Timestamp) -> Result<StagedUpload, StagingError> {
        let not_found = || StagingError::NotFound(id.to_owned());
        let uuid = Uuid::try_parse(id).map_err(|_| not_found())?;
        let upload = self.read_item(uuid).await?.ok_or_else(not_found)?;
        if upload.uploaded_by != caller {
            return Err(not_found());
        }
        // TTL deletes items up to days late.
        if upload.expires_at <= now && upload.image_id.is_none() {
            return Err(StagingError::Expired(uuid));
        }
        Ok(upload)
    }

    async fn read_item(&self, id: Uuid) -> Result<Option<StagedUpload>, StagingError> {
        let out = self
            .store
            .dynamodb()
            .get_item()
            .table_name(self.table())
            .key(PARTITION_KEY, StagedUpload::item_key(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| StoreError::from_sdk(Backend::DynamoDb, "read the upload", err))?;
        Ok(out.item.as_ref().and_then(StagedUpload::from_item))
    }

    /// Leases `upload` to this request if no other request holds it and it
    /// is still at the offset read; `upload` then carries the lease.
    pub async fn lease(&self, upload: &mut StagedUpload, now: Timestamp) -> Result<(), StagingError> {
        let lease = Lease {
            token: Uuid::now_v7().to_string(),
            until: now + LEASE,
        };
        let result = self
            .store
            .dynamodb()
            .update_item()
            .table_name(self.table())
            .key(PARTITION_KEY, StagedUpload::item_key(upload.id))
            .update_expression("SET #token = :token, #until = :until")
            .condition_expression(
                "attribute_exists(#id) AND uploadOffset = :offset AND (attribute_not_exists(#until) OR #until < :now)",
            )
            .expression_attribute_names("#id", PARTITION_KEY)
            .expression_attribute_names("#token", item::LEASE_TOKEN)
            .expression_attribute_names("#until", item::LEASED_UNTIL)
            .expression_attribute_values(":token", AttributeValue::S(lease.token.clone()))
            .expression_attribute_values(":until", millis(lease.until))
            .expression_attribute_values(":now", millis(now))
            .expression_attribute_values(":offset", AttributeValue::N(upload.offset().to_string()))
            .send()
            .await;
        match result {
            Ok(_) => {
                upload.lease = Some(lease);
                Ok(())
            }
            Err(err) if is_condition_failure(&err) => {
                // Someone else moved it on, holds it, or removed it.
                let Some(current) = self.read_item(upload.id).await? else {
                    return Err(StagingError::NotFound(upload.id.to_string()));
                };
                match current.lease {
                    Some(held) if held.until >= now => Err(StagingError::Locked { until: held.until }),
                    _ => Err(StagingError::OffsetMismatch {
                        sent: upload.offset(),
                        actual: current.offset(),
                    }),
                }
            }
            Err(err) => Err(StoreError::from_sdk(Backend::DynamoDb, "lease the upload", err).into()),
        }
    }

    /// Writes `upload` as it is now, if this request still holds its lease,
    /// renewing the lease (`keep`) or giving it up.
    pub async fn save(
        &self,
        upload: &mut StagedUpload,
        keep: bool,
        now: Timestamp,
    ) -> Result<(), StagingError> {
        let Some(held) = upload.lease.clone() else {
            return Err(bytes::failure(
                Backend::DynamoDb,
                "record the upload's progress",
                "the upload is not leased to this request".to_owned(),
            ));
        };
        upload.lease = keep.then(|| Lease {
            token: held.token.clone(),
            until: now + LEASE,
        });
        self.store
            .dynamodb()
            .put_item()
            .table_name(self.table())
            .set_item(Some(upload.to_item()))
            .condition_expression("#token = :token")
            .expression_attribute_names("#token", item::LEASE_TOKEN)
            .expression_attribute_values(":token", AttributeValue::S(held.token))
            .send()
            .await
            .map_err(|err| {
                if is_condition_failure(&err) {
                    StagingError::Locked { until: now + LEASE }
                } else {
                    StoreError::from_sdk(Backend::DynamoDb, "record the upload's progress", err).into()
                }
            })?;
        Ok(())
    }

    /// Removes everything of `upload`: its parts, its objects and its item.
    pub async fn remove(&self, upload: &StagedUpload) -> Result<(), StagingError> {
        self.remove_bytes(upload).await?;
        self.store
            .dynamodb()
            .delete_item()
            .table_name(self.table())
            .key(PARTITION_KEY, StagedUpload::item_key(upload.id))
            .send()
            .await
            .map_err(|err| StoreError::from_sdk(Backend::DynamoDb, "remove the upload", err))?;
        Ok(())
    }

    /// The form with which `upload`'s bytes are posted to S3.
    pub async fn presigned_post(
        &self,
        upload: &StagedUpload,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<PresignedPost, StagingError> {
        let provider = self.store.sdk_config().credentials_provider().ok_or_else(|| {
            bytes::failure(
                Backend::S3,
                "sign the upload form",
                "no AWS credentials".to_owned(),
            )
        })?;
        let credentials = provider.provide_credentials().await.map_err(|err| {
            bytes::failure(
                Backend::S3,
                "sign the upload form",
                format!("no AWS credentials: {err}"),
            )
        })?;
        let key = object_key(upload.id);
        let policy = post_policy::PostPolicy {
            bucket: self.bucket(),
            key: &key,
            max_bytes: upload.length,
            expires_at,
        };
        Ok(policy.presign(self.post_url.clone(), &credentials, &self.region, now))
    }
}

/// Where an upload's bytes are once they are one object.
fn object_key(id: Uuid) -> String {
    format!("{STAGING}{id}/object")
}

/// Where the bytes after an upload's full parts wait.
fn tail_key(id: Uuid) -> String {
    format!("{STAGING}{id}/tail")
}

fn millis(at: Timestamp) -> AttributeValue {
    AttributeValue::N(at.as_millisecond().to_string())
}

fn is_condition_failure<E: aws_smithy_types::error::metadata::ProvideErrorMetadata>(err: &E) -> bool {
    err.code() == Some("ConditionalCheckFailedException")
}
