//! The warehouse of a [`LocalPipeline`]: the script `imagepipeline warehouse
//! ddl` prints for its manifest, evaluated over the events that landed.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{LocalWarehouse, Rows, WarehouseError};
use crate::HarnessError;
use crate::local::{Landed, LocalPipeline};

impl LocalPipeline {
    /// `imagepipeline warehouse ddl -f <manifest>`: every statement the
    /// operator runs in Redshift, as a script.
    pub async fn warehouse_ddl(&self) -> Result<String, HarnessError> {
        let (_, script) = self.run_operator(&["warehouse", "ddl"], &mut |_| {}).await?;
        Ok(script)
    }

    /// The views over `landed`'s events, with `GETDATE()` this second.
    pub async fn local_warehouse(&self, landed: &Landed) -> Result<LocalWarehouse, HarnessError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| i64::try_from(since.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or_default();
        let mut warehouse = LocalWarehouse::new(&self.warehouse_ddl().await?, now)?;
        warehouse.load_events(&landed.events)?;
        Ok(warehouse)
    }

    /// Sends an event line to the pipeline's delivery stream again, as a
    /// service does that cannot tell whether Firehose took it.
    pub async fn put_event(&self, line: &[u8]) -> Result<(), HarnessError> {
        let status = self
            .status()
            .ok_or_else(|| HarnessError::Scenario("nothing is applied".into()))?;
        let stream = status.required(&status.endpoints.delivery_stream, "delivery stream")?;
        let record = aws_sdk_firehose::types::Record::builder()
            .data(aws_smithy_types::Blob::new(line))
            .build()
            .map_err(|e| HarnessError::Scenario(format!("a Firehose record of {} bytes: {e}", line.len())))?;
        aws_sdk_firehose::Client::new(&self.aws.sdk_config().await)
            .put_record()
            .delivery_stream_name(stream)
            .record(record)
            .send()
            .await
            .map_err(HarnessError::aws("PutRecord"))?;
        Ok(())
    }
}

/// What an analyst querying the warehouse would see of the images.
#[derive(Clone, Debug)]
pub struct AnalystView {
    /// `images`, one row per image, oldest first.
    pub images: Rows,
    /// `images_daily`.
    pub images_daily: Rows,
}

impl AnalystView {
    pub fn of(warehouse: &LocalWarehouse) -> Result<Self, WarehouseError> {
        Ok(Self {
            images: warehouse
                .query("SELECT id, source, content_type, bytes, width, height, ingested_at FROM images ORDER BY ingested_at, id")?,
            images_daily: warehouse.query("SELECT * FROM images_daily ORDER BY day, source, content_type")?,
        })
    }
}
