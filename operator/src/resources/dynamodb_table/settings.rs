//! The settings of a table that DynamoDB keeps apart from it, each set by a
//! call of its own: time to live and point-in-time recovery. Each is a part
//! of the table, read by the table's `find`, so plan shows a difference as
//! `DynamoDB table <name> <setting>`. DynamoDB accepts them only once the
//! table is `ACTIVE`.

use aws_sdk_dynamodb::types::{
    PointInTimeRecoverySpecification, PointInTimeRecoveryStatus, TimeToLiveSpecification, TimeToLiveStatus,
};

use super::{Table, TableState};
use crate::aws::AwsClients;
use crate::aws::errors::classify;
use crate::engine::field;
use crate::engine::resource::Resource;
use crate::error::ComponentError;
use crate::resources::sdk::built;
use crate::resources::sdk::failed;
use crate::resources::tags::from_sdk;

impl Table {
    /// Reads what DynamoDB keeps apart from the table's description: its
    /// tags, time to live and backups.
    pub(super) async fn read_settings(
        &self,
        aws: &AwsClients,
        state: &mut TableState,
    ) -> Result<(), ComponentError> {
        let (db, name) = (&aws.dynamodb, self.name.as_str());
        let read = |what: &str| format!("read {what} of DynamoDB table {name}");
        let tags = db
            .list_tags_of_resource()
            .resource_arn(&state.arn)
            .send()
            .await
            .map_err(|err| classify(&read("tags"), err))?;
        state.tags = from_sdk(tags.tags());
        let ttl = db
            .describe_time_to_live()
            .table_name(name)
            .send()
            .await
            .map_err(|err| classify(&read("TTL"), err))?;
        state.ttl_attribute = ttl.time_to_live_description().and_then(|d| {
            let on = matches!(
                d.time_to_live_status(),
                Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
            );
            on.then(|| d.attribute_name().unwrap_or_default().to_owned())
        });
        let backups = db
            .describe_continuous_backups()
            .table_name(name)
            .send()
            .await
            .map_err(|err| classify(&read("backups"), err))?;
        state.point_in_time_recovery = backups
            .continuous_backups_description()
            .and_then(|d| d.point_in_time_recovery_description())
            .and_then(|p| p.point_in_time_recovery_status())
            .is_some_and(|s| s == &PointInTimeRecoveryStatus::Enabled);
        Ok(())
    }
}

/// Items expire on the epoch seconds in `attribute`.
#[derive(Clone, Debug, PartialEq)]
pub struct TimeToLive {
    pub table: String,
    pub attribute: &'static str,
    /// The attribute the table's `find` saw time to live on, if on.
    pub observed: Option<String>,
}

impl TimeToLive {
    pub fn of(table: &TableState, attribute: &'static str) -> Self {
        Self {
            table: table.name.clone(),
            attribute,
            observed: table.ttl_attribute.clone(),
        }
    }

    async fn put(&self, aws: &AwsClients, enabled: bool) -> Result<(), ComponentError> {
        let specification = TimeToLiveSpecification::builder()
            .enabled(enabled)
            .attribute_name(self.attribute)
            .build();
        aws.dynamodb
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(built(specification)?)
            .send()
            .await
            .map(drop)
            .map_err(failed("set", &self.label()))
    }
}

impl Resource for TimeToLive {
    type Observed = Option<String>;
    const TYPE: Option<&'static str> = None;

    fn label(&self) -> String {
        format!("DynamoDB table {} time to live", self.table)
    }

    async fn find(&self, _aws: &AwsClients) -> Result<Option<Option<String>>, ComponentError> {
        Ok(Some(self.observed.clone()))
    }

    fn delta(&self, observed: &Option<String>) -> Result<Vec<String>, ComponentError> {
        Ok(if observed.as_deref() == Some(self.attribute) {
            vec![]
        } else {
            vec![field(
                "TTL attribute",
                observed.as_deref().unwrap_or("(disabled)"),
                self.attribute,
            )]
        })
    }

    async fn create(&self, aws: &AwsClients) -> Result<Option<String>, ComponentError> {
        self.put(aws, true).await?;
        Ok(Some(self.attribute.to_owned()))
    }

    async fn update(&self, aws: &AwsClients, _observed: &Option<String>) -> Result<(), ComponentError> {
        self.put(aws, true).await
    }

    async fn delete(&self, aws: &AwsClients, _observed: &Option<String>) -> Result<(), ComponentError> {
        self.put(aws, false).await
    }

    fn id(_observed: &Option<String>) -> String {
        String::new()
    }
}

/// Continuous backups that restore the table to any second of the last 35 days.
#[derive(Clone, Debug, PartialEq)]
pub struct PointInTimeRecovery {
    pub table: String,
    /// Whether the table's `find` saw it enabled.
    pub observed: bool,
}

impl PointInTimeRecovery {
    pub fn of(table: &TableState) -> Self {
        Self {
            table: table.name.clone(),
            observed: table.point_in_time_recovery,
        }
    }

    async fn put(&self, aws: &AwsClients, enabled: bool) -> Result<(), ComponentError> {
        let specification = PointInTimeRecoverySpecification::builder()
            .point_in_time_recovery_enabled(enabled)
            .build();
        aws.dynamodb
            .update_continuous_backups()
            .table_name(&self.table)
            .point_in_time_recovery_specification(built(specification)?)
            .send()
            .await
            .map(drop)
            .map_err(failed("set", &self.label()))
    }
}

impl Resource for PointInTimeRecovery {
    type Observed = bool;
    const TYPE: Option<&'static str> = None;

    fn label(&self) -> String {
        format!("DynamoDB table {} point-in-time recovery", self.table)
    }

    async fn find(&self, _aws: &AwsClients) -> Result<Option<bool>, ComponentError> {
        Ok(Some(self.observed))
    }

    fn delta(&self, enabled: &bool) -> Result<Vec<String>, ComponentError> {
        Ok(if *enabled {
            vec![]
        } else {
            vec![field("enabled", false, true)]
        })
    }

    async fn create(&self, aws: &AwsClients) -> Result<bool, ComponentError> {
        self.put(aws, true).await?;
        Ok(true)
    }

    async fn update(&self, aws: &AwsClients, _observed: &bool) -> Result<(), ComponentError> {
        self.put(aws, true).await
    }

    async fn delete(&self, aws: &AwsClients, _observed: &bool) -> Result<(), ComponentError> {
        self.put(aws, false).await
    }

    fn id(_observed: &bool) -> String {
        String::new()
    }
}
