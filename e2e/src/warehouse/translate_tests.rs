//! One test per rewrite of the table in `translate.rs`, and the refusals.

use super::*;
use crate::warehouse::script::EventColumn;

const NOW: i64 = 1_796_000_000;

fn table() -> EventsTable {
    let column = |name: &str, hive_type: &str| EventColumn {
        name: name.to_owned(),
        hive_type: hive_type.to_owned(),
        json_key: name.to_owned(),
    };
    EventsTable {
        name: "image_events".to_owned(),
        columns: vec![
            column("id", "string"),
            column("ingested_at", "string"),
            column("expires_at", "bigint"),
            column("kafka", "struct<topic:string,partition:int,offset:bigint>"),
        ],
    }
}

fn translate(statement: &str) -> Result<Translated, WarehouseError> {
    Translator::new(&table(), NOW).translate(statement)
}

/// The SQLite text of a view selecting `select` from the events table.
fn select(select: &str) -> String {
    let statement = format!(
        "CREATE OR REPLACE VIEW \"images\".v AS SELECT {select} FROM \"images_events\".image_events AS e \
         WITH NO SCHEMA BINDING"
    );
    match translate(&statement).unwrap() {
        Translated::View { name, sql } => {
            assert_eq!(name, "v");
            let prefix = "CREATE VIEW v AS SELECT ";
            let suffix = " FROM image_events AS e";
            sql.strip_prefix(prefix)
                .and_then(|s| s.strip_suffix(suffix))
                .unwrap_or_else(|| panic!("not `{prefix}… {suffix}`: {sql}"))
                .to_owned()
        }
        other => panic!("{other:?}"),
    }
}

fn refused(statement: &str) -> String {
    match translate(statement) {
        Err(WarehouseError::Untranslatable { construct, .. }) => construct,
        other => panic!("{statement}: {other:?}"),
    }
}

#[test]
fn schema_qualifiers_are_dropped_and_the_view_is_created_plainly() {
    let translated = translate(
        "CREATE OR REPLACE VIEW \"images\".images AS SELECT id FROM \"images\".events WITH NO SCHEMA BINDING",
    )
    .unwrap();
    assert_eq!(
        translated,
        Translated::View {
            name: "images".into(),
            sql: "CREATE VIEW images AS SELECT id FROM events".into()
        }
    );
}

#[test]
fn one_name_in_two_schemas_is_refused_rather_than_merged() {
    let table = table();
    let mut translator = Translator::new(&table, NOW);
    translator
        .translate("CREATE OR REPLACE VIEW \"a\".v AS SELECT 1 WITH NO SCHEMA BINDING")
        .unwrap();
    let err = translator
        .translate("CREATE OR REPLACE VIEW \"b\".w AS SELECT * FROM \"b\".v WITH NO SCHEMA BINDING")
        .unwrap_err();
    assert!(
        err.to_string().contains("one name in SQLite's single namespace"),
        "{err}"
    );
}

#[test]
fn a_cast_to_timestamp_is_datetime() {
    assert_eq!(
        select("CAST(REPLACE(SUBSTRING(e.ingested_at, 1, 19), 'T', ' ') AS TIMESTAMP) AS t"),
        "datetime(REPLACE(SUBSTRING(e.ingested_at, 1, 19), 'T', ' ')) AS t"
    );
}

#[test]
fn seconds_after_the_epoch_are_datetime_unixepoch() {
    assert_eq!(
        select("TIMESTAMP 'epoch' + e.expires_at * INTERVAL '1 second' AS t"),
        "datetime(e.expires_at, 'unixepoch') AS t"
    );
}

#[test]
fn the_epoch_of_getdate_is_the_evaluation_time() {
    let translated = translate(
        "CREATE OR REPLACE VIEW \"images\".v AS SELECT id FROM \"images_events\".image_events \
         WHERE expires_at > EXTRACT(EPOCH FROM GETDATE()) WITH NO SCHEMA BINDING",
    )
    .unwrap();
    assert_eq!(
        translated,
        Translated::View {
            name: "v".into(),
            sql: format!("CREATE VIEW v AS SELECT id FROM image_events WHERE expires_at > {NOW}")
        }
    );
}

