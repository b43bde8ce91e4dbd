//! `imagepipeline run`: the controller. Each reconcile of an ImagePipeline
//! reads what the spec references, makes one engine pass (apply, observe
//! when paused, destroy when deleted), applies the in-cluster services,
//! writes the status and decides when to come back.
//!
//! - [`reconcile`]: those steps, each a named function.
//! - `requeue`: when the next reconcile comes ([`error_policy`] after an
//!   error).
//! - `secrets`: the Secrets the spec points at.
//! - `services`: the Kubernetes objects of the services, built purely, then
//!   applied.
//! - `status`: the status, computed in one place.
//! - `events`, `metrics`: what users see besides the status.
//! - `slots`: which due reconciles run first (in turn, up to
//!   `--concurrency` at once).
//! - `run`: the process around it (leader election, watches, `/metrics`).

mod events;
pub mod metrics;
pub mod reconcile;
mod requeue;
pub mod run;
pub mod secrets;
pub mod services;
mod slots;
mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_config::SdkConfig;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::{Client, ResourceExt};

pub use events::{EventPublisher, REPORTING_CONTROLLER};
pub use reconcile::reconcile;
pub use requeue::error_policy;

use crate::api::v1alpha1::ImagePipeline;
use crate::aws::{AwsClients, AwsConfigError, CallLog};
use crate::backoff::Backoff;
use crate::engine::{ComponentError, EngineError};
use services::ServiceSettings;

/// The finalizer that holds a deleted ImagePipeline until its AWS resources
/// are gone.
pub const FINALIZER: &str = "imagepipeline.io/cleanup";
/// Field manager of every server-side apply the controller makes.
pub const FIELD_MANAGER: &str = "imagepipeline-operator";
/// Changing this annotation (to any value, conventionally the time) asks for
/// a reconcile now.
pub const RECONCILE_REQUESTED_AT: &str = "imagepipeline.io/reconcile-requested-at";

/// Timing of reconciles.
#[derive(Clone, Debug)]
pub struct Timing {
    /// After a pass that found everything as specified.
    pub requeue_after: Duration,
    /// While AWS is still creating or deleting something.
    pub progress_interval: Duration,
    /// First and largest delay after an error, per pipeline.
    pub error_backoff: (Duration, Duration),
    /// After AWS refused the operator (AccessDenied, a quota): long enough
    /// not to hammer AWS with calls that cannot succeed, short enough that a
    /// fixed policy is noticed without a spec change.
    pub refused_recheck: Duration,
}

impl Timing {
    pub fn interval(&self, interval: reconcile::Interval) -> Duration {
        match interval {
            reconcile::Interval::Resync => self.requeue_after,
            reconcile::Interval::Progress => self.progress_interval,
            reconcile::Interval::Refused => self.refused_recheck,
        }
    }
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            requeue_after: Duration::from_secs(300),
            progress_interval: Duration::from_secs(15),
            error_backoff: (Duration::from_secs(5), Duration::from_secs(300)),
            refused_recheck: Duration::from_secs(600),
        }
    }
}

/// Where AWS clients come from: one base configuration (the SDK's standard
/// chain, or an emulator in tests), used in each pipeline's region.
#[derive(Debug)]
pub struct AwsSource {
    base: SdkConfig,
    calls: CallLog,
    clients: Mutex<HashMap<String, AwsClients>>,
}

impl AwsSource {
    pub fn new(base: SdkConfig, calls: CallLog) -> Self {
        Self {
            base,
            calls,
            clients: Mutex::default(),
        }
    }

    /// The endpoint override (an emulator), if any.
    pub fn endpoint_url(&self) -> Option<&str> {
        self.base.endpoint_url()
    }

    /// Clients for `region`, made once and shared by the reconciles.
    pub fn clients_for(&self, region: &str) -> Result<AwsClients, AwsConfigError> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = clients.get(region) {
            return Ok(existing.clone());
        }
        let config = self
            .base
            .to_builder()
            .region(aws_config::Region::new(region.to_owned()))
            .build();
        let made = AwsClients::from_sdk_config(&config, self.calls.clone())?;
        clients.insert(region.to_owned(), made.clone());
        Ok(made)
    }
}

/// What the controller watches besides ImagePipelines: the objects it makes,
/// so that a change to one is put back and an unwanted one can be found.
#[derive(Clone)]
pub struct OwnedStores {
    pub config_maps: Store<ConfigMap>,
    pub service_accounts: Store<ServiceAccount>,
    pub deployments: Store<Deployment>,
    pub services: Store<Service>,
    pub disruption_budgets: Store<PodDisruptionBudget>,
}

/// The writing halves of [`OwnedStores`], fed by the watches.
pub struct OwnedWriters {
    pub config_maps: Writer<ConfigMap>,
    pub service_accounts: Writer<ServiceAccount>,
    pub deployments: Writer<Deployment>,
    pub services: Writer<Service>,
    pub disruption_budgets: Writer<PodDisruptionBudget>,
}

