//! Metadata: the DynamoDB table of image metadata, on demand, encrypted with
//! KMS, point-in-time recoverable, items expiring through TTL on `expiresAt`,
//! and a `bySha256` index for deduplication.

use aws_sdk_dynamodb::types::TableStatus;

use crate::engine::resource::{Walk, WalkMode};
use crate::engine::{ComponentError, ComponentKind, Declared, Outputs, PipelineContext};
use crate::resources::dynamodb_table::settings::{PointInTimeRecovery, TimeToLive};
use crate::resources::dynamodb_table::{Index, Table, TableState};
use crate::resources::tags_of::TagsOf;

/// Attribute and index names of the item contract (DESIGN.md, data contracts).
pub use ingest_core::contract::table::{PARTITION_KEY, SHA256_ATTRIBUTE, SHA256_INDEX, TTL_ATTRIBUTE};

pub struct Metadata;

impl Declared for Metadata {
    const KIND: ComponentKind = ComponentKind::Metadata;
    const DEPENDS_ON: &'static [ComponentKind] = &[];
    type Desired = Table;

    fn desired(ctx: &PipelineContext, _upstream: &Outputs) -> Result<Table, ComponentError> {
        Ok(Table {
            name: ctx.table_name(),
            arn: ctx.table_arn(),
            partition_key: PARTITION_KEY,
            index: Index {
                name: SHA256_INDEX,
                attribute: SHA256_ATTRIBUTE,
            },
            tags: ctx.tags(Self::KIND),
        })
    }

    async fn declare(
        walk: &mut Walk<'_>,
        table: &Table,
        outputs: &mut Outputs,
    ) -> Result<(), ComponentError> {
        let found = walk.ensure(table).await?;
        outputs.table = found.as_ref().map(|table| table.name.clone());
        // Its settings go with it, and stay with it when `Retain` keeps it.
        if walk.mode() == WalkMode::Find {
            return Ok(());
        }
        if let Some(found) = &found {
            // A new table is made with its tags; one found may have lost them.
            walk.ensure(&tags(table, found)).await?;
        }
        if takes_settings(found.as_ref()) {
            // A table a plan would create has nothing set yet.
            let found = found.unwrap_or_else(|| table.unmade());
            walk.ensure(&TimeToLive::of(&found, TTL_ATTRIBUTE)).await?;
            walk.ensure(&PointInTimeRecovery::of(&found)).await?;
        }
        Ok(())
    }
}

fn tags(table: &Table, found: &TableState) -> TagsOf<Table> {
    TagsOf {
        resource: table.clone(),
        observed: found.clone(),
    }
}

