//! Metadata: the DynamoDB table of image metadata, on demand, encrypted with
//! KMS, point-in-time recoverable, items expiring through TTL on `expiresAt`,
//! and a `bySha256` index for deduplication.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex,
    GlobalSecondaryIndexUpdate, KeySchemaElement, KeyType, PointInTimeRecoverySpecification,
    PointInTimeRecoveryStatus, Projection, ProjectionType, ScalarAttributeType, SseSpecification, SseStatus,
    SseType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};

use super::{built, ownership};
use crate::api::v1alpha1::DeletionPolicy;
use crate::aws::AwsClients;
use crate::aws::errors::{classify, code};
use crate::engine::{
    Action, Change, Component, ComponentError, ComponentKind, Outputs, PipelineContext, Readiness,
    removed_tag_keys, tag_changes,
};
use crate::resources::tags::{from_sdk, to_sdk};

/// Attribute and index names of the item contract (DESIGN.md, data contracts).
pub use ingest_core::contract::table::{PARTITION_KEY, SHA256_ATTRIBUTE, SHA256_INDEX, TTL_ATTRIBUTE};

pub struct Metadata;

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredTable {
    pub name: String,
    pub arn: String,
    pub owner: String,
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedTable {
    pub table: Option<TableState>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct TableState {
    pub arn: String,
    /// `CREATING`, `ACTIVE`, `UPDATING`, `DELETING`, …
    pub status: String,
    pub on_demand: bool,
    pub has_sha256_index: bool,
    pub kms_encrypted: bool,
    pub ttl_attribute: Option<String>,
    pub point_in_time_recovery: bool,
    pub tags: BTreeMap<String, String>,
}

impl TableState {
    fn is(&self, status: TableStatus) -> bool {
        self.status == status.as_str()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum MetadataStep {
    CreateTable,
    SwitchToOnDemand,
    AddSha256Index,
    EnableKmsEncryption,
    EnableTtl {
        observed: Option<String>,
    },
    EnablePointInTimeRecovery,
    SetTags {
        observed: BTreeMap<String, String>,
        desired: BTreeMap<String, String>,
    },
    DeleteTable,
}

impl Component for Metadata {
    const KIND: ComponentKind = ComponentKind::Metadata;
    const DEPENDS_ON: &'static [ComponentKind] = &[];
    type Desired = DesiredTable;
    type Observed = ObservedTable;
    type Step = MetadataStep;

    fn desired(ctx: &PipelineContext, _upstream: &Outputs) -> Result<DesiredTable, ComponentError> {
        Ok(DesiredTable {
            name: ctx.table_name(),
            arn: ctx.table_arn(),
            owner: ctx.owner.tag_value(),
            tags: ctx.tags(Self::KIND),
        })
    }

    async fn observe(aws: &AwsClients, desired: &DesiredTable) -> Result<ObservedTable, ComponentError> {
        let db = &aws.dynamodb;
        let name = desired.name.as_str();
        let table = match db.describe_table().table_name(name).send().await {
            Ok(out) => out.table,
            Err(err) if code(&err) == Some("ResourceNotFoundException") => None,
            Err(err) => return Err(classify(&format!("look up DynamoDB table {name}"), err)),
        };
        let Some(table) = table else {
            return Ok(ObservedTable::default());
        };
        let mut state = TableState {
            arn: table.table_arn().unwrap_or(&desired.arn).to_owned(),
            status: table
                .table_status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            on_demand: table
                .billing_mode_summary()
                .and_then(|b| b.billing_mode())
                .is_some_and(|mode| mode == &BillingMode::PayPerRequest),
            has_sha256_index: table
                .global_secondary_indexes()
                .iter()
                .any(|i| i.index_name() == Some(SHA256_INDEX)),
            kms_encrypted: table
                .sse_description()
                .and_then(|sse| sse.status())
                .is_some_and(|s| matches!(s, SseStatus::Enabled | SseStatus::Enabling | SseStatus::Updating)),
            ..TableState::default()
        };
        if state.is(TableStatus::Deleting) {
            return Ok(ObservedTable { table: Some(state) });
        }
        let tags = db
            .list_tags_of_resource()
            .resource_arn(&state.arn)
            .send()
            .await
            .map_err(|err| classify(&format!("read tags of DynamoDB table {name}"), err))?;
        state.tags = from_sdk(tags.tags());
        let ttl = db
            .describe_time_to_live()
            .table_name(name)
            .send()
            .await
            .map_err(|err| classify(&format!("read TTL of DynamoDB table {name}"), err))?;
        state.ttl_attribute = ttl.time_to_live_description().and_then(|d| {
            let on = matches!(
                d.time_to_live_status(),
                Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
            );
            on.then(|| d.attribute_name().unwrap_or_default().to_owned())
        });
        let backups = db
            .describe_continuous_backups()
            .table_name(name)
            .send()
            .await
            .map_err(|err| classify(&format!("read backups of DynamoDB table {name}"), err))?;
        state.point_in_time_recovery = backups
            .continuous_backups_description()
            .and_then(|d| d.point_in_time_recovery_description())
            .and_then(|p| p.point_in_time_recovery_status())
            .is_some_and(|s| s == &PointInTimeRecoveryStatus::Enabled);
        Ok(ObservedTable { table: Some(state) })
    }

    fn converge(
        desired: &DesiredTable,
        observed: &ObservedTable,
    ) -> Result<Vec<MetadataStep>, ComponentError> {
        let Some(table) = &observed.table else {
            return Ok(vec![
                MetadataStep::CreateTable,
                MetadataStep::EnableTtl { observed: None },
                MetadataStep::EnablePointInTimeRecovery,
            ]);
        };
        ownership::check(
            &table.tags,
            &desired.owner,
            &format!("DynamoDB table {}", desired.name),
        )?;
        if table.is(TableStatus::Deleting) {
            return Err(ComponentError::retryable(
                "TableDeleting",
                format!(
                    "DynamoDB table {} is being deleted; it is made again once it is gone",
                    desired.name
                ),
            ));
        }
        let mut steps = Vec::new();
        if table.tags != desired.tags {
            steps.push(MetadataStep::SetTags {
                observed: table.tags.clone(),
                desired: desired.tags.clone(),
            });
        }
        // DynamoDB refuses settings changes while the table is not ACTIVE.
        if !table.is(TableStatus::Active) {
            return Ok(steps);
        }
        if !table.on_demand {
            steps.push(MetadataStep::SwitchToOnDemand);
        }
        if !table.kms_encrypted {
            steps.push(MetadataStep::EnableKmsEncryption);
        }
        if !table.has_sha256_index {
            steps.push(MetadataStep::AddSha256Index);
        }
        if table.ttl_attribute.as_deref() != Some(TTL_ATTRIBUTE) {
            steps.push(MetadataStep::EnableTtl {
                observed: table.ttl_attribute.clone(),
            });
        }
        if !table.point_in_time_recovery {
            steps.push(MetadataStep::EnablePointInTimeRecovery);
        }
        Ok(steps)
    }

    fn teardown(
        desired: &DesiredTable,
        observed: &ObservedTable,
        policy: DeletionPolicy,
    ) -> (Vec<MetadataStep>, Option<String>) {
        let Some(table) = &observed.table else {
            return (vec![], None);
        };
        if table.is(TableStatus::Deleting) {
            return (
                vec![],
                Some(format!("DynamoDB table {} is being deleted", desired.name)),
            );
        }
        if !ownership::is_ours(&table.tags, &desired.owner) && !table.tags.is_empty() {
            return (vec![], None);
        }
        match policy {
            DeletionPolicy::Delete => (vec![MetadataStep::DeleteTable], None),
            DeletionPolicy::Retain => (
                ownership::missing_retained_tags(&table.tags, &desired.tags)
                    .map(|retained| MetadataStep::SetTags {
                        observed: table.tags.clone(),
                        desired: retained,
                    })
                    .into_iter()
                    .collect(),
                None,
            ),
        }
    }

    async fn execute(
        aws: &AwsClients,
        desired: &DesiredTable,
        observed: &mut ObservedTable,
        step: &MetadataStep,
    ) -> Result<(), ComponentError> {
        let db = &aws.dynamodb;
        let name = desired.name.as_str();
        let action = Self::describe(desired, step).resource;
        let arn = observed
            .table
            .as_ref()
            .map(|t| t.arn.clone())
            .unwrap_or_else(|| desired.arn.clone());
        // A table being created accepts no TTL or backup settings yet; the
        // next pass sets them.
        let table_being_created = observed
            .table
            .as_ref()
            .is_some_and(|t| !t.is(TableStatus::Active));
        match step {
            MetadataStep::CreateTable => {
                let tags = to_sdk(&desired.tags)?;
                let result = db
                    .create_table()
                    .table_name(name)
                    .attribute_definitions(string_attribute(PARTITION_KEY)?)
                    .attribute_definitions(string_attribute(SHA256_ATTRIBUTE)?)
                    .key_schema(hash_key(PARTITION_KEY)?)
                    .billing_mode(BillingMode::PayPerRequest)
                    .global_secondary_indexes(built(
                        GlobalSecondaryIndex::builder()
                            .index_name(SHA256_INDEX)
                            .key_schema(hash_key(SHA256_ATTRIBUTE)?)
                            .projection(all_attributes())
                            .build(),
                    )?)
                    .sse_specification(kms_encryption())
                    .set_tags(Some(tags))
                    .send()
                    .await;
                match result {
                    Ok(out) => {
                        let status = out.table_description().and_then(|t| t.table_status()).cloned();
                        observed.table = Some(TableState {
                            arn,
                            status: status.unwrap_or(TableStatus::Creating).as_str().to_owned(),
                            ..TableState::default()
                        });
                        Ok(())
                    }
                    // Made by an earlier pass that crashed before it saw the answer.
                    Err(err) if code(&err) == Some("ResourceInUseException") => Ok(()),
                    Err(err) => Err(classify(&action, err)),
                }
            }
            MetadataStep::SwitchToOnDemand => db
                .update_table()
                .table_name(name)
                .billing_mode(BillingMode::PayPerRequest)
                .send()
                .await
                .map(drop)
                .map_err(|err| classify(&action, err)),
            MetadataStep::EnableKmsEncryption => db
                .update_table()
                .table_name(name)
                .sse_specification(kms_encryption())
                .send()
                .await
                .map(drop)
                .map_err(|err| classify(&action, err)),
            MetadataStep::AddSha256Index => db
                .update_table()
                .table_name(name)
                .attribute_definitions(string_attribute(SHA256_ATTRIBUTE)?)
                .global_secondary_index_updates(
                    GlobalSecondaryIndexUpdate::builder()
                        .create(built(
                            CreateGlobalSecondaryIndexAction::builder()
                                .index_name(SHA256_INDEX)
                                .key_schema(hash_key(SHA256_ATTRIBUTE)?)
                                .projection(all_attributes())
                                .build(),
                        )?)
                        .build(),
                )
                .send()
                .await
                .map(drop)
                .map_err(|err| classify(&action, err)),
            MetadataStep::EnableTtl { .. } => {
                if table_being_created {
                    return Ok(());
                }
                db.update_time_to_live()
                    .table_name(name)
                    .time_to_live_specification(built(
                        TimeToLiveSpecification::builder()
                            .enabled(true)
                            .attribute_name(TTL_ATTRIBUTE)
                            .build(),
                    )?)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|err| classify(&action, err))
            }
            MetadataStep::EnablePointInTimeRecovery => {
                if table_being_created {
                    return Ok(());
                }
                db.update_continuous_backups()
                    .table_name(name)
                    .point_in_time_recovery_specification(built(
                        PointInTimeRecoverySpecification::builder()
                            .point_in_time_recovery_enabled(true)
                            .build(),
                    )?)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|err| classify(&action, err))
            }
            MetadataStep::SetTags {
                observed: old,
                desired: tags,
            } => {
                let stale = removed_tag_keys(old, tags);
                if !stale.is_empty() {
                    db.untag_resource()
                        .resource_arn(&arn)
                        .set_tag_keys(Some(stale))
                        .send()
                        .await
                        .map_err(|err| classify(&action, err))?;
                }
                let tags = to_sdk(tags)?;
                db.tag_resource()
                    .resource_arn(&arn)
                    .set_tags(Some(tags))
                    .send()
                    .await
                    .map(drop)
                    .map_err(|err| classify(&action, err))
            }
            MetadataStep::DeleteTable => match db.delete_table().table_name(name).send().await {
                Ok(_) => Ok(()),
                Err(err) if code(&err) == Some("ResourceNotFoundException") => Ok(()),
                Err(err) => Err(classify(&action, err)),
            },
        }
    }

    fn describe(desired: &DesiredTable, step: &MetadataStep) -> Change {
        let mut change = step.change();
        let what = if change.resource.is_empty() {
            String::new()
        } else {
            format!(" {}", change.resource)
        };
        change.resource = format!("DynamoDB table {}{what}", desired.name);
        change
    }

    fn readiness(desired: &DesiredTable, observed: &ObservedTable) -> Readiness {
        let status = observed.table.as_ref().map(|t| t.status.as_str());
        Readiness::of(
            &format!("DynamoDB table {}", desired.name),
            status,
            TableStatus::Active.as_str(),
        )
    }

    fn publish(desired: &DesiredTable, observed: &ObservedTable, outputs: &mut Outputs) {
        if let Some(table) = &observed.table {
            outputs.table = Some(desired.name.clone());
            outputs.resource(
                Self::KIND,
                "AWS::DynamoDB::Table",
                &desired.name,
                Some(table.arn.clone()),
            );
        }
    }
}

impl MetadataStep {
    fn change(&self) -> Change {
        match self {
            MetadataStep::CreateTable => Change::new(Action::Create, "").note(format!(
                "key {PARTITION_KEY}, on demand, KMS encryption, index {SHA256_INDEX}"
            )),
            MetadataStep::SwitchToOnDemand => {
                Change::new(Action::Update, "billing mode").field("mode", "PROVISIONED", "PAY_PER_REQUEST")
            }
            MetadataStep::EnableKmsEncryption => Change::new(Action::Update, "encryption").field(
                "server-side encryption",
                "AWS owned key",
                "KMS",
            ),
            MetadataStep::AddSha256Index => Change::new(Action::Update, format!("index {SHA256_INDEX}"))
                .field(
                    "global secondary index",
                    "(absent)",
                    format!("{SHA256_INDEX} on {SHA256_ATTRIBUTE}"),
                ),
            MetadataStep::EnableTtl { observed } => Change::new(Action::Update, "time to live").field(
                "TTL attribute",
                observed.as_deref().unwrap_or("(disabled)"),
                TTL_ATTRIBUTE,
            ),
            MetadataStep::EnablePointInTimeRecovery => {
                Change::new(Action::Update, "point-in-time recovery").field("enabled", false, true)
            }
            MetadataStep::SetTags { observed, desired } => {
                let mut change = Change::new(Action::Update, "tags");
                change.fields = tag_changes(observed, desired);
                change
            }
            MetadataStep::DeleteTable => Change::new(Action::Delete, ""),
        }
    }
}

fn string_attribute(name: &str) -> Result<AttributeDefinition, ComponentError> {
    built(
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build(),
    )
}

fn hash_key(name: &str) -> Result<KeySchemaElement, ComponentError> {
    built(
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(KeyType::Hash)
            .build(),
    )
}

fn all_attributes() -> Projection {
    Projection::builder().projection_type(ProjectionType::All).build()
}

fn kms_encryption() -> SseSpecification {
    SseSpecification::builder()
        .enabled(true)
        .sse_type(SseType::Kms)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{COMPONENT_TAG, OWNER_TAG, context_from_yaml};

    /// The table of pipeline media/photos, with `metadata` as its
    /// `spec.metadata` (a YAML flow mapping).
    fn desired(metadata: &str) -> DesiredTable {
        let ctx = context_from_yaml(&format!(
            "
apiVersion: imagepipeline.io/v1alpha1
kind: ImagePipeline
metadata: {{name: photos, namespace: media}}
spec:
  region: eu-west-1
  tags: {{team: media-platform}}
  network: {{availabilityZones: [eu-west-1a, eu-west-1b]}}
  metadata: {metadata}
"
        ));
        Metadata::desired(&ctx, &Outputs::default()).expect("metadata of a valid spec")
    }

    fn as_desired(desired: &DesiredTable) -> TableState {
        TableState {
            arn: desired.arn.clone(),
            status: TableStatus::Active.as_str().to_owned(),
            on_demand: true,
            has_sha256_index: true,
            kms_encrypted: true,
            ttl_attribute: Some(TTL_ATTRIBUTE.to_owned()),
            point_in_time_recovery: true,
            tags: desired.tags.clone(),
        }
    }

    fn converge(desired: &DesiredTable, table: TableState) -> Result<Vec<MetadataStep>, ComponentError> {
        Metadata::converge(desired, &ObservedTable { table: Some(table) })
    }

    #[test]
    fn table_is_named_by_the_spec_or_else_after_namespace_and_name() {
        let named = desired("{tableName: media-photos}");
        assert_eq!(named.name, "media-photos");
        assert_eq!(
            named.arn,
            "arn:aws:dynamodb:eu-west-1:123456789012:table/media-photos"
        );

        let generated = desired("{}").name;
        let hash = generated
            .strip_prefix("ipl-media-photos-images-")
            .unwrap_or_else(|| panic!("{generated}"));
        assert!(
            hash.len() == 8 && hash.chars().all(|c| c.is_ascii_hexdigit()),
            "{generated}"
        );
    }

    #[test]
    fn tags_are_the_users_plus_owner_and_component() {
        assert_eq!(
            desired("{}").tags,
            BTreeMap::from([
                ("team".to_owned(), "media-platform".to_owned()),
                (OWNER_TAG.to_owned(), "media/photos".to_owned()),
                (COMPONENT_TAG.to_owned(), "metadata".to_owned()),
            ])
        );
    }

    #[test]
    fn a_missing_table_is_created_then_given_ttl_and_point_in_time_recovery() {
        let steps = Metadata::converge(&desired("{}"), &ObservedTable::default());
        assert_eq!(
            steps,
            Ok(vec![
                MetadataStep::CreateTable,
                MetadataStep::EnableTtl { observed: None },
                MetadataStep::EnablePointInTimeRecovery,
            ])
        );
    }

    #[test]
    fn a_table_as_desired_needs_no_steps() {
        let desired = desired("{}");
        assert_eq!(converge(&desired, as_desired(&desired)), Ok(vec![]));
    }

    #[test]
    fn each_drift_yields_only_the_step_that_repairs_it() {
        let desired = desired("{}");
        let drifted = |drift: fn(&mut TableState)| {
            let mut table = as_desired(&desired);
            drift(&mut table);
            table
        };
        let cases = [
            (drifted(|t| t.on_demand = false), MetadataStep::SwitchToOnDemand),
            (
                drifted(|t| t.kms_encrypted = false),
                MetadataStep::EnableKmsEncryption,
            ),
            (
                drifted(|t| t.has_sha256_index = false),
                MetadataStep::AddSha256Index,
            ),
            (
                drifted(|t| t.ttl_attribute = None),
                MetadataStep::EnableTtl { observed: None },
            ),
            (
                drifted(|t| t.ttl_attribute = Some("ttl".into())),
                MetadataStep::EnableTtl {
                    observed: Some("ttl".into()),
                },
            ),
            (
                drifted(|t| t.point_in_time_recovery = false),
                MetadataStep::EnablePointInTimeRecovery,
            ),
        ];
        let retagged = drifted(|t| {
            t.tags.insert("team".into(), "someone-else".into());
        });
        let retag = MetadataStep::SetTags {
            observed: retagged.tags.clone(),
            desired: desired.tags.clone(),
        };
        for (table, repair) in cases.into_iter().chain([(retagged, retag)]) {
            assert_eq!(converge(&desired, table.clone()), Ok(vec![repair]), "{table:?}");
        }
    }

    #[test]
    fn settings_of_a_table_that_is_not_active_wait_until_it_is() {
        let desired = desired("{}");
        let creating = TableState {
            status: TableStatus::Creating.as_str().to_owned(),
            ttl_attribute: None,
            point_in_time_recovery: false,
            ..as_desired(&desired)
        };
        assert_eq!(converge(&desired, creating), Ok(vec![]));
    }
}
