//! A DynamoDB table, found by its name: on demand, encrypted with KMS, with a
//! string partition key and one global secondary index on a string
//! attribute. Its find reads its time to live and point-in-time recovery
//! too, which are parts of it ([`settings`]), as are its tags (through
//! [`TagsOf`](crate::resources::tags_of::TagsOf)).

mod request;
pub mod settings;

use aws_sdk_dynamodb::types::{BillingMode, SseStatus, TableStatus};

use super::sdk::{deleted, failed};
use super::tags::to_sdk;
use crate::aws::AwsClients;
use crate::aws::errors::{classify, code};
use crate::engine::resource::Resource;
use crate::engine::{Readiness, Tags, field, removed_tag_keys};
use crate::error::ComponentError;
use request::{hash_key, kms_encryption, string_attribute};

#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub name: String,
    /// Its ARN as the account and region make it, until AWS reports one.
    pub arn: String,
    pub partition_key: &'static str,
    pub index: Index,
    pub tags: Tags,
}

/// A global secondary index keyed on one string attribute, projecting all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Index {
    pub name: &'static str,
    pub attribute: &'static str,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct TableState {
    pub name: String,
    pub arn: String,
    /// `CREATING`, `ACTIVE`, `UPDATING`, `DELETING`, …
    pub status: String,
    pub on_demand: bool,
    pub has_index: bool,
    pub kms_encrypted: bool,
    /// The attribute items expire on, while time to live is on.
    pub ttl_attribute: Option<String>,
    pub point_in_time_recovery: bool,
    pub tags: Tags,
}

impl TableState {
    pub fn is(&self, status: TableStatus) -> bool {
        self.status == status.as_str()
    }
}

impl Table {
    /// The table before it exists: nothing set. What a plan compares the
    /// settings of a table it would create with.
    pub fn unmade(&self) -> TableState {
        TableState {
            name: self.name.clone(),
            arn: self.arn.clone(),
            ..TableState::default()
        }
    }
}

impl Resource for Table {
    type Observed = TableState;
    const TYPE: Option<&'static str> = Some("AWS::DynamoDB::Table");
    const KEEPS_DATA: bool = true;

    fn label(&self) -> String {
        format!("DynamoDB table {}", self.name)
    }

    async fn find(&self, aws: &AwsClients) -> Result<Option<TableState>, ComponentError> {
        let described = match aws.dynamodb.describe_table().table_name(&self.name).send().await {
            Ok(out) => out.table,
            Err(err) if code(&err) == Some("ResourceNotFoundException") => None,
            Err(err) => return Err(classify(&format!("look up {}", self.label()), err)),
        };
        let Some(table) = described else {
            return Ok(None);
        };
        let mut state = TableState {
            arn: table.table_arn().unwrap_or(&self.arn).to_owned(),
            status: table
                .table_status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            on_demand: table
                .billing_mode_summary()
                .and_then(|b| b.billing_mode())
                .is_some_and(|mode| mode == &BillingMode::PayPerRequest),
            has_index: table
                .global_secondary_indexes()
                .iter()
                .any(|i| i.index_name() == Some(self.index.name)),
            kms_encrypted: table
                .sse_description()
                .and_then(|sse| sse.status())
                .is_some_and(|s| matches!(s, SseStatus::Enabled | SseStatus::Enabling | SseStatus::Updating)),
            ..self.unmade()
        };
        // A table being deleted answers nothing more.
        if !state.is(TableStatus::Deleting) {
            self.read_settings(aws, &mut state).await?;
        }
        Ok(Some(state))
    }

    fn delta(&self, observed: &TableState) -> Result<Vec<String>, ComponentError> {
        if observed.is(TableStatus::Deleting) {
            return Err(ComponentError::retryable(
                "TableDeleting",
                format!(
                    "{} is being deleted; it is made again once it is gone",
                    self.label()
                ),
            ));
        }
        let mut fields = Vec::new();
        // DynamoDB refuses settings changes while the table is not ACTIVE.
        if !observed.is(TableStatus::Active) {
            return Ok(fields);
        }
        if !observed.on_demand {
            fields.push(field("billing mode", "PROVISIONED", "PAY_PER_REQUEST"));
        }
        if !observed.kms_encrypted {
            fields.push(field("server-side encryption", "AWS owned key", "KMS"));
        }
        if !observed.has_index {
            fields.push(field(
                "global secondary index",
                "(absent)",
                format!("{} on {}", self.index.name, self.index.attribute),
            ));
        }
        Ok(fields)
    }

