//! What the warehouse holds, as pure data: the events table the Glue Data
//! Catalog defines over `events/`, and the versioned statements the operator
//! runs in Redshift, in order, each once.
//!
//! No code of ours moves rows. Redshift Spectrum reads the objects Firehose
//! writes under `events/` at query time, so an analyst sees an event as soon
//! as Firehose delivers it (its buffer interval), and nothing the bucket's
//! lifecycle has expired. The views hide what at-least-once delivery repeats:
//! one row per image id, the last copy that landed, which is the one its
//! DynamoDB item was written with (the store writes the item after the
//! event, so a replay after a crash sends a later copy, and none follows the
//! item).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use ingest_core::contract::prefix;

/// The names the statements are written with.
#[derive(Clone, Debug, PartialEq)]
pub struct WarehouseNames {
    /// The analysts' schema, named after the spec's database.
    pub schema: String,
    /// Redshift's external schema over the Glue database.
    pub external_schema: String,
    /// The Glue Data Catalog database the operator makes.
    pub catalog_database: String,
    /// The role Redshift Spectrum reads the events with.
    pub role_arn: String,
    /// Where Firehose writes the events: `s3://<bucket>/events/`.
    pub events_location: String,
}

impl WarehouseNames {
    pub fn new(database: &str, catalog_database: String, role_arn: String, bucket: &str) -> Self {
        Self {
            schema: database.to_owned(),
            external_schema: format!("{database}_events"),
            catalog_database,
            role_arn,
            events_location: format!("s3://{bucket}/{}", prefix::EVENTS),
        }
    }
}

/// The Glue table over the events, in the external schema.
pub const EVENTS_TABLE: &str = "image_events";

/// The SerDe that reads one JSON object per line (gzip or not).
pub const JSON_SERDE: &str = "org.openx.data.jsonserde.JsonSerDe";

/// One column of the events table: its name, its Hive type, and the key of
/// the event's JSON it reads (DESIGN.md, data contracts).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EventColumn {
    pub name: &'static str,
    pub hive_type: &'static str,
    pub json_key: &'static str,
}

const fn column(name: &'static str, hive_type: &'static str, json_key: &'static str) -> EventColumn {
    EventColumn {
        name,
        hive_type,
        json_key,
    }
}

/// The event record's fields. `ingestedAt` is text: RFC 3339 with up to nine
/// fractional digits, which the views turn into a timestamp.
pub const EVENT_COLUMNS: &[EventColumn] = &[
    column("id", "string", "id"),
    column("sha256", "string", "sha256"),
    column("content_type", "string", "contentType"),
    column("bytes", "bigint", "bytes"),
    column("width", "int", "width"),
    column("height", "int", "height"),
    column("phash", "string", "phash"),
    column("original_sha256", "string", "originalSha256"),
    column("uploaded_by", "string", "uploadedBy"),
    column("bucket", "string", "bucket"),
    column("key", "string", "key"),
    column("source", "string", "source"),
    column("ingested_at", "string", "ingestedAt"),
    column("expires_at", "bigint", "expiresAt"),
    column(
        "kafka",
        "struct<topic:string,partition:int,offset:bigint>",
        "kafka",
    ),
];

/// The SerDe's parameters: keys matched exactly, and the columns whose name
/// is not their JSON key mapped to it.
pub fn serde_parameters() -> BTreeMap<String, String> {
    let mut parameters = BTreeMap::from([("case.insensitive".to_owned(), "false".to_owned())]);
    for column in EVENT_COLUMNS.iter().filter(|c| c.name != c.json_key) {
        parameters.insert(format!("mapping.{}", column.name), column.json_key.to_owned());
    }
    parameters
}

/// One statement the operator runs in the warehouse, once, in version order.
#[derive(Clone, Debug, PartialEq)]
pub struct Migration {
    pub version: u32,
    /// What it does, for `plan`, `warehouse ddl` and a failure's condition.
    pub purpose: &'static str,
    pub sql: String,
}

