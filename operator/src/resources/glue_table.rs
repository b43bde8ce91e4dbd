//! A Glue Data Catalog table over objects in S3, found by its database and
//! name: an external table of JSON lines that Redshift Spectrum (or Athena)
//! reads where Firehose writes them. A table is nothing but its definition,
//! ready as soon as it is made: the walk compares the definition, and an
//! update puts the whole of it back.
//!
//! Glue tables cannot be tagged. Ownership follows the table's database,
//! which carries the owner tag and is always declared before it, so apply
//! and plan stop at a database of another pipeline before they reach the
//! table. A teardown walk finds such a database without an error, though:
//! there nothing but the database's name, unique to the pipeline, keeps it
//! from the other pipeline's table.

use std::collections::BTreeMap;

use aws_sdk_glue::types::{Column, SerDeInfo, StorageDescriptor, Table, TableInput};

use super::glue_database::{ALREADY_EXISTS, NOT_FOUND, shown};
use super::sdk::{built, deleted, failed};
use crate::aws::AwsClients;
use crate::aws::errors::{classify, code};
use crate::engine::field;
use crate::engine::resource::Resource;
use crate::error::ComponentError;

/// What Hive, Spectrum and Athena take for a table whose data is not theirs:
/// dropping it leaves the objects.
pub const TABLE_TYPE: &str = "EXTERNAL_TABLE";
/// Text files, one record a line (gzip or not).
pub const INPUT_FORMAT: &str = "org.apache.hadoop.mapred.TextInputFormat";
pub const OUTPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat";
/// The table parameters Spectrum needs: an external table of JSON.
const TABLE_PARAMETERS: [(&str, &str); 2] = [("EXTERNAL", "TRUE"), ("classification", "json")];

#[derive(Clone, Debug, PartialEq)]
pub struct GlueTable {
    pub database: String,
    /// Lower case: Glue folds names to lower case when it stores them.
    pub name: String,
    /// `arn:aws:glue:<region>:<account>:table/<database>/<name>`.
    pub arn: String,
    /// `s3://<bucket>/<prefix>/`: everything under it is the table's.
    pub location: String,
    pub columns: Vec<GlueColumn>,
    pub serde_library: String,
    pub serde_parameters: BTreeMap<String, String>,
    pub description: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlueColumn {
    pub name: String,
    /// A Hive type: `string`, `bigint`, `struct<topic:string,…>`.
    pub hive_type: String,
}

impl GlueColumn {
    pub fn new(name: impl Into<String>, hive_type: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            hive_type: hive_type.into(),
        }
    }
}

/// A table's definition as Glue reports it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TableState {
    pub database: String,
    pub name: String,
    pub arn: String,
    pub table_type: String,
    /// All of them, including any another tool added.
    pub parameters: BTreeMap<String, String>,
    pub description: String,
    pub location: String,
    pub columns: Vec<GlueColumn>,
    pub input_format: String,
    pub output_format: String,
    pub serde_library: String,
    pub serde_parameters: BTreeMap<String, String>,
}

impl GlueTable {
    /// The table as desired, in the shape `find` reports.
    pub fn as_desired(&self) -> TableState {
        TableState {
            database: self.database.clone(),
            name: self.name.clone(),
            arn: self.arn.clone(),
            table_type: TABLE_TYPE.to_owned(),
            parameters: own(&TABLE_PARAMETERS),
            description: self.description.clone(),
            location: self.location.clone(),
            columns: self.columns.clone(),
            input_format: INPUT_FORMAT.to_owned(),
            output_format: OUTPUT_FORMAT.to_owned(),
            serde_library: self.serde_library.clone(),
            serde_parameters: self.serde_parameters.clone(),
        }
    }

