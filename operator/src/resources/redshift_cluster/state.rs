//! A Redshift cluster as AWS reports it.

use aws_sdk_redshift::types::Cluster;

use crate::engine::Tags;
use crate::resources::tags::from_sdk;
use crate::resources::warehouse_schema::SchemaRecord;

pub(super) const AVAILABLE: &str = "available";
/// DeleteCluster with a final snapshot: first the snapshot is taken, then the
/// cluster is deleted. Either way a deletion is under way and is waited for.
const TAKING_FINAL_SNAPSHOT: &str = "final-snapshot";
const DELETING: &str = "deleting";

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterState {
    pub id: String,
    pub arn: String,
    pub status: String,
    pub encrypted: bool,
    pub publicly_accessible: bool,
    pub node_type: String,
    pub nodes: i32,
    pub iam_roles: Vec<String>,
    /// `host:port`, once AWS has given it one.
    pub endpoint: Option<String>,
    /// Without the schema's record, which is kept in `schema`.
    pub tags: Tags,
    pub schema: SchemaRecord,
    /// While it is being deleted, its newest final snapshot.
    pub final_snapshot: Option<String>,
}

impl ClusterState {
    pub fn is_available(&self) -> bool {
        self.status == AVAILABLE
    }

    pub fn is_being_deleted(&self) -> bool {
        matches!(self.status.as_str(), TAKING_FINAL_SNAPSHOT | DELETING)
    }

    /// What a teardown waits for while AWS deletes the cluster `name`.
    pub(super) fn deletion(&self, name: &str) -> Option<String> {
        if !self.is_being_deleted() {
            return None;
        }
        Some(match (self.status.as_str(), &self.final_snapshot) {
            (TAKING_FINAL_SNAPSHOT, Some(snapshot)) => {
                format!("{name} is taking its final snapshot {snapshot}")
            }
            (TAKING_FINAL_SNAPSHOT, None) => format!("{name} is taking its final snapshot"),
            (_, Some(snapshot)) => {
                format!("{name} is being deleted; its final snapshot {snapshot} is kept")
            }
            (_, None) => format!("{name} is being deleted"),
        })
    }

    pub(super) fn of(cluster: &Cluster, arn: &str) -> Self {
        let mut tags = from_sdk(cluster.tags());
        let schema = SchemaRecord::take_from(&mut tags);
        ClusterState {
            id: cluster.cluster_identifier().unwrap_or_default().to_owned(),
            arn: arn.to_owned(),
            status: cluster.cluster_status().unwrap_or_default().to_owned(),
            encrypted: cluster.encrypted().unwrap_or(false),
            publicly_accessible: cluster.publicly_accessible().unwrap_or(false),
            node_type: cluster.node_type().unwrap_or_default().to_owned(),
            nodes: cluster.number_of_nodes().unwrap_or(1),
            iam_roles: cluster
                .iam_roles()
                .iter()
                .filter_map(|r| r.iam_role_arn())
                .map(str::to_owned)
                .collect(),
            endpoint: cluster.endpoint().and_then(|e| {
                e.address()
                    .map(|address| format!("{address}:{}", e.port().unwrap_or(5439)))
            }),
            tags,
            schema,
            final_snapshot: None,
        }
    }
}
