//! The warehouse's views evaluated on this machine: the emulator has no
//! Redshift, so the views `imagepipeline warehouse ddl` prints are
//! translated to SQLite ([`translate`]) and run over the events that
//! really landed, loaded into an in-memory table with the columns of the
//! Glue table the script states ([`script`]).
//!
//! This checks the views' logic (deduplication, retention, the daily and
//! per-offset aggregates) on real events. It cannot check how Redshift
//! itself runs them: Spectrum's SerDe reading the objects, Redshift's own
//! timestamp parsing, late binding, the external schema and its role.

mod pipeline;
mod script;
mod translate;

use std::fmt;
use std::io::Read;

use rusqlite::Connection;
use rusqlite::types::{Value as Sql, ValueRef};
use serde_json::{Map, Value};

pub use pipeline::AnalystView;
pub use script::{EventColumn, EventsTable, Script};
pub use translate::{Translated, Translator};

/// Why the views could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error("the warehouse script is not as `imagepipeline warehouse ddl` prints it: {0}")]
    Script(String),
    #[error("not Redshift SQL that sqlparser reads ({source}): {statement}")]
    Parse {
        statement: String,
        source: sqlparser::parser::ParserError,
    },
    #[error("no SQLite translation for {construct} in: {statement}")]
    Untranslatable { construct: String, statement: String },
    #[error("SQLite, {what}: {source}")]
    Sqlite { what: String, source: rusqlite::Error },
    /// An event object or line the events table cannot hold.
    #[error("{0}")]
    Event(String),
}

fn sqlite(what: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> WarehouseError {
    let what = what.into();
    move |source| WarehouseError::Sqlite { what, source }
}

/// A view as SQLite runs it.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalView {
    pub name: String,
    pub sql: String,
}

/// An in-memory SQLite database holding the events table and the views.
pub struct LocalWarehouse {
    db: Connection,
    table: EventsTable,
    views: Vec<LocalView>,
}

/// Redshift's `STRTOL(text, base)`: the integer `text` spells in `base`.
fn register_strtol(db: &Connection) -> Result<(), WarehouseError> {
    use rusqlite::functions::FunctionFlags;
    db.create_scalar_function(
        "strtol",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |call| {
            let text: String = call.get(0)?;
            let base: u32 = call.get(1)?;
            i64::from_str_radix(text.trim(), base)
                .map_err(|err| rusqlite::Error::UserFunctionError(err.into()))
        },
    )
    .map_err(sqlite("registering strtol"))
}

impl LocalWarehouse {
    /// The events table and the script's views; `now` is what Redshift's
    /// `GETDATE()` would return, in epoch seconds, so that retention is
    /// evaluated at a time the caller chooses.
    pub fn new(script: &str, now: i64) -> Result<Self, WarehouseError> {
        let script = Script::parse(script)?;
        let db = Connection::open_in_memory().map_err(sqlite("opening an in-memory database"))?;
        let columns = script
            .events_table
            .columns
            .iter()
            .map(|c| Ok(format!("\"{}\" {}", c.name, affinity(c)?)))
            .collect::<Result<Vec<_>, WarehouseError>>()?;
        let create = format!(
            "CREATE TABLE \"{}\" ({})",
            script.events_table.name,
            columns.join(", ")
        );
        db.execute_batch(&create).map_err(sqlite(create.clone()))?;
        register_strtol(&db)?;
        let mut translator = Translator::new(&script.events_table, now);
        let mut views = Vec::new();
        for statement in &script.statements {
            match translator.translate(statement)? {
                Translated::View { name, sql } => {
                    db.execute_batch(&sql)
                        .map_err(sqlite(format!("creating view {name} as {sql}")))?;
                    views.push(LocalView { name, sql });
                }
                Translated::Drop { name, sql } => {
                    db.execute_batch(&sql)
                        .map_err(sqlite(format!("dropping view {name}")))?;
                    views.retain(|view| view.name != name);
                }
                Translated::Skipped { .. } => {}
            }
        }
        Ok(Self {
            db,
            table: script.events_table,
            views,
        })
    }

    /// The views made, in the script's order.
    pub fn views(&self) -> &[LocalView] {
        &self.views
    }

    /// Adds the lines of one event object (`key` tells gzip by its `.gz`,
    /// as Spectrum does); returns how many.
    pub fn load_object(&mut self, key: &str, bytes: &[u8]) -> Result<usize, WarehouseError> {
        self.load_events(&event_lines(key, bytes)?)
    }

    /// Adds events (one JSON object each), as the SerDe reads them: each
    /// column from its key, matched exactly; a missing key is NULL.
    pub fn load_events(&mut self, events: &[Value]) -> Result<usize, WarehouseError> {
        let columns = &self.table.columns;
        let insert = format!(
            "INSERT INTO \"{}\" VALUES ({})",
            self.table.name,
            vec!["?"; columns.len()].join(", ")
        );
        let tx = self.db.transaction().map_err(sqlite("starting a transaction"))?;
        {
            let mut statement = tx.prepare(&insert).map_err(sqlite(insert.clone()))?;
            for event in events {
                let row = columns
                    .iter()
                    .map(|c| cell(c, event))
                    .collect::<Result<Vec<_>, _>>()?;
                statement
                    .execute(rusqlite::params_from_iter(row))
                    .map_err(sqlite(format!("inserting {event}")))?;
            }
        }
        tx.commit().map_err(sqlite("committing the events"))?;
        Ok(events.len())
    }