/// Every migration, in order; versions are 1, 2, … with no gaps. A released
/// migration never changes: a change is a new one.
pub fn migrations(names: &WarehouseNames) -> Vec<Migration> {
    let WarehouseNames {
        schema,
        external_schema,
        catalog_database,
        role_arn,
        ..
    } = names;
    /// The columns of `events` and `images` added since version 5.
    const AFTER_METADATA_REMOVAL: [&str; 3] = ["phash", "original_sha256", "uploaded_by"];
    let statements: [(&'static str, String); 18] = [
        // Version 1 as clusters made before the views ran it.
        (
            "create the image_events table (never loaded; dropped by 2)",
            "CREATE TABLE IF NOT EXISTS image_events (\
             id VARCHAR(36) NOT NULL, sha256 CHAR(64) NOT NULL, content_type VARCHAR(64), bytes BIGINT, \
             width INTEGER, height INTEGER, bucket VARCHAR(63), object_key VARCHAR(1024), source VARCHAR(16), \
             ingested_at TIMESTAMPTZ, expires_at BIGINT, kafka SUPER) \
             DISTSTYLE AUTO SORTKEY (ingested_at)"
                .to_owned(),
        ),
        (
            "drop the empty image_events table the events schema replaces",
            "DROP TABLE IF EXISTS public.image_events".to_owned(),
        ),
        (
            "map the Glue database of the events as an external schema",
            format!(
                "CREATE EXTERNAL SCHEMA IF NOT EXISTS \"{external_schema}\" \
                 FROM DATA CATALOG DATABASE '{catalog_database}' IAM_ROLE '{role_arn}'"
            ),
        ),
        (
            "create the analysts' schema",
            format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""),
        ),
        (
            "create the view events: one row per image id, within retention",
            events_view(schema, external_schema, &[]),
        ),
        (
            "create the view images: one row per stored image",
            images_view(schema, &[]),
        ),
        (
            "create the view images_daily: images per day, source and content type",
            view(
                schema,
                "images_daily",
                &format!(
                    "SELECT TRUNC(ingested_at) AS day, source, content_type, COUNT(*) AS images, \
                     SUM(bytes) AS bytes, COUNT(DISTINCT sha256) AS distinct_sha256 \
                     FROM \"{schema}\".images \
                     GROUP BY TRUNC(ingested_at), source, content_type"
                ),
            ),
        ),
        (
            "create the view duplicate_uploads: the same bytes stored under more than one id",
            view(
                schema,
                "duplicate_uploads",
                &format!(
                    "SELECT sha256, uploads, id, source, ingested_at \
                     FROM (\
                     SELECT sha256, id, source, ingested_at, COUNT(*) OVER (PARTITION BY sha256) AS uploads \
                     FROM \"{schema}\".images\
                     ) AS counted \
                     WHERE uploads > 1"
                ),
            ),
        ),
        (
            "create the view stream_offsets: Kafka offsets landed per hour and partition",
            view(
                schema,
                "stream_offsets",
                &format!(
                    "SELECT DATE_TRUNC('hour', ingested_at) AS hour, kafka_topic AS topic, kafka_partition, \
                     MIN(kafka_offset) AS first_offset, MAX(kafka_offset) AS last_offset, COUNT(*) AS records \
                     FROM \"{schema}\".events \
                     WHERE kafka_topic IS NOT NULL \
                     GROUP BY DATE_TRUNC('hour', ingested_at), kafka_topic, kafka_partition"
                ),
            ),
        ),
        // Redshift replaces a view only by one with the same columns, so a
        // new column means dropping the view first.
        (
            "drop the view events, to add the perceptual hash",
            format!("DROP VIEW IF EXISTS \"{schema}\".events"),
        ),
        (
            "create the view events with the perceptual hash",
            events_view(schema, external_schema, &["phash"]),
        ),
        (
            "drop the view images, to add the perceptual hash",
            format!("DROP VIEW IF EXISTS \"{schema}\".images"),
        ),
        (
            "create the view images with the perceptual hash",
            images_view(schema, &["phash"]),
        ),
        (
            "create the view near_duplicates: pairs of different bytes that look alike",
            near_duplicates_view(schema),
        ),
        (
            "drop the view events, to add the original SHA-256 and the uploader",
            format!("DROP VIEW IF EXISTS \"{schema}\".events"),
        ),
        (
            "create the view events with the original SHA-256 and the uploader",
            events_view(schema, external_schema, &AFTER_METADATA_REMOVAL),
        ),
        (
            "drop the view images, to add the original SHA-256 and the uploader",
            format!("DROP VIEW IF EXISTS \"{schema}\".images"),
        ),
        (
            "create the view images with the original SHA-256 and the uploader",
            images_view(schema, &AFTER_METADATA_REMOVAL),
        ),
    ];
    (1..)
        .zip(statements)
        .map(|(version, (purpose, sql))| Migration {
            version,
            purpose,
            sql,
        })
        .collect()
}

