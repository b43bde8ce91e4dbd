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

// TEMPORARY stand-in API until the staging resource lands (merge replaces it).
#[derive(Clone, Debug, PartialEq)]
pub struct KafkaDistribution {
    pub archive: StagedArchive,
}

impl KafkaDistribution {
    pub fn from_spec(_spec: Option<&()>, bucket: &str) -> Result<Self, crate::error::ComponentError> {
        Ok(Self {
            archive: StagedArchive {
                bucket: bucket.to_owned(),
                key: "artifacts/kafka/4.1.1/kafka_2.13-4.1.1.tgz".to_owned(),
                sha512: String::new(),
                version: "4.1.1".to_owned(),
            },
        })
    }
    pub fn archive(&self, _observed: &()) -> StagedArchive {
        self.archive.clone()
    }
    pub fn planned_archive(&self) -> StagedArchive {
        self.archive.clone()
    }
    pub fn object_path(&self) -> String {
        format!("{}/{}", self.archive.bucket, self.archive.key)
    }
}

impl crate::engine::resource::Resource for KafkaDistribution {
    type Observed = ();
    const TYPE: Option<&'static str> = None;
    fn label(&self) -> String {
        "Kafka distribution".to_owned()
    }
    async fn find(&self, _aws: &crate::aws::AwsClients) -> Result<Option<()>, crate::error::ComponentError> {
        Ok(Some(()))
    }
    fn delta(&self, _observed: &()) -> Result<Vec<String>, crate::error::ComponentError> {
        Ok(vec![])
    }
    async fn create(&self, _aws: &crate::aws::AwsClients) -> Result<(), crate::error::ComponentError> {
        Ok(())
    }
    async fn update(
        &self,
        _aws: &crate::aws::AwsClients,
        _o: &(),
    ) -> Result<(), crate::error::ComponentError> {
        Ok(())
    }
    async fn delete(
        &self,
        _aws: &crate::aws::AwsClients,
        _o: &(),
    ) -> Result<(), crate::error::ComponentError> {
        Ok(())
    }
    fn id(_observed: &()) -> String {
        String::new()
    }
}
