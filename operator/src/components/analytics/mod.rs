//! Analytics: a Redshift cluster for analysts, encrypted and never public, in
//! the private subnets, with a role that can read the pipeline's bucket and
//! table, and the analysis schema created through the Redshift Data API.
//! With `analytics.enabled: false` nothing exists, and what did is removed.
//! `deletionPolicy: Retain` keeps the warehouse's data as a final snapshot
//! (see `resources::final_snapshot`); the cluster and what it stands on go.

pub mod warehouse;

use ingest_core::contract::prefix;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use super::network::NetworkOutputs;
use crate::api::v1alpha1::DeletionPolicy;
use crate::engine::resource::{Ref, Resource, Walk, WalkMode};
use crate::engine::{ComponentError, ComponentKind, Declared, OWNER_TAG, Outputs, PipelineContext};
use crate::resources::final_snapshot::{self, FinalSnapshot};
use crate::resources::glue_database::GlueDatabase;
use crate::resources::glue_table::{GlueColumn, GlueTable};
use crate::resources::iam_role::{self, DesiredRole};
use crate::resources::redshift_cluster::{MASTER_USERNAME, RedshiftCluster};
use crate::resources::redshift_subnet_group::RedshiftSubnetGroup;
use crate::resources::security_group::{GroupState, SecurityGroup};
use crate::resources::tags_of::TagsOf;
use crate::resources::warehouse_check::WarehouseCheck;
use crate::resources::warehouse_schema::{SchemaRecord, WarehouseSchema};
use warehouse::WarehouseNames;

pub struct Analytics;

/// The Redshift cluster's identifier.
pub fn cluster_id(ctx: &PipelineContext) -> String {
    ctx.resource_name("warehouse", 63)
}

/// The role the cluster reads the pipeline's events with.
fn role_name(ctx: &PipelineContext) -> String {
    ctx.resource_name("redshift", 64)
}

/// The names the warehouse's statements are written with (see
/// [`warehouse::migrations`]).
pub fn warehouse_names(ctx: &PipelineContext) -> WarehouseNames {
    // Glue database names are lower case letters, digits and underscores.
    let catalog_database = ctx.resource_name("events", 255).replace('-', "_");
    let role_arn = ctx.global_arn("iam", &format!("role{}{}", iam_role::ROLE_PATH, role_name(ctx)));
    WarehouseNames::new(
        &ctx.spec.analytics.database,
        catalog_database,
        role_arn,
        &ctx.bucket_name(),
    )
}

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredAnalytics {
    pub enabled: bool,
    pub policy: DeletionPolicy,
    pub role: DesiredRole,
    pub subnet_group: RedshiftSubnetGroup,
    /// No inbound rules: brokers and clients reach the cluster only through
    /// what its VPC routes allow.
    pub security_group: SecurityGroup,
    /// Its security group is pending until the walk finds or makes it.
    pub cluster: RedshiftCluster,
    pub names: WarehouseNames,
    /// The Glue database and table Spectrum reads the events through.
    pub catalog: GlueDatabase,
    pub events_table: GlueTable,
}

impl DesiredAnalytics {
    /// The cluster as a teardown at `at` deletes it: under `Retain`, with a
    /// final snapshot named after that time.
    pub fn ending_cluster(&self, at: Timestamp) -> RedshiftCluster {
        let keep = self.policy == DeletionPolicy::Retain;
        RedshiftCluster {
            final_snapshot: keep.then(|| final_snapshot::identifier(&self.cluster.id, at)),
            ..self.cluster.clone()
        }
    }

    /// The final snapshot a teardown keeps, tagged retained, once the
    /// cluster is gone: under `Retain` only. `Delete` leaves a snapshot an
    /// earlier `Retain` kept as it is.
    pub fn kept_snapshot(&self) -> Option<FinalSnapshot> {
        (self.policy == DeletionPolicy::Retain).then(|| self.cluster.snapshots.clone())
    }

    /// The check of the cluster's views, with what its tags `record` of it.
    pub fn check(&self, record: &SchemaRecord) -> WarehouseCheck {
        let schema = self.schema(record);
        WarehouseCheck {
            version: warehouse::latest_version(&self.names),
            sql: warehouse::check(&self.names),
            record: record.checked.clone(),
            cluster_id: schema.cluster_id,
            cluster_arn: schema.cluster_arn,
            database: schema.database,
            user: schema.user,
        }
    }

    /// The schema of the cluster, with what its tags `record` of it.
    pub fn schema(&self, record: &SchemaRecord) -> WarehouseSchema {
        let cluster = &self.cluster;
        WarehouseSchema {
            cluster_id: cluster.id.clone(),
            cluster_arn: cluster.arn.clone(),
            database: cluster.database.clone(),
            user: cluster
                .master_user
                .as_ref()
                .map_or(MASTER_USERNAME, |u| u.username.as_str())
                .to_owned(),
            migrations: warehouse::migrations(&self.names),
            record: record.clone(),
        }
    }
}

