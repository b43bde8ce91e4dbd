//! The S3 destination of a delivery stream: the settings the operator
//! manages, as Firehose reports and takes them.

use aws_sdk_firehose::types::{
    BufferingHints, CompressionFormat, ExtendedS3DestinationConfiguration, ExtendedS3DestinationDescription,
    ExtendedS3DestinationUpdate,
};

use crate::api::v1alpha1::Compression;
use crate::engine::{ComponentError, field};
use crate::resources::sdk::built;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    pub bucket_arn: String,
    pub role_arn: String,
    pub prefix: String,
    pub error_prefix: String,
    pub buffer_size_mib: i32,
    pub buffer_interval_seconds: i32,
    /// A Firehose compression format, e.g. `GZIP`.
    pub compression: String,
}

/// The Firehose format of the spec's compression.
pub fn compression_format(compression: Compression) -> String {
    match compression {
        Compression::Uncompressed => CompressionFormat::Uncompressed,
        Compression::Gzip => CompressionFormat::Gzip,
        Compression::Zip => CompressionFormat::Zip,
        Compression::Snappy => CompressionFormat::Snappy,
        Compression::HadoopSnappy => CompressionFormat::HadoopSnappy,
    }
    .as_str()
    .to_owned()
}

impl Destination {
    pub(super) fn observed(s3: &ExtendedS3DestinationDescription) -> Self {
        let hints = s3.buffering_hints();
        Destination {
            bucket_arn: s3.bucket_arn().to_owned(),
            role_arn: s3.role_arn().to_owned(),
            prefix: s3.prefix().unwrap_or_default().to_owned(),
            error_prefix: s3.error_output_prefix().unwrap_or_default().to_owned(),
            buffer_size_mib: hints.and_then(|b| b.size_in_mbs()).unwrap_or_default(),
            buffer_interval_seconds: hints.and_then(|b| b.interval_in_seconds()).unwrap_or_default(),
            compression: s3.compression_format().as_str().to_owned(),
        }
    }

    /// The plan fields in which `observed` differs from this destination.
    pub fn changes_from(&self, observed: Option<&Destination>) -> Vec<String> {
        let Some(observed) = observed else {
            return vec![field("S3 destination", "(none)", &self.bucket_arn)];
        };
        let text = |value: &str| match value {
            "" => "(none)".to_owned(),
            value => value.to_owned(),
        };
        let number = |value: i32| value.to_string();
        [
            ("bucket", text(&observed.bucket_arn), text(&self.bucket_arn)),
            ("role", text(&observed.role_arn), text(&self.role_arn)),
            ("prefix", text(&observed.prefix), text(&self.prefix)),
            (
                "error prefix",
                text(&observed.error_prefix),
                text(&self.error_prefix),
            ),
            (
                "buffer size MiB",
                number(observed.buffer_size_mib),
                number(self.buffer_size_mib),
            ),
            (
                "buffer interval seconds",
                number(observed.buffer_interval_seconds),
                number(self.buffer_interval_seconds),
            ),
            (
                "compression",
                text(&observed.compression),
                text(&self.compression),
            ),
        ]
        .into_iter()
        .filter(|(_, observed, desired)| observed != desired)
        .map(|(name, observed, desired)| field(name, observed, desired))
        .collect()
    }

    pub(super) fn config(&self) -> Result<ExtendedS3DestinationConfiguration, ComponentError> {
        built(
            ExtendedS3DestinationConfiguration::builder()
                .role_arn(&self.role_arn)
                .bucket_arn(&self.bucket_arn)
                .prefix(&self.prefix)
                .error_output_prefix(&self.error_prefix)
                .buffering_hints(self.buffering())
                .compression_format(self.compression_format())
                .build(),
        )
    }

    pub(super) fn update(&self) -> ExtendedS3DestinationUpdate {
        ExtendedS3DestinationUpdate::builder()
            .role_arn(&self.role_arn)
            .bucket_arn(&self.bucket_arn)
            .prefix(&self.prefix)
            .error_output_prefix(&self.error_prefix)
            .buffering_hints(self.buffering())
            .compression_format(self.compression_format())
            .build()
    }

    fn buffering(&self) -> BufferingHints {
        BufferingHints::builder()
            .size_in_mbs(self.buffer_size_mib)
            .interval_in_seconds(self.buffer_interval_seconds)
            .build()
    }

    fn compression_format(&self) -> CompressionFormat {
        CompressionFormat::from(self.compression.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired() -> Destination {
        Destination {
            bucket_arn: "arn:aws:s3:::photos-bucket".into(),
            role_arn: "arn:aws:iam::123456789012:role/imagepipeline/firehose".into(),
            prefix: "events/".into(),
            error_prefix: "errors/".into(),
            buffer_size_mib: 16,
            buffer_interval_seconds: 120,
            compression: "ZIP".into(),
        }
    }

    #[test]
    fn each_setting_that_drifted_is_one_field_and_nothing_else_is() {
        let desired = desired();
        assert_eq!(desired.changes_from(Some(&desired)), Vec::<String>::new());
        type Drift = fn(&mut Destination);
        let cases: [(Drift, &str); 5] = [
            (|d| d.buffer_size_mib = 5, "buffer size MiB: 5 → 16"),
            (
                |d| d.buffer_interval_seconds = 60,
                "buffer interval seconds: 60 → 120",
            ),
            (|d| d.compression = "GZIP".into(), "compression: GZIP → ZIP"),
            (|d| d.prefix = String::new(), "prefix: (none) → events/"),
            (
                |d| d.error_prefix = "failed/".into(),
                "error prefix: failed/ → errors/",
            ),
        ];
        for (drift, field) in cases {
            let mut observed = desired.clone();
            drift(&mut observed);
            assert_eq!(desired.changes_from(Some(&observed)), [field]);
        }
        assert_eq!(
            desired.changes_from(None),
            ["S3 destination: (none) → arn:aws:s3:::photos-bucket"]
        );
    }
}
