//! The warehouse's schema: versioned migrations run in the cluster, in order,
//! each once, through the Redshift Data API.
//!
//! A statement runs for a while after it is submitted, so the cluster's tags
//! record the last version applied and the statement in flight: a crash or a
//! restart never loses track of either, and an applied migration is never
//! run again. Every statement is idempotent besides, so a record lost to a
//! crash between a statement finishing and its version being recorded only
//! runs that statement twice.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_redshiftdata::types::StatusString;

use super::sdk::{failed, set_redshift_tags};
use crate::aws::AwsClients;
use crate::aws::errors::{classify, code};
use crate::components::analytics::warehouse::Migration;
use crate::engine::resource::Resource;
use crate::engine::{Readiness, Tags};
use crate::error::ComponentError;

/// Cluster tags the operator keeps its own progress in; not user-visible
/// configuration, so they are left out of the cluster's tag drift.
pub const SCHEMA_VERSION_TAG: &str = "imagepipeline.io/schema-version";
/// `<version>:<statement id>` of the migration last submitted.
pub const SCHEMA_STATEMENT_TAG: &str = "imagepipeline.io/schema-statement";
/// The version whose views were checked to answer (`resources::warehouse_check`).
pub const SCHEMA_CHECKED_TAG: &str = "imagepipeline.io/schema-checked";

/// How long one update waits for a statement before leaving it to run: the
/// next round or pass finds it. Redshift runs a DDL statement in seconds.
pub(crate) const WAIT_FOR_STATEMENT: Duration = Duration::from_secs(20);
/// The first look at a statement comes soon, later ones less often.
pub(crate) const FIRST_POLL: Duration = Duration::from_millis(100);
pub(crate) const LAST_POLL: Duration = Duration::from_secs(2);

/// What the cluster's tags record of the schema.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SchemaRecord {
    pub version: Option<String>,
    /// The Data API statement last submitted, once one was.
    pub statement: Option<String>,
    /// The check of the views after the last migration.
    pub checked: Option<String>,
}

impl SchemaRecord {
    /// Takes the record out of the cluster's `tags`.
    pub fn take_from(tags: &mut Tags) -> Self {
        Self {
            version: tags.remove(SCHEMA_VERSION_TAG),
            statement: tags.remove(SCHEMA_STATEMENT_TAG),
            checked: tags.remove(SCHEMA_CHECKED_TAG),
        }
    }

