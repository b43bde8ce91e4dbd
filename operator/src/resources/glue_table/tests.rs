//! The table's delta: nothing when it is as desired, else one field per
//! difference, the one an update repairs.

use super::*;

fn table() -> GlueTable {
    GlueTable {
        database: "ipl_media_photos_events_0a1b2c3d".into(),
        name: "image_events".into(),
        arn: "arn:aws:glue:eu-west-1:123456789012:table/ipl_media_photos_events_0a1b2c3d/image_events".into(),
        location: "s3://photos/events/".into(),
        columns: vec![
            GlueColumn::new("id", "string"),
            GlueColumn::new("bytes", "bigint"),
        ],
        serde_library: "org.openx.data.jsonserde.JsonSerDe".into(),
        serde_parameters: BTreeMap::from([("ignore.malformed.json".into(), "TRUE".into())]),
        description: "Image events".into(),
    }
}

#[test]
fn a_table_as_desired_has_no_delta_whatever_else_glue_keeps_or_folds() {
    let table = table();
    let mut found = table.as_desired();
    assert_eq!(table.delta(&found).unwrap(), Vec::<String>::new());
    // A parameter another tool added, and a name Glue folded.
    found
        .parameters
        .insert("transient_lastDdlTime".into(), "1700000000".into());
    let desired = table.as_desired();
    let table = GlueTable {
        columns: vec![
            GlueColumn::new("ID", "string"),
            GlueColumn::new("bytes", "bigint"),
        ],
        ..table
    };
    assert_eq!(table.delta(&found).unwrap(), Vec::<String>::new());
    assert_eq!(table.delta(&desired).unwrap(), Vec::<String>::new());
}

/// A change made to a table behind the operator's back, and the one field
/// plan shows for it.
type Drift = (fn(&mut TableState), &'static str);

#[test]
fn each_drift_is_the_one_field_that_repairs_it() {
    let table = table();
    let drifts: [Drift; 10] = [
        (
            |t| t.table_type = "MANAGED_TABLE".into(),
            "table type: MANAGED_TABLE → EXTERNAL_TABLE",
        ),
        (|t| t.description.clear(), "description: (none) → Image events"),
        (
            |t| t.location = "s3://photos/old/".into(),
            "location: s3://photos/old/ → s3://photos/events/",
        ),
        (
            |t| t.columns[1].hive_type = "int".into(),
            "columns: id string, bytes int → id string, bytes bigint",
        ),
        (
            |t| t.columns.truncate(1),
            "columns: id string → id string, bytes bigint",
        ),
        (
            |t| t.input_format.clear(),
            "input format: (none) → org.apache.hadoop.mapred.TextInputFormat",
        ),
        (
            |t| t.serde_library = "org.apache.hive.hcatalog.data.JsonSerDe".into(),
            "SerDe library: org.apache.hive.hcatalog.data.JsonSerDe → org.openx.data.jsonserde.JsonSerDe",
        ),
        (
            |t| t.serde_parameters.clear(),
            "SerDe parameter ignore.malformed.json: (absent) → TRUE",
        ),
        (
            |t| {
                drop(
                    t.serde_parameters
                        .insert("case.insensitive".into(), "FALSE".into()),
                )
            },
            "SerDe parameter case.insensitive: FALSE → (absent)",
        ),
        (
            |t| drop(t.parameters.insert("classification".into(), "csv".into())),
            "table parameter classification: csv → json",
        ),
    ];
    for (drift, repair) in drifts {
        let mut found = table.as_desired();
        drift(&mut found);
        assert_eq!(table.delta(&found).unwrap(), [repair]);
    }
    let mut found = table.as_desired();
    found.output_format.clear();
    found.parameters.remove("EXTERNAL");
    assert_eq!(
        table.delta(&found).unwrap(),
        [
            "output format: (none) → org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
            "table parameter EXTERNAL: (absent) → TRUE",
        ]
    );
}

#[test]
fn an_update_keeps_the_table_parameters_other_tools_added() {
    let kept = BTreeMap::from([("transient_lastDdlTime".to_owned(), "1700000000".to_owned())]);
    let input = table().input(&kept).unwrap();
    let parameters: BTreeMap<_, _> = input.parameters.unwrap().into_iter().collect();
    assert_eq!(parameters.len(), 3, "{parameters:?}");
    assert_eq!(parameters["EXTERNAL"], "TRUE");
    assert_eq!(input.storage_descriptor.unwrap().columns.unwrap().len(), 2);
    assert_eq!(input.partition_keys, Some(Vec::new()));
}
