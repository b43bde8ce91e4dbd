//! The Glue Data Catalog database and events table against the AWS emulator,
//! driven through a walk as a component declares them: made, found again as
//! made, a table and tags changed behind the operator's back put back, both
//! gone after a teardown; and a database another pipeline owns refused and
//! left alone.

use aws_sdk_glue::types::{StorageDescriptor, TableInput};
use imagepipeline_e2e::AwsEmulator;
use imagepipeline_operator::aws::{AwsClients, CallLog};
use imagepipeline_operator::engine::resource::{Resource, Walk, WalkMode};
use imagepipeline_operator::engine::{Action, ComponentError, OWNER_TAG, Tags};
use imagepipeline_operator::resources::glue_database::GlueDatabase;
use imagepipeline_operator::resources::glue_table::{GlueColumn, GlueTable};
use imagepipeline_operator::resources::tags_of::TagsOf;

const OWNER: &str = "media/photos";
const DATABASE: &str = "ipl_media_photos_events_0a1b2c3d";
/// The emulator's account, in the region of its clients.
const ARN_PREFIX: &str = "arn:aws:glue:eu-west-1:123456789012";
const LOCATION: &str = "s3://media-photos-eu-west-1/events/";

fn database(owner: &str) -> GlueDatabase {
    GlueDatabase {
        name: DATABASE.to_owned(),
        arn: format!("{ARN_PREFIX}:database/{DATABASE}"),
        description: "Events of ImagePipeline media/photos".to_owned(),
        tags: Tags::from([
            (OWNER_TAG.to_owned(), owner.to_owned()),
            ("team".to_owned(), "media".to_owned()),
        ]),
    }
}

