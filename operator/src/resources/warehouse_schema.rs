//! The warehouse's analysis schema, created in the cluster through the
//! Redshift Data API. A statement runs for a while after it is submitted, so
//! the cluster's tags record which statement ran and, once it finished, the
//! schema version: a crash or a restart never loses track of it, and a
//! finished schema is not run again.

use std::collections::BTreeMap;

use aws_sdk_redshiftdata::types::StatusString;

use super::sdk::{failed, set_redshift_tags};
use crate::aws::AwsClients;
use crate::aws::errors::{classify, code};
use crate::engine::resource::Resource;
use crate::engine::{Tags, field};
use crate::error::ComponentError;

/// Cluster tags the operator keeps its own progress in; not user-visible
/// configuration, so they are left out of the cluster's tag drift.
pub const SCHEMA_VERSION_TAG: &str = "imagepipeline.io/schema-version";
pub const SCHEMA_STATEMENT_TAG: &str = "imagepipeline.io/schema-statement";
pub const SCHEMA_VERSION: &str = "1";

/// What the cluster's tags record of the schema.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SchemaRecord {
    pub version: Option<String>,
    /// The Data API statement that creates it, once one was submitted.
    pub statement: Option<String>,
}

impl SchemaRecord {
    /// Takes the record out of the cluster's `tags`.
    pub fn take_from(tags: &mut Tags) -> Self {
        Self {
            version: tags.remove(SCHEMA_VERSION_TAG),
            statement: tags.remove(SCHEMA_STATEMENT_TAG),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct WarehouseSchema {
    pub cluster_id: String,
    pub cluster_arn: String,
    pub database: String,
    /// The database user the statement runs as: the cluster's master user.
    pub user: String,
    pub sql: String,
    /// What the cluster's tags recorded when the cluster was found.
    pub record: SchemaRecord,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SchemaState {
    /// The cluster records the current version.
    Made,
    /// Submitted, picked or started: it is let run.
    Running { statement: String },
    /// Finished; the version is not recorded yet.
    Finished { statement: String },
}

impl Resource for WarehouseSchema {
    type Observed = SchemaState;
    /// Part of the cluster; not listed on its own.
    const TYPE: Option<&'static str> = None;

    fn label(&self) -> String {
        format!("Redshift cluster {} analysis schema", self.cluster_id)
    }

    /// The recorded version, or the recorded statement while it runs or once
    /// it finished; a statement that failed, was aborted or is forgotten by
    /// the Data API counts as none, so the schema is made again.
    async fn find(&self, aws: &AwsClients) -> Result<Option<SchemaState>, ComponentError> {
        if self.record.version.as_deref() == Some(SCHEMA_VERSION) {
            return Ok(Some(SchemaState::Made));
        }
        let Some(id) = &self.record.statement else {
            return Ok(None);
        };
        let status = match aws.redshift_data.describe_statement().id(id).send().await {
            Ok(out) => out.status().cloned(),
            Err(err) if code(&err) == Some("ResourceNotFoundException") => return Ok(None),
            Err(err) => return Err(classify(&format!("read schema statement {id}"), err)),
        };
        let statement = id.clone();
        Ok(match status {
            Some(StatusString::Finished) => Some(SchemaState::Finished { statement }),
            None | Some(StatusString::Failed | StatusString::Aborted) => None,
            Some(_) => Some(SchemaState::Running { statement }),
        })
    }

    fn delta(&self, observed: &SchemaState) -> Result<Vec<String>, ComponentError> {
        Ok(match observed {
            SchemaState::Finished { .. } => vec![field(SCHEMA_VERSION_TAG, "(none)", SCHEMA_VERSION)],
            SchemaState::Made | SchemaState::Running { .. } => vec![],
        })
    }

    fn create_fields(&self) -> Vec<String> {
        vec!["through the Redshift Data API".to_owned()]
    }

    /// Submits the statement and records it on the cluster. Should the
    /// record be lost to a crash, the statement runs again, which changes
    /// nothing: it creates only what does not exist.
    async fn create(&self, aws: &AwsClients) -> Result<SchemaState, ComponentError> {
        let out = aws
            .redshift_data
            .execute_statement()
            .cluster_identifier(&self.cluster_id)
            .database(&self.database)
            .db_user(&self.user)
            .sql(&self.sql)
            .statement_name("imagepipeline-schema")
            .send()
            .await
            .map_err(failed("create", &self.label()))?;
        let statement = out.id().unwrap_or_default().to_owned();
        let record = BTreeMap::from([(SCHEMA_STATEMENT_TAG.to_owned(), statement.clone())]);
        set_redshift_tags(aws, &self.cluster_arn, None, &record, &self.label()).await?;
        Ok(SchemaState::Running { statement })
    }

    async fn update(&self, aws: &AwsClients, observed: &SchemaState) -> Result<(), ComponentError> {
        if !matches!(observed, SchemaState::Finished { .. }) {
            return Ok(());
        }
        let record = BTreeMap::from([(SCHEMA_VERSION_TAG.to_owned(), SCHEMA_VERSION.to_owned())]);
        set_redshift_tags(aws, &self.cluster_arn, None, &record, &self.label()).await
    }

    /// It goes with its cluster.
    async fn delete(&self, _aws: &AwsClients, _observed: &SchemaState) -> Result<(), ComponentError> {
        Ok(())
    }

    fn id(observed: &SchemaState) -> String {
        match observed {
            SchemaState::Made => format!("version {SCHEMA_VERSION}"),
            SchemaState::Running { statement } | SchemaState::Finished { statement } => statement.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_is_taken_out_of_the_cluster_tags() {
        let mut tags = Tags::from([
            ("team".to_owned(), "media".to_owned()),
            (SCHEMA_VERSION_TAG.to_owned(), SCHEMA_VERSION.to_owned()),
            (SCHEMA_STATEMENT_TAG.to_owned(), "statement-1".to_owned()),
        ]);
        let record = SchemaRecord::take_from(&mut tags);
        assert_eq!(
            record,
            SchemaRecord {
                version: Some(SCHEMA_VERSION.to_owned()),
                statement: Some("statement-1".to_owned()),
            }
        );
        assert_eq!(tags, Tags::from([("team".to_owned(), "media".to_owned())]));
    }

    #[test]
    fn a_finished_statement_is_recorded_and_a_running_one_let_run() {
        let schema = WarehouseSchema {
            cluster_id: "warehouse".into(),
            cluster_arn: "arn:aws:redshift:eu-west-1:123456789012:cluster:warehouse".into(),
            database: "images".into(),
            user: "imagepipeline_admin".into(),
            sql: "CREATE TABLE IF NOT EXISTS t (id INT)".into(),
            record: SchemaRecord::default(),
        };
        let statement = "statement-1".to_owned();
        assert_eq!(
            schema.delta(&SchemaState::Finished {
                statement: statement.clone()
            }),
            Ok(vec![format!("{SCHEMA_VERSION_TAG}: (none) → 1")])
        );
        assert_eq!(schema.delta(&SchemaState::Running { statement }), Ok(vec![]));
        assert_eq!(schema.delta(&SchemaState::Made), Ok(vec![]));
    }
}
