//! The status of a pipeline, computed in one place from the pass and the
//! stage of the reconcile, and written only when it changed.

use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::services::ServicesHealth;
use super::{Context, Error, FIELD_MANAGER, key};
use crate::api::v1alpha1::{ImagePipeline, ImagePipelineStatus, Phase};
use crate::cost;
use crate::engine::PassReport;
use crate::engine::status::{ExtraCondition, Lifecycle, StatusContext, pipeline_status};

/// Why a deleted pipeline keeps its AWS resources and its finalizer while
/// `spec.paused` is true: the `Ready` condition's message, the warning
/// event's note and the reconcile's result say it.
pub(super) const CLEANUP_PAUSED: &str = "spec.paused is true, so the AWS resources are left as they are and \
                                         the finalizer stays; set spec.paused to false to let the cleanup run";

/// How the in-cluster services stand after the services step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ServicesStatus {
    /// The `ServicesReady` condition.
    pub health: ServicesHealth,
    /// `status.endpoints.inClusterUploadUrl`, once the Service is applied.
    pub in_cluster_upload_url: Option<String>,
}

/// What the reconcile did, which shapes the status besides the pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Stage<'a> {
    /// Converging towards the spec, the services included.
    Active(&'a ServicesStatus),
    /// `spec.paused`: AWS observed, nothing changed.
    Paused,
    /// Deleted: the pass tore down.
    Deleting,
    /// Deleted while `spec.paused`: nothing torn down. `Ready` says why;
    /// the other conditions stay as the last pass left them.
    DeletionPaused,
}

/// The status after `report` at `stage`, stamped now.
pub(super) fn pipeline_status_of(
    pipeline: &ImagePipeline,
    report: &PassReport,
    stage: &Stage<'_>,
) -> ImagePipelineStatus {
    // The API server keeps whole seconds; so do we, so that an unchanged
    // status compares equal to the stored one.
    let now = Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH);
    let mut status = status_at(
        report,
        stage,
        pipeline.status.as_ref(),
        pipeline.metadata.generation,
        now,
    );
    status.estimated_monthly_cost = match stage {
        Stage::Active(_) => Some(cost::estimate(&pipeline.spec, cost::aws_prices()).status()),
        // Paused or deleted, the spec is not being applied: the estimate
        // stays that of what was.
        Stage::Paused | Stage::Deleting | Stage::DeletionPaused => pipeline
            .status
            .as_ref()
            .and_then(|s| s.estimated_monthly_cost.clone()),
    };
    status
}

/// Pure: every status field, from the pass, the stage and the previous status.
fn status_at(
    report: &PassReport,
    stage: &Stage<'_>,
    previous: Option<&ImagePipelineStatus>,
    generation: Option<i64>,
    now: Timestamp,
) -> ImagePipelineStatus {
    let context = match stage {
        Stage::Active(services) => StatusContext {
            lifecycle: Lifecycle::Active,
            extra: vec![ExtraCondition {
                type_: "ServicesReady".to_owned(),
                ready: services.health.ready,
                reason: services.health.reason.clone(),
                message: services.health.message.clone(),
            }],
        },
        Stage::Paused => StatusContext {
            lifecycle: Lifecycle::Paused,
            extra: vec![],
        },
        Stage::Deleting | Stage::DeletionPaused => StatusContext {
            lifecycle: Lifecycle::Deleting,
            extra: vec![],
        },
    };
    let mut status = pipeline_status(report, &context, previous, generation, now);
    match stage {
        Stage::Active(services) => {
            if let (Some(endpoints), Some(url)) = (status.endpoints.as_mut(), &services.in_cluster_upload_url)
            {
                endpoints.in_cluster_upload_url = Some(url.clone());
            }
        }
        Stage::DeletionPaused => {
            status.conditions.retain(|c| c.type_ == "Ready");
            if let Some(ready) = status.conditions.first_mut() {
                ready.reason = "CleanupPaused".to_owned();
                ready.message = CLEANUP_PAUSED.to_owned();
            }
            status.conditions.extend(
                previous
                    .iter()
                    .flat_map(|s| s.conditions.iter())
                    .filter(|c| c.type_ != "Ready")
                    .cloned(),
            );
        }
        Stage::Paused | Stage::Deleting => {}
    }
    status
}

/// Whether the stored status is in another phase than `phase`: an event
/// that announces a phase is published once, on the way in.
pub(super) fn was_not(pipeline: &ImagePipeline, phase: Phase) -> bool {
    pipeline.status.as_ref().and_then(|s| s.phase) != Some(phase)
}

