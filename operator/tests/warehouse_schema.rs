//! The warehouse's migrations against the AWS emulator, whose Redshift Data
//! API runs statements as AWS does (scripts/moto/redshift_data.py): each
//! migration submitted in order and waited for, the version recorded on the
//! cluster; a statement Redshift fails is the condition naming it, and once
//! its cause is fixed the next attempt goes on from it; then nothing runs
//! but the one check that the analysts' view answers.

use imagepipeline_e2e::AwsEmulator;
use imagepipeline_operator::aws::{AwsClients, CallLog};
use imagepipeline_operator::components::analytics::warehouse::{self, WarehouseNames};
use imagepipeline_operator::engine::Readiness;
use imagepipeline_operator::engine::resource::{Walk, WalkMode};
use imagepipeline_operator::engine::{ComponentError, ErrorKind, Tags};
use imagepipeline_operator::resources::warehouse_check::{CheckState, WarehouseCheck};
use imagepipeline_operator::resources::warehouse_schema::{
    SCHEMA_CHECKED_TAG, SCHEMA_STATEMENT_TAG, SCHEMA_VERSION_TAG, SchemaRecord, WarehouseSchema,
};

const CLUSTER: &str = "ipl-media-photos-warehouse-0a1b2c3d";
const CATALOG: &str = "ipl_media_photos_events_0a1b2c3d";
const ROLE: &str = "arn:aws:iam::123456789012:role/imagepipeline/ipl-media-photos-redshift-0a1b2c3d";

struct Setup {
    _emulator: AwsEmulator,
    aws: AwsClients,
    cluster_arn: String,
}

impl Setup {
    /// An available cluster that was given the role the external schema
    /// names, and no Glue database yet.
    async fn new() -> Self {
        let emulator = AwsEmulator::start().await.expect("moto server starts");
        let aws = AwsClients::from_sdk_config(&emulator.sdk_config().await, CallLog::new()).expect("clients");
        let cluster = aws
            .redshift
            .create_cluster()
            .cluster_identifier(CLUSTER)
            .node_type("ra3.xlplus")
            .number_of_nodes(2)
            .master_username("imagepipeline_admin")
            .master_user_password("Passw0rd-for-the-emulator")
            .db_name("images")
            .iam_roles(ROLE)
            .send()
            .await
            .expect("a cluster")
            .cluster
            .unwrap();
        let cluster_arn = format!(
            "arn:aws:redshift:eu-west-1:123456789012:cluster:{}",
            cluster.cluster_identifier().unwrap()
        );
        Self {
            _emulator: emulator,
            aws,
            cluster_arn,
        }
    }

    /// What the cluster's tags record now.
    async fn tags(&self) -> Tags {
        let clusters = self
            .aws
            .redshift
            .describe_clusters()
            .cluster_identifier(CLUSTER)
            .send()
            .await
            .expect("the cluster");
        clusters.clusters()[0]
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
            .collect()
    }

    /// The schema as the component declares it, with the cluster's record.
    async fn schema(&self) -> WarehouseSchema {
        let names = WarehouseNames::new("images", CATALOG.to_owned(), ROLE.to_owned(), "photos-bucket");
        WarehouseSchema {
            cluster_id: CLUSTER.to_owned(),
            cluster_arn: self.cluster_arn.clone(),
            database: "images".to_owned(),
            user: "imagepipeline_admin".to_owned(),
            migrations: warehouse::migrations(&names),
            record: SchemaRecord::take_from(&mut self.tags().await),
        }
    }

    /// One walk of `mode` over the schema: its changes' fields.
    async fn walk(&self, mode: WalkMode) -> Result<Vec<String>, ComponentError> {
        let mut walk = Walk::new(&self.aws, "media/photos", mode);
        walk.ensure(&self.schema().await).await?;
        Ok(walk.take_changes().into_iter().flat_map(|c| c.fields).collect())
    }
}

