//! An upload in progress as its `upload#<id>` item in the pipeline's table.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use ingest_core::contract::table::{PARTITION_KEY, TTL_ATTRIBUTE, UPLOAD_KEY_PREFIX, UPLOADED_BY_ATTRIBUTE};
use jiff::Timestamp;
use uuid::Uuid;

/// How the bytes of an upload arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadKind {
    /// tus 1.0 at `/v1/resumable`, in as many requests as the client needs.
    Resumable,
    /// Posted by the client to S3 with a presigned POST (`/v1/uploads`).
    Direct,
}

impl UploadKind {
    fn as_str(self) -> &'static str {
        match self {
            UploadKind::Resumable => "resumable",
            UploadKind::Direct => "direct",
        }
    }
}

/// Who may write an upload for now, so that two requests never append to
/// it at once (tus asks servers to prevent that).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub token: String,
    pub until: Timestamp,
}

/// An upload that is not stored as an image yet, or was just stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagedUpload {
    pub id: Uuid,
    pub kind: UploadKind,
    /// The name of the API key that created it; no other key sees it.
    pub uploaded_by: String,
    /// Bytes the upload holds when complete (tus `Upload-Length`); for a
    /// direct upload, the most it may hold.
    pub length: u64,
    /// The `Upload-Metadata` header it was created with, returned as given.
    pub metadata: Option<String>,
    pub expires_at: Timestamp,
    /// The S3 multipart upload holding the full parts, once there is one.
    pub multipart: Option<String>,
    /// The ETags of the full parts, part `n` at index `n - 1`.
    pub parts: Vec<String>,
    /// Bytes after the full parts, held in the tail object until a part is
    /// full.
    pub tail: u64,
    /// The bytes are one object now (the parts assembled, or the direct
    /// upload posted).
    pub assembled: bool,
    /// The image stored from it.
    pub image_id: Option<String>,
    pub lease: Option<Lease>,
}

/// S3's smallest part but the last, and so the size of every full part.
pub const PART_BYTES: u64 = 5 * 1024 * 1024;

impl StagedUpload {
    pub fn new(
        kind: UploadKind,
        uploaded_by: String,
        length: u64,
        metadata: Option<String>,
        expires_at: Timestamp,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            kind,
            uploaded_by,
            length,
            metadata,
            expires_at,
            multipart: None,
            parts: Vec::new(),
            tail: 0,
            // A direct upload's bytes arrive as one object.
            assembled: kind == UploadKind::Direct,
            image_id: None,
            lease: None,
        }
    }

    /// Bytes received and kept: what a client resumes from.
    pub fn offset(&self) -> u64 {
        if self.assembled {
            self.length
        } else {
            self.parts.len() as u64 * PART_BYTES + self.tail
        }
    }

    pub fn key(&self) -> String {
        key(self.id)
    }

    /// The item's partition key, `upload#<id>`.
    pub fn item_key(id: Uuid) -> AttributeValue {
        AttributeValue::S(key(id))
    }

    pub fn to_item(&self) -> HashMap<String, AttributeValue> {
        let n = |v: u64| AttributeValue::N(v.to_string());
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let mut item = HashMap::from([
            (PARTITION_KEY.to_owned(), Self::item_key(self.id)),
            (KIND.to_owned(), s(self.kind.as_str())),
            (UPLOADED_BY_ATTRIBUTE.to_owned(), s(&self.uploaded_by)),
            (LENGTH.to_owned(), n(self.length)),
            (OFFSET.to_owned(), n(self.offset())),
            (
                TTL_ATTRIBUTE.to_owned(),
                AttributeValue::N(self.expires_at.as_second().to_string()),
            ),
            (TAIL.to_owned(), n(self.tail)),
            (ASSEMBLED.to_owned(), AttributeValue::Bool(self.assembled)),
        ]);
        if !self.parts.is_empty() {
            item.insert(
                PARTS.to_owned(),
                AttributeValue::L(self.parts.iter().map(|e| s(e)).collect()),
            );
        }
        let optional = [
            (METADATA, self.metadata.as_deref()),
            (MULTIPART, self.multipart.as_deref()),
            (IMAGE_ID, self.image_id.as_deref()),
            (LEASE_TOKEN, self.lease.as_ref().map(|l| l.token.as_str())),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                item.insert(name.to_owned(), s(value));
            }
        }
        if let Some(lease) = &self.lease {
            item.insert(
                LEASED_UNTIL.to_owned(),
                AttributeValue::N(lease.until.as_millisecond().to_string()),
            );
        }
        item
    }

    /// The upload an item holds; none for an item that is not one.
    pub fn from_item(item: &HashMap<String, AttributeValue>) -> Option<Self> {
        let s = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        let n = |name: &str| {
            item.get(name)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<i64>().ok())
        };
        let id = s(PARTITION_KEY)?.strip_prefix(UPLOAD_KEY_PREFIX)?.parse().ok()?;
        let kind = match s(KIND)?.as_str() {
            "resumable" => UploadKind::Resumable,
            "direct" => UploadKind::Direct,
            _ => return None,
        };
        let parts = match item.get(PARTS) {
            Some(AttributeValue::L(parts)) => parts
                .iter()
                .map(|p| p.as_s().ok().cloned())
                .collect::<Option<_>>()?,
            _ => Vec::new(),
        };
        let lease = match (s(LEASE_TOKEN), n(LEASED_UNTIL)) {
            (Some(token), Some(until)) => Some(Lease {
                token,
                until: Timestamp::from_millisecond(until).ok()?,
            }),
            _ => None,
        };
        Some(Self {
            id,
            kind,
            uploaded_by: s(UPLOADED_BY_ATTRIBUTE)?,
            length: u64::try_from(n(LENGTH)?).ok()?,
            metadata: s(METADATA),
            expires_at: Timestamp::from_second(n(TTL_ATTRIBUTE)?).ok()?,
            multipart: s(MULTIPART),
            parts,
            tail: u64::try_from(n(TAIL)?).ok()?,
            assembled: item
                .get(ASSEMBLED)
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(false),
            image_id: s(IMAGE_ID),
            lease,
        })
    }
}