    fn create_fields(&self) -> Vec<String> {
        vec![format!(
            "key {}, on demand, KMS encryption, index {}",
            self.partition_key, self.index.name
        )]
    }

    async fn create(&self, aws: &AwsClients) -> Result<TableState, ComponentError> {
        let result = aws
            .dynamodb
            .create_table()
            .table_name(&self.name)
            .attribute_definitions(string_attribute(self.partition_key)?)
            .attribute_definitions(string_attribute(self.index.attribute)?)
            .key_schema(hash_key(self.partition_key)?)
            .billing_mode(BillingMode::PayPerRequest)
            .global_secondary_indexes(self.index.definition()?)
            .sse_specification(kms_encryption())
            .set_tags(Some(to_sdk(&self.tags)?))
            .send()
            .await;
        let description = match result {
            Ok(out) => out.table_description,
            // Made by an earlier pass that crashed before it saw the answer;
            // the next round reads what it is.
            Err(err) if code(&err) == Some("ResourceInUseException") => None,
            Err(err) => return Err(classify(&format!("create {}", self.label()), err)),
        };
        let status = description.as_ref().and_then(|t| t.table_status()).cloned();
        Ok(TableState {
            arn: description
                .as_ref()
                .and_then(|t| t.table_arn())
                .unwrap_or(&self.arn)
                .to_owned(),
            status: status.unwrap_or(TableStatus::Creating).as_str().to_owned(),
            tags: self.tags.clone(),
            ..self.unmade()
        })
    }

    async fn update(&self, aws: &AwsClients, observed: &TableState) -> Result<(), ComponentError> {
        let db = &aws.dynamodb;
        let action = format!("update {}", self.label());
        // One change per UpdateTable call: DynamoDB takes no more at once.
        if !observed.on_demand {
            db.update_table()
                .table_name(&self.name)
                .billing_mode(BillingMode::PayPerRequest)
                .send()
                .await
                .map_err(|err| classify(&format!("{action} billing mode"), err))?;
        }
        if !observed.kms_encrypted {
            db.update_table()
                .table_name(&self.name)
                .sse_specification(kms_encryption())
                .send()
                .await
                .map_err(|err| classify(&format!("{action} encryption"), err))?;
        }
        if !observed.has_index {
            db.update_table()
                .table_name(&self.name)
                .attribute_definitions(string_attribute(self.index.attribute)?)
                .global_secondary_index_updates(self.index.addition()?)
                .send()
                .await
                .map_err(|err| classify(&format!("{action} index {}", self.index.name), err))?;
        }
        Ok(())
    }

    async fn delete(&self, aws: &AwsClients, _observed: &TableState) -> Result<(), ComponentError> {
        deleted(
            aws.dynamodb.delete_table().table_name(&self.name).send().await,
            &["ResourceNotFoundException"],
            &format!("delete {}", self.label()),
        )
    }

    fn id(observed: &TableState) -> String {
        observed.name.clone()
    }

    fn arn(observed: &TableState) -> Option<String> {
        Some(observed.arn.clone())
    }

    fn tags(observed: &TableState) -> Option<&Tags> {
        Some(&observed.tags)
    }

    fn readiness(&self, observed: &TableState) -> Readiness {
        Readiness::of(
            &self.label(),
            Some(&observed.status),
            TableStatus::Active.as_str(),
        )
    }

    fn going(&self, observed: &TableState) -> Option<String> {
        observed
            .is(TableStatus::Deleting)
            .then(|| format!("{} is being deleted", self.label()))
    }

    fn desired_tags(&self) -> Option<&Tags> {
        Some(&self.tags)
    }

    async fn set_tags(
        &self,
        aws: &AwsClients,
        observed: &TableState,
        tags: &Tags,
    ) -> Result<(), ComponentError> {
        let (db, what) = (&aws.dynamodb, self.label());
        let stale = removed_tag_keys(&observed.tags, tags);
        if !stale.is_empty() {
            db.untag_resource()
                .resource_arn(&observed.arn)
                .set_tag_keys(Some(stale))
                .send()
                .await
                .map_err(failed("untag", &what))?;
        }
        if tags.is_empty() {
            return Ok(());
        }
        db.tag_resource()
            .resource_arn(&observed.arn)
            .set_tags(Some(to_sdk(tags)?))
            .send()
            .await
            .map(drop)
            .map_err(failed("tag", &what))
    }
}