#[tokio::test]
async fn migrations_run_in_order_stop_at_a_failed_one_naming_it_and_go_on_once_its_cause_is_fixed() {
    let setup = Setup::new().await;
    assert_eq!(
        setup.walk(WalkMode::Plan).await.expect("a plan"),
        ["apply migrations 1–18, through the Redshift Data API"]
    );

    // Migration 3 maps a Glue database that does not exist yet.
    let err = setup.walk(WalkMode::Apply).await.expect_err("migration 3 fails");
    assert_eq!(
        (err.kind, err.reason.as_str()),
        (ErrorKind::Retryable, "WarehouseMigrationFailed")
    );
    for part in [
        "warehouse migration 3 (map the Glue database of the events as an external schema)",
        &format!("ERROR: External database \"{CATALOG}\" does not exist"),
        "CREATE EXTERNAL SCHEMA IF NOT EXISTS \"images_events\"",
    ] {
        assert!(err.message.contains(part), "{part} in {}", err.message);
    }
    let tags = setup.tags().await;
    assert_eq!(tags.get(SCHEMA_VERSION_TAG).map(String::as_str), Some("2"));
    let statement = tags.get(SCHEMA_STATEMENT_TAG).expect("the failed statement");
    assert!(
        statement.starts_with("3:") && statement.ends_with(":failed"),
        "{statement}"
    );
    assert!(
        err.message
            .contains(&statement[2..statement.len() - ":failed".len()]),
        "{}",
        err.message
    );
    assert_eq!(
        setup.walk(WalkMode::Plan).await.expect("a plan"),
        ["apply migrations 3–18"]
    );

    // The cause fixed, the next attempt runs 3 to 18, in order, once each.
    setup
        .aws
        .glue
        .create_database()
        .database_input(
            aws_sdk_glue::types::DatabaseInput::builder()
                .name(CATALOG)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("the Glue database");
    setup.aws.calls.reset();
    setup
        .walk(WalkMode::Apply)
        .await
        .expect("the rest of the migrations");
    let counts = setup.aws.calls.counts();
    let executed: u64 = counts
        .iter()
        .filter(|(key, _)| key.operation == "ExecuteStatement")
        .map(|(_, n)| *n)
        .sum();
    assert_eq!(executed, 16, "migrations 3 to 18: {counts:#?}");
    let tags = setup.tags().await;
    assert_eq!(tags.get(SCHEMA_VERSION_TAG).map(String::as_str), Some("18"));

    // Applied: nothing to plan, nothing run.
    setup.aws.calls.reset();
    assert_eq!(
        setup.walk(WalkMode::Apply).await.expect("nothing to do"),
        Vec::<String>::new()
    );
    assert_eq!(setup.aws.calls.successful_mutations(), 0);

    // Then the analysts' view is queried once; its pass is recorded.
    let names = WarehouseNames::new("images", CATALOG.to_owned(), ROLE.to_owned(), "photos-bucket");
    let check = |record: Option<String>| WarehouseCheck {
        cluster_id: CLUSTER.to_owned(),
        cluster_arn: setup.cluster_arn.clone(),
        database: "images".to_owned(),
        user: "imagepipeline_admin".to_owned(),
        version: warehouse::latest_version(&names),
        sql: warehouse::check(&names),
        record,
    };
    let mut walk = Walk::new(&setup.aws, "media/photos", WalkMode::Apply);
    walk.ensure(&check(None)).await.expect("the check runs");
    let checked = setup.tags().await.get(SCHEMA_CHECKED_TAG).cloned();
    assert_eq!(checked.as_deref(), Some("18"));
    let mut walk = Walk::new(&setup.aws, "media/photos", WalkMode::Apply);
    assert_eq!(
        walk.ensure(&check(checked)).await.expect("passed"),
        Some(CheckState::Passed)
    );
    assert_eq!(walk.readiness(), Readiness::Ready);
}
