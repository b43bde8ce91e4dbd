//! Analytics: a Redshift cluster for analysts, encrypted and never public, in
//! the private subnets, with a role that can read the pipeline's bucket and
//! table, and the analysis schema created through the Redshift Data API.
//! With `analytics.enabled: false` nothing exists, and what did is removed.
//! `deletionPolicy: Retain` keeps the warehouse's data as a final snapshot
//! (see `analytics/final_snapshot.rs`); the cluster and what it stands on go.

mod final_snapshot;

use std::collections::BTreeMap;

use aws_sdk_redshiftdata::types::StatusString;
use final_snapshot::ObservedSnapshot;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use super::ownership;
use crate::api::v1alpha1::DeletionPolicy;
use crate::aws::AwsClients;
use crate::aws::errors::{classify, code};
use crate::engine::resource::{Ref, Resource};
use crate::engine::{
    Action, Change, Component, ComponentError, ComponentKind, MasterUser, Outputs, PipelineContext,
    Readiness, removed_tag_keys, tag_changes,
};
use crate::resources::iam_role::{self, DesiredRole, ObservedRole, RoleStep};
use crate::resources::security_group::{GroupState, SecurityGroup};
use crate::resources::tags::{from_sdk, to_sdk};

/// Cluster tags the operator keeps its own progress in; not user-visible
/// configuration, so they are left out of tag drift.
const SCHEMA_VERSION_TAG: &str = "imagepipeline.io/schema-version";
const SCHEMA_STATEMENT_TAG: &str = "imagepipeline.io/schema-statement";
const SCHEMA_VERSION: &str = "1";
/// A manual snapshot's retention period that means kept until deleted.
const KEPT_UNTIL_DELETED: i32 = -1;
const MASTER_USERNAME: &str = "imagepipeline_admin";
const AVAILABLE: &str = "available";
/// DeleteCluster with a final snapshot: first the snapshot is taken, then the
/// cluster is deleted. Either way a deletion is under way and is waited for.
const TAKING_FINAL_SNAPSHOT: &str = "final-snapshot";
const DELETING: &str = "deleting";

pub struct Analytics;

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredAnalytics {
    pub enabled: bool,
    pub policy: DeletionPolicy,
    pub owner: String,
    pub tags: BTreeMap<String, String>,
    pub subnet_group: String,
    pub subnet_ids: Vec<String>,
    pub security_group: String,
    pub vpc_id: Option<String>,
    pub role: DesiredRole,
    pub cluster: DesiredCluster,
}