    /// The last version applied; none is 0.
    fn applied(&self) -> u32 {
        self.version.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    /// The migration version and statement id submitted last, unless its
    /// failure was reported. Before versions were recorded with it, the only
    /// statement was version 1's.
    fn submitted(&self) -> Option<(u32, &str)> {
        let statement = self.statement.as_deref()?;
        if statement.ends_with(FAILED_SUFFIX) {
            return None;
        }
        Some(match statement.split_once(':') {
            Some((version, id)) => (version.parse().ok()?, id),
            None => (1, statement),
        })
    }
}

/// Marks a recorded statement whose failure was reported: the next attempt
/// submits its migration again, after the controller's backoff, so a cause
/// fixed meanwhile (a role, a grant) is enough.
pub(crate) const FAILED_SUFFIX: &str = ":failed";

#[derive(Clone, Debug, PartialEq)]
pub struct WarehouseSchema {
    pub cluster_id: String,
    pub cluster_arn: String,
    pub database: String,
    /// The database user the statements run as: the cluster's master user.
    pub user: String,
    /// Every migration, in version order from 1.
    pub migrations: Vec<Migration>,
    /// What the cluster's tags recorded when the cluster was found.
    pub record: SchemaRecord,
}

/// A submitted migration as the Data API reports it.
#[derive(Clone, Debug, PartialEq)]
pub enum StatementState {
    /// Submitted, picked or started: it is let run.
    Running,
    Finished,
    /// Redshift's error, from `DescribeStatement`.
    Failed(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct InFlight {
    pub version: u32,
    pub statement: String,
    pub state: StatementState,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SchemaState {
    /// The last version applied and recorded.
    pub applied: u32,
    /// The migration after it, once submitted.
    pub in_flight: Option<InFlight>,
}

impl WarehouseSchema {
    fn latest(&self) -> u32 {
        self.migrations.last().map_or(0, |m| m.version)
    }

    fn migration(&self, version: u32) -> Option<&Migration> {
        self.migrations.iter().find(|m| m.version == version)
    }

    /// "apply migrations 4–9", or "apply migration 9".
    fn pending(&self, from: u32) -> String {
        let latest = self.latest();
        if from == latest {
            format!("apply migration {from}")
        } else {
            format!("apply migrations {from}–{latest}")
        }
    }

    /// The condition of a migration Redshift refused: which one, its
    /// statement, and Redshift's words.
    fn failure(&self, version: u32, statement: &str, error: &str) -> ComponentError {
        let (purpose, sql) = self
            .migration(version)
            .map_or(("unknown", ""), |m| (m.purpose, m.sql.as_str()));
        ComponentError::retryable(
            "WarehouseMigrationFailed",
            format!(
                "warehouse migration {version} ({purpose}) failed in Redshift: {error} \
                 (Data API statement {statement}; `imagepipeline warehouse ddl` prints it: {}); \
                 it is submitted again on the next attempt, after the backoff",
                abbreviated(sql)
            ),
        )
    }

    /// Records `applied` and, when one was submitted, the statement in
    /// flight, in one call.
    async fn record(
        &self,
        aws: &AwsClients,
        applied: u32,
        submitted: Option<String>,
    ) -> Result<(), ComponentError> {
        let mut record = BTreeMap::from([(SCHEMA_VERSION_TAG.to_owned(), applied.to_string())]);
        if let Some(submitted) = submitted {
            record.insert(SCHEMA_STATEMENT_TAG.to_owned(), submitted);
        }
        set_redshift_tags(aws, &self.cluster_arn, None, &record, &self.label()).await
    }

    /// Submits migration `version`, recording it as in flight after
    /// `applied`.
    async fn submit(&self, aws: &AwsClients, version: u32, applied: u32) -> Result<String, ComponentError> {
        let Some(migration) = self.migration(version) else {
            return Err(ComponentError::terminal(
                "WarehouseMigrationUnknown",
                format!("the warehouse has no migration {version}"),
            ));
        };
        let out = aws
            .redshift_data
            .execute_statement()
            .cluster_identifier(&self.cluster_id)
            .database(&self.database)
            .db_user(&self.user)
            .sql(&migration.sql)
            .statement_name(format!("imagepipeline-migration-{version}"))
            .send()
            .await
            .map_err(failed("run", &format!("warehouse migration {version}")))?;
        let statement = out.id().unwrap_or_default().to_owned();
        self.record(aws, applied, Some(format!("{version}:{statement}")))
            .await?;
        Ok(statement)
    }

    /// Applies migrations from the state `observed` on: records the one that
    /// finished, submits the next and waits a while for it, in order, until
    /// the last is applied, one is still running, or one failed.
    async fn advance(&self, aws: &AwsClients, observed: &SchemaState) -> Result<(), ComponentError> {
        let deadline = tokio::time::Instant::now() + WAIT_FOR_STATEMENT;
        let mut poll = FIRST_POLL;
        let mut applied = observed.applied;
        let mut in_flight = observed.in_flight.clone();
        loop {
            match in_flight {
                Some(InFlight {
                    state: StatementState::Running,
                    version,
                    statement,
                }) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Ok(());
                    }
                    tokio::time::sleep(poll).await;
                    poll = (poll * 2).min(LAST_POLL);
                    let state = describe_statement(aws, &statement).await?;
                    in_flight = state.map(|state| InFlight {
                        version,
                        statement,
                        state,
                    });
                }
                Some(InFlight {
                    state: StatementState::Failed(error),
                    version,
                    statement,
                }) => {
                    let reported = format!("{version}:{statement}{FAILED_SUFFIX}");
                    self.record(aws, applied, Some(reported)).await?;
                    return Err(self.failure(version, &statement, &error));
                }
                Some(InFlight {
                    state: StatementState::Finished,
                    version,
                    ..
                }) => {
                    applied = version;
                    in_flight = None;
                    if applied == self.latest() {
                        self.record(aws, applied, None).await?;
                    }
                }
                None if applied < self.latest() => {
                    // Recorded with the next statement, in one call.
                    let version = applied + 1;
                    let statement = self.submit(aws, version, applied).await?;
                    poll = FIRST_POLL;
                    in_flight = Some(InFlight {
                        version,
                        statement,
                        state: StatementState::Running,
                    });
                }
                None => return Ok(()),
            }
        }
    }
}

impl Resource for WarehouseSchema {
    type Observed = SchemaState;
    /// Part of the cluster; not listed on its own.
    const TYPE: Option<&'static str> = None;