fn table() -> GlueTable {
    GlueTable {
        database: DATABASE.to_owned(),
        name: "image_events".to_owned(),
        arn: format!("{ARN_PREFIX}:table/{DATABASE}/image_events"),
        location: LOCATION.to_owned(),
        columns: vec![
            GlueColumn::new("id", "string"),
            GlueColumn::new("content_type", "string"),
            GlueColumn::new("bytes", "bigint"),
            GlueColumn::new("kafka", "struct<topic:string,partition:int,offset:bigint>"),
        ],
        serde_library: "org.openx.data.jsonserde.JsonSerDe".to_owned(),
        serde_parameters: [("mapping.content_type", "contentType")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        description: "Image events Firehose delivers".to_owned(),
    }
}

/// One change as a walk records it.
type Changed = (Action, String, Vec<String>);

struct Setup {
    _emulator: AwsEmulator,
    aws: AwsClients,
}

impl Setup {
    async fn new() -> Self {
        let emulator = AwsEmulator::start().await.expect("moto server starts");
        let aws = AwsClients::from_sdk_config(&emulator.sdk_config().await, CallLog::new()).expect("clients");
        Self {
            _emulator: emulator,
            aws,
        }
    }

    /// A walk of `mode` as `owner` over the database, its tags and the
    /// table, in the order a component declares them.
    async fn walk_as(
        &self,
        owner: &str,
        database: &GlueDatabase,
        mode: WalkMode,
    ) -> Result<Vec<Changed>, ComponentError> {
        let mut walk = Walk::new(&self.aws, owner, mode);
        let found = walk.ensure(database).await?;
        if let (Some(found), false) = (found, mode == WalkMode::Find) {
            let tags = TagsOf {
                resource: database.clone(),
                observed: found,
            };
            walk.ensure(&tags).await?;
        }
        walk.ensure(&table()).await?;
        if mode == WalkMode::Find {
            walk.tear_down().await?;
        }
        Ok(walk
            .take_changes()
            .into_iter()
            .map(|c| (c.action, c.resource, c.fields))
            .collect())
    }

    async fn walk(&self, mode: WalkMode) -> Vec<Changed> {
        self.walk_as(OWNER, &database(OWNER), mode).await.expect("a walk")
    }

    async fn location(&self) -> Option<String> {
        let out = self
            .aws
            .glue
            .get_table()
            .database_name(DATABASE)
            .name("image_events")
            .send()
            .await
            .ok()?;
        out.table()?.storage_descriptor()?.location().map(str::to_owned)
    }

    async fn database_exists(&self) -> bool {
        self.aws.glue.get_database().name(DATABASE).send().await.is_ok()
    }
}

fn resources(changes: &[Changed]) -> Vec<(Action, &str)> {
    changes.iter().map(|(a, r, _)| (*a, r.as_str())).collect()
}

const DATABASE_LABEL: &str = "Glue database ipl_media_photos_events_0a1b2c3d";
const TABLE_LABEL: &str = "Glue table ipl_media_photos_events_0a1b2c3d.image_events";

#[tokio::test]
async fn the_events_catalog_is_made_found_as_made_repaired_and_torn_down() {
    let setup = Setup::new().await;

    let planned = setup.walk(WalkMode::Plan).await;
    assert_eq!(
        resources(&planned),
        [(Action::Create, DATABASE_LABEL), (Action::Create, TABLE_LABEL)],
        "a table whose database does not exist yet is to be made: {planned:#?}"
    );
    assert!(!setup.database_exists().await, "a plan makes nothing");

    let applied = setup.walk(WalkMode::Apply).await;
    assert_eq!(applied, planned);
    let found = database(OWNER)
        .find(&setup.aws)
        .await
        .unwrap()
        .expect("the database");
    assert_eq!(found.tags, database(OWNER).tags, "tags go round the trip");
    assert_eq!(found.description(), database(OWNER).description);
    let found = table().find(&setup.aws).await.unwrap().expect("the table");
    assert_eq!(found, table().as_desired(), "Glue reports the table as made");
    assert_eq!(setup.walk(WalkMode::Apply).await, [], "found as made");
    let calls = setup.aws.calls.counts();
    assert!(
        calls
            .keys()
            .any(|k| k.service == "Glue" && k.operation == "CreateTable"),
        "the call log records Glue: {calls:?}"
    );

    // Changed behind the operator's back: the table moved, a tag removed.
    let moved = TableInput::builder()
        .name("image_events")
        .table_type("EXTERNAL_TABLE")
        .storage_descriptor(
            StorageDescriptor::builder()
                .location("s3://media-photos-eu-west-1/elsewhere/")
                .build(),
        )
        .build()
        .unwrap();
    let glue = &setup.aws.glue;
    glue.update_table()
        .database_name(DATABASE)
        .table_input(moved)
        .send()
        .await
        .expect("UpdateTable");
    glue.untag_resource()
        .resource_arn(&database(OWNER).arn)
        .tags_to_remove("team")
        .send()
        .await
        .expect("UntagResource");
    let planned = setup.walk(WalkMode::Plan).await;
    let (tags, table_changes) = (&planned[0], &planned[1]);
    assert_eq!(planned.len(), 2, "{planned:#?}");
    assert_eq!(
        (tags.0, tags.1.as_str(), tags.2.as_slice()),
        (
            Action::Update,
            format!("{DATABASE_LABEL} tags").as_str(),
            ["tag team: (absent) → media".to_owned()].as_slice()
        )
    );
    assert_eq!(
        (table_changes.0, table_changes.1.as_str()),
        (Action::Update, TABLE_LABEL)
    );
    assert!(
        table_changes.2.contains(&format!(
            "location: s3://media-photos-eu-west-1/elsewhere/ → {LOCATION}"
        )),
        "{table_changes:#?}"
    );
    assert_eq!(setup.walk(WalkMode::Apply).await, planned);
    assert_eq!(setup.walk(WalkMode::Plan).await, [], "repaired");
    assert_eq!(setup.location().await.as_deref(), Some(LOCATION));

    let torn_down = setup.walk(WalkMode::Find).await;
    assert_eq!(
        resources(&torn_down),
        [(Action::Delete, TABLE_LABEL), (Action::Delete, DATABASE_LABEL)],
        "last declared, first deleted"
    );
    assert!(!setup.database_exists().await);
    assert_eq!(setup.location().await, None);
    assert_eq!(table().find(&setup.aws).await.unwrap(), None);
    assert_eq!(setup.walk(WalkMode::Find).await, [], "nothing is left to find");

    // A database made again under the name starts without the old tags.
    glue.create_database()
        .database_input(
            aws_sdk_glue::types::DatabaseInput::builder()
                .name(DATABASE)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("CreateDatabase");
    let found = database(OWNER)
        .find(&setup.aws)
        .await
        .unwrap()
        .expect("made again");
    assert_eq!(found.tags, Tags::new());
}

#[tokio::test]
async fn a_database_of_another_pipeline_is_refused_and_left_alone_by_a_teardown() {
    let setup = Setup::new().await;
    let theirs = database("media/other");
    setup
        .walk_as("media/other", &theirs, WalkMode::Apply)
        .await
        .expect("the other pipeline's catalog");

    let err = setup
        .walk_as(OWNER, &database(OWNER), WalkMode::Apply)
        .await
        .expect_err("another pipeline's database");
    assert_eq!(err.reason, "OwnedByAnotherPipeline", "{err}");
    let err = setup
        .walk_as(OWNER, &database(OWNER), WalkMode::Plan)
        .await
        .expect_err("another pipeline's database");
    assert_eq!(err.reason, "OwnedByAnotherPipeline", "{err}");

    // Only the database: a teardown walk finds another pipeline's database
    // without an error, and the table has no tags of its own to refuse it.
    let mut walk = Walk::new(&setup.aws, OWNER, WalkMode::Find);
    walk.ensure(&database(OWNER)).await.expect("found, not ours");
    walk.tear_down().await.expect("a teardown");
    assert_eq!(walk.take_changes(), []);
    assert!(setup.database_exists().await, "left to its owner");
    assert!(setup.location().await.is_some());
}
