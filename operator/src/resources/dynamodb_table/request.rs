//! The pieces of the CreateTable and UpdateTable requests.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex, GlobalSecondaryIndexUpdate,
    KeySchemaElement, KeyType, Projection, ProjectionType, ScalarAttributeType, SseSpecification, SseType,
};

use super::Index;
use crate::error::ComponentError;
use crate::resources::sdk::built;

pub(super) fn string_attribute(name: &str) -> Result<AttributeDefinition, ComponentError> {
    built(
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build(),
    )
}

pub(super) fn hash_key(name: &str) -> Result<KeySchemaElement, ComponentError> {
    built(
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(KeyType::Hash)
            .build(),
    )
}

fn all_attributes() -> Projection {
    Projection::builder().projection_type(ProjectionType::All).build()
}

pub(super) fn kms_encryption() -> SseSpecification {
    SseSpecification::builder()
        .enabled(true)
        .sse_type(SseType::Kms)
        .build()
}

impl Index {
    /// The index as CreateTable makes it.
    pub(super) fn definition(&self) -> Result<GlobalSecondaryIndex, ComponentError> {
        built(
            GlobalSecondaryIndex::builder()
                .index_name(self.name)
                .key_schema(hash_key(self.attribute)?)
                .projection(all_attributes())
                .build(),
        )
    }

    /// The index as UpdateTable adds it to a table without it.
    pub(super) fn addition(&self) -> Result<GlobalSecondaryIndexUpdate, ComponentError> {
        let create = CreateGlobalSecondaryIndexAction::builder()
            .index_name(self.name)
            .key_schema(hash_key(self.attribute)?)
            .projection(all_attributes())
            .build();
        Ok(GlobalSecondaryIndexUpdate::builder()
            .create(built(create)?)
            .build())
    }
}
