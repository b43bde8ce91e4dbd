//! How a staged upload, resumable or direct, ends: its bytes read back from
//! S3 through the same checks as `POST /v1/images`, then stored as an image
//! and the staged bytes removed; or refused, and then nothing of it is left.

use std::collections::BTreeMap;
use std::time::Duration;

use ingest_core::ImageType;
use ingest_core::store::Stored;
use jiff::Timestamp;

use crate::error::ApiError;
use crate::staging::{StagedUpload, UploadKind};
use crate::{AppState, Caller, images};

/// How long an upload may take from creation to its last byte: the
/// lifecycle removes what is left of it under `staging/` a day after it
/// started.
pub const LIFETIME: Duration =
    Duration::from_secs(ingest_core::contract::prefix::STAGING_EXPIRY_DAYS as u64 * 86_400);

/// Checks and stores the complete, leased `upload`; the upload records the
/// image's id and is released. A refused image removes the upload; an AWS
/// failure keeps it, for the client to finish again.
pub async fn finish(
    state: &AppState,
    caller: &Caller,
    upload: &mut StagedUpload,
) -> Result<Stored, ApiError> {
    let result = check_and_store(state, caller, upload).await;
    match &result {
        Ok(stored) => {
            upload.image_id = Some(stored.item().id.to_string());
            state.staging.save(upload, false, Timestamp::now()).await?;
            if let Err(err) = state.staging.remove_bytes(upload).await {
                tracing::warn!(upload = %upload.id, error = %err, "staged bytes left for the lifecycle rules");
            }
        }
        Err(err) if err.status().is_client_error() && !matches!(err, ApiError::Staging(_)) => {
            state.staging.remove(upload).await?;
        }
        Err(_) => release(state, upload).await,
    }
    result
}

async fn check_and_store(
    state: &AppState,
    caller: &Caller,
    upload: &mut StagedUpload,
) -> Result<Stored, ApiError> {
    let key = state.staging.assemble(upload).await?;
    // Saved at once, so that a crash from here on does not assemble twice.
    state.staging.save(upload, true, Timestamp::now()).await?;
    let spool = state.spool();
    let content = state.staging.read(&key, spool).await??;
    if upload.kind == UploadKind::Direct {
        // A resumable upload's bytes were counted as they arrived.
        images::charge_bytes(state, caller, content.len());
    }
    let declared = upload
        .metadata
        .as_deref()
        .and_then(parse_metadata)
        .and_then(|metadata| metadata.get("filetype").and_then(|t| t.parse::<ImageType>().ok()));
    let (content, info) = images::recognise(content, declared).await?;
    images::check_and_store(state, caller, content, info).await
}

/// Gives the lease back after a failure, so the client can retry at once;
/// if that fails too, the lease runs out by itself.
pub async fn release(state: &AppState, upload: &mut StagedUpload) {
    if let Err(err) = state.staging.save(upload, false, Timestamp::now()).await {
        tracing::warn!(upload = %upload.id, error = %err, "the upload stays leased until its lease runs out");
    }
}

/// tus `Upload-Metadata`: comma-separated `key` or `key base64value`
/// pairs; none when malformed. Values that are not UTF-8 are kept out.
pub fn parse_metadata(text: &str) -> Option<BTreeMap<String, String>> {
    let mut pairs = BTreeMap::new();
    if text.trim().is_empty() {
        return Some(pairs);
    }
    for pair in text.split(',') {
        let mut words = pair.trim().split(' ');
        let key = words.next().filter(|k| !k.is_empty() && k.is_ascii())?;
        let value = match words.next() {
            None => Vec::new(),
            Some(encoded) => aws_smithy_types::base64::decode(encoded).ok()?,
        };
        if words.next().is_some() || pairs.contains_key(key) {
            return None;
        }
        if let Ok(value) = String::from_utf8(value) {
            pairs.insert(key.to_owned(), value);
        }
    }
    Some(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_pairs_of_keys_and_base64_values() {
        let parsed =
            parse_metadata("filename d29ybGRfZG9taW5hdGlvbi5wbmc=,filetype aW1hZ2UvcG5n,is_confidential")
                .unwrap();
        assert_eq!(parsed["filename"], "world_domination.png");
        assert_eq!(parsed["filetype"], "image/png");
        assert_eq!(parsed["is_confidential"], "");
        assert_eq!(parse_metadata(""), Some(BTreeMap::new()));
        for bad in [
            "filename not-base64!",
            "a b c",
            "a aGk=,a aGk=",
            ",",
            "key aGk= extra",
        ] {
            assert_eq!(parse_metadata(bad), None, "{bad:?}");
        }
    }
}
