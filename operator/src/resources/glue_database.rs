//! A Glue Data Catalog database, found by its name: the catalog that Redshift
//! Spectrum maps as an external schema. Glue tags it by its ARN with calls of
//! their own, so its tags are a part of it (through
//! [`TagsOf`](crate::resources::tags_of::TagsOf)), and they carry the owner
//! tag the walk checks. Deleting it deletes its tables' definitions; the
//! objects they describe stay where they are.

use aws_sdk_glue::types::{Database, DatabaseInput};

use super::sdk::{built, deleted, failed};
use crate::aws::AwsClients;
use crate::aws::errors::{classify, code};
use crate::engine::resource::Resource;
use crate::engine::{Tags, field, removed_tag_keys};
use crate::error::ComponentError;

/// Glue's answer for a database, a table (or the database of one) that does
/// not exist.
pub(crate) const NOT_FOUND: &str = "EntityNotFoundException";
/// Glue's answer to a create of a name that exists.
pub(crate) const ALREADY_EXISTS: &str = "AlreadyExistsException";

#[derive(Clone, Debug, PartialEq)]
pub struct GlueDatabase {
    /// Lower case: Glue folds names to lower case when it stores them.
    pub name: String,
    /// `arn:aws:glue:<region>:<account>:database/<name>`, what its tags are
    /// read and set on.
    pub arn: String,
    pub description: String,
    pub tags: Tags,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DatabaseState {
    pub name: String,
    pub arn: String,
    /// The database as found, as UpdateDatabase takes it. That call replaces
    /// the whole definition, so what the operator does not set (default
    /// permissions Lake Formation gave new tables, say) is sent back as is.
    pub input: DatabaseInput,
    pub tags: Tags,
}

impl DatabaseState {
    pub fn description(&self) -> &str {
        self.input.description().unwrap_or_default()
    }
}

impl GlueDatabase {
    fn input(&self) -> Result<DatabaseInput, ComponentError> {
        built(
            DatabaseInput::builder()
                .name(&self.name)
                .description(&self.description)
                .build(),
        )
    }
}

/// What UpdateDatabase needs to leave `database` as it is.
fn input_of(database: &Database) -> Result<DatabaseInput, ComponentError> {
    built(
        DatabaseInput::builder()
            .name(database.name())
            .set_description(database.description.clone())
            .set_location_uri(database.location_uri.clone())
            .set_parameters(database.parameters.clone())
            .set_create_table_default_permissions(database.create_table_default_permissions.clone())
            .set_target_database(database.target_database.clone())
            .set_federated_database(database.federated_database.clone())
            .build(),
    )
}

impl Resource for GlueDatabase {
    type Observed = DatabaseState;
    const TYPE: Option<&'static str> = Some("AWS::Glue::Database");

    fn label(&self) -> String {
        format!("Glue database {}", self.name)
    }

    async fn find(&self, aws: &AwsClients) -> Result<Option<DatabaseState>, ComponentError> {
        let database = match aws.glue.get_database().name(&self.name).send().await {
            Ok(out) => out.database,
            Err(err) if code(&err) == Some(NOT_FOUND) => None,
            Err(err) => return Err(classify(&format!("look up {}", self.label()), err)),
        };
        let Some(database) = database else {
            return Ok(None);
        };
        let tags = match aws.glue.get_tags().resource_arn(&self.arn).send().await {
            Ok(out) => out.tags.unwrap_or_default().into_iter().collect(),
            // Deleted since it was looked up.
            Err(err) if code(&err) == Some(NOT_FOUND) => return Ok(None),
            Err(err) => return Err(classify(&format!("read the tags of {}", self.label()), err)),
        };
        Ok(Some(DatabaseState {
            name: database.name().to_owned(),
            arn: self.arn.clone(),
            input: input_of(&database)?,
            tags,
        }))
    }

    fn delta(&self, observed: &DatabaseState) -> Result<Vec<String>, ComponentError> {
        let mut fields = Vec::new();
        if observed.description() != self.description {
            fields.push(field(
                "description",
                shown(observed.description()),
                shown(&self.description),
            ));
        }
        Ok(fields)
    }

    fn create_fields(&self) -> Vec<String> {
        vec![format!("description: {}", shown(&self.description))]
    }