    fn label(&self) -> String {
        format!("warehouse schema in Redshift cluster {}", self.cluster_id)
    }

    /// The recorded version and the statement submitted after it, as the
    /// Data API reports it; nothing at all is a schema not made yet.
    async fn find(&self, aws: &AwsClients) -> Result<Option<SchemaState>, ComponentError> {
        let applied = self.record.applied();
        let in_flight = match self.record.submitted() {
            Some((version, id)) if version > applied => {
                describe_statement(aws, id).await?.map(|state| InFlight {
                    version,
                    statement: id.to_owned(),
                    state,
                })
            }
            _ => None,
        };
        if applied == 0 && in_flight.is_none() {
            return Ok(None);
        }
        Ok(Some(SchemaState { applied, in_flight }))
    }

    fn delta(&self, observed: &SchemaState) -> Result<Vec<String>, ComponentError> {
        let latest = self.latest();
        let next = observed.applied + 1;
        Ok(match &observed.in_flight {
            _ if observed.applied >= latest => vec![],
            Some(InFlight {
                state: StatementState::Failed(error),
                version,
                ..
            }) => vec![format!(
                "migration {version} failed ({error}): {}",
                self.pending(*version)
            )],
            Some(InFlight {
                state: StatementState::Running,
                version,
                ..
            }) if *version == latest => vec![],
            Some(InFlight {
                state: StatementState::Running,
                version,
                ..
            }) => vec![format!(
                "{} (migration {version} running)",
                self.pending(*version)
            )],
            _ => vec![self.pending(next)],
        })
    }

    fn create_fields(&self) -> Vec<String> {
        vec![format!("{}, through the Redshift Data API", self.pending(1))]
    }

    async fn create(&self, aws: &AwsClients) -> Result<SchemaState, ComponentError> {
        let fresh = SchemaState {
            applied: 0,
            in_flight: None,
        };
        self.advance(aws, &fresh).await?;
        // The next round finds what got applied.
        Ok(fresh)
    }

    async fn update(&self, aws: &AwsClients, observed: &SchemaState) -> Result<(), ComponentError> {
        self.advance(aws, observed).await
    }

    /// Until the last migration is applied, analysts cannot rely on the
    /// views: the component is not ready.
    fn readiness(&self, observed: &SchemaState) -> Readiness {
        let latest = self.latest();
        if observed.applied >= latest {
            return Readiness::Ready;
        }
        let doing = match &observed.in_flight {
            Some(flight) => self.migration(flight.version).map_or_else(String::new, |m| {
                format!(": migration {} ({})", m.version, m.purpose)
            }),
            None => String::new(),
        };
        Readiness::Waiting(format!(
            "the warehouse schema is at version {} of {latest}{doing}",
            observed.applied
        ))
    }

    /// It goes with its cluster.
    async fn delete(&self, _aws: &AwsClients, _observed: &SchemaState) -> Result<(), ComponentError> {
        Ok(())
    }

    fn id(observed: &SchemaState) -> String {
        format!("version {}", observed.applied)
    }
}

/// A submitted statement as the Data API reports it; `None` once it forgot
/// it (after a day).
pub(crate) async fn describe_statement(
    aws: &AwsClients,
    id: &str,
) -> Result<Option<StatementState>, ComponentError> {
    let out = match aws.redshift_data.describe_statement().id(id).send().await {
        Ok(out) => out,
        Err(err) if code(&err) == Some("ResourceNotFoundException") => return Ok(None),
        Err(err) => return Err(classify(&format!("read warehouse statement {id}"), err)),
    };
    Ok(Some(match out.status() {
        Some(StatusString::Finished) => StatementState::Finished,
        Some(StatusString::Failed) => {
            StatementState::Failed(out.error().unwrap_or("no error text").to_owned())
        }
        Some(StatusString::Aborted) => StatementState::Failed("the statement was cancelled".to_owned()),
        _ => StatementState::Running,
    }))
}

/// The first line of a statement, shortened: enough to recognise it.
pub(crate) fn abbreviated(sql: &str) -> String {
    const SHOWN: usize = 120;
    match sql.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}…", &sql[..cut]),
        None => sql.to_owned(),
    }
}

#[cfg(test)]
mod tests;
