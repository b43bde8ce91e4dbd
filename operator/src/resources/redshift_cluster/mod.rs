//! A Redshift cluster: encrypted, never publicly accessible, in its subnet
//! group and security group, with the pipeline's role attached. Found by its
//! identifier.
//!
//! Its data is what `deletionPolicy: Retain` keeps, but not the cluster
//! itself: it is deleted with a final snapshot (see `final_snapshot`), which
//! AWS takes while the cluster is `final-snapshot`, then `deleting`.

mod state;

use state::AVAILABLE;
pub use state::ClusterState;

use super::final_snapshot::FinalSnapshot;
use super::sdk::{deleted, failed, set_redshift_tags};
use super::tags::to_sdk;
use crate::aws::AwsClients;
use crate::aws::errors::{classify, code};
use crate::engine::resource::{Ref, Resource};
use crate::engine::{MasterUser, Readiness, Tags, field, tag_changes};
use crate::error::ComponentError;

/// The master user when the spec names no Secret: AWS manages its password.
pub const MASTER_USERNAME: &str = "imagepipeline_admin";
/// A manual snapshot's retention period that means kept until deleted.
const KEPT_UNTIL_DELETED: i32 = -1;
const NOT_FOUND: &str = "ClusterNotFound";

#[derive(Clone, Debug, PartialEq)]
pub struct RedshiftCluster {
    pub id: String,
    pub arn: String,
    pub node_type: String,
    pub nodes: i32,
    pub database: String,
    /// From the Secret the spec names; `None`: AWS manages the password.
    pub master_user: Option<MasterUser>,
    pub subnet_group: String,
    pub security_group: Ref,
    pub role_name: String,
    pub role_arn: String,
    pub tags: Tags,
    /// Where its final snapshots are found.
    pub snapshots: FinalSnapshot,
    /// Deleting it keeps its data in a final snapshot of this name
    /// (`deletionPolicy: Retain`); without, the data goes with it.
    pub final_snapshot: Option<String>,
}

impl RedshiftCluster {
    fn name(&self) -> String {
        format!("Redshift cluster {}", self.id)
    }

    fn size(&self) -> String {
        format!("{} x {}", self.nodes, self.node_type)
    }
}

impl Resource for RedshiftCluster {
    type Observed = ClusterState;
    const TYPE: Option<&'static str> = Some("AWS::Redshift::Cluster");
    const DELETED_LATER: bool = true;

    /// Being deleted under `Retain`, it names its final snapshot: the
    /// controller's Deleted event and the CLI's progress show only this.
    fn label(&self) -> String {
        match &self.final_snapshot {
            None => self.name(),
            Some(snapshot) => format!("{} (data kept in final snapshot {snapshot})", self.name()),
        }
    }

    fn references(&self) -> Vec<&Ref> {
        vec![&self.security_group]
    }

    async fn find(&self, aws: &AwsClients) -> Result<Option<ClusterState>, ComponentError> {
        let out = match aws
            .redshift
            .describe_clusters()
            .cluster_identifier(&self.id)
            .send()
            .await
        {
            Ok(out) => out,
            Err(err) if code(&err) == Some(NOT_FOUND) => return Ok(None),
            Err(err) => return Err(classify(&format!("look up {}", self.name()), err)),
        };
        let Some(mut found) = out.clusters().first().map(|c| ClusterState::of(c, &self.arn)) else {
            return Ok(None);
        };
        if found.is_being_deleted() {
            found.final_snapshot = self.snapshots.newest(aws).await?.map(|s| s.id);
        }
        Ok(Some(found))
    }

    /// Redshift takes modifications only while the cluster is available; its
    /// tags, always.
    fn delta(&self, observed: &ClusterState) -> Result<Vec<String>, ComponentError> {
        if observed.is_being_deleted() {
            return Err(ComponentError::retryable(
                "ClusterDeleting",
                format!(
                    "{} is being deleted; it is made again once it is gone",
                    self.name()
                ),
            ));
        }
        let mut fields = tag_changes(&observed.tags, &self.tags);
        if !observed.is_available() {
            return Ok(fields);
        }
        if !observed.encrypted {
            fields.push(field("encrypted", false, true));
        }
        if observed.publicly_accessible {
            fields.push(field("publicly accessible", true, false));
        }
        if observed.node_type != self.node_type || observed.nodes != self.nodes {
            let size = format!("{} x {}", observed.nodes, observed.node_type);
            fields.push(field("nodes", size, self.size()));
        }
        if !observed.iam_roles.contains(&self.role_arn) {
            fields.push(field("roles", "(without the pipeline role)", &self.role_name));
        }
        Ok(fields)
    }

