//! How `query` prints what a statement returned, as pure functions of the
//! values the Redshift Data API gave: `table` for reading, `json` and `csv`
//! for programs. NULL is an empty cell in `table` and `csv`, `null` in
//! `json` (the one format that tells it from an empty string).

use std::fmt::Write as _;

use aws_sdk_redshiftdata::types::{ColumnMetadata, Field};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::value::RawValue;
use unicode_width::UnicodeWidthStr;

/// How `query` prints its result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum QueryFormat {
    /// Aligned columns under a header, as psql prints them.
    #[default]
    Table,
    /// An array of objects keyed by column name, values typed.
    Json,
    /// A header line, then one line per row, quoted as RFC 4180 says.
    Csv,
}

/// What a finished statement gave.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// A result set (a `SELECT`, say), every page of it.
    Rows(ResultSet),
    /// No result set: the rows it changed, when Redshift says.
    Done { rows_affected: Option<u64> },
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResultSet {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    /// Redshift's type name (`int8`, `numeric`, `varchar`, …).
    pub type_name: String,
}

impl Column {
    /// The label Redshift gives the column (its alias), else its name.
    pub fn of(metadata: &ColumnMetadata) -> Self {
        let name = [metadata.label(), metadata.name()]
            .into_iter()
            .flatten()
            .find(|name| !name.is_empty())
            .unwrap_or("?column?");
        Self {
            name: name.to_owned(),
            type_name: metadata.type_name().unwrap_or_default().to_owned(),
        }
    }
}

/// One value of a row.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Null,
    Bool(bool),
    Integer(i64),
    Float(f64),
    /// DECIMAL and NUMERIC, which the Data API sends as text so that no digit
    /// is lost; kept as that text.
    Decimal(String),
    Text(String),
    /// VARBYTE and the like.
    Bytes(Vec<u8>),
}

/// Redshift's names of the exact numeric types (their values come as text).
const DECIMAL_TYPES: &[&str] = &["numeric", "decimal"];

impl Cell {
    /// The cell for `field` of a column of type `type_name`.
    pub fn of(field: &Field, type_name: &str) -> Self {
        match field {
            Field::IsNull(true) => Cell::Null,
            // Not sent by Redshift; a value that says it is not null and
            // carries none is an empty one.
            Field::IsNull(false) => Cell::Text(String::new()),
            Field::BooleanValue(value) => Cell::Bool(*value),
            Field::LongValue(value) => Cell::Integer(*value),
            Field::DoubleValue(value) => Cell::Float(*value),
            Field::StringValue(text) if DECIMAL_TYPES.iter().any(|t| t.eq_ignore_ascii_case(type_name)) => {
                Cell::Decimal(text.clone())
            }
            Field::StringValue(text) => Cell::Text(text.clone()),
            Field::BlobValue(blob) => Cell::Bytes(blob.as_ref().to_vec()),
            // A kind of value newer than this SDK: shown, not silently lost.
            _ => Cell::Text("<value of a type this imagepipeline cannot read>".to_owned()),
        }
    }

    /// As `table` and `csv` show it.
    fn text(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Bool(value) => value.to_string(),
            Cell::Integer(value) => value.to_string(),
            Cell::Float(value) => value.to_string(),
            Cell::Decimal(text) | Cell::Text(text) => text.clone(),
            Cell::Bytes(bytes) => format!("\\x{}", hex::encode(bytes)),
        }
    }

    fn is_number(&self) -> bool {
        matches!(self, Cell::Integer(_) | Cell::Float(_) | Cell::Decimal(_))
    }
}

impl Serialize for Cell {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Cell::Null => serializer.serialize_unit(),
            Cell::Bool(value) => serializer.serialize_bool(*value),
            Cell::Integer(value) => serializer.serialize_i64(*value),
            // JSON has no NaN nor infinity: those stay text.
            Cell::Float(value) if value.is_finite() => serializer.serialize_f64(*value),
            // The decimal's own digits, as a JSON number: through an f64 a
            // DECIMAL(38) would lose most of them.
            Cell::Decimal(text) => match json_number(text) {
                Some(number) => number.serialize(serializer),
                None => serializer.serialize_str(text),
            },
            Cell::Float(_) | Cell::Text(_) | Cell::Bytes(_) => serializer.serialize_str(&self.text()),
        }
    }
}

/// `text` as a JSON number literal, when it is one.
fn json_number(text: &str) -> Option<Box<RawValue>> {
    let starts_as_number = text.starts_with(|c: char| c == '-' || c.is_ascii_digit());
    starts_as_number
        .then(|| RawValue::from_string(text.to_owned()).ok())
        .flatten()
}

/// The outcome printed as `format` asks, ending in a newline.
pub fn render(outcome: &Outcome, format: QueryFormat) -> String {
    match (outcome, format) {
        (Outcome::Rows(rows), QueryFormat::Table) => table(rows),
        (Outcome::Rows(rows), QueryFormat::Json) => json(rows),
        (Outcome::Rows(rows), QueryFormat::Csv) => csv_text(rows),
        (Outcome::Done { rows_affected }, QueryFormat::Table) => match rows_affected {
            Some(1) => "1 row affected\n".to_owned(),
            Some(count) => format!("{count} rows affected\n"),
            None => "finished; Redshift did not say how many rows it affected\n".to_owned(),
        },
        (Outcome::Done { rows_affected }, QueryFormat::Json) => {
            serde_json::json!({ "rowsAffected": rows_affected }).to_string() + "\n"
        }
        (Outcome::Done { rows_affected }, QueryFormat::Csv) => {
            let count = rows_affected.map(|count| count.to_string()).unwrap_or_default();
            csv_text(&ResultSet {
                columns: vec![Column {
                    name: "rows_affected".to_owned(),
                    type_name: "int8".to_owned(),
                }],
                rows: vec![vec![Cell::Text(count)]],
            })
        }
    }
}

