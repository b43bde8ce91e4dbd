//! `kubectl ipl`: the `imagepipeline` binary, installed as `kubectl-ipl`,
//! is a kubectl plugin. It works on a live ImagePipeline, with the caller's
//! kubeconfig (and, for `plan`, the caller's AWS credentials):
//!
//! - `status NAME`: the tree from the pipeline to every AWS resource and
//!   Kubernetes object it made, each with its condition, reason, message,
//!   last AWS error and time of the last change ([`tree`]);
//! - `resync NAME`: sets the reconcile-requested-at annotation, which the
//!   controller answers with a reconcile at once;
//! - `plan NAME`: what a reconcile would change in AWS, as `imagepipeline
//!   plan -f` shows it for a file.

pub mod tree;

use std::io::Write;
use std::path::PathBuf;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::api::v1alpha1::ImagePipeline;
use crate::cli::{self, CliError};
use crate::controller::RECONCILE_REQUESTED_AT;
use crate::controller::services::{INSTANCE_LABEL, PodMonitor};
use tree::{OwnedObject, Unlisted};

/// Who runs the plugin decides where it looks: these are kubectl's own
/// flags, which kubectl hands to a plugin as they were typed.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct Target {
    /// The pipeline's namespace; the current context's namespace when not given.
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// The kubeconfig context to use; the current context when not given.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The kubeconfig file; $KUBECONFIG or ~/.kube/config when not given.
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error(
        "cannot read the kubeconfig: {0}; check --kubeconfig, $KUBECONFIG and --context \
         (`kubectl config get-contexts` lists the contexts)"
    )]
    Kubeconfig(String),
    #[error(
        "ImagePipeline {namespace}/{name} not found; `kubectl get ipl -n {namespace}` lists the pipelines there"
    )]
    NotFound { namespace: String, name: String },
    #[error("cannot {action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Cli(#[from] CliError),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

/// A client for the target's cluster, and the namespace to look in.
pub async fn connect(target: &Target) -> Result<(Client, String), PluginError> {
    let options = KubeConfigOptions {
        context: target.context.clone(),
        ..KubeConfigOptions::default()
    };
    let unreadable = |err: &dyn std::fmt::Display| PluginError::Kubeconfig(err.to_string());
    let config = match &target.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path).map_err(|e| unreadable(&e))?;
            Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| unreadable(&e))?
        }
        None if target.context.is_some() => Config::from_kubeconfig(&options)
            .await
            .map_err(|e| unreadable(&e))?,
        None => Config::infer().await.map_err(|e| unreadable(&e))?,
    };
    let namespace = target
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(|e| unreadable(&e))?;
    Ok((client, namespace))
}

