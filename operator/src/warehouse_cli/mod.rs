//! The `warehouse ddl` and `query` commands: a pipeline's Redshift warehouse
//! from a terminal. `ddl` prints what the operator runs there; `query` runs
//! one statement as the operator runs its own (the Data API, the cluster's
//! master user), in `statement`, and prints its result, in `format`.

pub mod format;
pub mod statement;

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

use crate::api::v1alpha1::ImagePipeline;
use crate::aws::CallLog;
use crate::cli::{CliError, context_for, engine_for};
use crate::components::Analytics;
use crate::components::analytics::{self, warehouse};
use crate::controller::secrets::SecretUse;
use crate::engine::resource::Resource;
use crate::engine::{Declared, Outputs};
use crate::error::ComponentError;
use format::Outcome;
use statement::{Polling, Target};

#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error(transparent)]
    Cli(#[from] CliError),
    #[error(
        "{file} holds {count} ImagePipelines ({names}); `query` runs in one pipeline's warehouse: \
         put that pipeline alone in a file and pass that one"
    )]
    NotOnePipeline {
        file: String,
        count: usize,
        names: String,
    },
    #[error(
        "ImagePipeline {pipeline} has no warehouse: its spec.analytics.enabled is false; \
         set it to true and apply the pipeline to make one"
    )]
    AnalyticsDisabled { pipeline: String },
    /// The pipeline's analytics cannot be declared (a spec the engine refuses).
    #[error("ImagePipeline {pipeline}: {source}")]
    Analytics {
        pipeline: String,
        source: ComponentError,
    },
    /// DescribeClusters failed.
    #[error(transparent)]
    Lookup(ComponentError),
    #[error(
        "there is no warehouse cluster {cluster} in {region}: apply the pipeline first \
         (`imagepipeline apply -f FILE`), with spec.analytics.enabled true (the default), \
         and check that AWS_REGION and the credentials are those of its account"
    )]
    NoCluster { cluster: String, region: String },
    #[error(
        "warehouse cluster {cluster} is paused: resume it with \
         `aws redshift resume-cluster --cluster-identifier {cluster} --region {region}`, \
         then run the query again once it is available (a few minutes)"
    )]
    Paused { cluster: String, region: String },
    #[error(
        "warehouse cluster {cluster} is {status}, not available; try again once it is available \
         (`aws redshift describe-clusters --cluster-identifier {cluster} --region {region}` shows its status)"
    )]
    NotAvailable {
        cluster: String,
        region: String,
        status: String,
    },
    #[error("cannot {action}: {detail}")]
    Aws { action: String, detail: String },
    #[error("statement {id} failed: {error}")]
    Failed { id: String, error: String },
    #[error("statement {id} was aborted: someone cancelled it, or Redshift stopped it")]
    Aborted { id: String },
    #[error("statement {id} did not finish within {waited} (--timeout); {}", after_stop(id, *cancelled))]
    Timeout {
        id: String,
        waited: String,
        cancelled: bool,
    },
    #[error("interrupted while statement {id} ran; {}", after_stop(id, *cancelled))]
    Interrupted { id: String, cancelled: bool },
}

/// What became of a statement `query` stopped waiting for.
fn after_stop(id: &str, cancelled: bool) -> String {
    if cancelled {
        "it was cancelled".to_owned()
    } else {
        format!("it may still be running: `aws redshift-data cancel-statement --id {id}` stops it")
    }
}

fn label(pipeline: &ImagePipeline) -> String {
    format!(
        "{}/{}",
        pipeline.namespace().unwrap_or_default(),
        pipeline.name_any()
    )
}

/// `warehouse ddl` for one pipeline: every statement the operator runs in
/// its warehouse, as a script, under a `-- ImagePipeline ns/name` line when
/// `heading` (the manifest holds several). Resource names and the role's ARN
/// depend on the AWS account, so this asks AWS which account it is, and
/// nothing else; no Secret is needed.
pub async fn ddl(pipeline: &ImagePipeline, heading: bool) -> Result<String, WarehouseError> {
    let heading = if heading {
        format!("-- ImagePipeline {}\n", label(pipeline))
    } else {
        String::new()
    };
    if !pipeline.spec.analytics.enabled {
        return Ok(format!(
            "{heading}-- ImagePipeline {} has no warehouse (spec.analytics.enabled is false): \
             nothing runs in Redshift.\n",
            label(pipeline)
        ));
    }
    let (_, ctx) = context_for(pipeline, CallLog::new()).await?;
    let script = warehouse::ddl(
        &analytics::warehouse_names(&ctx),
        &analytics::cluster_id(&ctx),
        &ctx.spec.analytics.database,
    );
    Ok(heading + &script)
}