    fn create_fields(&self) -> Vec<String> {
        vec![format!(
            "{}, database {}, encrypted, not publicly accessible",
            self.size(),
            self.database
        )]
    }

    async fn create(&self, aws: &AwsClients) -> Result<ClusterState, ComponentError> {
        let request = aws
            .redshift
            .create_cluster()
            .cluster_identifier(&self.id)
            .node_type(&self.node_type)
            .db_name(&self.database)
            .encrypted(true)
            .publicly_accessible(false)
            .cluster_subnet_group_name(&self.subnet_group)
            .vpc_security_group_ids(self.security_group.id())
            .iam_roles(&self.role_arn)
            .set_tags(Some(to_sdk(&self.tags)?));
        let request = if self.nodes > 1 {
            request.cluster_type("multi-node").number_of_nodes(self.nodes)
        } else {
            request.cluster_type("single-node")
        };
        let request = match &self.master_user {
            Some(user) => request
                .master_username(&user.username)
                .master_user_password(&user.password),
            None => request
                .master_username(MASTER_USERNAME)
                .manage_master_password(true),
        };
        match request.send().await {
            Ok(out) => {
                if let Some(cluster) = out.cluster() {
                    return Ok(ClusterState::of(cluster, &self.arn));
                }
            }
            // Made by a pass that crashed before it saw the answer.
            Err(err) if code(&err) == Some("ClusterAlreadyExists") => {}
            Err(err) => return Err(classify(&format!("create {}", self.name()), err)),
        }
        Ok(ClusterState {
            id: self.id.clone(),
            arn: self.arn.clone(),
            status: "creating".to_owned(),
            tags: self.tags.clone(),
            ..ClusterState::default()
        })
    }

    async fn update(&self, aws: &AwsClients, observed: &ClusterState) -> Result<(), ComponentError> {
        let name = self.name();
        if observed.tags != self.tags {
            set_redshift_tags(aws, &self.arn, Some(&observed.tags), &self.tags, &name).await?;
        }
        if !observed.is_available() {
            return Ok(());
        }
        let modify = || aws.redshift.modify_cluster().cluster_identifier(&self.id);
        if !observed.encrypted {
            let encrypt = modify().encrypted(true).send().await;
            encrypt.map_err(failed("encrypt", &name))?;
        }
        if observed.publicly_accessible {
            let private = modify().publicly_accessible(false).send().await;
            private.map_err(failed("make private", &name))?;
        }
        if observed.node_type != self.node_type || observed.nodes != self.nodes {
            let resize = modify().node_type(&self.node_type);
            let resize = if self.nodes > 1 {
                resize.cluster_type("multi-node").number_of_nodes(self.nodes)
            } else {
                resize.cluster_type("single-node")
            };
            resize.send().await.map_err(failed("resize", &name))?;
        }
        if !observed.iam_roles.contains(&self.role_arn) {
            aws.redshift
                .modify_cluster_iam_roles()
                .cluster_identifier(&self.id)
                .add_iam_roles(&self.role_arn)
                .send()
                .await
                .map_err(failed("attach the pipeline role to", &name))?;
        }
        Ok(())
    }

    fn delete_fields(&self) -> Vec<String> {
        vec![match self.final_snapshot {
            None => "without a final snapshot".to_owned(),
            Some(_) => {
                "deletionPolicy Retain: the snapshot is kept, tagged retained, until you delete it".to_owned()
            }
        }]
    }

    /// Under `Delete` without a snapshot: `Retain` is how a user keeps the data.
    async fn delete(&self, aws: &AwsClients, _observed: &ClusterState) -> Result<(), ComponentError> {
        let request = aws.redshift.delete_cluster().cluster_identifier(&self.id);
        let request = match &self.final_snapshot {
            Some(snapshot) => request
                .skip_final_cluster_snapshot(false)
                .final_cluster_snapshot_identifier(snapshot)
                .final_cluster_snapshot_retention_period(KEPT_UNTIL_DELETED),
            None => request.skip_final_cluster_snapshot(true),
        };
        deleted(
            request.send().await,
            &[NOT_FOUND],
            &format!("delete {}", self.label()),
        )
    }

    fn id(observed: &ClusterState) -> String {
        observed.id.clone()
    }

    fn arn(observed: &ClusterState) -> Option<String> {
        Some(observed.arn.clone())
    }

    fn tags(observed: &ClusterState) -> Option<&Tags> {
        Some(&observed.tags)
    }

    fn readiness(&self, observed: &ClusterState) -> Readiness {
        Readiness::of(&self.name(), Some(&observed.status), AVAILABLE)
    }

    /// Nothing under it is deleted, nor is it deleted again, while AWS is
    /// deleting it.
    fn going(&self, observed: &ClusterState) -> Option<String> {
        observed.deletion(&self.name())
    }
}