impl OwnedStores {
    pub fn new() -> (Self, OwnedWriters) {
        let (config_maps, config_map_writer) = reflector::store();
        let (service_accounts, service_account_writer) = reflector::store();
        let (deployments, deployment_writer) = reflector::store();
        let (services, service_writer) = reflector::store();
        let (disruption_budgets, budget_writer) = reflector::store();
        (
            Self {
                config_maps,
                service_accounts,
                deployments,
                services,
                disruption_budgets,
            },
            OwnedWriters {
                config_maps: config_map_writer,
                service_accounts: service_account_writer,
                deployments: deployment_writer,
                services: service_writer,
                disruption_budgets: budget_writer,
            },
        )
    }
}

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub aws: AwsSource,
    pub events: EventPublisher,
    pub metrics: Arc<metrics::Metrics>,
    pub timing: Timing,
    pub owned: OwnedStores,
    services: ServiceSettings,
    backoffs: Mutex<HashMap<String, Backoff>>,
}

impl Context {
    pub fn new(
        client: Client,
        aws: AwsSource,
        events: EventPublisher,
        metrics: Arc<metrics::Metrics>,
        timing: Timing,
        owned: OwnedStores,
    ) -> Self {
        Self {
            client,
            aws,
            events,
            metrics,
            timing,
            owned,
            services: ServiceSettings::default(),
            backoffs: Mutex::default(),
        }
    }

    /// What the services get from the operator's flags besides the
    /// pipeline: the Secret and CA bundle of `--services-env-secret` and
    /// `--services-ca-config-map`. The endpoint override is always the
    /// operator's own.
    pub fn with_service_settings(mut self, settings: ServiceSettings) -> Self {
        self.services = settings;
        self
    }

    fn service_settings(&self) -> ServiceSettings {
        ServiceSettings {
            aws_endpoint_url: self.aws.endpoint_url().map(str::to_owned),
            ..self.services.clone()
        }
    }

    /// The next delay after a failure of `pipeline`: each failure in a row
    /// doubles it, with jitter.
    fn next_backoff(&self, pipeline: &ImagePipeline) -> Duration {
        let (first, max) = self.timing.error_backoff;
        self.backoffs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key(pipeline))
            .or_insert_with(|| Backoff::new(first, max))
            .next_delay()
    }

    fn reset_backoff(&self, pipeline: &ImagePipeline) {
        self.backoffs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key(pipeline));
    }
}

/// `namespace/name`.
fn key(pipeline: &ImagePipeline) -> String {
    format!(
        "{}/{}",
        pipeline.namespace().unwrap_or_default(),
        pipeline.name_any()
    )
}

/// Why a reconcile did not finish; each kind but [`Error::CleanupPending`],
/// which is no failure, is a label of `imagepipeline_reconcile_failures_total`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: cannot {action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    #[error("{field}: Secret {namespace}/{name} {problem}; create or fix the Secret, or change {field}")]
    Secret {
        field: &'static str,
        namespace: String,
        name: String,
        problem: String,
    },
    #[error(transparent)]
    AwsConfig(#[from] AwsConfigError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("the services cannot be built from the spec: {0}")]
    Services(ComponentError),
    #[error("cannot add or remove the finalizer {FINALIZER}: {0}")]
    Finalizer(String),
    /// Not a failure: the AWS resources are still being removed, and the
    /// finalizer must stay until they are.
    #[error("cleanup is not finished: {message}")]
    CleanupPending {
        message: String,
        next: reconcile::NextPass,
    },
}

impl Error {
    fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Self::Kube {
            action: action.into(),
            source,
        }
    }

    pub(crate) fn missing_secret(field: &'static str, namespace: &str, name: &str, problem: &str) -> Self {
        Self::Secret {
            field,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            problem: problem.to_owned(),
        }
    }

    /// Whether the reconcile failed. A cleanup still in progress only keeps
    /// the finalizer: not counted, no warning event.
    pub fn is_failure(&self) -> bool {
        !matches!(self, Error::CleanupPending { .. })
    }

    /// The metric label and event reason of this kind of error.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "kubernetes_api",
            Error::Secret { .. } => "secret",
            Error::AwsConfig(_) => "aws_config",
            Error::Engine(_) => "aws_identity",
            Error::Services(_) => "services",
            Error::Finalizer(_) => "finalizer",
            Error::CleanupPending { .. } => "cleanup_pending",
        }
    }

    fn event_reason(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "KubernetesApiError",
            Error::Secret { .. } => "SecretUnavailable",
            Error::AwsConfig(_) => "AwsConfigurationError",
            Error::Engine(_) => "AwsIdentityError",
            Error::Services(_) => "InvalidServices",
            Error::Finalizer(_) => "FinalizerError",
            Error::CleanupPending { .. } => "CleanupPending",
        }
    }
}
