//! The final snapshot `deletionPolicy: Retain` keeps of the Redshift cluster.
//!
//! Retain keeps the warehouse's data, not the running cluster: a cluster
//! stands on the Kafka VPC's subnets and on its security group, which AWS will
//! not delete under it, so a retained cluster would hold the deletion of the
//! whole network forever. Its final snapshot stands on nothing, like the
//! retained bucket and table, and restores into a new cluster anywhere.
//!
//! AWS takes it when the cluster is deleted (see `redshift_cluster`); the
//! operator never makes one. Once the cluster is gone, the layer tags it as
//! retained, as it does the bucket and the table.

use k8s_openapi::jiff::Timestamp;

use super::sdk::{deleted, set_redshift_tags};
use super::tags::from_sdk;
use crate::aws::AwsClients;
use crate::aws::errors::{classify, code};
use crate::engine::resource::Resource;
use crate::engine::{OWNER_TAG, Tags};
use crate::error::ComponentError;

/// Between the cluster's identifier and the time of the deletion.
const INFIX: &str = "-final-";

const NOTHING_FOUND: [&str; 2] = ["ClusterNotFound", "ClusterSnapshotNotFound"];

/// What AWS keeps of a cluster: `manual` snapshots stay until deleted, while
/// `automated` ones go with the cluster.
const MANUAL: &str = "manual";

/// `<cluster-id>-final-<UTC yyyymmddhhmmss>`: a new name for every deletion,
/// so a pipeline made again under its old name and retained again keeps both
/// snapshots. A crash cannot make two: before DeleteCluster nothing exists,
/// and after it the cluster is found taking its snapshot or being deleted,
/// which is waited for, never deleted again.
pub fn identifier(cluster_id: &str, at: Timestamp) -> String {
    format!("{cluster_id}{INFIX}{}", at.strftime("%Y%m%d%H%M%S"))
}

/// The newest final snapshot of a cluster of the pipeline.
#[derive(Clone, Debug, PartialEq)]
pub struct FinalSnapshot {
    pub cluster_id: String,
    /// The ARN of one of the cluster's snapshots is this followed by its id.
    pub arn_prefix: String,
    /// The cluster's tags, which the snapshot keeps (with the retained tag).
    pub tags: Tags,
}

/// A final snapshot of the pipeline's cluster, as AWS lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct SnapshotState {
    pub id: String,
    pub arn: String,
    pub tags: Tags,
}

impl FinalSnapshot {
    /// The newest final snapshot of the cluster that is the pipeline's, or
    /// untagged: AWS may not copy the cluster's tags onto its final snapshot,
    /// and the name says the operator made it.
    pub async fn newest(&self, aws: &AwsClients) -> Result<Option<SnapshotState>, ComponentError> {
        let cluster_id = self.cluster_id.as_str();
        let owner = self.tags.get(OWNER_TAG).map(String::as_str).unwrap_or_default();
        let prefix = format!("{cluster_id}{INFIX}");
        let mut newest: Option<SnapshotState> = None;
        let mut pages = aws
            .redshift
            .describe_cluster_snapshots()
            .cluster_identifier(cluster_id)
            .snapshot_type(MANUAL)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(page) => page,
                // How AWS may answer for a cluster that is gone and left no snapshot.
                Err(err) if code(&err).is_some_and(|c| NOTHING_FOUND.contains(&c)) => break,
                Err(err) => {
                    let action = format!("list the snapshots of Redshift cluster {cluster_id}");
                    return Err(classify(&action, err));
                }
            };
            // Checked here as well: an emulator may answer with every snapshot.
            for snapshot in page.snapshots() {
                let (Some(id), Some(cluster)) =
                    (snapshot.snapshot_identifier(), snapshot.cluster_identifier())
                else {
                    continue;
                };
                let tags = from_sdk(snapshot.tags());
                let ours = tags.get(OWNER_TAG).is_none_or(|tag| tag == owner);
                let manual = snapshot.snapshot_type() == Some(MANUAL);
                // The names end in the time, so the greatest name is the newest.
                let newer = newest.as_ref().is_none_or(|found| id > found.id.as_str());
                if cluster == cluster_id && id.starts_with(&prefix) && manual && ours && newer {
                    newest = Some(SnapshotState {
                        id: id.to_owned(),
                        arn: snapshot
                            .snapshot_arn()
                            .map_or_else(|| format!("{}{id}", self.arn_prefix), str::to_owned),
                        tags,
                    });
                }
            }
        }
        Ok(newest)
    }
}

impl Resource for FinalSnapshot {
    type Observed = SnapshotState;
    const TYPE: Option<&'static str> = Some("AWS::Redshift::ClusterSnapshot");
    const KEEPS_DATA: bool = true;

    fn label(&self) -> String {
        format!("final snapshot of Redshift cluster {}", self.cluster_id)
    }

    async fn find(&self, aws: &AwsClients) -> Result<Option<SnapshotState>, ComponentError> {
        self.newest(aws).await
    }

    /// Nothing of a snapshot is configured: AWS takes it as the cluster was.
    fn delta(&self, _observed: &SnapshotState) -> Result<Vec<String>, ComponentError> {
        Ok(Vec::new())
    }

    async fn create(&self, _aws: &AwsClients) -> Result<SnapshotState, ComponentError> {
        Err(ComponentError::terminal(
            "InternalError",
            format!(
                "the operator does not take a {}: AWS takes it when the cluster is deleted",
                self.label()
            ),
        ))
    }

    async fn update(&self, _aws: &AwsClients, _observed: &SnapshotState) -> Result<(), ComponentError> {
        Ok(())
    }

    async fn delete(&self, aws: &AwsClients, observed: &SnapshotState) -> Result<(), ComponentError> {
        deleted(
            aws.redshift
                .delete_cluster_snapshot()
                .snapshot_identifier(&observed.id)
                .send()
                .await,
            &["ClusterSnapshotNotFound"],
            &format!("delete Redshift snapshot {}", observed.id),
        )
    }

    fn id(observed: &SnapshotState) -> String {
        observed.id.clone()
    }

    fn arn(observed: &SnapshotState) -> Option<String> {
        Some(observed.arn.clone())
    }

    fn tags(observed: &SnapshotState) -> Option<&Tags> {
        Some(&observed.tags)
    }

    fn desired_tags(&self) -> Option<&Tags> {
        Some(&self.tags)
    }

    /// Exactly `tags`: the cluster's record of its schema, which AWS copies
    /// onto the snapshot, goes.
    async fn set_tags(
        &self,
        aws: &AwsClients,
        observed: &SnapshotState,
        tags: &Tags,
    ) -> Result<(), ComponentError> {
        let what = format!("Redshift snapshot {}", observed.id);
        set_redshift_tags(aws, &observed.arn, Some(&observed.tags), tags, &what).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_is_the_cluster_and_the_utc_second_of_the_deletion() {
        let at: Timestamp = "2026-03-04T05:06:07.89Z".parse().unwrap();
        assert_eq!(
            identifier("ipl-media-photos-warehouse-1a2b", at),
            "ipl-media-photos-warehouse-1a2b-final-20260304050607"
        );
    }

    #[test]
    fn a_later_deletion_sorts_after_an_earlier_one() {
        let earlier = identifier("w", "2026-12-31T23:59:59Z".parse().unwrap());
        let later = identifier("w", "2027-01-01T00:00:00Z".parse().unwrap());
        assert!(later > earlier);
    }
}
