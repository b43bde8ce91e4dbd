//! The warehouse's SQL script as `imagepipeline warehouse ddl` prints it:
//! comment lines (`-- …`), among them the Glue events table's definition,
//! and statements each ending in `;` at the end of a line.
//!
//! The events table is made through the Glue API, not by a statement, so the
//! script states it in comments; they are read here so that the local table
//! has the columns the operator defines, not a copy kept in the harness.

use super::WarehouseError;

/// The script, split.
#[derive(Clone, Debug, PartialEq)]
pub struct Script {
    pub events_table: EventsTable,
    /// Each statement without its `;`, in the script's order.
    pub statements: Vec<String>,
}

/// The Glue table over the Firehose objects.
#[derive(Clone, Debug, PartialEq)]
pub struct EventsTable {
    /// Its name without a schema (`image_events`).
    pub name: String,
    pub columns: Vec<EventColumn>,
}

/// One column of the events table, as the script's comment states it.
#[derive(Clone, Debug, PartialEq)]
pub struct EventColumn {
    pub name: String,
    /// The Hive type (`string`, `bigint`, `struct<topic:string,…>`).
    pub hive_type: String,
    /// The JSON key the SerDe reads it from.
    pub json_key: String,
}

impl EventColumn {
    /// The fields of a `struct<…>` column; `None` for any other type.
    pub fn struct_fields(&self) -> Option<Vec<&str>> {
        let inner = self.hive_type.strip_prefix("struct<")?.strip_suffix('>')?;
        Some(
            inner
                .split(',')
                .map(|field| field.split_once(':').map_or(field, |(name, _)| name).trim())
                .collect(),
        )
    }
}

/// Where the script names the table: `--   db.image_events (Redshift: "x_events".image_events) at s3://…`.
const TABLE_MARKER: &str = "(Redshift: ";
/// The comment line after which the columns are listed, one per line.
const COLUMNS_MARKER: &str = "one column per key:";
/// A column line: `--     name type` or `--     name type (key jsonKey)`.
const COLUMN_INDENT: &str = "--     ";

impl Script {
    pub fn parse(text: &str) -> Result<Self, WarehouseError> {
        let malformed = |what: &str| WarehouseError::Script(what.to_owned());
        let lines: Vec<&str> = text.lines().collect();
        let table_line = lines
            .iter()
            .find_map(|l| {
                l.strip_prefix("--")?
                    .split_once(TABLE_MARKER)
                    .map(|(_, rest)| rest)
            })
            .ok_or_else(|| {
                malformed("no comment names the events table (\"(Redshift: <schema>.<table>)\")")
            })?;
        let qualified = table_line
            .split_once(')')
            .map(|(name, _)| name)
            .ok_or_else(|| malformed("the events table's Redshift name is not closed by ')'"))?;
        let name = qualified
            .rsplit('.')
            .next()
            .unwrap_or(qualified)
            .trim_matches('"')
            .to_owned();
        let start = lines
            .iter()
            .position(|l| l.starts_with("--") && l.ends_with(COLUMNS_MARKER))
            .ok_or_else(|| malformed("no comment lists the events table's columns"))?;
        let columns = lines[start + 1..]
            .iter()
            .map_while(|l| l.strip_prefix(COLUMN_INDENT))
            .map(column)
            .collect::<Result<Vec<_>, _>>()?;
        if columns.is_empty() {
            return Err(malformed("the events table is listed without columns"));
        }
        Ok(Self {
            events_table: EventsTable { name, columns },
            statements: statements(&lines)?,
        })
    }
}

fn column(line: &str) -> Result<EventColumn, WarehouseError> {
    let (definition, json_key) = match line.split_once(" (key ") {
        Some((definition, key)) => (definition, key.strip_suffix(')').map(str::to_owned)),
        None => (line, None),
    };
    let (name, hive_type) = definition
        .trim()
        .split_once(' ')
        .ok_or_else(|| WarehouseError::Script(format!("column line without a type: {line:?}")))?;
    Ok(EventColumn {
        name: name.to_owned(),
        hive_type: hive_type.trim().to_owned(),
        json_key: json_key.unwrap_or_else(|| name.to_owned()),
    })
}

/// The statements: lines outside comments, up to a line ending in `;`.
fn statements(lines: &[&str]) -> Result<Vec<String>, WarehouseError> {
    let mut statements = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in lines.iter().map(|l| l.trim()) {
        if line.is_empty() || line.starts_with("--") {
            continue;
        }
        match line.strip_suffix(';') {
            Some(last) => {
                current.push(last);
                statements.push(current.join("\n"));
                current.clear();
            }
            None => current.push(line),
        }
    }
    if current.is_empty() {
        Ok(statements)
    } else {
        Err(WarehouseError::Script(format!(
            "the script ends inside a statement (no ';'): {}",
            current.join(" ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPT: &str = "-- Run in Redshift cluster c, database images;\n--\n\
        -- The events table is defined in the AWS Glue Data Catalog, not by a statement:\n\
        --   ipl_events.image_events (Redshift: \"images_events\".image_events) at s3://b/events/\n\
        --   JSON lines read by org.openx.data.jsonserde.JsonSerDe, keys matched exactly, one column per key:\n\
        --     id string\n\
        --     content_type string (key contentType)\n\
        --     kafka struct<topic:string,partition:int,offset:bigint>\n\
        \n-- migration 1: a\nCREATE SCHEMA IF NOT EXISTS \"images\";\n\
        \n-- migration 2: b\nCREATE OR REPLACE VIEW \"images\".v AS\nSELECT 1 WITH NO SCHEMA BINDING;\n";

    #[test]
    fn the_events_table_and_the_statements_are_read_from_the_script() {
        let script = Script::parse(SCRIPT).unwrap();
        let table = &script.events_table;
        assert_eq!(table.name, "image_events");
        let columns: Vec<(&str, &str, &str)> = table
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.hive_type.as_str(), c.json_key.as_str()))
            .collect();
        assert_eq!(
            columns,
            [
                ("id", "string", "id"),
                ("content_type", "string", "contentType"),
                (
                    "kafka",
                    "struct<topic:string,partition:int,offset:bigint>",
                    "kafka"
                ),
            ]
        );
        assert_eq!(
            table.columns[2].struct_fields(),
            Some(vec!["topic", "partition", "offset"])
        );
        assert_eq!(table.columns[0].struct_fields(), None);
        assert_eq!(
            script.statements,
            [
                "CREATE SCHEMA IF NOT EXISTS \"images\"",
                "CREATE OR REPLACE VIEW \"images\".v AS\nSELECT 1 WITH NO SCHEMA BINDING",
            ]
        );
    }

    #[test]
    fn a_script_without_the_table_or_cut_short_is_refused() {
        assert!(matches!(
            Script::parse("SELECT 1;\n"),
            Err(WarehouseError::Script(_))
        ));
        let cut = SCRIPT.trim_end().trim_end_matches(';');
        let err = Script::parse(cut).unwrap_err().to_string();
        assert!(err.contains("ends inside a statement"), "{err}");
    }
}
