//! The objects in a bucket: S3 deletes only an empty bucket.

use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use super::Bucket;
use crate::aws::AwsClients;
use crate::engine::resource::Resource;
use crate::error::ComponentError;
use crate::resources::sdk::built;
use crate::resources::sdk::failed;

/// S3 DeleteObjects takes at most 1,000 keys.
const DELETE_OBJECTS_BATCH: usize = 1000;

impl Bucket {
    /// Deletes every object, a page at a time. A key S3 refuses to delete
    /// fails the delete, so the bucket is never deleted half-empty.
    pub(super) async fn empty(&self, aws: &AwsClients) -> Result<(), ComponentError> {
        let bucket = self.name.as_str();
        let mut pages = aws.s3.list_objects_v2().bucket(bucket).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(failed("list objects of", &self.label()))?;
            let keys: Vec<ObjectIdentifier> = page
                .contents()
                .iter()
                .filter_map(|object| object.key())
                .map(|key| built(ObjectIdentifier::builder().key(key).build()))
                .collect::<Result<_, _>>()?;
            for batch in keys.chunks(DELETE_OBJECTS_BATCH) {
                let delete = built(
                    Delete::builder()
                        .set_objects(Some(batch.to_vec()))
                        .quiet(true)
                        .build(),
                )?;
                let out = aws
                    .s3
                    .delete_objects()
                    .bucket(bucket)
                    .delete(delete)
                    .send()
                    .await
                    .map_err(failed("delete objects of", &self.label()))?;
                if let Some(failed) = out.errors().first() {
                    return Err(ComponentError::retryable(
                        "ObjectsNotDeleted",
                        format!(
                            "S3 refused to delete {} of {} objects in bucket {bucket}, e.g. {}: {} {}",
                            out.errors().len(),
                            batch.len(),
                            failed.key().unwrap_or("?"),
                            failed.code().unwrap_or("?"),
                            failed.message().unwrap_or(""),
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}
