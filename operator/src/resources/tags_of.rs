//! The tags of a resource whose tags are set by a call of their own (S3
//! `PutBucketTagging`, DynamoDB `TagResource`), as a part of it: plan shows a
//! difference as `<resource> tags`, and apply puts them back with the same
//! `set_tags` that tags a kept resource as retained.

use crate::aws::AwsClients;
use crate::engine::resource::Resource;
use crate::engine::{Tags, tag_changes};
use crate::error::ComponentError;

#[derive(Clone, Debug)]
pub struct TagsOf<R: Resource> {
    /// The resource as desired: its `desired_tags` are the tags wanted.
    pub resource: R,
    /// The resource as its `find` saw it, tags included.
    pub observed: R::Observed,
}

impl<R: Resource> TagsOf<R> {
    fn wanted(&self) -> Tags {
        self.resource.desired_tags().cloned().unwrap_or_default()
    }
}

impl<R: Resource + Clone + 'static> Resource for TagsOf<R> {
    type Observed = Tags;
    const TYPE: Option<&'static str> = None;

    fn label(&self) -> String {
        format!("{} tags", self.resource.label())
    }

    /// Read by the resource's own `find`: no call of its own.
    async fn find(&self, _aws: &AwsClients) -> Result<Option<Tags>, ComponentError> {
        Ok(R::tags(&self.observed).cloned())
    }

    fn delta(&self, observed: &Tags) -> Result<Vec<String>, ComponentError> {
        Ok(tag_changes(observed, &self.wanted()))
    }

    async fn create(&self, aws: &AwsClients) -> Result<Tags, ComponentError> {
        let wanted = self.wanted();
        self.resource.set_tags(aws, &self.observed, &wanted).await?;
        Ok(wanted)
    }

    async fn update(&self, aws: &AwsClients, _observed: &Tags) -> Result<(), ComponentError> {
        self.resource.set_tags(aws, &self.observed, &self.wanted()).await
    }

    async fn delete(&self, aws: &AwsClients, _observed: &Tags) -> Result<(), ComponentError> {
        self.resource.set_tags(aws, &self.observed, &Tags::new()).await
    }

    fn id(_observed: &Tags) -> String {
        String::new()
    }
}