/// Writes the status with server-side apply, and only when it changed.
pub(super) async fn write_status(
    api: &Api<ImagePipeline>,
    pipeline: &ImagePipeline,
    status: &ImagePipelineStatus,
    ctx: &Context,
) -> Result<(), Error> {
    ctx.metrics.observe_status(key(pipeline), status);
    if pipeline.status.as_ref() == Some(status) {
        return Ok(());
    }
    let patch = json!({
        "apiVersion": ImagePipeline::api_version(&()),
        "kind": ImagePipeline::kind(&()),
        "status": status,
    });
    api.patch_status(
        &pipeline.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|source| {
        Error::kube(
            format!("update the status of ImagePipeline {}", key(pipeline)),
            source,
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::api::v1alpha1::{Endpoints, PipelineCondition};
    use crate::engine::{ComponentKind, ComponentReport, ComponentState};

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    fn condition(type_: &str, status: &str, reason: &str) -> PipelineCondition {
        PipelineCondition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message: format!("{type_} says {reason}"),
            observed_generation: Some(1),
            last_transition_time: Time(at(100)),
            aws_error_code: None,
            aws_request_id: None,
            resource: None,
        }
    }

    fn ready_pipeline() -> ImagePipelineStatus {
        ImagePipelineStatus {
            observed_generation: Some(1),
            phase: Some(Phase::Ready),
            conditions: vec![
                condition("Ready", "True", "AllComponentsReady"),
                condition("StorageReady", "True", "Ready"),
                condition("ServicesReady", "True", "Available"),
            ],
            endpoints: Some(Endpoints {
                bucket: Some("photos-bucket".into()),
                ..Endpoints::default()
            }),
            ..ImagePipelineStatus::default()
        }
    }

    #[test]
    fn a_paused_deletion_says_why_in_ready_and_keeps_the_other_conditions() {
        let previous = ready_pipeline();
        let status = status_at(
            &PassReport::default(),
            &Stage::DeletionPaused,
            Some(&previous),
            Some(2),
            at(200),
        );
        assert_eq!(status.phase, Some(Phase::Deleting));
        let types: Vec<&str> = status.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Ready", "StorageReady", "ServicesReady"]);
        let ready = &status.conditions[0];
        assert_eq!(
            (
                ready.status.as_str(),
                ready.reason.as_str(),
                ready.message.as_str()
            ),
            ("False", "CleanupPaused", CLEANUP_PAUSED)
        );
        assert_eq!(ready.last_transition_time, Time(at(200)), "Ready changed");
        assert_eq!(&status.conditions[1..], &previous.conditions[1..]);
    }

    #[test]
    fn the_services_give_a_condition_and_the_in_cluster_url() {
        let report = PassReport {
            components: vec![ComponentReport {
                kind: ComponentKind::ALL[0],
                state: ComponentState::Ready,
                changes: vec![],
            }],
            ..PassReport::default()
        };
        let services = ServicesStatus {
            health: ServicesHealth::waiting("RollingOut", "photos-upload-api: 1/2 available"),
            in_cluster_upload_url: Some("http://photos-upload-api.media.svc".into()),
        };
        let status = status_at(&report, &Stage::Active(&services), None, Some(1), at(200));
        let condition = status
            .conditions
            .iter()
            .find(|c| c.type_ == "ServicesReady")
            .unwrap();
        assert_eq!(
            (condition.status.as_str(), condition.reason.as_str()),
            ("False", "RollingOut")
        );
        assert_eq!(
            status.phase,
            Some(Phase::Provisioning),
            "not ready while rolling out"
        );
        assert_eq!(
            status.endpoints.unwrap().in_cluster_upload_url.as_deref(),
            Some("http://photos-upload-api.media.svc")
        );

        // Before the services exist, the URL stays as it was.
        let mut previous = ready_pipeline();
        previous.endpoints.as_mut().unwrap().in_cluster_upload_url = Some("http://before".into());
        let waiting = ServicesStatus {
            health: ServicesHealth::waiting("WaitingForDependency", "waiting"),
            in_cluster_upload_url: None,
        };
        let status = status_at(
            &report,
            &Stage::Active(&waiting),
            Some(&previous),
            Some(1),
            at(200),
        );
        assert_eq!(
            status.endpoints.unwrap().in_cluster_upload_url.as_deref(),
            Some("http://before")
        );
    }
}
