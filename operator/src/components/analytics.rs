//! Analytics: a Redshift cluster for analysts, encrypted and never public, in
//! the private subnets, with a role that can read the pipeline's bucket and
//! table, and the analysis schema created through the Redshift Data API.
//! With `analytics.enabled: false` nothing exists, and what did is removed.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, ResourceType};
use aws_sdk_redshift::types::Tag;
use aws_sdk_redshiftdata::types::StatusString;
use serde_json::json;

use super::iam_role::{self, DesiredRole, ObservedRole, RoleStep};
use super::ownership;
use super::sdk::{ec2_tags, tag_specification};
use crate::api::v1alpha1::DeletionPolicy;
use crate::aws::AwsClients;
use crate::aws::errors::{classify, code};
use crate::engine::{
    Action, Change, Component, ComponentError, ComponentKind, MasterUser, OWNER_TAG, Outputs,
    PipelineContext, Readiness, removed_tag_keys, tag_changes,
};

/// Cluster tags the operator keeps its own progress in; not user-visible
/// configuration, so they are left out of tag drift.
const SCHEMA_VERSION_TAG: &str = "imagepipeline.io/schema-version";
const SCHEMA_STATEMENT_TAG: &str = "imagepipeline.io/schema-statement";
const SCHEMA_VERSION: &str = "1";
const MASTER_USERNAME: &str = "imagepipeline_admin";
const AVAILABLE: &str = "available";
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

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredCluster {
    pub id: String,
    pub arn: String,
    pub node_type: String,
    pub nodes: i32,
    pub database: String,
    pub master_user: Option<MasterUser>,
    pub schema_sql: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedAnalytics {
    pub subnet_group: Option<ObservedSubnetGroup>,
    pub security_group: Option<ObservedSecurityGroup>,
    pub role: Option<ObservedRole>,
    pub cluster: Option<ObservedCluster>,
    /// Status of the schema statement recorded on the cluster, if one runs.
    pub schema_statement: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ObservedSubnetGroup {
    pub subnet_ids: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ObservedSecurityGroup {
    pub id: String,
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
    DeleteCluster,
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
            security_group: observe_security_group(aws, desired).await?,
            role: iam_role::observe(aws, &desired.role).await?,
            cluster: observe_cluster(aws, &desired.cluster.id).await?,
            schema_statement: None,
        };
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
        if cluster.status == DELETING {
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
        if let Some(cluster) = observed.cluster.as_ref().filter(|c| mine(&c.tags)) {
            match policy {
                DeletionPolicy::Delete if cluster.status == DELETING => {
                    return (
                        vec![],
                        Some(format!(
                            "Redshift cluster {} is being deleted",
                            desired.cluster.id
                        )),
                    );
                }
                DeletionPolicy::Delete => return (vec![AnalyticsStep::DeleteCluster], None),
                DeletionPolicy::Retain => {
                    if let Some(retained) = ownership::missing_retained_tags(&cluster.tags, &desired.tags) {
                        return (
                            vec![AnalyticsStep::SetClusterTags {
                                observed: cluster.tags.clone(),
                                desired: retained,
                            }],
                            None,
                        );
                    }
                }
            }
        }
        let mut steps = Vec::new();
        // A retained cluster keeps running without its subnet group in the
        // emulator; on AWS the subnets under it cannot be deleted, which the
        // network issue's deletion waits must report.
        if observed.subnet_group.as_ref().is_some_and(|g| mine(&g.tags)) {
            steps.push(AnalyticsStep::DeleteSubnetGroup);
        }
        // A retained cluster keeps its security group, which AWS would not
        // delete while the cluster uses it.
        let cluster_retained =
            policy == DeletionPolicy::Retain && observed.cluster.as_ref().is_some_and(|c| mine(&c.tags));
        if let Some(group) = observed
            .security_group
            .as_ref()
            .filter(|g| mine(&g.tags) && !cluster_retained)
        {
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
                    .set_tags(Some(redshift_tags(&desired.tags)))
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
                let Some(vpc_id) = &desired.vpc_id else {
                    return Err(ComponentError::retryable(
                        "WaitingForNetwork",
                        "the private network has no VPC yet",
                    ));
                };
                let out = aws
                    .ec2
                    .create_security_group()
                    .group_name(&desired.security_group)
                    .description("ImagePipeline warehouse; no inbound rules")
                    .vpc_id(vpc_id)
                    .tag_specifications(tag_specification(ResourceType::SecurityGroup, &desired.tags))
                    .send()
                    .await
                    .map_err(|err| classify(&action, err))?;
                observed.security_group = Some(ObservedSecurityGroup {
                    id: out.group_id().unwrap_or_default().to_owned(),
                    tags: desired.tags.clone(),
                });
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
                    .set_tags(Some(redshift_tags(&desired.tags)));
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
            AnalyticsStep::DeleteCluster => {
                // Delete means delete: Retain is how a user keeps the data.
                match redshift
                    .delete_cluster()
                    .cluster_identifier(cluster_id)
                    .skip_final_cluster_snapshot(true)
                    .send()
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(err) if code(&err) == Some("ClusterNotFound") => Ok(()),
                    Err(err) => Err(classify(&action, err)),
                }
            }
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
            AnalyticsStep::DeleteSecurityGroup { id } => {
                match aws.ec2.delete_security_group().group_id(id).send().await {
                    Ok(_) => Ok(()),
                    Err(err) if code(&err) == Some("InvalidGroup.NotFound") => Ok(()),
                    Err(err) => Err(classify(&action, err)),
                }
            }
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
            AnalyticsStep::DeleteCluster => {
                Change::new(Action::Delete, cluster).note("without a final snapshot")
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
                tags: redshift_tag_map(group.tags()),
            })),
        Err(err) if code(&err) == Some("ClusterSubnetGroupNotFoundFault") => Ok(None),
        Err(err) => Err(classify(&format!("look up Redshift subnet group {name}"), err)),
    }
}

async fn observe_security_group(
    aws: &AwsClients,
    desired: &DesiredAnalytics,
) -> Result<Option<ObservedSecurityGroup>, ComponentError> {
    // Found by name and owner, not by VPC: teardown runs before the network
    // component has told anyone the VPC's id.
    let out = aws
        .ec2
        .describe_security_groups()
        .filters(
            Filter::builder()
                .name(format!("tag:{OWNER_TAG}"))
                .values(&desired.owner)
                .build(),
        )
        .filters(
            Filter::builder()
                .name("group-name")
                .values(&desired.security_group)
                .build(),
        )
        .send()
        .await
        .map_err(|err| classify(&format!("look up security group {}", desired.security_group), err))?;
    Ok(out.security_groups().first().map(|group| ObservedSecurityGroup {
        id: group.group_id().unwrap_or_default().to_owned(),
        tags: ec2_tags(group.tags()),
    }))
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
        let mut tags = redshift_tag_map(cluster.tags());
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
        .set_tags(Some(redshift_tags(tags)))
        .send()
        .await
        .map(drop)
        .map_err(|err| classify(action, err))
}

fn redshift_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

fn redshift_tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_owned(),
                t.value().unwrap_or_default().to_owned(),
            )
        })
        .collect()
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
            security_group: Some(ObservedSecurityGroup {
                id: "sg-warehouse".into(),
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
        }
    }

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
            Ok(vec![AnalyticsStep::DeleteCluster])
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
}