/// psql's aligned format: a centred header, `|` between columns, numeric
/// columns right-aligned, and the row count below. Control characters are
/// escaped (`\n`) so that each row stays one line; `csv` and `json` keep
/// them as they are.
fn table(result: &ResultSet) -> String {
    let headers: Vec<String> = result.columns.iter().map(|c| one_line(&c.name)).collect();
    let rows: Vec<Vec<String>> = result
        .rows
        .iter()
        .map(|row| row.iter().map(|cell| one_line(&cell.text())).collect())
        .collect();
    let columns = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.width()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.width());
        }
    }
    // A column of numbers (NULLs aside) reads best right-aligned.
    let numeric: Vec<bool> = (0..columns)
        .map(|index| {
            let mut values = (result.rows.iter())
                .filter_map(|row| row.get(index))
                .filter(|cell| **cell != Cell::Null)
                .peekable();
            values.peek().is_some() && values.all(Cell::is_number)
        })
        .collect();

    let mut out = String::new();
    if columns > 0 {
        let header: Vec<String> = headers
            .iter()
            .zip(&widths)
            .map(|(name, width)| pad(name, *width, Align::Centre))
            .collect();
        push_line(&mut out, &header.join("|"));
        let rule: Vec<String> = widths.iter().map(|width| "-".repeat(width + 2)).collect();
        push_line(&mut out, &rule.join("+"));
        for row in &rows {
            let cells: Vec<String> = (0..columns)
                .map(|index| {
                    let align = if numeric[index] { Align::Right } else { Align::Left };
                    pad(row.get(index).map_or("", String::as_str), widths[index], align)
                })
                .collect();
            push_line(&mut out, &cells.join("|"));
        }
    }
    let count = result.rows.len();
    let _ = writeln!(out, "({count} row{})", if count == 1 { "" } else { "s" });
    out
}

#[derive(Clone, Copy)]
enum Align {
    Left,
    Right,
    Centre,
}

/// `text` in a cell `width` columns wide (as a terminal counts them), with
/// the space psql leaves on either side.
fn pad(text: &str, width: usize, align: Align) -> String {
    let room = width.saturating_sub(text.width());
    let (before, after) = match align {
        Align::Left => (0, room),
        Align::Right => (room, 0),
        Align::Centre => (room / 2, room - room / 2),
    };
    format!(" {}{text}{} ", " ".repeat(before), " ".repeat(after))
}

/// Lines end where their text does.
fn push_line(out: &mut String, line: &str) {
    out.push_str(line.trim_end());
    out.push('\n');
}

fn one_line(text: &str) -> String {
    if !text.contains(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| match c {
            '\n' => "\\n".to_owned(),
            '\r' => "\\r".to_owned(),
            '\t' => "\\t".to_owned(),
            c if c.is_control() => c.escape_unicode().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// An array with one object per row, keys in column order. A name that
/// repeats (`SELECT a, a`) gets a suffix, `a_2`, so no value is lost to a
/// parser that keeps one key of a kind.
fn json(result: &ResultSet) -> String {
    struct Rows<'a> {
        keys: Vec<String>,
        rows: &'a [Vec<Cell>],
    }
    struct Row<'a> {
        keys: &'a [String],
        cells: &'a [Cell],
    }
    impl Serialize for Rows<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut seq = serializer.serialize_seq(Some(self.rows.len()))?;
            for cells in self.rows {
                seq.serialize_element(&Row {
                    keys: &self.keys,
                    cells,
                })?;
            }
            seq.end()
        }
    }
    impl Serialize for Row<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut map = serializer.serialize_map(Some(self.keys.len()))?;
            for (index, key) in self.keys.iter().enumerate() {
                map.serialize_entry(key, self.cells.get(index).unwrap_or(&Cell::Null))?;
            }
            map.end()
        }
    }
    let rows = Rows {
        keys: unique_names(&result.columns),
        rows: &result.rows,
    };
    // Cells serialize infallibly: strings, numbers, booleans, null and raw
    // number literals already checked.
    serde_json::to_string_pretty(&rows).unwrap_or_default() + "\n"
}

fn unique_names(columns: &[Column]) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(columns.len());
    for column in columns {
        let mut name = column.name.clone();
        let mut suffix = 2;
        while names.contains(&name) {
            name = format!("{}_{suffix}", column.name);
            suffix += 1;
        }
        names.push(name);
    }
    names
}

/// RFC 4180 fields (quoted when they hold a comma, a quote or a line
/// break; quotes doubled), records ending in `\n`.
fn csv_text(result: &ResultSet) -> String {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let header = result.columns.iter().map(|c| c.name.as_str());
    // Writing to memory fails only on a record of another length, and every
    // record here has one field per column.
    let written = writer.write_record(header).and_then(|()| {
        result.rows.iter().try_for_each(|row| {
            let padded = (0..result.columns.len()).map(|i| row.get(i).map(Cell::text).unwrap_or_default());
            writer.write_record(padded)
        })
    });
    debug_assert!(written.is_ok(), "{written:?}");
    let bytes = writer
        .into_inner()
        .map_err(|err| err.into_error())
        .unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests;
