//! A copy of the archive the user placed in S3 (`spec.kafka.distribution.s3Uri`):
//! looked at, never changed. What makes it unusable is reported through
//! [`ArchiveObject::unusable`], so that apply and plan stop with it and a
//! teardown passes by.

use aws_sdk_s3::operation::get_object::GetObjectError;

use super::checksum::parse_checksum_file;
use super::fetch::MAX_CHECKSUM_FILE_BYTES;
use super::source::{S3_URI_FIELD, SHA512_FIELD};
use super::{ArchiveObject, KafkaDistribution};
use crate::aws::AwsClients;
use crate::error::ComponentError;
use crate::resources::sdk::failed;

impl KafkaDistribution {
    /// The copy at `uri`, which exists, with the SHA-512 the spec or the
    /// `.sha512` object beside it gives.
    pub(super) async fn placed(&self, aws: &AwsClients, uri: &str) -> Result<ArchiveObject, ComponentError> {
        if let Some(sha512) = &self.sha512 {
            return Ok(self.object(sha512.clone(), None));
        }
        let beside = format!("{}.sha512", self.key);
        let unusable = |why: String| {
            let err = ComponentError::terminal(
                "KafkaDistributionChecksumMissing",
                format!(
                    "{S3_URI_FIELD} {uri} has no usable SHA-512: {why}; set {SHA512_FIELD}, \
                     or place the archive's .sha512 file at {uri}.sha512"
                ),
            );
            Ok(self.object(String::new(), Some(err)))
        };
        let out = match aws.s3.get_object().bucket(&self.bucket).key(&beside).send().await {
            Ok(out) => out,
            Err(err) if err.as_service_error().is_some_and(GetObjectError::is_no_such_key) => {
                return unusable(format!("there is no {uri}.sha512"));
            }
            Err(err) => return Err(failed("read", &format!("{uri}.sha512"))(err)),
        };
        if out.content_length().unwrap_or_default() > MAX_CHECKSUM_FILE_BYTES as i64 {
            return unusable(format!("{uri}.sha512 is too large to be a checksum file"));
        }
        let text = out.body.collect().await.map_err(|err| {
            ComponentError::retryable("AwsError", format!("read {uri}.sha512 failed: {err}"))
        })?;
        match parse_checksum_file(&String::from_utf8_lossy(&text.into_bytes()), &self.file_name) {
            Ok(sha512) => Ok(self.object(sha512, None)),
            Err(why) => unusable(format!("{uri}.sha512 cannot be used: {why}")),
        }
    }
}

/// HeadObject found no copy at `uri` (404), or found its bucket in another
/// region than the pipeline's (301), where the brokers cannot reach it.
pub(super) fn unusable_copy(uri: &str, status: Option<u16>) -> ComponentError {
    let why = match status {
        Some(301) => "is in another region than spec.region; copy it to a bucket of the pipeline's region",
        _ => "does not exist; place the Kafka release archive there (`aws s3 cp <archive> <s3Uri>`)",
    };
    ComponentError::terminal(
        "KafkaDistributionNotFound",
        format!("{S3_URI_FIELD} {uri} {why}, or remove {S3_URI_FIELD} for the operator to download it"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unusable_copy_names_the_field_and_what_to_do() {
        let uri = "s3://my-artifacts/kafka_2.13-4.1.1.tgz";
        let missing = unusable_copy(uri, Some(404));
        assert_eq!(
            (missing.is_terminal(), missing.reason.as_str()),
            (true, "KafkaDistributionNotFound")
        );
        assert!(
            missing.message.starts_with(
                "spec.kafka.distribution.s3Uri s3://my-artifacts/kafka_2.13-4.1.1.tgz does not exist"
            ) && missing.message.contains("aws s3 cp"),
            "{}",
            missing.message
        );
        let elsewhere = unusable_copy(uri, Some(301));
        assert!(
            elsewhere
                .message
                .contains("is in another region than spec.region"),
            "{}",
            elsewhere.message
        );
    }
}
