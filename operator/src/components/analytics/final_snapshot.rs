//! The final snapshot `deletionPolicy: Retain` keeps of the Redshift cluster.
//!
//! Retain keeps the warehouse's data, not the running cluster: a cluster
//! stands on the Kafka VPC's subnets and on its security group, which AWS will
//! not delete under it, so a retained cluster would hold the deletion of the
//! whole network forever. Its final snapshot stands on nothing, like the
//! retained bucket and table, and restores into a new cluster anywhere.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;

use crate::aws::AwsClients;
use crate::aws::errors::{classify, code};
use crate::engine::{ComponentError, OWNER_TAG};
use crate::resources::tags::from_sdk as redshift_tag_map;

/// Between the cluster's identifier and the time of the deletion.
const INFIX: &str = "-final-";

const NOTHING_FOUND: [&str; 2] = ["ClusterNotFound", "ClusterSnapshotNotFound"];

/// What AWS keeps of a cluster: `manual` snapshots stay until deleted, while
/// `automated` ones go with the cluster.
const MANUAL: &str = "manual";

/// A final snapshot of the pipeline's cluster, as AWS lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedSnapshot {
    pub id: String,
    pub arn: String,
    pub tags: BTreeMap<String, String>,
}

/// `<cluster-id>-final-<UTC yyyymmddhhmmss>`: a new name for every deletion,
/// so a pipeline made again under its old name and retained again keeps both
/// snapshots. A crash cannot make two: before DeleteCluster nothing exists,
/// and after it the cluster is found taking its snapshot or being deleted,
/// which is waited for, never deleted again.
pub fn identifier(cluster_id: &str, at: Timestamp) -> String {
    format!("{cluster_id}{INFIX}{}", at.strftime("%Y%m%d%H%M%S"))
}

/// The newest final snapshot of cluster `cluster_id` that is `owner`'s, or
/// untagged: AWS may not copy the cluster's tags onto its final snapshot, and
/// the name says the operator made it.
pub async fn observe(
    aws: &AwsClients,
    cluster_id: &str,
    owner: &str,
    arn_prefix: &str,
) -> Result<Option<ObservedSnapshot>, ComponentError> {
    let prefix = format!("{cluster_id}{INFIX}");
    let mut newest: Option<ObservedSnapshot> = None;
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
            let (Some(id), Some(cluster)) = (snapshot.snapshot_identifier(), snapshot.cluster_identifier())
            else {
                continue;
            };
            let tags = redshift_tag_map(snapshot.tags());
            let ours = tags.get(OWNER_TAG).is_none_or(|tag| tag == owner);
            let manual = snapshot.snapshot_type() == Some(MANUAL);
            // The names end in the time, so the greatest name is the newest.
            let newer = newest.as_ref().is_none_or(|found| id > found.id.as_str());
            if cluster == cluster_id && id.starts_with(&prefix) && manual && ours && newer {
                newest = Some(ObservedSnapshot {
                    id: id.to_owned(),
                    arn: snapshot
                        .snapshot_arn()
                        .map_or_else(|| format!("{arn_prefix}{id}"), str::to_owned),
                    tags,
                });
            }
        }
    }
    Ok(newest)
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
