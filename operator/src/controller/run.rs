//! The controller process: `/healthz`, `/readyz` and `/metrics`, leader
//! election on a Lease, the watches, and a shutdown that lets running
//! reconciles finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::{Controller, WatchStreamExt, controller, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use kube_lease_manager::LeaseManagerBuilder;
use serde::de::DeserializeOwned;

use super::metrics::Metrics;
use super::services::{
    MANAGED_BY, MANAGED_BY_LABEL, POD_MONITOR_API_VERSION, ServiceSettings, parse_label, pod_monitor_labels,
};
use super::slots::Slots;
use super::{
    AwsSource, Context, EventPublisher, OwnedStores, OwnedWriters, RECONCILE_REQUESTED_AT, Timing,
    error_policy, reconcile,
};
use crate::api::v1alpha1::ImagePipeline;
use crate::aws::CallLog;

/// The flags of `imagepipeline run`.
#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    /// Watch ImagePipelines in this namespace only (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// How many pipelines are reconciled at once.
    #[arg(long, env = "IMAGEPIPELINE_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// How often a ready pipeline is checked for drift, e.g. `5m`.
    #[arg(long, env = "IMAGEPIPELINE_REQUEUE_INTERVAL", default_value = "5m", value_parser = humantime::parse_duration)]
    pub requeue_interval: Duration,
    /// How often a pipeline that AWS is still building is looked at again.
    #[arg(long, env = "IMAGEPIPELINE_PROGRESS_INTERVAL", default_value = "15s", value_parser = humantime::parse_duration)]
    pub progress_interval: Duration,
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, env = "IMAGEPIPELINE_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Reconcile without taking the leader Lease (one replica only).
    #[arg(long, env = "IMAGEPIPELINE_NO_LEADER_ELECTION")]
    pub no_leader_election: bool,
    /// Name of the leader Lease.
    #[arg(
        long,
        env = "IMAGEPIPELINE_LEASE_NAME",
        default_value = "imagepipeline-operator"
    )]
    pub lease_name: String,
    /// Namespace of the leader Lease: the operator's own (the chart sets it
    /// from the downward API).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// This replica's name in the Lease and in events (the pod name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Seconds a Lease holder has to renew before another replica takes over.
    #[arg(long, env = "IMAGEPIPELINE_LEASE_SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(5..))]
    pub lease_seconds: u64,
    /// Write logs as JSON lines.
    #[arg(long, env = "IMAGEPIPELINE_LOG_JSON")]
    pub log_json: bool,
    /// A Secret in each pipeline's namespace whose keys become environment
    /// variables of the pipeline's services, e.g. an emulator's
    /// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
    #[arg(long, env = "IMAGEPIPELINE_SERVICES_ENV_SECRET")]
    pub services_env_secret: Option<String>,
    /// A ConfigMap in each pipeline's namespace whose key `ca.crt` holds the
    /// CA certificates the services trust for AWS instead of the image's
    /// (SSL_CERT_FILE), e.g. an emulator's CA.
    #[arg(long, env = "IMAGEPIPELINE_SERVICES_CA_CONFIG_MAP")]
    pub services_ca_config_map: Option<String>,
    /// Make a Prometheus Operator PodMonitor for each pipeline's services, if
    /// the cluster serves PodMonitors (looked up once, at start).
    #[arg(long, env = "IMAGEPIPELINE_POD_MONITORS")]
    pub pod_monitors: bool,
    /// A label of each PodMonitor, `key=value`, by which a Prometheus selects
    /// it (its podMonitorSelector). Repeatable; comma-separated in the
    /// environment variable.
    #[arg(
        long = "pod-monitor-label",
        env = "IMAGEPIPELINE_POD_MONITOR_LABELS",
        value_delimiter = ',',
        value_parser = parse_label
    )]
    pub pod_monitor_labels: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "cannot reach the Kubernetes API: {0}; run in a cluster or set KUBECONFIG to a kubeconfig of the cluster"
    )]
    Connect(#[source] kube::Error),
    #[error("cannot serve /metrics on {address}: {source}; choose another --listen address")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "leader election on Lease {namespace}/{name} failed: {source}; check the operator's RBAC for leases"
    )]
    LeaderElection {
        namespace: String,
        name: String,
        #[source]
        source: kube_lease_manager::LeaseManagerError,
    },
    #[error(
        "cannot tell whether the cluster serves PodMonitors ({POD_MONITOR_API_VERSION}): {0}; check that the \
         Kubernetes API answers discovery requests, or run without --pod-monitors"
    )]
    Discovery(#[source] kube::Error),
    #[error(
        "lost the leader Lease to another replica; exiting so that Kubernetes restarts this one as a standby"
    )]
    LostLeadership,
}

struct Health {
    metrics: Arc<Metrics>,
    /// Set once the Kubernetes API answered and the leader election runs:
    /// a standby replica is ready too, since it can take over.
    ready: AtomicBool,
}