fn key(id: Uuid) -> String {
    format!("{UPLOAD_KEY_PREFIX}{id}")
}

const KIND: &str = "uploadKind";
const LENGTH: &str = "uploadLength";
/// Written for people reading the table; the offset follows from the parts
/// and the tail.
const OFFSET: &str = "uploadOffset";
const METADATA: &str = "uploadMetadata";
const MULTIPART: &str = "multipartUploadId";
const PARTS: &str = "partETags";
const TAIL: &str = "tailBytes";
const ASSEMBLED: &str = "assembled";
const IMAGE_ID: &str = "imageId";
pub(super) const LEASE_TOKEN: &str = "leaseToken";
pub(super) const LEASED_UNTIL: &str = "leasedUntil";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_reads_back_from_its_item_as_it_was_written() {
        let mut upload = StagedUpload::new(
            UploadKind::Resumable,
            "mobile".into(),
            12 * 1024 * 1024,
            Some("filename d29ybGQ=".into()),
            Timestamp::from_second(1_800_000_000).unwrap(),
        );
        assert_eq!(StagedUpload::from_item(&upload.to_item()), Some(upload.clone()));
        upload.multipart = Some("m-1".into());
        upload.parts = vec!["\"e1\"".into(), "\"e2\"".into()];
        upload.tail = 17;
        upload.lease = Some(Lease {
            token: "t".into(),
            until: Timestamp::from_millisecond(1_800_000_000_123).unwrap(),
        });
        upload.image_id = Some("0193…".into());
        assert_eq!(upload.offset(), 2 * PART_BYTES + 17);
        let item = upload.to_item();
        assert_eq!(item[OFFSET], AttributeValue::N((2 * PART_BYTES + 17).to_string()));
        assert_eq!(StagedUpload::from_item(&item), Some(upload.clone()));
        upload.assembled = true;
        assert_eq!(upload.offset(), upload.length);
    }

    #[test]
    fn an_image_item_is_not_an_upload() {
        let item = HashMap::from([(
            PARTITION_KEY.to_owned(),
            AttributeValue::S(Uuid::now_v7().to_string()),
        )]);
        assert_eq!(StagedUpload::from_item(&item), None);
    }
}