/// DynamoDB takes time to live and backup settings once the table is
/// `ACTIVE`; a plan shows them for a table it would create.
fn takes_settings(found: Option<&TableState>) -> bool {
    found.is_none_or(|table| table.is(TableStatus::Active))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::engine::resource::Resource;
    use crate::engine::{COMPONENT_TAG, OWNER_TAG, context_from_yaml};

    /// The table of pipeline media/photos, with `metadata` as its
    /// `spec.metadata` (a YAML flow mapping).
    fn desired(metadata: &str) -> Table {
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

    fn as_desired(table: &Table) -> TableState {
        TableState {
            status: TableStatus::Active.as_str().to_owned(),
            on_demand: true,
            has_index: true,
            kms_encrypted: true,
            ttl_attribute: Some(TTL_ATTRIBUTE.to_owned()),
            point_in_time_recovery: true,
            tags: table.tags.clone(),
            ..table.unmade()
        }
    }

    /// What plan shows for a table found as `found`, in the order `declare`
    /// ensures the table and its parts: the label and fields of each that
    /// differs.
    fn differences(table: &Table, found: &TableState) -> Vec<(String, Vec<String>)> {
        fn delta<R: Resource>(part: &R, observed: &R::Observed) -> (String, Vec<String>) {
            (part.label(), part.delta(observed).expect("a delta"))
        }
        let mut differences = vec![delta(table, found), delta(&tags(table, found), &found.tags)];
        if takes_settings(Some(found)) {
            differences.push(delta(&TimeToLive::of(found, TTL_ATTRIBUTE), &found.ttl_attribute));
            differences.push(delta(
                &PointInTimeRecovery::of(found),
                &found.point_in_time_recovery,
            ));
        }
        differences.retain(|(_, fields)| !fields.is_empty());
        differences
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
        let table = desired("{}");
        assert_eq!(
            table.create_fields(),
            ["key id, on demand, KMS encryption, index bySha256"]
        );
        assert!(takes_settings(None));
        let unmade = table.unmade();
        assert_eq!(
            TimeToLive::of(&unmade, TTL_ATTRIBUTE).delta(&None).unwrap(),
            ["TTL attribute: (disabled) → expiresAt"]
        );
        assert_eq!(
            PointInTimeRecovery::of(&unmade).delta(&false).unwrap(),
            ["enabled: false → true"]
        );
    }

    #[test]
    fn a_table_as_desired_needs_no_changes() {
        let table = desired("{}");
        assert_eq!(differences(&table, &as_desired(&table)), []);
    }

    #[test]
    fn each_drift_is_shown_only_by_the_part_that_repairs_it() {
        let table = desired("{}");
        let name = &table.name;
        let drifted = |drift: fn(&mut TableState)| {
            let mut found = as_desired(&table);
            drift(&mut found);
            found
        };
        let own = |field: &str| (format!("DynamoDB table {name}"), vec![field.to_owned()]);
        let part =
            |part: &str, field: &str| (format!("DynamoDB table {name} {part}"), vec![field.to_owned()]);
        let cases = [
            (
                drifted(|t| t.on_demand = false),
                own("billing mode: PROVISIONED → PAY_PER_REQUEST"),
            ),
            (
                drifted(|t| t.kms_encrypted = false),
                own("server-side encryption: AWS owned key → KMS"),
            ),
            (
                drifted(|t| t.has_index = false),
                own("global secondary index: (absent) → bySha256 on sha256"),
            ),
            (
                drifted(|t| t.ttl_attribute = None),
                part("time to live", "TTL attribute: (disabled) → expiresAt"),
            ),
            (
                drifted(|t| t.ttl_attribute = Some("ttl".into())),
                part("time to live", "TTL attribute: ttl → expiresAt"),
            ),
            (
                drifted(|t| t.point_in_time_recovery = false),
                part("point-in-time recovery", "enabled: false → true"),
            ),
            (
                drifted(|t| {
                    t.tags.insert("team".into(), "someone-else".into());
                }),
                part("tags", "tag team: someone-else → media-platform"),
            ),
        ];
        for (found, repair) in cases {
            assert_eq!(differences(&table, &found), [repair], "{found:?}");
        }
    }

    #[test]
    fn settings_of_a_table_that_is_not_active_wait_until_it_is() {
        let table = desired("{}");
        let creating = TableState {
            status: TableStatus::Creating.as_str().to_owned(),
            ttl_attribute: None,
            point_in_time_recovery: false,
            on_demand: false,
            ..as_desired(&table)
        };
        assert!(!takes_settings(Some(&creating)));
        assert_eq!(differences(&table, &creating), []);
        assert_eq!(
            table.readiness(&creating),
            crate::engine::Readiness::Waiting(format!("DynamoDB table {} is CREATING", table.name))
        );
    }

    #[test]
    fn a_table_being_deleted_is_waited_for_and_made_again_once_gone() {
        let table = desired("{}");
        let deleting = TableState {
            status: TableStatus::Deleting.as_str().to_owned(),
            ..table.unmade()
        };
        let err = table.delta(&deleting).unwrap_err();
        assert_eq!(err.reason, "TableDeleting");
        assert!(!err.is_terminal() && !err.needs_person(), "{err:?}");
        assert_eq!(
            table.going(&deleting),
            Some(format!("DynamoDB table {} is being deleted", table.name))
        );
        assert_eq!(table.going(&as_desired(&table)), None);
    }
}