/// Runs the controller until SIGTERM or Ctrl-C.
pub async fn run(args: RunArgs) -> Result<(), RunError> {
    let client = Client::try_default().await.map_err(RunError::Connect)?;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let calls = CallLog::new();
    let metrics = Metrics::new(calls.clone());
    let health = Arc::new(Health {
        metrics: metrics.clone(),
        ready: AtomicBool::new(false),
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| RunError::Listen {
            address: args.listen,
            source,
        })?;
    tracing::info!(address = %args.listen, "serving /healthz, /readyz and /metrics");
    let routes = admin_routes(health.clone());
    tokio::spawn(async move { axum::serve(listener, routes).await });

    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let shutdown = ingest_core::service::shutdown_signal().shared();

    client.apiserver_version().await.map_err(RunError::Connect)?;
    let pod_monitor_labels = pod_monitor_labels(&client, args.pod_monitors, &args.pod_monitor_labels)
        .await
        .map_err(RunError::Discovery)?;
    health.ready.store(true, Ordering::Release);

    let mut leadership = None;
    if !args.no_leader_election {
        tracing::info!(identity, lease = args.lease_name, "waiting to become the leader");
        let election = elect_leader(
            client.clone(),
            &args.lease_name,
            &args.lease_namespace,
            &identity,
            args.lease_seconds,
        );
        tokio::select! {
            () = shutdown.clone() => return Ok(()),
            elected = election => leadership = Some(elected?),
        }
        tracing::info!(identity, "leading: reconciling");
    }
    metrics.set_leader(true);

    let lost = Arc::new(AtomicBool::new(false));
    let stop = {
        let lost = lost.clone();
        let mut watch = leadership.as_ref().map(Leadership::watch);
        let shutdown = shutdown.clone();
        async move {
            let lost_lease = async {
                match watch.as_mut() {
                    Some(leader) => {
                        let _ = leader.wait_for(|is_leader| !*is_leader).await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = shutdown => {}
                () = lost_lease => lost.store(true, Ordering::Release),
            }
        }
    };

    let (owned, writers) = OwnedStores::new();
    let ctx = Arc::new(
        Context::new(
            client.clone(),
            AwsSource::new(sdk, calls),
            EventPublisher::new(client.clone(), identity),
            metrics.clone(),
            Timing {
                requeue_after: args.requeue_interval,
                progress_interval: args.progress_interval,
                ..Timing::default()
            },
            owned,
        )
        .with_service_settings(ServiceSettings {
            env_secret: args.services_env_secret.clone(),
            ca_config_map: args.services_ca_config_map.clone(),
            pod_monitor_labels,
            ..ServiceSettings::default()
        }),
    );
    let namespace = args.namespace.as_deref();
    run_controller(&client, namespace, args.concurrency, ctx, writers, stop).await;
    metrics.set_leader(false);
    if let Some(leadership) = leadership {
        leadership.release().await;
    }
    if lost.load(Ordering::Acquire) {
        return Err(RunError::LostLeadership);
    }
    tracing::info!("controller stopped");
    Ok(())
}

fn admin_routes(health: Arc<Health>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(health): State<Arc<Health>>| async move {
                if health.ready.load(Ordering::Acquire) {
                    (StatusCode::OK, "ok")
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "starting: the Kubernetes API has not answered yet",
                    )
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(health): State<Arc<Health>>| async move { health.metrics.encode() }),
        )
        .with_state(health)
}

/// The kinds the controller watches, as `(group, resource)`: the RBAC test
/// grants `list` and `watch` on exactly these.
pub const WATCHED: [(&str, &str); 6] = [
    ("imagepipeline.io", "imagepipelines"),
    ("", "configmaps"),
    ("", "serviceaccounts"),
    ("apps", "deployments"),
    ("", "services"),
    ("policy", "poddisruptionbudgets"),
];

/// The leader Lease, held and renewed in the background.
pub struct Leadership {
    leader: tokio::sync::watch::Receiver<bool>,
    task: tokio::task::JoinHandle<
        Result<kube_lease_manager::LeaseManager, kube_lease_manager::LeaseManagerError>,
    >,
}

impl Leadership {
    /// Turns false when another replica took the Lease.
    fn watch(&self) -> tokio::sync::watch::Receiver<bool> {
        self.leader.clone()
    }

    /// Gives the Lease up, so that a standby takes over at once instead of
    /// after the Lease expires.
    pub async fn release(self) {
        // Closing the channel makes the lease task release the Lease.
        drop(self.leader);
        let _ = self.task.await;
    }
}

/// Waits until this replica holds the Lease `namespace/name`.
pub async fn elect_leader(
    client: Client,
    name: &str,
    namespace: &str,
    identity: &str,
    lease_seconds: u64,
) -> Result<Leadership, RunError> {
    let election_error = |source| RunError::LeaderElection {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        source,
    };
    let manager = LeaseManagerBuilder::new(client, name)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_duration(lease_seconds)
        .with_grace(lease_seconds / 3)
        .build()
        .await
        .map_err(election_error)?;
    let (mut leader, task) = manager.watch().await;
    if leader.wait_for(|is_leader| *is_leader).await.is_err() {
        // The lease task ended: it failed for good.
        return match task.await {
            Ok(Err(source)) => Err(election_error(source)),
            _ => Err(RunError::LostLeadership),
        };
    }
    Ok(Leadership { leader, task })
}

/// Runs the controller's watches and reconciles until `stop` completes and
/// the reconciles under way have finished.
pub async fn run_controller(
    client: &Client,
    namespace: Option<&str>,
    concurrency: u16,
    ctx: Arc<Context>,
    writers: OwnedWriters,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let pipelines: Api<ImagePipeline> = scoped(client, namespace);
    let (reader, writer) = reflector::store();
    // kube-runtime's own concurrency limit starves some pipelines under
    // load (see `slots`): every due reconcile starts and waits its turn.
    let (waiting, waited) = ctx.metrics.slot_metrics();
    let slots = Arc::new(Slots::new(concurrency, reader.clone(), waiting, waited));
    let stop = {
        let slots = Arc::clone(&slots);
        async move {
            stop.await;
            slots.close();
        }
    };
    // Status writes come back as watch events; only a change that can alter
    // the outcome triggers a reconcile.
    let triggers = watcher(pipelines, watcher::Config::default().any_semantic())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(reconcile_trigger, Default::default());
    Controller::for_stream(triggers, reader)
        .owns_stream(owned_objects::<ConfigMap>(client, namespace, writers.config_maps))
        .owns_stream(owned_objects::<ServiceAccount>(
            client,
            namespace,
            writers.service_accounts,
        ))
        .owns_stream(owned_objects::<Deployment>(
            client,
            namespace,
            writers.deployments,
        ))
        .owns_stream(owned_objects::<Service>(client, namespace, writers.services))
        .owns_stream(owned_objects::<PodDisruptionBudget>(
            client,
            namespace,
            writers.disruption_budgets,
        ))
        .with_config(controller::Config::default().debounce(Duration::from_secs(1)))
        .graceful_shutdown_on(stop)
        .run(
            move |pipeline, ctx| in_turn(Arc::clone(&slots), pipeline, ctx),
            error_policy,
            ctx,
        )
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(error = %err, "reconcile not completed");
            }
        })
        .await;
}