    async fn create(&self, aws: &AwsClients) -> Result<DatabaseState, ComponentError> {
        let input = self.input()?;
        match aws
            .glue
            .create_database()
            .database_input(input.clone())
            .set_tags(Some(self.tags.clone().into_iter().collect()))
            .send()
            .await
        {
            Ok(_) => {}
            // Made by a pass that crashed before it saw the answer; the next
            // walk reads what it is, and whose.
            Err(err) if code(&err) == Some(ALREADY_EXISTS) => {}
            Err(err) => return Err(classify(&format!("create {}", self.label()), err)),
        }
        Ok(DatabaseState {
            name: self.name.clone(),
            arn: self.arn.clone(),
            input,
            tags: self.tags.clone(),
        })
    }

    async fn update(&self, aws: &AwsClients, observed: &DatabaseState) -> Result<(), ComponentError> {
        let mut input = observed.input.clone();
        input.description = Some(self.description.clone());
        aws.glue
            .update_database()
            .name(&observed.name)
            .database_input(input)
            .send()
            .await
            .map(drop)
            .map_err(failed("update", &self.label()))
    }

    fn delete_fields(&self) -> Vec<String> {
        vec!["its tables' definitions with it; the objects they describe stay".to_owned()]
    }

    async fn delete(&self, aws: &AwsClients, observed: &DatabaseState) -> Result<(), ComponentError> {
        deleted(
            aws.glue.delete_database().name(&observed.name).send().await,
            &[NOT_FOUND],
            &format!("delete {}", self.label()),
        )
    }

    fn id(observed: &DatabaseState) -> String {
        observed.name.clone()
    }

    fn arn(observed: &DatabaseState) -> Option<String> {
        Some(observed.arn.clone())
    }

    fn tags(observed: &DatabaseState) -> Option<&Tags> {
        Some(&observed.tags)
    }

    fn desired_tags(&self) -> Option<&Tags> {
        Some(&self.tags)
    }

    async fn set_tags(
        &self,
        aws: &AwsClients,
        observed: &DatabaseState,
        tags: &Tags,
    ) -> Result<(), ComponentError> {
        let what = self.label();
        let stale = removed_tag_keys(&observed.tags, tags);
        if !stale.is_empty() {
            aws.glue
                .untag_resource()
                .resource_arn(&observed.arn)
                .set_tags_to_remove(Some(stale))
                .send()
                .await
                .map_err(failed("untag", &what))?;
        }
        if tags.is_empty() {
            return Ok(());
        }
        aws.glue
            .tag_resource()
            .resource_arn(&observed.arn)
            .set_tags_to_add(Some(tags.clone().into_iter().collect()))
            .send()
            .await
            .map(drop)
            .map_err(failed("tag", &what))
    }
}

/// A text as plan shows it: `(none)` when empty.
pub(crate) fn shown(text: &str) -> &str {
    if text.is_empty() { "(none)" } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::OWNER_TAG;
    use crate::resources::tags_of::TagsOf;

    fn database() -> GlueDatabase {
        GlueDatabase {
            name: "ipl_media_photos_events_0a1b2c3d".into(),
            arn: "arn:aws:glue:eu-west-1:123456789012:database/ipl_media_photos_events_0a1b2c3d".into(),
            description: "Events of ImagePipeline media/photos".into(),
            tags: Tags::from([(OWNER_TAG.to_owned(), "media/photos".to_owned())]),
        }
    }

    fn as_desired(database: &GlueDatabase) -> DatabaseState {
        DatabaseState {
            name: database.name.clone(),
            arn: database.arn.clone(),
            input: database.input().unwrap(),
            tags: database.tags.clone(),
        }
    }

    #[test]
    fn a_database_as_desired_has_no_delta() {
        let database = database();
        assert_eq!(
            database.delta(&as_desired(&database)).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn another_description_is_the_one_field_an_update_repairs() {
        let database = database();
        let mut found = as_desired(&database);
        found.input.description = None;
        assert_eq!(
            database.delta(&found).unwrap(),
            ["description: (none) → Events of ImagePipeline media/photos"]
        );
    }

    #[test]
    fn its_tags_differ_as_a_part_of_it_not_in_its_own_delta() {
        let database = database();
        let mut found = as_desired(&database);
        found.tags.insert("team".into(), "media".into());
        found.tags.remove(OWNER_TAG);
        assert_eq!(database.delta(&found).unwrap(), Vec::<String>::new());
        let tags = TagsOf {
            resource: database.clone(),
            observed: found.clone(),
        };
        assert_eq!(
            tags.label(),
            "Glue database ipl_media_photos_events_0a1b2c3d tags"
        );
        assert_eq!(
            tags.delta(&found.tags).unwrap(),
            [
                "tag imagepipeline.io/owner: (absent) → media/photos",
                "tag team: media → (absent)",
            ]
        );
    }
}