    /// Runs a query, e.g. `SELECT * FROM images ORDER BY id`.
    pub fn query(&self, sql: &str) -> Result<Rows, WarehouseError> {
        let mut statement = self.db.prepare(sql).map_err(sqlite(sql))?;
        let columns: Vec<String> = statement.column_names().map(str::to_owned).collect();
        let rows = statement
            .query_map([], |row| {
                (0..columns.len())
                    .map(|i| row.get_ref(i).map(json))
                    .collect::<Result<Vec<_>, _>>()
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(sqlite(sql))?;
        Ok(Rows { columns, rows })
    }
}

/// The JSON lines of one event object, gunzipped when its name ends in
/// `.gz`. Spectrum picks the codec by that name alone, so a gzip object
/// named otherwise is refused: Redshift could not read it either.
pub fn event_lines(key: &str, bytes: &[u8]) -> Result<Vec<Value>, WarehouseError> {
    const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
    let text = if key.ends_with(".gz") {
        let mut text = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut text)
            .map_err(|e| WarehouseError::Event(format!("{key} is not gzip: {e}")))?;
        text
    } else if bytes.starts_with(&GZIP_MAGIC) {
        return Err(WarehouseError::Event(format!(
            "{key} holds gzip but is not named .gz: Spectrum would read it as text"
        )));
    } else {
        bytes.to_vec()
    };
    text.split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            serde_json::from_slice(line)
                .map_err(|e| WarehouseError::Event(format!("{key} holds a line that is not JSON: {e}")))
        })
        .collect()
}

/// SQLite's column type for a Hive type of the Glue table.
fn affinity(column: &EventColumn) -> Result<&'static str, WarehouseError> {
    let hive = column.hive_type.as_str();
    Ok(match hive {
        "string" => "TEXT",
        "tinyint" | "smallint" | "int" | "bigint" | "boolean" => "INTEGER",
        "float" | "double" => "REAL",
        // Kept as JSON text; the views read fields with json_extract.
        _ if hive.starts_with("struct<") => "TEXT",
        _ => {
            return Err(WarehouseError::Script(format!(
                "column {} has the Hive type {hive}, which the local table has no type for",
                column.name
            )));
        }
    })
}

/// The value of `column` in `event`, refusing a value of another JSON type
/// than the column's, which would not be what Redshift reads.
fn cell(column: &EventColumn, event: &Value) -> Result<Sql, WarehouseError> {
    let value = event.get(&column.json_key).unwrap_or(&Value::Null);
    let refused = || {
        WarehouseError::Event(format!(
            "key {} of {event} is not a {}",
            column.json_key, column.hive_type
        ))
    };
    Ok(match (column.hive_type.as_str(), value) {
        (_, Value::Null) => Sql::Null,
        ("string", Value::String(text)) => Sql::Text(text.clone()),
        ("bigint", Value::Number(n)) => Sql::Integer(n.as_i64().ok_or_else(refused)?),
        ("int", Value::Number(n)) => Sql::Integer(
            n.as_i64()
                .filter(|n| i32::try_from(*n).is_ok())
                .ok_or_else(refused)?,
        ),
        ("float" | "double", Value::Number(n)) => Sql::Real(n.as_f64().ok_or_else(refused)?),
        ("boolean", Value::Bool(b)) => Sql::Integer(i64::from(*b)),
        (hive, Value::Object(_)) if hive.starts_with("struct<") => Sql::Text(value.to_string()),
        _ => return Err(refused()),
    })
}

fn json(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::from(n),
        ValueRef::Real(x) => Value::from(x),
        ValueRef::Text(text) | ValueRef::Blob(text) => {
            Value::String(String::from_utf8_lossy(text).into_owned())
        }
    }
}

/// What a query returned.
#[derive(Clone, Debug, PartialEq)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl Rows {
    /// Each row as an object of its columns.
    pub fn records(&self) -> Vec<Map<String, Value>> {
        self.rows
            .iter()
            .map(|row| self.columns.iter().cloned().zip(row.iter().cloned()).collect())
            .collect()
    }
}

/// A table of aligned columns, as a SQL shell prints one.
impl fmt::Display for Rows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|row| {
                row.iter()
                    .map(|v| match v {
                        Value::String(text) => text.clone(),
                        Value::Null => "NULL".to_owned(),
                        other => other.to_string(),
                    })
                    .collect()
            })
            .collect();
        // Numbers to the right, as a SQL shell aligns them.
        let numeric: Vec<bool> = (0..self.columns.len())
            .map(|i| !self.rows.is_empty() && self.rows.iter().all(|row| row[i].is_number()))
            .collect();
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, name)| {
                cells
                    .iter()
                    .map(|row| row[i].chars().count())
                    .chain([name.len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |f: &mut fmt::Formatter<'_>, row: &[String]| {
            let padded: Vec<String> = row
                .iter()
                .zip(widths.iter().zip(&numeric))
                .map(|(c, (w, right))| {
                    if *right {
                        format!("{c:>w$}")
                    } else {
                        format!("{c:<w$}")
                    }
                })
                .collect();
            writeln!(f, "{}", padded.join("  ").trim_end())
        };
        line(f, &self.columns)?;
        for row in &cells {
            line(f, row)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
