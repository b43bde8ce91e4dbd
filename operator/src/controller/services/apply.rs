//! Applying the services' objects: server-side apply with the operator's
//! field manager, then removing the objects of this pipeline the watches
//! have seen and that are no longer wanted.
//!
//! The PodMonitor is applied, never removed here: it is not watched (its kind
//! may not exist, and watching it would need more permissions), so once
//! `--pod-monitors` is turned off the PodMonitors made before stay until
//! their pipeline is deleted and the owner reference has them collected.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{DesiredServices, INSTANCE_LABEL, PodMonitor, ServicesHealth, services_health};
use crate::api::v1alpha1::ImagePipeline;
use crate::controller::{Context, Error, FIELD_MANAGER, key};

/// Applies the services' objects, removes the ones no longer wanted, and
/// reports how far the Deployments have rolled out.
pub(in crate::controller) async fn apply_services(
    pipeline: &ImagePipeline,
    desired: DesiredServices,
    ctx: &Context,
) -> Result<ServicesHealth, Error> {
    let namespace = pipeline.namespace().unwrap_or_default();
    let config_maps = Api::<ConfigMap>::namespaced(ctx.client.clone(), &namespace);
    let service_accounts = Api::<ServiceAccount>::namespaced(ctx.client.clone(), &namespace);
    let deployments = Api::<Deployment>::namespaced(ctx.client.clone(), &namespace);
    let services = Api::<Service>::namespaced(ctx.client.clone(), &namespace);
    let budgets = Api::<PodDisruptionBudget>::namespaced(ctx.client.clone(), &namespace);
    let wanted_deployments: Vec<&Deployment> = std::iter::once(&desired.upload_deployment)
        .chain(desired.bridge_deployment.as_ref())
        .collect();
    let wanted_budgets: Vec<&PodDisruptionBudget> = desired.disruption_budgets.iter().collect();

    server_side_apply(&config_maps, &desired.config_map).await?;
    server_side_apply(&service_accounts, &desired.service_account).await?;
    let mut applied = Vec::new();
    for deployment in &wanted_deployments {
        applied.push(server_side_apply(&deployments, deployment).await?);
    }
    server_side_apply(&services, &desired.upload_service).await?;
    for budget in &wanted_budgets {
        server_side_apply(&budgets, budget).await?;
    }
    if let Some(pod_monitor) = &desired.pod_monitor {
        let pod_monitors = Api::<PodMonitor>::namespaced(ctx.client.clone(), &namespace);
        server_side_apply(&pod_monitors, pod_monitor).await?;
    }

    // Dependents first, so that nothing is left pointing at a removed object.
    remove_unwanted(
        pipeline,
        &ctx.owned.deployments,
        &deployments,
        &wanted_deployments,
    )
    .await?;
    remove_unwanted(pipeline, &ctx.owned.disruption_budgets, &budgets, &wanted_budgets).await?;
    remove_unwanted(
        pipeline,
        &ctx.owned.services,
        &services,
        &[&desired.upload_service],
    )
    .await?;
    remove_unwanted(
        pipeline,
        &ctx.owned.config_maps,
        &config_maps,
        &[&desired.config_map],
    )
    .await?;
    remove_unwanted(
        pipeline,
        &ctx.owned.service_accounts,
        &service_accounts,
        &[&desired.service_account],
    )
    .await?;
    Ok(services_health(&applied.iter().collect::<Vec<_>>()))
}

async fn server_side_apply<K>(api: &Api<K>, object: &K) -> Result<K, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let name = object.name_any();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(|source| Error::kube(format!("apply {} {name}", K::kind(&())), source))
}

/// Deletes objects of this pipeline (by owner uid) that the watch has seen
/// and that are no longer wanted, such as a PodDisruptionBudget after the
/// replicas went below two.
async fn remove_unwanted<K>(
    pipeline: &ImagePipeline,
    store: &Store<K>,
    api: &Api<K>,
    wanted: &[&K],
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let uid = pipeline.uid();
    let name = pipeline.name_any();
    let namespace = pipeline.namespace();
    for object in store.state() {
        let ours = object.namespace() == namespace
            && object.labels().get(INSTANCE_LABEL) == Some(&name)
            && object
                .owner_references()
                .iter()
                .any(|o| Some(&o.uid) == uid.as_ref());
        if !ours || wanted.iter().any(|w| w.name_any() == object.name_any()) {
            continue;
        }
        let object_name = object.name_any();
        match api.delete(&object_name, &DeleteParams::background()).await {
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => {
                return Err(Error::kube(
                    format!("delete {} {object_name}", K::kind(&())),
                    source,
                ));
            }
            Ok(_) => {
                tracing::info!(pipeline = key(pipeline), kind = %K::kind(&()), name = object_name, "removed an object no longer wanted");
            }
        }
    }
    Ok(())
}