#[test]
fn a_struct_field_is_a_json_extract_of_the_column() {
    assert_eq!(
        select("e.kafka.topic AS t, e.kafka.\"partition\" AS p, e.kafka.\"offset\" AS o"),
        "json_extract(e.kafka, '$.topic') AS t, json_extract(e.kafka, '$.partition') AS p, \
         json_extract(e.kafka, '$.offset') AS o"
    );
    assert!(refused_select("e.kafka.lag").contains("not a field of a struct column"));
    assert!(refused_select("e.id.x").contains("not a field of a struct column"));
}

#[test]
fn trunc_of_a_timestamp_is_its_date() {
    assert_eq!(select("TRUNC(e.ingested_at) AS d"), "date(e.ingested_at) AS d");
}

#[test]
fn date_trunc_is_strftime_of_the_unit() {
    assert_eq!(
        select("DATE_TRUNC('hour', e.ingested_at) AS h"),
        "strftime('%Y-%m-%d %H:00:00', e.ingested_at) AS h"
    );
    assert!(refused_select("DATE_TRUNC('week', e.ingested_at)").contains("DATE_TRUNC to 'week'"));
}

#[test]
fn rewrites_apply_inside_each_other_and_in_windows() {
    assert_eq!(
        select("ROW_NUMBER() OVER (PARTITION BY TRUNC(CAST(e.ingested_at AS TIMESTAMP)) ORDER BY e.id) AS n"),
        "ROW_NUMBER() OVER (PARTITION BY date(datetime(e.ingested_at)) ORDER BY e.id) AS n"
    );
}

#[test]
fn what_means_the_same_is_kept() {
    let kept = "COUNT(DISTINCT e.id) AS n, SUM(e.expires_at) AS s, 's3://' || e.id AS u, \
                COUNT(*) OVER (PARTITION BY e.id) AS c";
    assert_eq!(select(kept), kept);
}

fn refused_select(expr: &str) -> String {
    refused(&format!(
        "CREATE OR REPLACE VIEW \"images\".v AS SELECT {expr} FROM \"images_events\".image_events AS e \
         WITH NO SCHEMA BINDING"
    ))
}

#[test]
fn an_unknown_construct_is_an_error_naming_it() {
    for (expr, named) in [
        ("e.ingested_at::TIMESTAMP", "`e.ingested_at::TIMESTAMP` (Cast)"),
        ("CAST(e.id AS INTEGER)", "Cast"),
        ("GETDATE()", "`GETDATE()` (Function)"),
        ("TIMESTAMP 'epoch' + e.expires_at", "TypedString"),
        ("e.expires_at * INTERVAL '1 day'", "Interval"),
        ("TRUNC(e.expires_at, 2)", "`TRUNC(e.expires_at, 2)`"),
        ("e.expires_at / 2", "BinaryOp"),
        (
            "JSON_EXTRACT_PATH_TEXT(e.kafka, 'topic')",
            "JSON_EXTRACT_PATH_TEXT",
        ),
    ] {
        let construct = refused_select(expr);
        assert!(construct.contains(named), "{expr}: {construct}");
    }
    assert!(refused("INSERT INTO t VALUES (1)").contains("CREATE [OR REPLACE] VIEW"));
    assert!(
        refused("CREATE MATERIALIZED VIEW \"images\".m AS SELECT 1").contains("CREATE [OR REPLACE] VIEW")
    );
}

#[test]
fn statements_that_only_matter_in_redshift_are_skipped_by_their_keywords() {
    for statement in [
        "CREATE EXTERNAL SCHEMA IF NOT EXISTS \"x_events\" FROM DATA CATALOG DATABASE 'x' IAM_ROLE 'arn:aws:iam::1:role/x'",
        "CREATE TABLE IF NOT EXISTS image_events (id VARCHAR(36)) DISTSTYLE AUTO SORTKEY (id)",
        "DROP TABLE IF EXISTS public.image_events",
        "create schema if not exists \"images\"",
    ] {
        assert!(
            matches!(translate(statement), Ok(Translated::Skipped { .. })),
            "{statement}"
        );
    }
    assert!(matches!(
        translate("CREATE TABLESPACE x"),
        Err(WarehouseError::Parse { .. })
    ));
}
