//! How far the applied Deployments have rolled out: the `ServicesReady`
//! condition.

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;

/// How far the applied Deployments have rolled out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicesHealth {
    pub ready: bool,
    pub reason: String,
    pub message: String,
}

impl ServicesHealth {
    pub fn waiting(reason: &str, message: impl Into<String>) -> Self {
        Self {
            ready: false,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

/// Ready when every Deployment has rolled out its current template and has
/// all its replicas available.
pub fn services_health(deployments: &[&Deployment]) -> ServicesHealth {
    let mut pending = Vec::new();
    for deployment in deployments {
        let wanted = deployment.spec.replicas.unwrap_or(1);
        let status = deployment.status.clone().unwrap_or_default();
        let current = status.observed_generation >= deployment.metadata.generation;
        let available = status.available_replicas.unwrap_or(0);
        let updated = status.updated_replicas.unwrap_or(0);
        if !current || updated < wanted || available < wanted {
            pending.push(format!(
                "{}: {available}/{wanted} available, {updated} updated",
                deployment.name_any()
            ));
        }
    }
    if pending.is_empty() {
        ServicesHealth {
            ready: true,
            reason: "Available".into(),
            message: "every service pod is available".into(),
        }
    } else {
        ServicesHealth::waiting("RollingOut", pending.join("; "))
    }
}
