//! Where a Kafka distribution comes from, read from the spec: the archive's
//! file name, the Kafka version that name gives, and the bucket and key of a
//! copy the user placed. Pure: nothing here reaches the network.

use crate::error::ComponentError;

pub(super) const URL_FIELD: &str = "spec.kafka.distribution.url";
pub(super) const S3_URI_FIELD: &str = "spec.kafka.distribution.s3Uri";
pub(super) const SHA512_FIELD: &str = "spec.kafka.distribution.sha512";

/// Apache names its binary releases `kafka_<scala>-<version>.tgz`.
const PREFIX: &str = "kafka_";
const SUFFIX: &str = ".tgz";

/// The Kafka version of a release archive named `kafka_<scala>-<version>.tgz`
/// (`kafka_2.13-4.1.1.tgz` is Kafka 4.1.1 built for Scala 2.13). The version
/// becomes part of an S3 key, so only letters, digits, dots and hyphens pass.
pub(super) fn kafka_version(file_name: &str) -> Option<&str> {
    let stem = file_name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let (scala, version) = stem.split_once('-')?;
    let scala_ok = !scala.is_empty() && scala.chars().all(|c| c.is_ascii_digit() || c == '.');
    let version_ok = version.starts_with(|c: char| c.is_ascii_digit())
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    (scala_ok && version_ok).then_some(version)
}

/// The archive's file name and Kafka version from the last segment of a URL
/// path or an S3 key; the error names `field`.
pub(super) fn file_and_version(
    path: &str,
    field: &str,
    value: &str,
) -> Result<(String, String), ComponentError> {
    let file_name = path.rsplit('/').next().unwrap_or_default();
    match kafka_version(file_name) {
        Some(version) => Ok((file_name.to_owned(), version.to_owned())),
        None => Err(ComponentError::terminal(
            "InvalidKafkaDistribution",
            format!(
                "{field} {value} does not name a Kafka binary release: its file name must be \
                 kafka_<scala>-<version>.tgz, e.g. kafka_2.13-4.1.1.tgz, as Apache publishes it"
            ),
        )),
    }
}

/// The path of an HTTPS URL (without its query), or an error naming
/// `spec.kafka.distribution.url`.
pub(super) fn https_path(url: &str) -> Result<String, ComponentError> {
    let invalid = |why: &str| {
        ComponentError::terminal(
            "InvalidKafkaDistribution",
            format!("{URL_FIELD} {url} {why}; give the https:// URL of a Kafka release archive"),
        )
    };
    let parsed = reqwest::Url::parse(url).map_err(|err| invalid(&format!("is not a URL ({err})")))?;
    if parsed.scheme() != "https" {
        return Err(invalid("is not an HTTPS URL"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("has no host"));
    }
    Ok(parsed.path().to_owned())
}

/// The bucket and key of `s3://bucket/key`, or an error naming
/// `spec.kafka.distribution.s3Uri`.
pub(super) fn s3_location(uri: &str) -> Result<(String, String), ComponentError> {
    let located = uri
        .strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .filter(|(bucket, key)| !bucket.is_empty() && !key.is_empty());
    match located {
        Some((bucket, key)) => Ok((bucket.to_owned(), key.to_owned())),
        None => Err(ComponentError::terminal(
            "InvalidKafkaDistribution",
            format!(
                "{S3_URI_FIELD} {uri} is not an S3 URI; give it as s3://<bucket>/<key>, \
                 e.g. s3://my-artifacts/kafka/kafka_2.13-4.1.1.tgz"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_what_follows_the_scala_version_in_the_file_name() {
        for (name, version) in [
            ("kafka_2.13-4.1.1.tgz", "4.1.1"),
            ("kafka_2.12-3.9.1.tgz", "3.9.1"),
            ("kafka_2.13-4.2.0-rc1.tgz", "4.2.0-rc1"),
        ] {
            assert_eq!(kafka_version(name), Some(version), "{name}");
        }
        for name in [
            "kafka-4.1.1.tgz",
            "kafka_2.13-4.1.1.tar.gz",
            "kafka_2.13-4.1.1-src.tgz.asc",
            "kafka_-4.1.1.tgz",
            "kafka_2.13-.tgz",
            "kafka_2.13-latest.tgz",
            "kafka_2.13-4.1.1/..tgz",
            "kafka_x-4.1.1.tgz",
            "",
        ] {
            assert_eq!(kafka_version(name), None, "{name}");
        }
    }

    #[test]
    fn a_path_that_names_no_release_is_refused_naming_the_field() {
        let (file, version) =
            file_and_version("/dist/kafka/4.1.1/kafka_2.13-4.1.1.tgz", URL_FIELD, "u").unwrap();
        assert_eq!(
            (file.as_str(), version.as_str()),
            ("kafka_2.13-4.1.1.tgz", "4.1.1")
        );

        let err = file_and_version("mirror/kafka.tgz", S3_URI_FIELD, "s3://b/mirror/kafka.tgz").unwrap_err();
        assert!(err.is_terminal());
        assert!(
            err.message
                .starts_with("spec.kafka.distribution.s3Uri s3://b/mirror/kafka.tgz does not name")
                && err.message.contains("kafka_<scala>-<version>.tgz"),
            "{}",
            err.message
        );
    }

    #[test]
    fn only_https_urls_with_a_host_are_taken_and_their_query_is_not_part_of_the_file_name() {
        assert_eq!(
            https_path("https://mirror.example.com/kafka/kafka_2.13-4.1.1.tgz?token=abc").unwrap(),
            "/kafka/kafka_2.13-4.1.1.tgz"
        );
        for url in [
            "http://archive.apache.org/dist/kafka/4.1.1/kafka_2.13-4.1.1.tgz",
            "ftp://mirror/kafka_2.13-4.1.1.tgz",
            "kafka_2.13-4.1.1.tgz",
        ] {
            let err = https_path(url).unwrap_err();
            assert!(
                err.is_terminal() && err.message.starts_with(URL_FIELD),
                "{url}: {err}"
            );
        }
    }

    #[test]
    fn an_s3_uri_is_a_bucket_and_a_key() {
        assert_eq!(
            s3_location("s3://my-artifacts/kafka/kafka_2.13-4.1.1.tgz").unwrap(),
            ("my-artifacts".to_owned(), "kafka/kafka_2.13-4.1.1.tgz".to_owned())
        );
        for uri in [
            "s3://my-artifacts",
            "s3://my-artifacts/",
            "s3:///key",
            "https://b/k",
        ] {
            let err = s3_location(uri).unwrap_err();
            assert!(
                err.is_terminal() && err.message.starts_with(S3_URI_FIELD),
                "{uri}: {err}"
            );
        }
    }
}
