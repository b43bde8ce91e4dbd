//! Loading events and querying the views, on a small script.

use std::io::Write;

use serde_json::json;

use super::*;

const SCRIPT: &str = "--   db.image_events (Redshift: \"w_events\".image_events) at s3://b/events/\n\
    --   JSON lines, keys matched exactly, one column per key:\n\
    --     id string\n\
    --     content_type string (key contentType)\n\
    --     bytes bigint\n\
    --     expires_at bigint (key expiresAt)\n\
    --     kafka struct<topic:string,partition:int,offset:bigint>\n\
    \n-- migration 1: the schema\nCREATE SCHEMA IF NOT EXISTS \"w\";\n\
    \n-- migration 2: a view\nCREATE OR REPLACE VIEW \"w\".live AS SELECT e.id, e.content_type, e.bytes, \
    e.kafka.\"offset\" AS kafka_offset FROM \"w_events\".image_events AS e \
    WHERE e.expires_at > EXTRACT(EPOCH FROM GETDATE()) WITH NO SCHEMA BINDING;\n";

fn events() -> Vec<Value> {
    vec![
        json!({"id": "a", "contentType": "image/png", "bytes": 10, "expiresAt": 200, "kafka": {"topic": "t", "partition": 1, "offset": 7}}),
        json!({"id": "b", "contentType": "image/gif", "bytes": 20, "expiresAt": 100}),
    ]
}

#[test]
fn events_are_loaded_by_their_keys_and_the_views_see_them_at_the_given_time() {
    let mut warehouse = LocalWarehouse::new(SCRIPT, 150).unwrap();
    assert_eq!(
        warehouse
            .views()
            .iter()
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>(),
        ["live"]
    );
    assert_eq!(warehouse.load_events(&events()).unwrap(), 2);
    let rows = warehouse.query("SELECT * FROM live").unwrap();
    assert_eq!(rows.columns, ["id", "content_type", "bytes", "kafka_offset"]);
    assert_eq!(
        rows.rows,
        [vec![json!("a"), json!("image/png"), json!(10), json!(7)]]
    );
    assert_eq!(
        rows.to_string(),
        "id  content_type  bytes  kafka_offset\na   image/png        10             7\n"
    );
    let earlier = {
        let mut w = LocalWarehouse::new(SCRIPT, 50).unwrap();
        w.load_events(&events()).unwrap();
        w.query("SELECT id FROM live ORDER BY id").unwrap()
    };
    assert_eq!(
        earlier.rows,
        [vec![json!("a")], vec![json!("b")]],
        "nothing expired yet"
    );
}

#[test]
fn a_value_of_another_type_than_its_column_is_refused() {
    let mut warehouse = LocalWarehouse::new(SCRIPT, 0).unwrap();
    let err = warehouse
        .load_events(&[json!({"id": "a", "bytes": "10"})])
        .unwrap_err();
    assert!(err.to_string().contains("key bytes"), "{err}");
}

#[test]
fn gzip_objects_are_read_by_their_name_as_spectrum_does() {
    let lines = events().iter().map(|e| format!("{e}\n")).collect::<String>();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(lines.as_bytes()).unwrap();
    let gzip = encoder.finish().unwrap();
    assert_eq!(event_lines("events/x.gz", &gzip).unwrap(), events());
    assert_eq!(event_lines("events/x", lines.as_bytes()).unwrap(), events());
    assert!(
        event_lines("events/x", &gzip)
            .unwrap_err()
            .to_string()
            .contains("not named .gz")
    );
    let mut warehouse = LocalWarehouse::new(SCRIPT, 0).unwrap();
    assert_eq!(warehouse.load_object("events/x.gz", &gzip).unwrap(), 2);
}