/// A reconcile once its turn has come, of the pipeline as it is then.
async fn in_turn(
    slots: Arc<Slots<ImagePipeline>>,
    pipeline: Arc<ImagePipeline>,
    ctx: Arc<Context>,
) -> Result<controller::Action, super::Error> {
    match slots.wait_turn(&pipeline).await {
        Some(slot) => reconcile(Arc::clone(&slot.object), ctx).await,
        // Deleted meanwhile, or shutting down.
        None => Ok(controller::Action::await_change()),
    }
}

fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// A watch of the operator's objects of one kind, kept in a store for the
/// reconciles and mapped to their owner by the controller.
fn owned_objects<K>(
    client: &Client,
    namespace: Option<&str>,
    writer: Writer<K>,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let config = watcher::Config::default()
        .labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"))
        .any_semantic();
    watcher(scoped::<K>(client, namespace), config)
        .default_backoff()
        .reflect(writer)
        .touched_objects()
}

/// What in an ImagePipeline calls for a reconcile: its spec (generation), the
/// reconcile-requested-at annotation, its finalizers and its deletion.
fn reconcile_trigger(pipeline: &ImagePipeline) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    pipeline.metadata.generation.hash(&mut hasher);
    pipeline
        .annotations()
        .get(RECONCILE_REQUESTED_AT)
        .hash(&mut hasher);
    pipeline.finalizers().hash(&mut hasher);
    pipeline.metadata.deletion_timestamp.is_some().hash(&mut hasher);
    Some(hasher.finish())
}

fn default_identity() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| format!("imagepipeline-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(annotation: Option<&str>, generation: i64) -> ImagePipeline {
        let mut pipeline: ImagePipeline = serde_json::from_value(serde_json::json!({
            "apiVersion": "imagepipeline.io/v1alpha1",
            "kind": "ImagePipeline",
            "metadata": {"name": "photos", "namespace": "media", "generation": generation},
            "spec": {"region": "eu-west-1", "network": {"availabilityZones": ["a", "b"]}},
        }))
        .unwrap();
        if let Some(value) = annotation {
            pipeline
                .annotations_mut()
                .insert(RECONCILE_REQUESTED_AT.to_owned(), value.to_owned());
        }
        pipeline
    }

    #[test]
    fn a_status_write_does_not_trigger_a_reconcile_but_the_annotation_and_the_spec_do() {
        let base = pipeline(None, 1);
        let mut with_status = base.clone();
        with_status.status = Some(Default::default());
        with_status.metadata.resource_version = Some("42".into());
        assert_eq!(reconcile_trigger(&base), reconcile_trigger(&with_status));
        assert_ne!(
            reconcile_trigger(&base),
            reconcile_trigger(&pipeline(Some("2026-11-25T06:00:00Z"), 1))
        );
        assert_ne!(
            reconcile_trigger(&pipeline(Some("a"), 1)),
            reconcile_trigger(&pipeline(Some("b"), 1))
        );
        assert_ne!(reconcile_trigger(&base), reconcile_trigger(&pipeline(None, 2)));
    }
}
