//! The warehouse checked to answer: once the last migration is applied, the
//! analysts' view is queried once, through the Redshift Data API. Applied
//! statements only say that Redshift stored the definitions; the query reads
//! the events end to end (the cluster's role, the Glue table, the objects
//! under `events/`, the SerDe, every view), so the warehouse is Ready only
//! when an analyst's query would work.
//!
//! The check runs once per schema version, not every pass: it scans the
//! events Redshift Spectrum reads, which is billed by the byte. The cluster's
//! tag `imagepipeline.io/schema-checked` records the version it passed at, or
//! `<version>:<statement>` while it runs.

use std::collections::BTreeMap;

use super::sdk::{failed, set_redshift_tags};
use super::warehouse_schema::{
    FAILED_SUFFIX, FIRST_POLL, LAST_POLL, SCHEMA_CHECKED_TAG, StatementState, WAIT_FOR_STATEMENT,
    abbreviated, describe_statement,
};
use crate::aws::AwsClients;
use crate::engine::Readiness;
use crate::engine::resource::Resource;
use crate::error::ComponentError;

#[derive(Clone, Debug, PartialEq)]
pub struct WarehouseCheck {
    pub cluster_id: String,
    pub cluster_arn: String,
    pub database: String,
    pub user: String,
    /// The schema version whose views are checked: the last migration.
    pub version: u32,
    pub sql: String,
    /// What the cluster's tag records of the check.
    pub record: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum CheckState {
    Passed,
    Submitted {
        statement: String,
        state: StatementState,
    },
}

impl WarehouseCheck {
    /// The statement of this version's check in flight, unless its failure
    /// was reported.
    fn submitted(&self) -> Option<&str> {
        let record = self.record.as_deref()?;
        let (version, statement) = record.split_once(':')?;
        (version == self.version.to_string() && !statement.ends_with(FAILED_SUFFIX)).then_some(statement)
    }

    async fn record(&self, aws: &AwsClients, value: String) -> Result<(), ComponentError> {
        let record = BTreeMap::from([(SCHEMA_CHECKED_TAG.to_owned(), value)]);
        set_redshift_tags(aws, &self.cluster_arn, None, &record, &self.label()).await
    }

    fn failure(&self, statement: &str, error: &str) -> ComponentError {
        ComponentError::retryable(
            "WarehouseNotServing",
            format!(
                "the analysts' views do not answer: `{}` failed in Redshift: {error} (Data API statement \
                 {statement}); look at the cluster's role (it reads events/ and the Glue table) and the \
                 views (`imagepipeline warehouse ddl`); checked again on the next attempt, after the backoff",
                abbreviated(&self.sql)
            ),
        )
    }

    /// Waits a while for the check `statement`, then records what it found.
    async fn settle(
        &self,
        aws: &AwsClients,
        statement: String,
        mut state: StatementState,
    ) -> Result<(), ComponentError> {
        let deadline = tokio::time::Instant::now() + WAIT_FOR_STATEMENT;
        let mut poll = FIRST_POLL;
        while state == StatementState::Running && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(poll).await;
            poll = (poll * 2).min(LAST_POLL);
            match describe_statement(aws, &statement).await? {
                Some(now) => state = now,
                // Forgotten: the next attempt submits it again.
                None => {
                    return self
                        .record(aws, format!("{}:{statement}{FAILED_SUFFIX}", self.version))
                        .await;
                }
            }
        }
        match state {
            StatementState::Running => Ok(()),
            StatementState::Finished => self.record(aws, self.version.to_string()).await,
            StatementState::Failed(error) => {
                self.record(aws, format!("{}:{statement}{FAILED_SUFFIX}", self.version))
                    .await?;
                Err(self.failure(&statement, &error))
            }
        }
    }
}

impl Resource for WarehouseCheck {
    type Observed = CheckState;
    /// Part of the cluster; not listed on its own.
    const TYPE: Option<&'static str> = None;

    fn label(&self) -> String {
        format!("warehouse check in Redshift cluster {}", self.cluster_id)
    }

    /// Passed at this version, or this version's check in flight; nothing
    /// when it never ran at this version, was forgotten, or its failure was
    /// reported.
    async fn find(&self, aws: &AwsClients) -> Result<Option<CheckState>, ComponentError> {
        if self.record.as_deref() == Some(self.version.to_string().as_str()) {
            return Ok(Some(CheckState::Passed));
        }
        let Some(statement) = self.submitted() else {
            return Ok(None);
        };
        Ok(describe_statement(aws, statement)
            .await?
            .map(|state| CheckState::Submitted {
                statement: statement.to_owned(),
                state,
            }))
    }

    fn delta(&self, observed: &CheckState) -> Result<Vec<String>, ComponentError> {
        Ok(match observed {
            CheckState::Submitted {
                state: StatementState::Finished,
                ..
            } => vec![format!("checked at version {}: (running) → passed", self.version)],
            CheckState::Submitted {
                state: StatementState::Failed(error),
                ..
            } => vec![format!("check failed ({error}): run it again")],
            _ => vec![],
        })
    }

    fn create_fields(&self) -> Vec<String> {
        vec![format!("run `{}` once, through the Redshift Data API", self.sql)]
    }

    async fn create(&self, aws: &AwsClients) -> Result<CheckState, ComponentError> {
        let out = aws
            .redshift_data
            .execute_statement()
            .cluster_identifier(&self.cluster_id)
            .database(&self.database)
            .db_user(&self.user)
            .sql(&self.sql)
            .statement_name("imagepipeline-check")
            .send()
            .await
            .map_err(failed("run", &self.label()))?;
        let statement = out.id().unwrap_or_default().to_owned();
        self.record(aws, format!("{}:{statement}", self.version)).await?;
        self.settle(aws, statement.clone(), StatementState::Running)
            .await?;
        // The next round finds what it came to.
        Ok(CheckState::Submitted {
            statement,
            state: StatementState::Running,
        })
    }

    async fn update(&self, aws: &AwsClients, observed: &CheckState) -> Result<(), ComponentError> {
        match observed {
            CheckState::Passed => Ok(()),
            CheckState::Submitted { statement, state } => {
                self.settle(aws, statement.clone(), state.clone()).await
            }
        }
    }

    /// Ready only once the check passed at this version.
    fn readiness(&self, observed: &CheckState) -> Readiness {
        match observed {
            CheckState::Passed => Readiness::Ready,
            CheckState::Submitted { statement, .. } => Readiness::Waiting(format!(
                "checking that the analysts' views answer (Data API statement {statement})"
            )),
        }
    }

    /// It goes with its cluster.
    async fn delete(&self, _aws: &AwsClients, _observed: &CheckState) -> Result<(), ComponentError> {
        Ok(())
    }

    fn id(observed: &CheckState) -> String {
        match observed {
            CheckState::Passed => "passed".to_owned(),
            CheckState::Submitted { statement, .. } => statement.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
