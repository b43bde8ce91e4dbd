use super::*;
use crate::components::analytics::warehouse::{WarehouseNames, migrations};

fn schema(record: SchemaRecord) -> WarehouseSchema {
    let names = WarehouseNames::new(
        "images",
        "ipl_media_photos_events_1a2b3c4d".into(),
        "arn:aws:iam::123456789012:role/imagepipeline/redshift".into(),
        "photos-bucket",
    );
    WarehouseSchema {
        cluster_id: "warehouse".into(),
        cluster_arn: "arn:aws:redshift:eu-west-1:123456789012:cluster:warehouse".into(),
        database: "images".into(),
        user: "imagepipeline_admin".into(),
        migrations: migrations(&names),
        record,
    }
}

fn state(applied: u32, in_flight: Option<(u32, StatementState)>) -> SchemaState {
    SchemaState {
        applied,
        in_flight: in_flight.map(|(version, state)| InFlight {
            version,
            statement: format!("statement-{version}"),
            state,
        }),
    }
}

#[test]
fn the_record_is_taken_out_of_the_cluster_tags() {
    let mut tags = Tags::from([
        ("team".to_owned(), "media".to_owned()),
        (SCHEMA_VERSION_TAG.to_owned(), "3".to_owned()),
        (SCHEMA_STATEMENT_TAG.to_owned(), "4:statement-4".to_owned()),
    ]);
    let record = SchemaRecord::take_from(&mut tags);
    assert_eq!(
        (record.applied(), record.submitted()),
        (3, Some((4, "statement-4")))
    );
    assert_eq!(tags, Tags::from([("team".to_owned(), "media".to_owned())]));
}

#[test]
fn a_cluster_made_before_migrations_were_numbered_is_at_version_1() {
    // Version 1 recorded its statement id alone.
    let record = SchemaRecord {
        version: Some("1".into()),
        statement: Some("0f3c-legacy".into()),
        checked: None,
    };
    assert_eq!(
        (record.applied(), record.submitted()),
        (1, Some((1, "0f3c-legacy")))
    );
    let schema = schema(record);
    assert_eq!(
        schema.delta(&state(1, None)),
        Ok(vec![format!("apply migrations 2–{}", schema.latest())])
    );
}

#[test]
fn plan_names_the_migrations_left_to_apply() {
    let schema = schema(SchemaRecord::default());
    let latest = schema.latest();
    assert_eq!(latest, 18);
    assert_eq!(
        schema.create_fields(),
        ["apply migrations 1–18, through the Redshift Data API"]
    );
    assert_eq!(
        schema.delta(&state(16, None)),
        Ok(vec!["apply migrations 17–18".to_owned()])
    );
    assert_eq!(
        schema.delta(&state(17, None)),
        Ok(vec!["apply migration 18".to_owned()])
    );
    assert_eq!(
        schema.delta(&state(3, Some((4, StatementState::Running)))),
        Ok(vec!["apply migrations 4–18 (migration 4 running)".to_owned()])
    );
    assert_eq!(
        schema.delta(&state(3, Some((4, StatementState::Finished)))),
        Ok(vec!["apply migrations 4–18".to_owned()])
    );
    // Nothing to change: every migration applied, or the last one running.
    assert_eq!(schema.delta(&state(18, None)), Ok(vec![]));
    assert_eq!(
        schema.delta(&state(17, Some((18, StatementState::Running)))),
        Ok(vec![])
    );
}

#[test]
fn the_schema_is_ready_only_once_the_last_migration_is_applied() {
    let schema = schema(SchemaRecord::default());
    assert_eq!(schema.readiness(&state(18, None)), Readiness::Ready);
    let Readiness::Waiting(why) = schema.readiness(&state(4, Some((5, StatementState::Running)))) else {
        panic!("a schema half made is not ready");
    };
    assert_eq!(
        why,
        "the warehouse schema is at version 4 of 18: migration 5 \
         (create the view events: one row per image id, within retention)"
    );
}

#[test]
fn a_failed_migration_is_a_condition_naming_the_statement_and_redshifts_error() {
    let schema = schema(SchemaRecord::default());
    let error = "ERROR: permission denied for schema images_events";
    let failed = state(4, Some((5, StatementState::Failed(error.into()))));
    assert_eq!(
        schema.delta(&failed),
        Ok(vec![format!(
            "migration 5 failed ({error}): apply migrations 5–18"
        )])
    );
    let condition = schema.failure(5, "statement-5", error);
    assert_eq!(condition.reason, "WarehouseMigrationFailed");
    assert!(
        !condition.is_terminal(),
        "a fixed grant or role lets the next attempt pass"
    );
    for part in [
        "warehouse migration 5 (create the view events",
        error,
        "statement-5",
        "CREATE OR REPLACE VIEW \"images\".events AS SELECT",
    ] {
        assert!(
            condition.message.contains(part),
            "{part} in {}",
            condition.message
        );
    }
}

#[test]
fn a_long_statement_is_abbreviated_on_a_character_boundary() {
    let text = "é".repeat(200);
    let shown = abbreviated(&text);
    assert_eq!(shown.chars().count(), 121);
    assert!(shown.ends_with('…'));
    assert_eq!(abbreviated("DROP TABLE t"), "DROP TABLE t");
}

#[test]
fn a_reported_failure_leaves_nothing_in_flight_so_the_next_attempt_submits_again() {
    let record = SchemaRecord {
        version: Some("2".into()),
        statement: Some(format!("3:statement-3{FAILED_SUFFIX}")),
        checked: None,
    };
    assert_eq!((record.applied(), record.submitted()), (2, None));
}