/// `events`: the last event that landed for each image id, within
/// retention, with the event columns `added` since version 5 (`phash` from
/// 11; `original_sha256` and `uploaded_by` from 16).
fn events_view(schema: &str, external_schema: &str, added: &[&str]) -> String {
    let outer: String = added.iter().map(|c| format!("{c}, ")).collect();
    let inner: String = added.iter().map(|c| format!("e.{c}, ")).collect();
    view(
        schema,
        "events",
        &format!(
            "SELECT id, sha256, content_type, bytes, width, height, {outer}bucket, object_key, source, \
             ingested_at, expires_at, kafka_topic, kafka_partition, kafka_offset \
             FROM (\
             SELECT e.id, e.sha256, e.content_type, e.bytes, e.width, e.height, {inner}e.bucket, \
             e.key AS object_key, e.source, \
             CAST(REPLACE(SUBSTRING(e.ingested_at, 1, 19), 'T', ' ') AS TIMESTAMP) AS ingested_at, \
             TIMESTAMP 'epoch' + e.expires_at * INTERVAL '1 second' AS expires_at, \
             e.kafka.topic AS kafka_topic, e.kafka.\"partition\" AS kafka_partition, \
             e.kafka.\"offset\" AS kafka_offset, \
             ROW_NUMBER() OVER (PARTITION BY e.id ORDER BY e.ingested_at DESC) AS landing \
             FROM \"{external_schema}\".{EVENTS_TABLE} AS e \
             WHERE e.expires_at > EXTRACT(EPOCH FROM GETDATE())\
             ) AS landed \
             WHERE landing = 1"
        ),
    )
}

/// `images`: one row per stored image, with the event columns `added`
/// since version 6 (`phash` from 13; `original_sha256` and `uploaded_by`
/// from 18).
fn images_view(schema: &str, added: &[&str]) -> String {
    let added: String = added.iter().map(|c| format!("{c}, ")).collect();
    view(
        schema,
        "images",
        &format!(
            "SELECT id, sha256, content_type, bytes, width, height, {added}source, ingested_at, expires_at, \
             's3://' || bucket || '/' || object_key AS s3_uri \
             FROM \"{schema}\".events"
        ),
    )
}

/// Bits two perceptual hashes may differ in and still show the same
/// picture: re-encoded, resized or recompressed copies differ in a few,
/// unrelated pictures in about 32 of 64.
pub const NEAR_DUPLICATE_DISTANCE: u32 = 10;