/// The pipeline `name` as the API server holds it.
pub async fn pipeline(client: &Client, namespace: &str, name: &str) -> Result<ImagePipeline, PluginError> {
    let api: Api<ImagePipeline> = Api::namespaced(client.clone(), namespace);
    api.get_opt(name)
        .await
        .map_err(|source| PluginError::Kube {
            action: format!("read ImagePipeline {namespace}/{name}"),
            source,
        })?
        .ok_or_else(|| PluginError::NotFound {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
}

/// `kubectl ipl status NAME`.
pub async fn status(
    client: &Client,
    namespace: &str,
    name: &str,
    out: &mut impl Write,
) -> Result<(), PluginError> {
    let pipeline = pipeline(client, namespace, name).await?;
    let (owned, unlisted) = owned_objects(client, &pipeline).await;
    out.write_all(tree::render(&pipeline, &owned, &unlisted).as_bytes())?;
    Ok(())
}

/// `kubectl ipl resync NAME`: returns the time the annotation now holds.
pub async fn resync(client: &Client, namespace: &str, name: &str) -> Result<String, PluginError> {
    let now = Timestamp::from_second(Timestamp::now().as_second())
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_string();
    let api: Api<ImagePipeline> = Api::namespaced(client.clone(), namespace);
    let patch = json!({"metadata": {"annotations": {RECONCILE_REQUESTED_AT: now}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| match source {
            kube::Error::Api(ref status) if status.code == 404 => PluginError::NotFound {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            },
            source => PluginError::Kube {
                action: format!("annotate ImagePipeline {namespace}/{name}"),
                source,
            },
        })?;
    Ok(now)
}

/// `kubectl ipl plan NAME`: the live spec planned against AWS with the
/// caller's credentials, reading the Secrets it names from the cluster.
/// Returns whether changes are pending.
pub async fn plan(
    client: &Client,
    namespace: &str,
    name: &str,
    out: &mut impl Write,
) -> Result<bool, PluginError> {
    let pipeline = pipeline(client, namespace, name).await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    Ok(cli::plan_with(&pipeline, &secrets, out).await?)
}

/// The objects the pipeline owns, kind by kind; a kind the caller may not
/// list is named with the reason instead. PodMonitors are listed only where
/// the cluster serves them.
async fn owned_objects(client: &Client, pipeline: &ImagePipeline) -> (Vec<OwnedObject>, Vec<Unlisted>) {
    let mut owned = Vec::new();
    let mut unlisted = Vec::new();
    let mut add = |kind: &'static str, listed: Result<Vec<OwnedObject>, kube::Error>| match listed {
        Ok(objects) => owned.extend(objects),
        // The kind is not served here (no Prometheus Operator: no PodMonitor).
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(kube::Error::Api(status)) if status.code == 403 => unlisted.push(Unlisted {
            kind,
            reason: format!("you may not list {kind}s here: {}", status.message),
        }),
        Err(err) => unlisted.push(Unlisted {
            kind,
            reason: err.to_string(),
        }),
    };
    add(
        "Deployment",
        list(client, pipeline, "Deployment", |d: &Deployment| {
            let wanted = d.spec.replicas.unwrap_or(1);
            let status = d.status.as_ref();
            let available = status.and_then(|s| s.available_replicas).unwrap_or(0);
            let since = status
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_.as_deref() == Some("Available")))
                .and_then(|c| c.last_transition_time.clone());
            (format!("{available}/{wanted} available"), since)
        })
        .await,
    );
    add(
        "Service",
        list(client, pipeline, "Service", |s: &Service| {
            let spec = s.spec.as_ref();
            let type_ = spec
                .and_then(|s| s.type_.clone())
                .unwrap_or_else(|| "ClusterIP".into());
            let ip = spec.and_then(|s| s.cluster_ip.clone()).unwrap_or_default();
            (format!("{type_} {ip}").trim_end().to_owned(), None)
        })
        .await,
    );
    add(
        "PodDisruptionBudget",
        list(
            client,
            pipeline,
            "PodDisruptionBudget",
            |b: &PodDisruptionBudget| {
                let status = b.status.as_ref();
                let healthy = status.and_then(|s| s.current_healthy).unwrap_or(0);
                let desired = status.and_then(|s| s.desired_healthy).unwrap_or(0);
                let since = status
                    .and_then(|s| s.conditions.as_ref())
                    .and_then(|c| c.iter().find(|c| c.type_ == "DisruptionAllowed"))
                    .map(|c| c.last_transition_time.clone());
                (format!("{healthy}/{desired} healthy"), since)
            },
        )
        .await,
    );
    add(
        "ConfigMap",
        list_metadata::<ConfigMap>(client, pipeline, "ConfigMap").await,
    );
    add(
        "ServiceAccount",
        list_metadata::<ServiceAccount>(client, pipeline, "ServiceAccount").await,
    );
    add(
        "Secret",
        list_metadata::<Secret>(client, pipeline, "Secret").await,
    );
    add(
        "PodMonitor",
        list_metadata::<PodMonitor>(client, pipeline, "PodMonitor").await,
    );
    (owned, unlisted)
}

/// The objects of kind `K` that carry the pipeline's instance label and are
/// owned by it, each described by `describe`.
async fn list<K>(
    client: &Client,
    pipeline: &ImagePipeline,
    kind: &'static str,
    describe: impl Fn(&K) -> (String, Option<Time>),
) -> Result<Vec<OwnedObject>, kube::Error>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), &pipeline.namespace().unwrap_or_default());
    let objects = api.list(&selector(pipeline)).await?;
    Ok(owned_rows(&objects.items, pipeline, kind, describe))
}

/// Like [`list`], reading only metadata: a Secret's values never leave the
/// API server for this.
async fn list_metadata<K>(
    client: &Client,
    pipeline: &ImagePipeline,
    kind: &'static str,
) -> Result<Vec<OwnedObject>, kube::Error>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), &pipeline.namespace().unwrap_or_default());
    let objects = api.list_metadata(&selector(pipeline)).await?;
    Ok(owned_rows(&objects.items, pipeline, kind, |_| {
        (String::new(), None)
    }))
}

/// The rows of the objects the pipeline owns among `objects`.
fn owned_rows<O: Resource>(
    objects: &[O],
    pipeline: &ImagePipeline,
    kind: &str,
    describe: impl Fn(&O) -> (String, Option<Time>),
) -> Vec<OwnedObject> {
    objects
        .iter()
        .filter(|object| owned_by(object.owner_references(), pipeline))
        .map(|object| {
            let (state, since) = describe(object);
            OwnedObject {
                name: format!("{kind}/{}", object.name_any()),
                state,
                since,
            }
        })
        .collect()
}

fn selector(pipeline: &ImagePipeline) -> ListParams {
    ListParams::default().labels(&format!("{INSTANCE_LABEL}={}", pipeline.name_any()))
}

fn owned_by(
    owners: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference],
    pipeline: &ImagePipeline,
) -> bool {
    let uid = pipeline.uid();
    owners.iter().any(|owner| Some(&owner.uid) == uid.as_ref())
}
