//! One statement through the Redshift Data API, as the operator runs its
//! own: submitted, watched until Redshift is done with it, and its result
//! read page by page.

use std::error::Error as StdError;
use std::time::{Duration, Instant};

use aws_sdk_redshiftdata::Client;
use aws_sdk_redshiftdata::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_redshiftdata::types::StatusString;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::error::display::DisplayErrorContext;

use super::WarehouseError;
use super::format::{Cell, Column, Outcome, ResultSet};
use crate::backoff::Backoff;

/// Where and as whom a statement runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub cluster: String,
    pub database: String,
    /// The database user the Data API gets temporary credentials for.
    pub user: String,
}

/// The name the statements of `query` carry in Redshift's lists
/// (`aws redshift-data list-statements`), beside the operator's own.
pub const STATEMENT_NAME: &str = "imagepipeline-query";

/// How often a running statement is looked at: soon at first, since most
/// finish in well under a second, then at most every `max`.
#[derive(Clone, Copy, Debug)]
pub struct Polling {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Polling {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(100),
            max: Duration::from_secs(1),
        }
    }
}

/// Runs `sql` on `target` and waits at most `timeout` for it to finish; a
/// statement still running then, or when the user presses Ctrl-C, is
/// cancelled, so that nothing keeps running in the warehouse unwatched.
pub async fn run(
    data: &Client,
    target: &Target,
    sql: &str,
    timeout: Duration,
    polling: Polling,
) -> Result<Outcome, WarehouseError> {
    let submit = || format!("submit the statement to cluster {}", target.cluster);
    let submitted = data
        .execute_statement()
        .cluster_identifier(&target.cluster)
        .database(&target.database)
        .db_user(&target.user)
        .sql(sql)
        .statement_name(STATEMENT_NAME)
        .send()
        .await
        .map_err(|err| aws_error(submit(), err))?;
    let id = submitted.id().ok_or_else(|| WarehouseError::Aws {
        action: submit(),
        detail: "the Data API answered without a statement id".to_owned(),
    })?;
    let id = id.to_owned();

    let started = Instant::now();
    let mut backoff = Backoff::new(polling.first, polling.max);
    let finished = loop {
        let described = data
            .describe_statement()
            .id(&id)
            .send()
            .await
            .map_err(|err| aws_error(format!("look up statement {id}"), err))?;
        match described.status() {
            Some(StatusString::Finished) => break described,
            Some(StatusString::Failed) => {
                return Err(WarehouseError::Failed {
                    id,
                    error: described
                        .error()
                        .filter(|text| !text.is_empty())
                        .unwrap_or("Redshift gave no reason")
                        .to_owned(),
                });
            }
            Some(StatusString::Aborted) => return Err(WarehouseError::Aborted { id }),
            // Submitted, picked or started: still running.
            _ => {}
        }
        let waited = started.elapsed();
        if waited >= timeout {
            let cancelled = cancel(data, &id).await;
            return Err(WarehouseError::Timeout {
                id,
                waited: humantime::format_duration(timeout).to_string(),
                cancelled,
            });
        }
        let pause = backoff.next_delay().min(timeout - waited);
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            Ok(()) = tokio::signal::ctrl_c() => {
                let cancelled = cancel(data, &id).await;
                return Err(WarehouseError::Interrupted { id, cancelled });
            }
        }
    };

    if finished.has_result_set() != Some(true) {
        // -1 when Redshift does not know (a DDL statement, say).
        let rows_affected = u64::try_from(finished.result_rows()).ok();
        return Ok(Outcome::Done { rows_affected });
    }
    read_result(data, &id).await.map(Outcome::Rows)
}

/// Every page of the result; the columns come with the first.
async fn read_result(data: &Client, id: &str) -> Result<ResultSet, WarehouseError> {
    let mut result = ResultSet::default();
    let mut next_token: Option<String> = None;
    loop {
        let page = data
            .get_statement_result()
            .id(id)
            .set_next_token(next_token.take())
            .send()
            .await
            .map_err(|err| aws_error(format!("read the result of statement {id}"), err))?;
        if result.columns.is_empty() {
            result.columns = page.column_metadata().iter().map(Column::of).collect();
        }
        for record in page.records() {
            let cells = record.iter().enumerate().map(|(index, field)| {
                let type_name = result.columns.get(index).map_or("", |c| c.type_name.as_str());
                Cell::of(field, type_name)
            });
            result.rows.push(cells.collect());
        }
        match page.next_token() {
            Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
            _ => return Ok(result),
        }
    }
}

/// Asks Redshift to stop statement `id`; whether it agreed.
async fn cancel(data: &Client, id: &str) -> bool {
    match data.cancel_statement().id(id).send().await {
        Ok(out) => out.status().unwrap_or(false),
        Err(err) => {
            tracing::warn!("cannot cancel statement {id}: {}", DisplayErrorContext(&err));
            false
        }
    }
}

/// A call that failed, with AWS's code and message when it gave them.
fn aws_error<E>(action: String, err: SdkError<E, HttpResponse>) -> WarehouseError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let detail = match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => DisplayErrorContext(&err).to_string(),
    };
    WarehouseError::Aws { action, detail }
}

#[cfg(test)]
mod tests;