/// `near_duplicates`: each pair of images with different bytes whose
/// perceptual hashes differ in at most [`NEAR_DUPLICATE_DISTANCE`] bits, the
/// earlier image first. Redshift has no bit count, so the distance is the
/// population count of the two hashes' XOR, 32 bits at a time (the 16 hex
/// digits as two BIGINTs), by the parallel sum of bit pairs, nibbles and
/// bytes. XOR is written `(x | y) - (x & y)`; every operator is
/// parenthesised, as operator precedence differs between SQL engines.
fn near_duplicates_view(schema: &str) -> String {
    let half = |hash: &str, start: u32| format!("STRTOL(SUBSTRING({hash}, {start}, 8), 16)");
    let xor = |x: String, y: String| format!("(({x} | {y}) - ({x} & {y}))");
    let pairs = |x: &str| format!("({x} - (({x} >> 1) & 1431655765))");
    let nibbles = |x: &str| format!("(({x} & 858993459) + (({x} >> 2) & 858993459))");
    let count = |x: &str| format!("((((({x} + ({x} >> 4)) & 252645135) * 16843009) >> 24) & 255)");
    view(
        schema,
        "near_duplicates",
        &format!(
            "SELECT id, sha256, ingested_at, similar_id, similar_sha256, similar_ingested_at, \
             ({} + {}) AS distance \
             FROM (\
             SELECT id, sha256, ingested_at, similar_id, similar_sha256, similar_ingested_at, \
             {} AS high, {} AS low \
             FROM (\
             SELECT id, sha256, ingested_at, similar_id, similar_sha256, similar_ingested_at, \
             {} AS high, {} AS low \
             FROM (\
             SELECT a.id, a.sha256, a.ingested_at, b.id AS similar_id, b.sha256 AS similar_sha256, \
             b.ingested_at AS similar_ingested_at, {} AS high, {} AS low \
             FROM \"{schema}\".images AS a \
             JOIN \"{schema}\".images AS b ON a.id < b.id AND a.sha256 <> b.sha256 \
             WHERE a.phash IS NOT NULL AND b.phash IS NOT NULL\
             ) AS xored\
             ) AS paired\
             ) AS nibbled \
             WHERE ({} + {}) <= {NEAR_DUPLICATE_DISTANCE}",
            count("high"),
            count("low"),
            nibbles("high"),
            nibbles("low"),
            pairs("high"),
            pairs("low"),
            xor(half("a.phash", 1), half("b.phash", 1)),
            xor(half("a.phash", 9), half("b.phash", 9)),
            count("high"),
            count("low"),
        ),
    )
}

/// Late binding (`WITH NO SCHEMA BINDING`): Redshift requires it of a view
/// over an external table, and it lets a view be replaced on its own.
fn view(schema: &str, name: &str, select: &str) -> String {
    format!("CREATE OR REPLACE VIEW \"{schema}\".{name} AS {select} WITH NO SCHEMA BINDING")
}

/// The newest version: what a cluster records once every migration ran.
pub fn latest_version(names: &WarehouseNames) -> u32 {
    migrations(names).last().map_or(0, |m| m.version)
}

/// The query that checks, once the last migration is applied, that the
/// analysts' view answers: it reads every event through every layer.
pub fn check(names: &WarehouseNames) -> String {
    format!("SELECT COUNT(*) FROM \"{}\".images", names.schema)
}

/// Every statement as a script a reviewer or a DBA reads: the events table's
/// definition (made through the Glue API, so a comment), then each
/// migration with its version and purpose, ending in `;`.
pub fn ddl(names: &WarehouseNames, cluster: &str, database: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "-- Run in Redshift cluster {cluster}, database {database}, as its admin user, in this order, \
         each once;\n-- the cluster's tag imagepipeline.io/schema-version records the last one applied.\n--\n\
         -- The events table is defined in the AWS Glue Data Catalog, not by a statement:\n\
         --   {}.{EVENTS_TABLE} (Redshift: \"{}\".{EVENTS_TABLE}) at {}\n\
         --   JSON lines read by {JSON_SERDE}, keys matched exactly, one column per key:",
        names.catalog_database, names.external_schema, names.events_location
    );
    for column in EVENT_COLUMNS {
        let key = if column.name == column.json_key {
            String::new()
        } else {
            format!(" (key {})", column.json_key)
        };
        let _ = writeln!(out, "--     {} {}{key}", column.name, column.hive_type);
    }
    for migration in migrations(names) {
        let _ = write!(
            out,
            "\n-- migration {}: {}\n{};\n",
            migration.version, migration.purpose, migration.sql
        );
    }
    let _ = write!(
        out,
        "\n-- check, once after the last migration: the analysts' view answers (reads every event once)\n{};\n",
        check(names)
    );
    out
}

#[cfg(test)]
mod tests;