/// What Redshift Spectrum needs to read the events, and nothing more: the
/// objects under `events/` (no images, no other prefix) and the Glue
/// database and table that describe them, read-only.
fn spectrum_policy(ctx: &PipelineContext, names: &WarehouseNames) -> serde_json::Value {
    let bucket_arn = ctx.bucket_arn();
    let database = &names.catalog_database;
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadEvents",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": [format!("{bucket_arn}/{}*", prefix::EVENTS)]
            },
            {
                "Sid": "ListEvents",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [bucket_arn.clone()],
                "Condition": { "StringLike": { "s3:prefix": [format!("{}*", prefix::EVENTS)] } }
            },
            {
                "Sid": "LocateBucket",
                "Effect": "Allow",
                "Action": ["s3:GetBucketLocation"],
                "Resource": [bucket_arn]
            },
            {
                "Sid": "ReadEventsTable",
                "Effect": "Allow",
                "Action": [
                    "glue:GetDatabase", "glue:GetTable", "glue:GetTables",
                    "glue:GetPartition", "glue:GetPartitions", "glue:BatchGetPartition"
                ],
                "Resource": [
                    ctx.arn("glue", "catalog"),
                    ctx.arn("glue", &format!("database/{database}")),
                    ctx.arn("glue", &format!("table/{database}/{}", warehouse::EVENTS_TABLE)),
                ]
            }
        ]
    })
}