    /// The whole definition, with the table parameters other tools added to
    /// `kept` (a table found) left in place: only ours are the operator's.
    fn input(&self, kept: &BTreeMap<String, String>) -> Result<TableInput, ComponentError> {
        let columns = self
            .columns
            .iter()
            .map(|c| built(Column::builder().name(&c.name).r#type(&c.hive_type).build()))
            .collect::<Result<Vec<_>, _>>()?;
        let serde = SerDeInfo::builder()
            .serialization_library(&self.serde_library)
            .set_parameters(Some(self.serde_parameters.clone().into_iter().collect()))
            .build();
        let storage = StorageDescriptor::builder()
            .location(&self.location)
            .set_columns(Some(columns))
            .input_format(INPUT_FORMAT)
            .output_format(OUTPUT_FORMAT)
            .serde_info(serde)
            .build();
        let mut parameters = kept.clone();
        parameters.extend(own(&TABLE_PARAMETERS));
        built(
            TableInput::builder()
                .name(&self.name)
                .description(&self.description)
                .table_type(TABLE_TYPE)
                .set_parameters(Some(parameters.into_iter().collect()))
                .storage_descriptor(storage)
                // Athena wants an empty list rather than none.
                .set_partition_keys(Some(Vec::new()))
                .build(),
        )
    }
}

impl TableState {
    fn of(table: &Table, database: &str, arn: &str) -> Self {
        let storage = table.storage_descriptor();
        let serde = storage.and_then(|s| s.serde_info());
        let text = |value: Option<&str>| value.unwrap_or_default().to_owned();
        Self {
            database: database.to_owned(),
            name: table.name().to_owned(),
            arn: arn.to_owned(),
            table_type: text(table.table_type()),
            parameters: table.parameters.clone().unwrap_or_default().into_iter().collect(),
            description: text(table.description()),
            location: text(storage.and_then(|s| s.location())),
            columns: storage
                .map(|s| s.columns())
                .unwrap_or_default()
                .iter()
                .map(|c| GlueColumn::new(c.name(), text(c.r#type())))
                .collect(),
            input_format: text(storage.and_then(|s| s.input_format())),
            output_format: text(storage.and_then(|s| s.output_format())),
            serde_library: text(serde.and_then(|s| s.serialization_library())),
            serde_parameters: serde
                .and_then(|s| s.parameters.clone())
                .unwrap_or_default()
                .into_iter()
                .collect(),
        }
    }
}

impl Resource for GlueTable {
    type Observed = TableState;
    const TYPE: Option<&'static str> = Some("AWS::Glue::Table");

    fn label(&self) -> String {
        format!("Glue table {}.{}", self.database, self.name)
    }

    async fn find(&self, aws: &AwsClients) -> Result<Option<TableState>, ComponentError> {
        let request = aws
            .glue
            .get_table()
            .database_name(&self.database)
            .name(&self.name);
        match request.send().await {
            Ok(out) => Ok(out.table().map(|t| TableState::of(t, &self.database, &self.arn))),
            // Also the answer when the database does not exist (yet).
            Err(err) if code(&err) == Some(NOT_FOUND) => Ok(None),
            Err(err) => Err(classify(&format!("look up {}", self.label()), err)),
        }
    }

    fn delta(&self, observed: &TableState) -> Result<Vec<String>, ComponentError> {
        let desired = self.as_desired();
        let (o, d) = (observed, &desired);
        let mut fields = texts([
            ("table type", &o.table_type, &d.table_type),
            ("description", &o.description, &d.description),
            ("location", &o.location, &d.location),
        ]);
        // Glue folds column names to lower case for Hive; the types it keeps.
        let same_columns = o.columns.len() == d.columns.len()
            && (o.columns.iter().zip(&d.columns))
                .all(|(o, d)| o.name.eq_ignore_ascii_case(&d.name) && o.hive_type == d.hive_type);
        if !same_columns {
            fields.push(field("columns", columns(&o.columns), columns(&d.columns)));
        }
        fields.extend(texts([
            ("input format", &o.input_format, &d.input_format),
            ("output format", &o.output_format, &d.output_format),
            ("SerDe library", &o.serde_library, &d.serde_library),
        ]));
        fields.extend(entries(
            "SerDe parameter",
            &o.serde_parameters,
            &d.serde_parameters,
        ));
        // Only the table parameters the operator sets are compared.
        let found = (o.parameters.iter())
            .filter(|(key, _)| d.parameters.contains_key(*key))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        fields.extend(entries("table parameter", &found, &d.parameters));
        Ok(fields)
    }

    fn create_fields(&self) -> Vec<String> {
        vec![
            format!("location: {}", self.location),
            format!("columns: {}", columns(&self.columns)),
            format!("SerDe library: {}", self.serde_library),
        ]
    }

    async fn create(&self, aws: &AwsClients) -> Result<TableState, ComponentError> {
        match aws
            .glue
            .create_table()
            .database_name(&self.database)
            .table_input(self.input(&BTreeMap::new())?)
            .send()
            .await
        {
            Ok(_) => {}
            // Made by a pass that crashed before it saw the answer; the next
            // walk compares what it is.
            Err(err) if code(&err) == Some(ALREADY_EXISTS) => {}
            Err(err) => return Err(classify(&format!("create {}", self.label()), err)),
        }
        Ok(self.as_desired())
    }

    async fn update(&self, aws: &AwsClients, observed: &TableState) -> Result<(), ComponentError> {
        aws.glue
            .update_table()
            .database_name(&self.database)
            .table_input(self.input(&observed.parameters)?)
            .send()
            .await
            .map(drop)
            .map_err(failed("update", &self.label()))
    }

    fn delete_fields(&self) -> Vec<String> {
        vec![format!(
            "only its definition: the objects under {} stay",
            self.location
        )]
    }

    async fn delete(&self, aws: &AwsClients, _observed: &TableState) -> Result<(), ComponentError> {
        deleted(
            aws.glue
                .delete_table()
                .database_name(&self.database)
                .name(&self.name)
                .send()
                .await,
            &[NOT_FOUND],
            &format!("delete {}", self.label()),
        )
    }

    fn id(observed: &TableState) -> String {
        format!("{}.{}", observed.database, observed.name)
    }

    fn arn(observed: &TableState) -> Option<String> {
        Some(observed.arn.clone())
    }

    // No `tags`: Glue tables have none (see the module's comment).
}

fn own(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Columns as plan shows them: `id string, bytes bigint`.
fn columns(columns: &[GlueColumn]) -> String {
    let listed: Vec<String> = columns
        .iter()
        .map(|c| format!("{} {}", c.name, c.hive_type))
        .collect();
    shown(&listed.join(", ")).to_owned()
}

/// A field for each text, named first, that differs.
fn texts<const N: usize>(named: [(&str, &String, &String); N]) -> Vec<String> {
    (named.into_iter())
        .filter(|(_, observed, desired)| observed != desired)
        .map(|(name, observed, desired)| field(name, shown(observed), shown(desired)))
        .collect()
}

/// One field per key of `desired` that `observed` lacks or holds otherwise,
/// and per key of `observed` that is not desired.
fn entries(
    what: &str,
    observed: &BTreeMap<String, String>,
    desired: &BTreeMap<String, String>,
) -> Vec<String> {
    let changed = desired
        .iter()
        .filter(|(key, value)| observed.get(*key) != Some(value))
        .map(|(key, value)| field(&format!("{what} {key}"), or_absent(observed.get(key)), value));
    let removed = observed
        .iter()
        .filter(|(key, _)| !desired.contains_key(*key))
        .map(|(key, value)| field(&format!("{what} {key}"), value, "(absent)"));
    changed.chain(removed).collect()
}

fn or_absent(value: Option<&String>) -> &str {
    value.map_or("(absent)", String::as_str)
}

#[cfg(test)]
mod tests;
