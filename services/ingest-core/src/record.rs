//! The records every ingested image leaves behind: the S3 object key, the
//! DynamoDB item and the Firehose event, named as DESIGN.md's data contracts
//! name them.

use std::fmt;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::ImageType;
use crate::contract::prefix;
use crate::verify::PerceptualHash;

/// Image id: a UUIDv7, so ids sort by ingestion time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ImageId(Uuid);

impl ImageId {
    /// The id of `sha256`'s content arriving at `at`: a UUIDv7 whose time is
    /// `at` and whose other bits come from the content, so the same input
    /// (a retried upload, a replayed record) always gets the same id and key.
    pub fn for_content(sha256: &[u8; 32], at: Timestamp) -> Self {
        let millis = u64::try_from(at.as_millisecond()).unwrap_or(0);
        let mut random = [0u8; 10];
        random.copy_from_slice(&sha256[..10]);
        Self(uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid())
    }

    pub fn parse(text: &str) -> Option<Self> {
        Uuid::try_parse(text)
            .ok()
            .filter(|id| id.get_version_num() == 7)
            .map(Self)
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// `images/YYYY/MM/DD/<id>.<ext>`, the date in UTC.
pub fn object_key(id: ImageId, image_type: ImageType, ingested_at: Timestamp) -> String {
    let date = ingested_at.to_zoned(TimeZone::UTC).date();
    format!(
        "{}{:04}/{:02}/{:02}/{id}.{}",
        prefix::IMAGES,
        date.year(),
        date.month(),
        date.day(),
        image_type.extension()
    )
}

/// SHA-256 of `content` as lowercase hex, the content identity.
pub fn sha256_hex(content: &[u8]) -> String {
    hex::encode(Sha256::digest(content))
}

/// Where an image came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Api,
    Stream,
}

/// The DynamoDB item of one image; also the body of upload-api's answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageItem {
    /// A UUIDv7: ids sort by ingestion time.
    #[schema(value_type = uuid::Uuid)]
    pub id: ImageId,
    /// Of the stored object: the bytes received without the metadata the
    /// pipeline removes. Dedupe is by this hash.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub sha256: String,
    /// Of the bytes as received; absent on items stored before metadata was
    /// removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub original_sha256: Option<String>,
    pub content_type: String,
    pub bytes: u64,
    pub width: u32,
    pub height: u32,
    /// The perceptual hash of the first frame; absent on items stored
    /// before images were decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^[0-9a-f]{16}$")]
    pub phash: Option<PerceptualHash>,
    pub bucket: String,
    pub key: String,
    pub source: Source,
    /// The name of the API key an upload came with (never the key); absent
    /// for stream records and items stored before keys had names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded_by: Option<String>,
    /// RFC 3339.
    #[schema(value_type = String, format = DateTime)]
    pub ingested_at: Timestamp,
    /// Epoch seconds, DynamoDB's TTL attribute: `ingestedAt` + retention.
    pub expires_at: i64,
}

impl ImageItem {
    /// `expiresAt` for an image ingested at `ingested_at` and kept
    /// `retention_days`.
    pub fn expiry(ingested_at: Timestamp, retention_days: u32) -> i64 {
        ingested_at.as_second() + i64::from(retention_days) * 86_400
    }
}

/// Where a stream record was read, for its event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaPosition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// The event sent to Firehose: the item's fields, plus the Kafka position of
/// stream input. Never the image bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    #[serde(flatten)]
    pub item: ImageItem,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaPosition>,
}

impl EventRecord {
    /// One JSON object ending in a newline, as Firehose concatenates records.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn ids_are_version_7_and_sort_by_time() {
        let earlier = ImageId::for_content(&[9; 32], at("2026-11-24T10:00:00Z"));
        let later = ImageId::for_content(&[1; 32], at("2026-11-24T10:00:01Z"));
        assert!(earlier < later);
        assert_eq!(ImageId::parse(&earlier.to_string()), Some(earlier));
        assert_eq!(
            ImageId::parse("5b2c0a9e-7d3f-4c1e-9a8b-1f2e3d4c5b6a"),
            None,
            "a v4 id is not ours"
        );
        assert_eq!(ImageId::parse("not-an-id"), None);
    }

    #[test]
    fn a_content_id_is_the_same_for_the_same_bytes() {
        let digest: [u8; 32] = Sha256::digest(b"image").into();
        let other: [u8; 32] = Sha256::digest(b"other").into();
        let t = at("2026-11-24T10:00:00Z");
        assert_eq!(ImageId::for_content(&digest, t), ImageId::for_content(&digest, t));
        assert_ne!(ImageId::for_content(&digest, t), ImageId::for_content(&other, t));
        assert!(ImageId::parse(&ImageId::for_content(&digest, t).to_string()).is_some());
    }

    #[test]
    fn keys_follow_the_utc_date_layout() {
        let t = at("2026-03-07T23:30:00-05:00");
        let id = ImageId::for_content(&[0; 32], t);
        assert_eq!(
            object_key(id, ImageType::Jpeg, t),
            format!("images/2026/03/08/{id}.jpg")
        );
        assert_eq!(
            object_key(id, ImageType::Webp, t),
            format!("images/2026/03/08/{id}.webp")
        );
    }

    #[test]
    fn the_item_and_the_event_carry_the_contract_field_names() {
        let t = at("2026-11-24T10:00:00Z");
        let id = ImageId::for_content(&[0; 32], t);
        let item = ImageItem {
            id,
            sha256: sha256_hex(b"image"),
            original_sha256: Some(sha256_hex(b"image with metadata")),
            content_type: "image/png".to_owned(),
            bytes: 5,
            width: 3,
            height: 2,
            phash: Some(PerceptualHash(0x0123_4567_89ab_cdef)),
            bucket: "photos".to_owned(),
            key: object_key(id, ImageType::Png, t),
            source: Source::Stream,
            uploaded_by: None,
            ingested_at: t,
            expires_at: ImageItem::expiry(t, 7),
        };
        let event = EventRecord {
            item: item.clone(),
            kafka: Some(KafkaPosition {
                topic: "images".to_owned(),
                partition: 3,
                offset: 42,
            }),
        };
        let line = event.to_line();
        assert_eq!(line.last(), Some(&b'\n'));
        let json: serde_json::Value = serde_json::from_slice(&line).unwrap();
        let mut fields: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "bucket",
                "bytes",
                "contentType",
                "expiresAt",
                "height",
                "id",
                "ingestedAt",
                "kafka",
                "key",
                "originalSha256",
                "phash",
                "sha256",
                "source",
                "width"
            ]
        );
        assert_eq!(json["source"], "stream");
        assert_eq!(json["ingestedAt"], "2026-11-24T10:00:00Z");
        assert_eq!(json["expiresAt"], t.as_second() + 7 * 86_400);
        assert_eq!(json["kafka"]["offset"], 42);
        assert_eq!(json["phash"], "0123456789abcdef");
        assert_eq!(serde_json::from_slice::<EventRecord>(&line).unwrap(), event);
        assert_eq!(
            item.sha256,
            "6105d6cc76af400325e94d588ce511be5bfdbb73b437dc51eca43917d7a43e3d"
        );
    }
}
