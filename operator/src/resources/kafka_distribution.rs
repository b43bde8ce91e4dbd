//! The Kafka distribution the brokers install: staged by the operator into
//! the pipeline's bucket under `artifacts/kafka/<version>/`, or a copy the
//! user placed (`spec.kafka.distribution.s3Uri`).

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