impl DesiredAnalytics {
    /// The cluster's group: no inbound rules; brokers and clients reach the
    /// cluster only through what its VPC routes allow.
    fn security_group(&self) -> SecurityGroup {
        SecurityGroup {
            name: self.security_group.clone(),
            description: "ImagePipeline warehouse; no inbound rules".to_owned(),
            vpc_id: Ref::to(self.vpc_id.as_ref(), String::clone, "the Kafka VPC"),
            rules: vec![],
            tags: self.tags.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredCluster {
    pub id: String,
    pub arn: String,
    pub node_type: String,
    pub nodes: i32,
    pub database: String,
    pub master_user: Option<MasterUser>,
    pub schema_sql: String,
    /// The ARN of one of its snapshots is this followed by the snapshot's id.
    pub snapshot_arn_prefix: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedAnalytics {
    pub subnet_group: Option<ObservedSubnetGroup>,
    pub security_group: Option<GroupState>,
    pub role: Option<ObservedRole>,
    pub cluster: Option<ObservedCluster>,
    /// Status of the schema statement recorded on the cluster, if one runs.
    pub schema_statement: Option<String>,
    /// The newest final snapshot of the cluster, looked up only when the
    /// cluster is gone or being deleted.
    pub final_snapshot: Option<ObservedSnapshot>,
    /// When this was observed: the time a final snapshot taken now is named after.
    pub observed_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ObservedSubnetGroup {
    pub subnet_ids: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedCluster {
    pub status: String,
    pub encrypted: bool,
    pub publicly_accessible: bool,
    pub node_type: String,
    pub nodes: i32,
    pub iam_roles: Vec<String>,
    pub endpoint: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub schema_version: Option<String>,
    pub schema_statement_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum AnalyticsStep {
    Role(RoleStep),
    CreateSubnetGroup,
    UpdateSubnetGroup {
        observed: Vec<String>,
    },
    SetSubnetGroupTags,
    CreateSecurityGroup,
    CreateCluster,
    Encrypt,
    MakePrivate,
    Resize {
        node_type: String,
        nodes: i32,
    },
    AttachRole,
    SetClusterTags {
        observed: BTreeMap<String, String>,
        desired: BTreeMap<String, String>,
    },
    BootstrapSchema,
    MarkSchemaBootstrapped,
    /// With `final_snapshot`, the identifier of the snapshot AWS takes first
    /// and keeps; without, the data goes with the cluster.
    DeleteCluster {
        final_snapshot: Option<String>,
    },
    /// Marks the kept final snapshot as retained, as the bucket and the table are.
    SetSnapshotTags {
        id: String,
        arn: String,
        observed: BTreeMap<String, String>,
        desired: BTreeMap<String, String>,
    },
    DeleteSubnetGroup,
    DeleteSecurityGroup {
        id: String,
    },
}

impl Component for Analytics {
    const KIND: ComponentKind = ComponentKind::Analytics;
    const DEPENDS_ON: &'static [ComponentKind] = &[
        ComponentKind::Network,
        ComponentKind::Storage,
        ComponentKind::Metadata,
    ];
    type Desired = DesiredAnalytics;
    type Observed = ObservedAnalytics;
    type Step = AnalyticsStep;

    fn desired(ctx: &PipelineContext, upstream: &Outputs) -> Result<DesiredAnalytics, ComponentError> {
        let spec = &ctx.spec.analytics;
        if spec.enabled && spec.master_user_secret_ref.is_some() && ctx.master_user.is_none() {
            return Err(ComponentError::terminal(
                "MasterUserSecretUnavailable",
                "spec.analytics.masterUserSecretRef names a Kubernetes Secret, which only the controller reads; \
                 apply this pipeline with the controller, or remove the field so AWS manages the password",
            ));
        }
        let bucket_arn = ctx.bucket_arn();
        let table_arn = ctx.table_arn();
        let role_name = ctx.resource_name("redshift", 64);
        let role_arn = ctx.global_arn("iam", &format!("role{}{role_name}", iam_role::ROLE_PATH));
        // Read-only, and only this pipeline's data.
        let policy = json!({
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:GetBucketLocation", "s3:ListBucket"],
                    "Resource": [bucket_arn.clone(), format!("{bucket_arn}/*")]
                },
                {
                    "Effect": "Allow",
                    "Action": ["dynamodb:DescribeTable", "dynamodb:Scan"],
                    "Resource": [table_arn]
                }
            ]
        });
        let tags = ctx.tags(Self::KIND);
        let id = ctx.resource_name("warehouse", 63);
        Ok(DesiredAnalytics {
            enabled: spec.enabled,
            policy: ctx.spec.deletion_policy,
            owner: ctx.owner.tag_value(),
            subnet_group: id.clone(),
            subnet_ids: upstream.private_subnets.iter().map(|s| s.id.clone()).collect(),
            security_group: id.clone(),
            vpc_id: upstream.kafka_vpc_id.clone(),
            role: DesiredRole::for_service(
                role_name,
                role_arn,
                "redshift.amazonaws.com",
                &ctx.account_id,
                "read-pipeline-data",
                policy,
                tags.clone(),
            ),
            cluster: DesiredCluster {
                arn: ctx.arn("redshift", &format!("cluster:{id}")),
                snapshot_arn_prefix: ctx.arn("redshift", &format!("snapshot:{id}/")),
                id,
                node_type: spec.node_type.clone(),
                nodes: spec.nodes,
                database: spec.database.clone(),
                master_user: ctx.master_user.clone(),
                schema_sql: schema_sql(),
            },
            tags,
        })
    }

    async fn observe(
        aws: &AwsClients,
        desired: &DesiredAnalytics,
    ) -> Result<ObservedAnalytics, ComponentError> {
        let mut observed = ObservedAnalytics {
            subnet_group: observe_subnet_group(aws, &desired.subnet_group).await?,
            security_group: desired.security_group().find(aws).await?,
            role: iam_role::observe(aws, &desired.role).await?,
            cluster: observe_cluster(aws, &desired.cluster.id).await?,
            schema_statement: None,
            final_snapshot: None,
            observed_at: Timestamp::now(),
        };
        if observed
            .cluster
            .as_ref()
            .is_none_or(ObservedCluster::is_being_deleted)
        {
            let cluster = &desired.cluster;
            observed.final_snapshot =
                final_snapshot::observe(aws, &cluster.id, &desired.owner, &cluster.snapshot_arn_prefix)
                    .await?;
        }
        if let Some(id) = observed
            .cluster
            .as_ref()
            .and_then(|c| c.schema_statement_id.clone())
        {
            observed.schema_statement = match aws.redshift_data.describe_statement().id(&id).send().await {
                Ok(out) => out.status().map(|s| s.as_str().to_owned()),
                Err(err) if code(&err) == Some("ResourceNotFoundException") => None,
                Err(err) => return Err(classify(&format!("read schema statement {id}"), err)),
            };
        }
        Ok(observed)
    }

    fn converge(
        desired: &DesiredAnalytics,
        observed: &ObservedAnalytics,
    ) -> Result<Vec<AnalyticsStep>, ComponentError> {
        if !desired.enabled {
            return Ok(Self::teardown(desired, observed, desired.policy).0);
        }
        check_ownership(desired, observed)?;
        let mut steps: Vec<AnalyticsStep> = iam_role::converge(&desired.role, observed.role.as_ref())
            .into_iter()
            .map(AnalyticsStep::Role)
            .collect();
        match &observed.subnet_group {
            None => steps.push(AnalyticsStep::CreateSubnetGroup),
            Some(group) => {
                if sorted(&group.subnet_ids) != sorted(&desired.subnet_ids) {
                    steps.push(AnalyticsStep::UpdateSubnetGroup {
                        observed: group.subnet_ids.clone(),
                    });
                }
                if group.tags != desired.tags {
                    steps.push(AnalyticsStep::SetSubnetGroupTags);
                }
            }
        }
        if observed.security_group.is_none() {
            steps.push(AnalyticsStep::CreateSecurityGroup);
        }
        let Some(cluster) = &observed.cluster else {
            steps.push(AnalyticsStep::CreateCluster);
            return Ok(steps);
        };
        if cluster.is_being_deleted() {
            return Err(ComponentError::retryable(
                "ClusterDeleting",
                format!(
                    "Redshift cluster {} is being deleted; it is made again once it is gone",
                    desired.cluster.id
                ),
            ));
        }
        if cluster.tags != desired.tags {
            steps.push(AnalyticsStep::SetClusterTags {
                observed: cluster.tags.clone(),
                desired: desired.tags.clone(),
            });
        }
        // Redshift takes modifications only while the cluster is available.
        if cluster.status != AVAILABLE {
            return Ok(steps);
        }
        if !cluster.encrypted {
            steps.push(AnalyticsStep::Encrypt);
        }
        if cluster.publicly_accessible {
            steps.push(AnalyticsStep::MakePrivate);
        }
        if cluster.node_type != desired.cluster.node_type || cluster.nodes != desired.cluster.nodes {
            steps.push(AnalyticsStep::Resize {
                node_type: cluster.node_type.clone(),
                nodes: cluster.nodes,
            });
        }
        if !cluster.iam_roles.contains(&desired.role.arn) {
            steps.push(AnalyticsStep::AttachRole);
        }
        if cluster.schema_version.as_deref() != Some(SCHEMA_VERSION) {
            match observed.schema_statement.as_deref() {
                Some(status) if status == StatusString::Finished.as_str() => {
                    steps.push(AnalyticsStep::MarkSchemaBootstrapped)
                }
                // Submitted, picked or started: let it run.
                Some(status)
                    if status != StatusString::Failed.as_str()
                        && status != StatusString::Aborted.as_str() => {}
                _ => steps.push(AnalyticsStep::BootstrapSchema),
            }
        }
        Ok(steps)
    }

    fn teardown(
        desired: &DesiredAnalytics,
        observed: &ObservedAnalytics,
        policy: DeletionPolicy,
    ) -> (Vec<AnalyticsStep>, Option<String>) {
        let owner = &desired.owner;
        let mine = |tags: &BTreeMap<String, String>| ownership::is_ours(tags, owner);
        // The cluster goes first under either policy: its subnet group, its
        // security group and the network's subnets cannot go while it stands
        // on them.
        if let Some(cluster) = observed.cluster.as_ref().filter(|c| mine(&c.tags)) {
            if cluster.is_being_deleted() {
                let waiting = deletion_under_way(desired, cluster, observed.final_snapshot.as_ref());
                return (vec![], Some(waiting));
            }
            let final_snapshot = (policy == DeletionPolicy::Retain)
                .then(|| final_snapshot::identifier(&desired.cluster.id, observed.observed_at));
            return (vec![AnalyticsStep::DeleteCluster { final_snapshot }], None);
        }
        let mut steps = Vec::new();
        if policy == DeletionPolicy::Retain
            && let Some(snapshot) = &observed.final_snapshot
            && let Some(retained) = ownership::missing_retained_tags(&snapshot.tags, &desired.tags)
        {
            steps.push(AnalyticsStep::SetSnapshotTags {
                id: snapshot.id.clone(),
                arn: snapshot.arn.clone(),
                observed: snapshot.tags.clone(),
                desired: retained,
            });
        }
        if observed.subnet_group.as_ref().is_some_and(|g| mine(&g.tags)) {
            steps.push(AnalyticsStep::DeleteSubnetGroup);
        }
        if let Some(group) = observed.security_group.as_ref().filter(|g| mine(&g.tags)) {
            steps.push(AnalyticsStep::DeleteSecurityGroup { id: group.id.clone() });
        }
        if let Some(role) = observed.role.as_ref().filter(|r| mine(&r.tags)) {
            steps.extend(
                iam_role::teardown(Some(role))
                    .into_iter()
                    .map(AnalyticsStep::Role),
            );
        }
        (steps, None)
    }

    async fn execute(
        aws: &AwsClients,
        desired: &DesiredAnalytics,
        observed: &mut ObservedAnalytics,
        step: &AnalyticsStep,
    ) -> Result<(), ComponentError> {
        let redshift = &aws.redshift;
        let cluster_id = desired.cluster.id.as_str();
        let action = Self::describe(desired, step).resource;
        match step {
            AnalyticsStep::Role(step) => {
                iam_role::execute(aws, &desired.role, &mut observed.role, step).await
            }
            AnalyticsStep::CreateSubnetGroup => {
                match redshift
                    .create_cluster_subnet_group()
                    .cluster_subnet_group_name(&desired.subnet_group)
                    .description("ImagePipeline warehouse subnets")
                    .set_subnet_ids(Some(desired.subnet_ids.clone()))
                    .set_tags(Some(to_sdk(&desired.tags)?))
                    .send()
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(err) if code(&err) == Some("ClusterSubnetGroupAlreadyExists") => Ok(()),
                    Err(err) => Err(classify(&action, err)),
                }
            }
            AnalyticsStep::UpdateSubnetGroup { .. } => redshift
                .modify_cluster_subnet_group()
                .cluster_subnet_group_name(&desired.subnet_group)
                .set_subnet_ids(Some(desired.subnet_ids.clone()))
                .send()
                .await
                .map(drop)
                .map_err(|err| classify(&action, err)),
            AnalyticsStep::SetSubnetGroupTags => {
                let arn = desired
                    .cluster
                    .arn
                    .replace(":cluster:", ":subnetgroup:")
                    .replace(cluster_id, &desired.subnet_group);
                set_redshift_tags(
                    aws,
                    &arn,
                    observed.subnet_group.as_ref().map(|g| &g.tags),
                    &desired.tags,
                    &action,
                )
                .await
            }
            AnalyticsStep::CreateSecurityGroup => {
                if desired.vpc_id.is_none() {
                    return Err(ComponentError::retryable(
                        "WaitingForNetwork",
                        "the private network has no VPC yet",
                    ));
                }
                observed.security_group = Some(desired.security_group().create(aws).await?);
                Ok(())
            }
            AnalyticsStep::CreateCluster => {
                let cluster = &desired.cluster;
                let security_group = observed.security_group.as_ref().map(|g| g.id.clone());
                let mut request = redshift
                    .create_cluster()
                    .cluster_identifier(cluster_id)
                    .node_type(&cluster.node_type)
                    .db_name(&cluster.database)
                    .encrypted(true)
                    .publicly_accessible(false)
                    .cluster_subnet_group_name(&desired.subnet_group)
                    .set_vpc_security_group_ids(security_group.map(|id| vec![id]))
                    .iam_roles(&desired.role.arn)
                    .set_tags(Some(to_sdk(&desired.tags)?));
                request = if cluster.nodes > 1 {
                    request.cluster_type("multi-node").number_of_nodes(cluster.nodes)
                } else {
                    request.cluster_type("single-node")
                };
                request = match &cluster.master_user {
                    Some(user) => request
                        .master_username(&user.username)
                        .master_user_password(&user.password),
                    None => request
                        .master_username(MASTER_USERNAME)
                        .manage_master_password(true),
                };
                match request.send().await {
                    Ok(_) => Ok(()),
                    Err(err) if code(&err) == Some("ClusterAlreadyExists") => Ok(()),
                    Err(err) => Err(classify(&action, err)),
                }
            }
            AnalyticsStep::Encrypt => redshift
                .modify_cluster()
                .cluster_identifier(cluster_id)
                .encrypted(true)
                .send()
                .await
                .map(drop)
                .map_err(|err| classify(&action, err)),
            AnalyticsStep::MakePrivate => redshift
                .modify_cluster()
                .cluster_identifier(cluster_id)
                .publicly_accessible(false)
                .send()
                .await
                .map(drop)
                .map_err(|err| classify(&action, err)),
            AnalyticsStep::Resize { .. } => {
                let cluster = &desired.cluster;
                let request = redshift
                    .modify_cluster()
                    .cluster_identifier(cluster_id)
                    .node_type(&cluster.node_type);
                let request = if cluster.nodes > 1 {
                    request.cluster_type("multi-node").number_of_nodes(cluster.nodes)
                } else {
                    request.cluster_type("single-node")
                };
                request
                    .send()
                    .await
                    .map(drop)
                    .map_err(|err| classify(&action, err))
            }
            AnalyticsStep::AttachRole => redshift
                .modify_cluster_iam_roles()
                .cluster_identifier(cluster_id)
                .add_iam_roles(&desired.role.arn)
                .send()
                .await
                .map(drop)
                .map_err(|err| classify(&action, err)),
            AnalyticsStep::SetClusterTags {
                observed: old,
                desired: tags,
            } => set_redshift_tags(aws, &desired.cluster.arn, Some(old), tags, &action).await,
            AnalyticsStep::BootstrapSchema => {
                let cluster = &desired.cluster;
                let user = cluster
                    .master_user
                    .as_ref()
                    .map_or(MASTER_USERNAME, |u| u.username.as_str());
                let out = aws
                    .redshift_data
                    .execute_statement()
                    .cluster_identifier(cluster_id)
                    .database(&cluster.database)
                    .db_user(user)
                    .sql(&cluster.schema_sql)
                    .statement_name("imagepipeline-schema")
                    .send()
                    .await
                    .map_err(|err| classify(&action, err))?;
                let id = out.id().unwrap_or_default().to_owned();
                let tag = BTreeMap::from([(SCHEMA_STATEMENT_TAG.to_owned(), id)]);
                set_redshift_tags(aws, &cluster.arn, None, &tag, &action).await
            }
            AnalyticsStep::MarkSchemaBootstrapped => {
                let tag = BTreeMap::from([(SCHEMA_VERSION_TAG.to_owned(), SCHEMA_VERSION.to_owned())]);
                set_redshift_tags(aws, &desired.cluster.arn, None, &tag, &action).await
            }
            AnalyticsStep::DeleteCluster { final_snapshot } => {
                let request = redshift.delete_cluster().cluster_identifier(cluster_id);
                let request = match final_snapshot {
                    Some(snapshot) => request
                        .skip_final_cluster_snapshot(false)
                        .final_cluster_snapshot_identifier(snapshot)
                        .final_cluster_snapshot_retention_period(KEPT_UNTIL_DELETED),
                    // Delete means delete: Retain is how a user keeps the data.
                    None => request.skip_final_cluster_snapshot(true),
                };
                match request.send().await {
                    Ok(_) => Ok(()),
                    Err(err) if code(&err) == Some("ClusterNotFound") => Ok(()),
                    Err(err) => Err(classify(&action, err)),
                }
            }
            AnalyticsStep::SetSnapshotTags {
                arn,
                observed: old,
                desired: tags,
                ..
            } => set_redshift_tags(aws, arn, Some(old), tags, &action).await,
            AnalyticsStep::DeleteSubnetGroup => {
                match redshift
                    .delete_cluster_subnet_group()
                    .cluster_subnet_group_name(&desired.subnet_group)
                    .send()
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(err) if code(&err) == Some("ClusterSubnetGroupNotFoundFault") => Ok(()),
                    Err(err) => Err(classify(&action, err)),
                }
            }
            // The cluster's network interfaces outlive it by minutes on AWS;
            // until they are released the group is reported as blocked.
            AnalyticsStep::DeleteSecurityGroup { .. } => match &observed.security_group {
                Some(group) => desired.security_group().delete(aws, group).await,
                None => Ok(()),
            },
        }
    }

    fn describe(desired: &DesiredAnalytics, step: &AnalyticsStep) -> Change {
        let cluster = format!("Redshift cluster {}", desired.cluster.id);
        match step {
            AnalyticsStep::Role(step) => iam_role::change(&desired.role, step),
            AnalyticsStep::CreateSubnetGroup => Change::new(
                Action::Create,
                format!("Redshift subnet group {}", desired.subnet_group),
            )
            .note(format!("subnets {}", known_after_apply(&desired.subnet_ids))),
            AnalyticsStep::UpdateSubnetGroup { observed } => Change::new(
                Action::Update,
                format!("Redshift subnet group {}", desired.subnet_group),
            )
            .field(
                "subnets",
                observed.join(","),
                known_after_apply(&desired.subnet_ids),
            ),
            AnalyticsStep::SetSubnetGroupTags => Change::new(
                Action::Update,
                format!("Redshift subnet group {} tags", desired.subnet_group),
            ),
            AnalyticsStep::CreateSecurityGroup => Change::new(
                Action::Create,
                format!("security group {}", desired.security_group),
            )
            .note("no inbound rules"),
            AnalyticsStep::CreateCluster => Change::new(Action::Create, cluster).note(format!(
                "{} x {}, database {}, encrypted, not publicly accessible",
                desired.cluster.nodes, desired.cluster.node_type, desired.cluster.database
            )),
            AnalyticsStep::Encrypt => {
                Change::new(Action::Update, format!("{cluster} encryption")).field("encrypted", false, true)
            }
            AnalyticsStep::MakePrivate => Change::new(Action::Update, format!("{cluster} access")).field(
                "publicly accessible",
                true,
                false,
            ),
            AnalyticsStep::Resize { node_type, nodes } => {
                Change::new(Action::Update, format!("{cluster} size")).field(
                    "nodes",
                    format!("{nodes} x {node_type}"),
                    format!("{} x {}", desired.cluster.nodes, desired.cluster.node_type),
                )
            }
            AnalyticsStep::AttachRole => Change::new(Action::Update, format!("{cluster} IAM roles")).field(
                "roles",
                "(without the pipeline role)",
                &desired.role.name,
            ),
            AnalyticsStep::SetClusterTags {
                observed,
                desired: tags,
            } => {
                let mut change = Change::new(Action::Update, format!("{cluster} tags"));
                change.fields = tag_changes(observed, tags);
                change
            }
            AnalyticsStep::BootstrapSchema => {
                Change::new(Action::Create, format!("{cluster} analysis schema"))
                    .note("through the Redshift Data API")
            }
            AnalyticsStep::MarkSchemaBootstrapped => Change::new(
                Action::Update,
                format!("{cluster} schema version"),
            )
            .field(SCHEMA_VERSION_TAG, "(none)", SCHEMA_VERSION),
            AnalyticsStep::DeleteCluster { final_snapshot: None } => {
                Change::new(Action::Delete, cluster).note("without a final snapshot")
            }
            // The snapshot is named in the resource: the controller's Deleted
            // event and the CLI's progress line show only that.
            AnalyticsStep::DeleteCluster {
                final_snapshot: Some(snapshot),
            } => Change::new(
                Action::Delete,
                format!("{cluster} (data kept in final snapshot {snapshot})"),
            )
            .note("deletionPolicy Retain: the snapshot is kept, tagged retained, until you delete it"),
            AnalyticsStep::SetSnapshotTags {
                id,
                observed,
                desired: tags,
                ..
            } => {
                let mut change = Change::new(Action::Update, format!("Redshift snapshot {id} tags"));
                change.fields = tag_changes(observed, tags);
                change
            }
            AnalyticsStep::DeleteSubnetGroup => Change::new(
                Action::Delete,
                format!("Redshift subnet group {}", desired.subnet_group),
            ),
            AnalyticsStep::DeleteSecurityGroup { id } => {
                Change::new(Action::Delete, format!("security group {id}"))
            }
        }
    }

    fn readiness(desired: &DesiredAnalytics, observed: &ObservedAnalytics) -> Readiness {
        if !desired.enabled {
            return Readiness::Ready;
        }
        let status = observed.cluster.as_ref().map(|c| c.status.as_str());
        Readiness::of(
            &format!("Redshift cluster {}", desired.cluster.id),
            status,
            AVAILABLE,
        )
    }

    fn publish(desired: &DesiredAnalytics, observed: &ObservedAnalytics, outputs: &mut Outputs) {
        iam_role::publish(Self::KIND, &desired.role, observed.role.as_ref(), outputs);
        if observed.subnet_group.is_some() {
            outputs.resource(
                Self::KIND,
                "AWS::Redshift::ClusterSubnetGroup",
                &desired.subnet_group,
                None,
            );
        }
        if let Some(group) = &observed.security_group {
            outputs.resource(Self::KIND, "AWS::EC2::SecurityGroup", &group.id, None);
        }
        if let Some(cluster) = &observed.cluster {
            outputs.warehouse = Some(
                cluster
                    .endpoint
                    .clone()
                    .unwrap_or_else(|| desired.cluster.id.clone()),
            );
            outputs.resource(
                Self::KIND,
                "AWS::Redshift::Cluster",
                &desired.cluster.id,
                Some(desired.cluster.arn.clone()),
            );
        }
        // Once the cluster is gone under Retain, this is where its data is:
        // `kubectl get ipl -o yaml` lists it with the retained bucket and table.
        if let Some(snapshot) = &observed.final_snapshot {
            outputs.resource(
                Self::KIND,
                "AWS::Redshift::ClusterSnapshot",
                &snapshot.id,
                Some(snapshot.arn.clone()),
            );
        }
    }
}

impl ObservedCluster {
    fn is_being_deleted(&self) -> bool {
        matches!(self.status.as_str(), TAKING_FINAL_SNAPSHOT | DELETING)
    }
}

/// What a teardown waits for while AWS deletes the cluster.
fn deletion_under_way(
    desired: &DesiredAnalytics,
    cluster: &ObservedCluster,
    snapshot: Option<&ObservedSnapshot>,
) -> String {
    let name = format!("Redshift cluster {}", desired.cluster.id);
    match (cluster.status.as_str(), snapshot) {
        (TAKING_FINAL_SNAPSHOT, Some(snapshot)) => {
            format!("{name} is taking its final snapshot {}", snapshot.id)
        }
        (TAKING_FINAL_SNAPSHOT, None) => format!("{name} is taking its final snapshot"),
        (_, Some(snapshot)) => format!(
            "{name} is being deleted; its final snapshot {} is kept",
            snapshot.id
        ),
        (_, None) => format!("{name} is being deleted"),
    }
}

/// The analysis schema: one row per image event, as Firehose writes them
/// under `events/` (DESIGN.md, data contracts).
fn schema_sql() -> String {
    "CREATE TABLE IF NOT EXISTS image_events (\
     id VARCHAR(36) NOT NULL, sha256 CHAR(64) NOT NULL, content_type VARCHAR(64), bytes BIGINT, \
     width INTEGER, height INTEGER, bucket VARCHAR(63), object_key VARCHAR(1024), source VARCHAR(16), \
     ingested_at TIMESTAMPTZ, expires_at BIGINT, kafka SUPER) \
     DISTSTYLE AUTO SORTKEY (ingested_at)"
        .to_owned()
}

fn check_ownership(desired: &DesiredAnalytics, observed: &ObservedAnalytics) -> Result<(), ComponentError> {
    let owner = &desired.owner;
    if let Some(cluster) = &observed.cluster {
        ownership::check(
            &cluster.tags,
            owner,
            &format!("Redshift cluster {}", desired.cluster.id),
        )?;
    }
    if let Some(role) = &observed.role {
        ownership::check(&role.tags, owner, &format!("IAM role {}", desired.role.name))?;
    }
    if let Some(group) = &observed.subnet_group {
        ownership::check(
            &group.tags,
            owner,
            &format!("Redshift subnet group {}", desired.subnet_group),
        )?;
    }
    Ok(())
}

async fn observe_subnet_group(
    aws: &AwsClients,
    name: &str,
) -> Result<Option<ObservedSubnetGroup>, ComponentError> {
    match aws
        .redshift
        .describe_cluster_subnet_groups()
        .cluster_subnet_group_name(name)
        .send()
        .await
    {
        Ok(out) => Ok(out
            .cluster_subnet_groups()
            .first()
            .map(|group| ObservedSubnetGroup {
                subnet_ids: group
                    .subnets()
                    .iter()
                    .filter_map(|s| s.subnet_identifier())
                    .map(str::to_owned)
                    .collect(),
                tags: from_sdk(group.tags()),
            })),
        Err(err) if code(&err) == Some("ClusterSubnetGroupNotFoundFault") => Ok(None),
        Err(err) => Err(classify(&format!("look up Redshift subnet group {name}"), err)),
    }
}

async fn observe_cluster(aws: &AwsClients, id: &str) -> Result<Option<ObservedCluster>, ComponentError> {
    let out = match aws
        .redshift
        .describe_clusters()
        .cluster_identifier(id)
        .send()
        .await
    {
        Ok(out) => out,
        Err(err) if code(&err) == Some("ClusterNotFound") => return Ok(None),
        Err(err) => return Err(classify(&format!("look up Redshift cluster {id}"), err)),
    };
    Ok(out.clusters().first().map(|cluster| {
        let mut tags = from_sdk(cluster.tags());
        let schema_version = tags.remove(SCHEMA_VERSION_TAG);
        let schema_statement_id = tags.remove(SCHEMA_STATEMENT_TAG);
        ObservedCluster {
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
            schema_version,
            schema_statement_id,
        }
    }))
}

/// Replaces the managed tags of a Redshift resource; with `observed` given,
/// keys no longer wanted are removed first.
async fn set_redshift_tags(
    aws: &AwsClients,
    arn: &str,
    observed: Option<&BTreeMap<String, String>>,
    tags: &BTreeMap<String, String>,
    action: &str,
) -> Result<(), ComponentError> {
    let stale = observed
        .map(|old| removed_tag_keys(old, tags))
        .unwrap_or_default();
    if !stale.is_empty() {
        aws.redshift
            .delete_tags()
            .resource_name(arn)
            .set_tag_keys(Some(stale))
            .send()
            .await
            .map_err(|err| classify(action, err))?;
    }
    aws.redshift
        .create_tags()
        .resource_name(arn)
        .set_tags(Some(to_sdk(tags)?))
        .send()
        .await
        .map(drop)
        .map_err(|err| classify(action, err))
}

fn sorted(ids: &[String]) -> Vec<&String> {
    let mut ids: Vec<&String> = ids.iter().collect();
    ids.sort();
    ids
}

fn known_after_apply(ids: &[String]) -> String {
    if ids.is_empty() {
        "(known after apply)".to_owned()
    } else {
        ids.join(",")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::engine::context_from_yaml;

    /// Pipeline media/photos with bucket photos-bucket, table photos-table and
    /// `analytics` as its `spec.analytics` (a YAML flow mapping).
    fn context(analytics: &str) -> PipelineContext {
        context_from_yaml(&format!(
            "
apiVersion: imagepipeline.io/v1alpha1
kind: ImagePipeline
metadata: {{name: photos, namespace: media}}
spec:
  region: eu-west-1
  network: {{availabilityZones: [eu-west-1a, eu-west-1b]}}
  storage: {{bucketName: photos-bucket}}
  metadata: {{tableName: photos-table}}
  analytics: {analytics}
"
        ))
    }

    fn desired_of(ctx: &PipelineContext) -> Result<DesiredAnalytics, ComponentError> {
        let network = Outputs {
            private_subnets: ["subnet-a", "subnet-b"]
                .map(|id| crate::engine::SubnetOutput {
                    id: id.into(),
                    ..Default::default()
                })
                .to_vec(),
            kafka_vpc_id: Some("vpc-kafka".into()),
            ..Outputs::default()
        };
        Analytics::desired(ctx, &network)
    }

    fn desired(analytics: &str) -> DesiredAnalytics {
        desired_of(&context(analytics)).expect("analytics of a valid spec")
    }

    const SIZED: &str = "{nodeType: ra3.4xlarge, nodes: 4, database: photos}";

    fn as_desired(desired: &DesiredAnalytics) -> ObservedAnalytics {
        ObservedAnalytics {
            subnet_group: Some(ObservedSubnetGroup {
                subnet_ids: desired.subnet_ids.clone(),
                tags: desired.tags.clone(),
            }),
            security_group: Some(GroupState {
                id: "sg-warehouse".into(),
                permissions: vec![],
                tags: desired.tags.clone(),
            }),
            role: Some(ObservedRole {
                arn: desired.role.arn.clone(),
                trust_policy: Some(desired.role.trust_policy.clone()),
                tags: desired.role.tags.clone(),
                policy: Some(desired.role.policy.clone()),
            }),
            cluster: Some(ObservedCluster {
                status: AVAILABLE.into(),
                encrypted: true,
                publicly_accessible: false,
                node_type: desired.cluster.node_type.clone(),
                nodes: desired.cluster.nodes,
                iam_roles: vec![desired.role.arn.clone()],
                endpoint: Some("warehouse.example:5439".into()),
                tags: desired.tags.clone(),
                schema_version: Some(SCHEMA_VERSION.into()),
                schema_statement_id: Some("statement-1".into()),
            }),
            schema_statement: Some(StatusString::Finished.as_str().into()),
            final_snapshot: None,
            observed_at: DELETION_TIME.parse().unwrap(),
        }
    }

    /// When the teardowns below observe; final snapshots are named after it.
    const DELETION_TIME: &str = "2026-03-04T05:06:07Z";

    #[test]
    fn disabled_analytics_builds_nothing_and_removes_what_it_built() {
        let desired = desired("{enabled: false}");
        assert!(!desired.enabled);
        assert_eq!(
            Analytics::converge(&desired, &ObservedAnalytics::default()),
            Ok(vec![])
        );
        assert_eq!(
            Analytics::readiness(&desired, &ObservedAnalytics::default()),
            Readiness::Ready
        );
        let built = as_desired(&desired);
        assert_eq!(
            Analytics::converge(&desired, &built),
            Ok(vec![AnalyticsStep::DeleteCluster { final_snapshot: None }])
        );
    }

    #[test]
    fn cluster_is_sized_as_the_spec_says_in_the_private_network() {
        let desired = desired(SIZED);
        assert!(desired.enabled);
        let cluster = &desired.cluster;
        assert_eq!(
            (
                cluster.node_type.as_str(),
                cluster.nodes,
                cluster.database.as_str()
            ),
            ("ra3.4xlarge", 4, "photos")
        );
        assert_eq!(desired.subnet_ids, ["subnet-a", "subnet-b"]);
        assert_eq!(desired.vpc_id.as_deref(), Some("vpc-kafka"));
        assert_eq!(cluster.master_user, None);
    }

    #[test]
    fn role_may_only_read_the_pipelines_bucket_and_table() {
        let role = desired("{}").role;
        let statements = role.policy["Statement"].as_array().expect("statements");
        let resources: Vec<&Value> = statements
            .iter()
            .flat_map(|s| s["Resource"].as_array().expect("a list of resources"))
            .collect();
        assert_eq!(
            resources,
            [
                "arn:aws:s3:::photos-bucket",
                "arn:aws:s3:::photos-bucket/*",
                "arn:aws:dynamodb:eu-west-1:123456789012:table/photos-table",
            ]
        );
        let actions: Vec<&str> = statements
            .iter()
            .flat_map(|s| s["Action"].as_array().expect("a list of actions"))
            .filter_map(Value::as_str)
            .collect();
        let reads = ["s3:Get", "s3:List", "dynamodb:Describe", "dynamodb:Scan"];
        assert!(
            actions
                .iter()
                .all(|a| reads.iter().any(|r| a.starts_with(r)) && !a.contains('*')),
            "{actions:?}"
        );
        assert_eq!(
            role.trust_policy["Statement"][0]["Principal"],
            json!({ "Service": "redshift.amazonaws.com" })
        );
        assert_eq!(
            role.trust_policy["Statement"][0]["Condition"],
            json!({ "StringEquals": { "aws:SourceAccount": "123456789012" } })
        );
    }

    #[test]
    fn a_master_user_secret_that_was_not_read_is_a_terminal_error_naming_the_field() {
        let secret = "{masterUserSecretRef: {name: warehouse-admin}}";
        let mut ctx = context(secret);
        let err = desired_of(&ctx).unwrap_err();
        assert!(
            err.is_terminal() && err.message.contains("spec.analytics.masterUserSecretRef"),
            "{err:?}"
        );

        let user = MasterUser {
            username: "admin".into(),
            password: "secret".into(),
        };
        ctx.master_user = Some(user.clone());
        assert_eq!(desired_of(&ctx).map(|d| d.cluster.master_user), Ok(Some(user)));

        let disabled = "{enabled: false, masterUserSecretRef: {name: warehouse-admin}}";
        assert!(desired_of(&context(disabled)).is_ok());
    }

    #[test]
    fn a_warehouse_as_desired_needs_no_steps() {
        let desired = desired(SIZED);
        assert_eq!(Analytics::converge(&desired, &as_desired(&desired)), Ok(vec![]));
    }

    #[test]
    fn each_drift_yields_only_the_step_that_repairs_it() {
        let desired = desired(SIZED);
        let drifted = |drift: fn(&mut ObservedCluster)| {
            let mut observed = as_desired(&desired);
            drift(observed.cluster.as_mut().unwrap());
            observed
        };
        let mut moved = as_desired(&desired);
        moved.subnet_group.as_mut().unwrap().subnet_ids = vec!["subnet-old".into()];
        let cases = [
            (drifted(|c| c.encrypted = false), AnalyticsStep::Encrypt),
            (
                drifted(|c| c.publicly_accessible = true),
                AnalyticsStep::MakePrivate,
            ),
            (
                drifted(|c| c.nodes = 2),
                AnalyticsStep::Resize {
                    node_type: "ra3.4xlarge".into(),
                    nodes: 2,
                },
            ),
            (drifted(|c| c.iam_roles.clear()), AnalyticsStep::AttachRole),
            (
                moved,
                AnalyticsStep::UpdateSubnetGroup {
                    observed: vec!["subnet-old".into()],
                },
            ),
        ];
        for (observed, repair) in cases {
            assert_eq!(
                Analytics::converge(&desired, &observed),
                Ok(vec![repair]),
                "{observed:?}"
            );
        }
    }

    fn retained(analytics: &str) -> DesiredAnalytics {
        let mut desired = desired(analytics);
        desired.policy = DeletionPolicy::Retain;
        desired
    }

    fn final_snapshot_id(desired: &DesiredAnalytics) -> String {
        format!("{}-final-20260304050607", desired.cluster.id)
    }

    /// The pipeline after AWS deleted the cluster and kept its final snapshot
    /// with the cluster's tags.
    fn cluster_gone_snapshot_kept(desired: &DesiredAnalytics) -> ObservedAnalytics {
        let mut observed = as_desired(desired);
        observed.cluster = None;
        observed.final_snapshot = Some(ObservedSnapshot {
            id: final_snapshot_id(desired),
            arn: format!(
                "{}{}",
                desired.cluster.snapshot_arn_prefix,
                final_snapshot_id(desired)
            ),
            tags: desired.tags.clone(),
        });
        observed
    }

    #[test]
    fn retain_deletes_the_cluster_with_a_final_snapshot_the_change_names() {
        let desired = retained("{}");
        let (steps, waiting) = Analytics::teardown(&desired, &as_desired(&desired), DeletionPolicy::Retain);
        let snapshot = final_snapshot_id(&desired);
        assert_eq!(
            (steps.as_slice(), waiting),
            (
                &[AnalyticsStep::DeleteCluster {
                    final_snapshot: Some(snapshot.clone())
                }][..],
                None
            )
        );
        // The controller's Deleted event and the CLI show the resource text.
        let change = Analytics::describe(&desired, &steps[0]);
        assert_eq!(change.action, Action::Delete);
        assert!(
            change.resource.contains(&desired.cluster.id) && change.resource.contains(&snapshot),
            "{change:?}"
        );
    }

    #[test]
    fn delete_deletes_the_cluster_without_a_final_snapshot() {
        let desired = desired("{}");
        let (steps, waiting) = Analytics::teardown(&desired, &as_desired(&desired), DeletionPolicy::Delete);
        assert_eq!(
            (steps, waiting),
            (vec![AnalyticsStep::DeleteCluster { final_snapshot: None }], None)
        );
    }

    #[test]
    fn nothing_under_the_cluster_is_touched_while_aws_deletes_it() {
        let desired = retained("{}");
        let snapshot = final_snapshot_id(&desired);
        let cases = [
            (TAKING_FINAL_SNAPSHOT, "is taking its final snapshot"),
            (DELETING, "is being deleted; its final snapshot"),
        ];
        for policy in [DeletionPolicy::Retain, DeletionPolicy::Delete] {
            for (status, says) in cases {
                let mut observed = cluster_gone_snapshot_kept(&desired);
                observed.cluster = as_desired(&desired).cluster;
                observed.cluster.as_mut().unwrap().status = status.into();
                let (steps, waiting) = Analytics::teardown(&desired, &observed, policy);
                assert_eq!(steps, [], "{policy:?} {status}");
                let waiting = waiting.unwrap_or_default();
                assert!(
                    waiting.contains(says) && waiting.contains(&snapshot),
                    "{policy:?} {status}: {waiting}"
                );
            }
        }
        // Nor is a cluster made again while the old one is still going.
        let mut deleting = as_desired(&desired);
        deleting.cluster.as_mut().unwrap().status = TAKING_FINAL_SNAPSHOT.into();
        let err = Analytics::converge(&desired, &deleting).unwrap_err();
        assert_eq!(err.reason, "ClusterDeleting");
    }

    #[test]
    fn once_the_cluster_is_gone_retain_marks_its_snapshot_and_removes_what_it_stood_on() {
        let desired = retained("{}");
        let observed = cluster_gone_snapshot_kept(&desired);
        let (steps, waiting) = Analytics::teardown(&desired, &observed, DeletionPolicy::Retain);
        assert_eq!(waiting, None);
        let mut retained_tags = desired.tags.clone();
        retained_tags.insert(crate::engine::RETAINED_TAG.into(), "true".into());
        let snapshot = final_snapshot_id(&desired);
        assert_eq!(
            steps[..3],
            [
                AnalyticsStep::SetSnapshotTags {
                    id: snapshot.clone(),
                    arn: format!(
                        "arn:aws:redshift:eu-west-1:123456789012:snapshot:{}/{snapshot}",
                        desired.cluster.id
                    ),
                    observed: desired.tags.clone(),
                    desired: retained_tags.clone(),
                },
                AnalyticsStep::DeleteSubnetGroup,
                AnalyticsStep::DeleteSecurityGroup {
                    id: "sg-warehouse".into()
                },
            ]
        );
        assert!(
            steps[3..].iter().all(|s| matches!(s, AnalyticsStep::Role(_))) && steps.len() > 3,
            "{steps:?}"
        );

        // Marked, with the rest gone: removed, and the snapshot is in the status.
        let mut done = ObservedAnalytics {
            final_snapshot: observed.final_snapshot.clone(),
            ..ObservedAnalytics::default()
        };
        done.final_snapshot.as_mut().unwrap().tags = retained_tags;
        assert_eq!(
            Analytics::teardown(&desired, &done, DeletionPolicy::Retain),
            (vec![], None)
        );
        let mut outputs = Outputs::default();
        Analytics::publish(&desired, &done, &mut outputs);
        let listed: Vec<(&str, &str)> = outputs
            .resources
            .iter()
            .map(|r| (r.type_.as_str(), r.id.as_str()))
            .collect();
        assert_eq!(listed, [("AWS::Redshift::ClusterSnapshot", snapshot.as_str())]);
    }

    #[test]
    fn delete_leaves_a_snapshot_an_earlier_retain_kept_as_it_is() {
        let desired = desired("{}");
        let observed = cluster_gone_snapshot_kept(&desired);
        let (steps, _) = Analytics::teardown(&desired, &observed, DeletionPolicy::Delete);
        assert!(
            !steps
                .iter()
                .any(|s| matches!(s, AnalyticsStep::SetSnapshotTags { .. })),
            "{steps:?}"
        );
    }
}