/// The one pipeline of a manifest `query` runs in.
pub fn only_pipeline<'a>(
    pipelines: &'a [ImagePipeline],
    file: &Path,
) -> Result<&'a ImagePipeline, WarehouseError> {
    match pipelines {
        [pipeline] => Ok(pipeline),
        _ => Err(WarehouseError::NotOnePipeline {
            file: file.display().to_string(),
            count: pipelines.len(),
            names: pipelines.iter().map(label).collect::<Vec<_>>().join(", "),
        }),
    }
}

/// `query`: runs `sql` in the pipeline's warehouse once its cluster is
/// available, waiting at most `timeout` for it to finish.
pub async fn query(
    pipeline: &ImagePipeline,
    secrets: &[Secret],
    sql: &str,
    timeout: Duration,
) -> Result<Outcome, WarehouseError> {
    if !pipeline.spec.analytics.enabled {
        return Err(WarehouseError::AnalyticsDisabled {
            pipeline: label(pipeline),
        });
    }
    // The master user's name may come from a Secret the spec names, which
    // must then be in the file. The upload API's keys are of no use here, so
    // a Secret of them that lives only in the cluster does not stop a query.
    let mut pipeline = pipeline.clone();
    pipeline.spec.upload_api.api_keys_secret_ref = None;
    let (engine, ctx) = engine_for(&pipeline, secrets, SecretUse::Observe, CallLog::new()).await?;
    // The cluster as the operator declares it, found as the operator finds
    // it; its schema (`DesiredAnalytics::schema`) names the database and the
    // user the operator's own statements run as.
    let desired =
        Analytics::desired(&ctx, &Outputs::default()).map_err(|source| WarehouseError::Analytics {
            pipeline: label(&pipeline),
            source,
        })?;
    let found = desired
        .cluster
        .find(engine.aws())
        .await
        .map_err(WarehouseError::Lookup)?;
    let region = ctx.region().to_owned();
    let Some(found) = found else {
        return Err(WarehouseError::NoCluster {
            cluster: desired.cluster.id.clone(),
            region,
        });
    };
    available(&found.id, &region, &found.status)?;
    let schema = desired.schema(&found.schema);
    let target = Target {
        cluster: schema.cluster_id,
        database: schema.database,
        user: schema.user,
    };
    statement::run(
        &engine.aws().redshift_data,
        &target,
        sql,
        timeout,
        Polling::default(),
    )
    .await
}

/// Redshift runs statements only on an available cluster; anything else is
/// said with what to do about it.
fn available(cluster: &str, region: &str, status: &str) -> Result<(), WarehouseError> {
    let (cluster, region) = (cluster.to_owned(), region.to_owned());
    match status {
        "available" => Ok(()),
        "paused" => Err(WarehouseError::Paused { cluster, region }),
        status => Err(WarehouseError::NotAvailable {
            cluster,
            region,
            status: status.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_that_is_not_available_is_explained_with_what_to_do() {
        assert!(available("wh", "eu-west-1", "available").is_ok());
        let paused = available("wh", "eu-west-1", "paused").unwrap_err().to_string();
        assert!(
            paused.contains("is paused")
                && paused.contains("aws redshift resume-cluster --cluster-identifier wh --region eu-west-1"),
            "{paused}"
        );
        let resizing = available("wh", "eu-west-1", "resizing").unwrap_err().to_string();
        assert!(
            resizing.contains("is resizing, not available; try again once it is available"),
            "{resizing}"
        );
    }

    #[test]
    fn a_statement_query_stopped_waiting_for_says_whether_it_still_runs() {
        let timeout = |cancelled| WarehouseError::Timeout {
            id: "s-1".into(),
            waited: "5m".into(),
            cancelled,
        };
        assert!(
            timeout(true)
                .to_string()
                .ends_with("within 5m (--timeout); it was cancelled")
        );
        assert!(
            timeout(false)
                .to_string()
                .contains("`aws redshift-data cancel-statement --id s-1`"),
        );
    }

    #[test]
    fn query_needs_exactly_one_pipeline() {
        let yaml = |name: &str| {
            format!(
                "apiVersion: imagepipeline.io/v1alpha1\nkind: ImagePipeline\nmetadata: {{ name: {name} }}\n\
                 spec: {{ region: eu-west-1, network: {{ availabilityZones: [eu-west-1a, eu-west-1b] }} }}\n"
            )
        };
        let file = Path::new("two.yaml");
        let two = crate::manifest::parse(file, &format!("{}---\n{}", yaml("a"), yaml("b"))).unwrap();
        let err = only_pipeline(&two, file).unwrap_err().to_string();
        assert!(
            err.starts_with("two.yaml holds 2 ImagePipelines (default/a, default/b)"),
            "{err}"
        );
        assert_eq!(only_pipeline(&two[..1], file).unwrap().name_any(), "a");
    }
}