impl Declared for Analytics {
    const KIND: ComponentKind = ComponentKind::Analytics;
    const DEPENDS_ON: &'static [ComponentKind] = &[
        ComponentKind::Network,
        ComponentKind::Storage,
        ComponentKind::Metadata,
    ];
    type Desired = DesiredAnalytics;

    fn desired(ctx: &PipelineContext, upstream: &Outputs) -> Result<DesiredAnalytics, ComponentError> {
        let spec = &ctx.spec.analytics;
        if spec.enabled && spec.master_user_secret_ref.is_some() && ctx.master_user.is_none() {
            return Err(ComponentError::terminal(
                "MasterUserSecretUnavailable",
                "spec.analytics.masterUserSecretRef names a Kubernetes Secret, which only the controller reads; \
                 apply this pipeline with the controller, or remove the field so AWS manages the password",
            ));
        }
        let names = warehouse_names(ctx);
        let role_name = role_name(ctx);
        let role_arn = names.role_arn.clone();
        let policy = spectrum_policy(ctx, &names);
        let tags = ctx.tags(Self::KIND);
        let id = cluster_id(ctx);
        let role = DesiredRole::for_service(
            role_name,
            role_arn,
            "redshift.amazonaws.com",
            &ctx.account_id,
            "read-pipeline-data",
            policy,
            tags.clone(),
        );
        let network = NetworkOutputs::from_upstream(upstream);
        let security_group = SecurityGroup {
            name: id.clone(),
            description: "ImagePipeline warehouse; no inbound rules".to_owned(),
            vpc_id: network.kafka_vpc.clone(),
            rules: vec![],
            tags: tags.clone(),
        };
        let cluster = RedshiftCluster {
            arn: ctx.arn("redshift", &format!("cluster:{id}")),
            node_type: spec.node_type.clone(),
            nodes: spec.nodes,
            database: spec.database.clone(),
            master_user: ctx.master_user.clone(),
            subnet_group: id.clone(),
            security_group: Ref::Pending(security_group.label()),
            role_name: role.name.clone(),
            role_arn: role.arn.clone(),
            tags: tags.clone(),
            snapshots: FinalSnapshot {
                cluster_id: id.clone(),
                arn_prefix: ctx.arn("redshift", &format!("snapshot:{id}/")),
                tags: tags.clone(),
            },
            final_snapshot: None,
            id: id.clone(),
        };
        let catalog = GlueDatabase {
            arn: ctx.arn("glue", &format!("database/{}", names.catalog_database)),
            name: names.catalog_database.clone(),
            description: format!(
                "ImagePipeline {}/{}: the image events Firehose writes, for Redshift Spectrum",
                ctx.owner.namespace, ctx.owner.name
            ),
            tags: tags.clone(),
        };
        let events_table = GlueTable {
            database: names.catalog_database.clone(),
            name: warehouse::EVENTS_TABLE.to_owned(),
            arn: ctx.arn(
                "glue",
                &format!("table/{}/{}", names.catalog_database, warehouse::EVENTS_TABLE),
            ),
            location: names.events_location.clone(),
            columns: warehouse::EVENT_COLUMNS
                .iter()
                .map(|c| GlueColumn::new(c.name, c.hive_type))
                .collect(),
            serde_library: warehouse::JSON_SERDE.to_owned(),
            serde_parameters: warehouse::serde_parameters(),
            description: "One row per image event: JSON lines Firehose delivers (DESIGN.md, data contracts)"
                .to_owned(),
        };
        Ok(DesiredAnalytics {
            catalog,
            events_table,
            enabled: spec.enabled,
            policy: ctx.spec.deletion_policy,
            role,
            subnet_group: RedshiftSubnetGroup {
                arn: ctx.arn("redshift", &format!("subnetgroup:{id}")),
                name: id,
                subnet_ids: network.private_subnets.iter().map(|s| s.id.clone()).collect(),
                tags,
            },
            security_group,
            cluster,
            names,
        })
    }

    async fn declare(
        walk: &mut Walk<'_>,
        desired: &DesiredAnalytics,
        outputs: &mut Outputs,
    ) -> Result<(), ComponentError> {
        if !desired.enabled && walk.mode() != WalkMode::Find {
            return Self::remove_warehouse(walk, desired).await;
        }
        walk.ensure(&desired.role).await?;
        Self::catalog(walk, desired).await?;
        walk.ensure(&desired.subnet_group).await?;
        let group = Self::security_group(walk, desired).await?;
        let security_group = Ref::to(group.as_ref(), |g| g.id.clone(), desired.security_group.label());
        if walk.mode() == WalkMode::Find {
            // Declared last, the cluster goes first: its subnet group, its
            // security group and the network's subnets cannot go while it
            // stands on them. Once it is gone, `Retain` keeps its snapshot.
            let cluster = RedshiftCluster {
                security_group,
                ..desired.ending_cluster(Timestamp::now())
            };
            if walk.ensure(&cluster).await?.is_none()
                && let Some(snapshot) = desired.kept_snapshot()
            {
                walk.ensure(&snapshot).await?;
            }
            return Ok(());
        }
        let cluster = RedshiftCluster {
            security_group,
            ..desired.cluster.clone()
        };
        let found = walk.ensure(&cluster).await?;
        if let Some(found) = &found {
            outputs.warehouse = Some(found.endpoint.clone().unwrap_or_else(|| found.id.clone()));
        }
        match found {
            // Redshift runs statements only on an available cluster.
            Some(found) if found.is_available() => {
                let schema = desired.schema(&found.schema);
                let applied = walk.ensure(&schema).await?;
                // The views are checked once the last migration is applied.
                if applied.is_some_and(|s| s.applied >= warehouse::latest_version(&desired.names)) {
                    walk.ensure(&desired.check(&found.schema)).await?;
                }
            }
            // A plan shows the migrations a new cluster will get, and the check.
            None if walk.mode() == WalkMode::Plan => {
                walk.ensure(&desired.schema(&SchemaRecord::default())).await?;
                walk.ensure(&desired.check(&SchemaRecord::default())).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

impl Analytics {
    /// The Glue database, its tags, and the events table in it. Glue tables
    /// carry no tags: the table is this pipeline's because its database is,
    /// so a teardown that finds another pipeline's database leaves its table.
    async fn catalog(walk: &mut Walk<'_>, desired: &DesiredAnalytics) -> Result<(), ComponentError> {
        let database = walk.ensure(&desired.catalog).await?;
        if let Some(found) = &database {
            if walk.mode() == WalkMode::Find
                && found.tags.get(OWNER_TAG) != desired.catalog.tags.get(OWNER_TAG)
            {
                return Ok(());
            }
            walk.ensure(&TagsOf {
                resource: desired.catalog.clone(),
                observed: found.clone(),
            })
            .await?;
        }
        walk.ensure(&desired.events_table).await?;
        Ok(())
    }

    /// Tearing down, the network (torn down after this component) has not
    /// said the Kafka VPC's id: the group is found by its owner and name.
    async fn security_group(
        walk: &mut Walk<'_>,
        desired: &DesiredAnalytics,
    ) -> Result<Option<GroupState>, ComponentError> {
        let group = &desired.security_group;
        if walk.mode() == WalkMode::Find && group.vpc_id.known().is_none() {
            return walk.retire(group, desired.policy).await;
        }
        walk.ensure(group).await
    }

    /// `enabled: false`: what was made is removed as a teardown under the
    /// pipeline's `deletionPolicy` would, the cluster first. What it stood on
    /// goes once it is gone: a later round, or pass, finds it gone.
    async fn remove_warehouse(walk: &mut Walk<'_>, desired: &DesiredAnalytics) -> Result<(), ComponentError> {
        let policy = desired.policy;
        let cluster = desired.ending_cluster(Timestamp::now());
        if walk.retire(&cluster, policy).await?.is_some() {
            return Ok(());
        }
        if let Some(snapshot) = desired.kept_snapshot() {
            walk.retire(&snapshot, policy).await?;
        }
        walk.retire(&desired.security_group, policy).await?;
        walk.retire(&desired.subnet_group, policy).await?;
        walk.retire(&desired.events_table, policy).await?;
        walk.retire(&desired.catalog, policy).await?;
        walk.retire(&desired.role, policy).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
