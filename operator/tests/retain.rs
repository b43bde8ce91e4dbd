//! `deletionPolicy` against an emulator that, like AWS, refuses to delete a
//! subnet, a security group or a VPC while something still stands on it: a
//! destroy finishes under both policies, and `Retain` leaves only data that
//! stands on nothing — the bucket, the table and the warehouse's final
//! snapshot — each tagged as retained.

use std::path::Path;

use aws_sdk_redshift::types::Snapshot;
use imagepipeline_e2e::AwsEmulator;
use imagepipeline_operator::api::v1alpha1::ImagePipelineStatus;
use imagepipeline_operator::engine::status::{Lifecycle, StatusContext, pipeline_status};
use imagepipeline_operator::engine::{
    Action, Change, ComponentKind, Engine, PassReport, PipelineContext, RETAINED_TAG,
};
use imagepipeline_operator::manifest;
use support::MINIMAL;

mod support;

/// Passes `imagepipeline destroy` would make before the emulator, which
/// deletes at once, must be done.
const DESTROY_PASSES: usize = 5;

/// MINIMAL (analytics enabled) applied to a fresh emulator.
struct Applied {
    emulator: AwsEmulator,
    engine: Engine,
    ctx: PipelineContext,
}

/// What destroying took: every change made, and the last pass.
struct Destroyed {
    changes: Vec<(ComponentKind, Change)>,
    last: PassReport,
}

impl Destroyed {
    /// The status the controller writes after the last pass.
    fn status(&self) -> ImagePipelineStatus {
        let deleting = StatusContext {
            lifecycle: Lifecycle::Deleting,
            extra: vec![],
        };
        pipeline_status(
            &self.last,
            &deleting,
            None,
            Some(1),
            k8s_openapi::jiff::Timestamp::now(),
        )
    }
}

impl Applied {
    async fn new(deletion_policy: &str) -> Self {
        let yaml = MINIMAL.replace(
            "region: eu-west-1",
            &format!("region: eu-west-1\n  deletionPolicy: {deletion_policy}"),
        );
        let pipeline = manifest::parse(Path::new("test.yaml"), &yaml)
            .expect("a valid manifest")
            .remove(0);
        let mut emulator = AwsEmulator::start().await.expect("moto server starts");
        emulator.play_brokers(None).await.expect("brokers' stand-ins");
        let (engine, ctx) = support::photos_engine(&emulator, pipeline.spec).await;
        let applied = Self {
            emulator,
            engine,
            ctx,
        };
        for _ in 0..5 {
            if applied.engine.apply(&applied.ctx).await.is_ready() {
                return applied;
            }
        }
        panic!("MINIMAL is not ready after 5 passes");
    }

    /// Destroys as `imagepipeline destroy` does, failing the test when the
    /// passes run out.
    async fn destroy(&self) -> Destroyed {
        let mut changes = Vec::new();
        let mut states = Vec::new();
        for _ in 0..DESTROY_PASSES {
            let report = self.engine.destroy(&self.ctx).await;
            changes.extend(report.changes().map(|(kind, change)| (kind, change.clone())));
            if report.is_removed() {
                return Destroyed {
                    changes,
                    last: report,
                };
            }
            states = report.components.into_iter().map(|c| (c.kind, c.state)).collect();
        }
        panic!("the destroy did not finish in {DESTROY_PASSES} passes: {states:#?}");
    }

    async fn owned(&self) -> Vec<String> {
        self.emulator
            .resources_owned_by("media/photos")
            .await
            .expect("the emulator lists its resources")
    }

    /// The manual snapshots of the pipeline's cluster.
    async fn snapshots(&self) -> Vec<Snapshot> {
        let listed = self
            .engine
            .aws()
            .redshift
            .describe_cluster_snapshots()
            .snapshot_type("manual")
            .send()
            .await
            .expect("DescribeClusterSnapshots");
        listed.snapshots().to_vec()
    }
}

fn kinds(resources: &[String]) -> Vec<&str> {
    resources.iter().map(|r| r.rsplit_once(' ').unwrap().0).collect()
}

/// Whether a resource's tags mark it retained.
fn retained<'a>(mut tags: impl Iterator<Item = (&'a str, &'a str)>) -> bool {
    tags.any(|pair| pair == (RETAINED_TAG, "true"))
}

#[tokio::test]
async fn delete_removes_everything_and_keeps_no_snapshot() {
    let pipeline = Applied::new("Delete").await;
    let destroyed = pipeline.destroy().await;

    assert_eq!(pipeline.owned().await, Vec::<String>::new());
    assert!(pipeline.snapshots().await.is_empty());
    let cluster = destroyed
        .changes
        .iter()
        .find(|(kind, change)| {
            *kind == ComponentKind::Analytics
                && change.action == Action::Delete
                && change.resource.starts_with("Redshift cluster ")
        })
        .map(|(_, change)| change)
        .expect("the cluster's deletion is among the changes");
    assert_eq!(cluster.fields, ["without a final snapshot"]);
}

#[tokio::test]
async fn retain_keeps_the_bucket_the_table_and_a_final_snapshot_of_the_warehouse_and_removes_the_rest() {
    let pipeline = Applied::new("Retain").await;
    let destroyed = pipeline.destroy().await;

    // The cluster, its security group and the network are gone: nothing kept
    // stands on anything deleted.
    let left = pipeline.owned().await;
    assert_eq!(kinds(&left), ["bucket", "snapshot", "table"], "{left:#?}");

    let snapshots = pipeline.snapshots().await;
    let [snapshot] = snapshots.as_slice() else {
        panic!("one final snapshot: {snapshots:#?}");
    };
    let snapshot_id = snapshot.snapshot_identifier().unwrap_or_default();
    let cluster_id = pipeline.ctx.resource_name("warehouse", 63);
    assert!(
        snapshot_id.starts_with(&format!("{cluster_id}-final-")),
        "{snapshot_id}"
    );
    assert_eq!(snapshot.cluster_identifier(), Some(cluster_id.as_str()));
    // Kept until someone deletes it.
    assert_eq!(snapshot.manual_snapshot_retention_period(), Some(-1));

    // Each retained resource says so.
    let aws = pipeline.engine.aws();
    assert!(retained(
        snapshot
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?, t.value()?)))
    ));
    let bucket_tags = aws
        .s3
        .get_bucket_tagging()
        .bucket(pipeline.ctx.bucket_name())
        .send()
        .await
        .expect("bucket tags");
    assert!(retained(
        bucket_tags.tag_set().iter().map(|t| (t.key(), t.value()))
    ));
    let table_arn = pipeline.ctx.table_arn();
    let table_tags = aws
        .dynamodb
        .list_tags_of_resource()
        .resource_arn(&table_arn)
        .send()
        .await
        .expect("table tags");
    assert!(retained(table_tags.tags().iter().map(|t| (t.key(), t.value()))));

    // The Deleted event and the CLI's progress name the snapshot...
    let named = destroyed.changes.iter().any(|(kind, change)| {
        *kind == ComponentKind::Analytics
            && change.action == Action::Delete
            && change.resource.contains(&cluster_id)
            && change.resource.contains(snapshot_id)
    });
    assert!(named, "{:#?}", destroyed.changes);
    // ...and so does the status, beside the retained bucket and table.
    let status = destroyed.status();
    let mut listed: Vec<(&str, &str)> = status
        .resources
        .iter()
        .map(|r| (r.type_.as_str(), r.id.as_str()))
        .collect();
    listed.sort();
    let (bucket, table) = (pipeline.ctx.bucket_name(), pipeline.ctx.table_name());
    assert_eq!(
        listed,
        [
            ("AWS::DynamoDB::Table", table.as_str()),
            ("AWS::Redshift::ClusterSnapshot", snapshot_id),
            ("AWS::S3::Bucket", bucket.as_str()),
        ]
    );

    // Destroying again changes nothing: what is retained is left alone.
    aws.calls.reset();
    pipeline.destroy().await;
    assert_eq!(aws.calls.successful_mutations(), 0);
}

/// Turning analytics off (`analytics.enabled: false`) removes the warehouse
/// as a teardown under the pipeline's `deletionPolicy` would, and the rest of
/// the pipeline stays.
#[tokio::test]
async fn turning_analytics_off_under_retain_keeps_a_final_snapshot_and_removes_the_rest_of_the_warehouse() {
    let applied = Applied::new("Retain").await;
    let engine = &applied.engine;
    let pipeline_spec = applied.ctx.spec.clone();
    let owner = applied.ctx.owner.clone();
    let owned_before = applied.owned().await;
    let mut before = kinds(&owned_before);
    before.sort();

    let mut spec = pipeline_spec;
    spec.analytics.enabled = false;
    let off = engine.context(owner, spec).await.expect("account id from sts");
    let cluster_id = off.resource_name("warehouse", 63);

    let plan = engine.plan(&off).await;
    let planned: Vec<String> = plan
        .changes()
        .filter(|(kind, _)| *kind == ComponentKind::Analytics)
        .map(|(_, change)| format!("{:?} {}", change.action, change.resource))
        .collect();
    let [deletion] = planned.as_slice() else {
        panic!("the plan deletes the cluster first, and only that: {planned:#?}");
    };
    assert!(
        deletion.starts_with("Delete Redshift cluster")
            && deletion.contains(&format!("final snapshot {cluster_id}-final-")),
        "{deletion}"
    );

    let report = apply_until_ready(engine, &off).await;
    let mut expected = before.clone();
    for gone in [
        "cluster",
        "subnet group",
        "security group",
        "glue table",
        "glue database",
        "role",
    ] {
        let at = expected.iter().position(|k| *k == gone).unwrap();
        expected.remove(at);
    }
    expected.push("snapshot");
    expected.sort();
    let owned_after = applied.owned().await;
    let mut after = kinds(&owned_after);
    after.sort();
    assert_eq!(after, expected);

    let aws = engine.aws();
    let snapshots = aws
        .redshift
        .describe_cluster_snapshots()
        .snapshot_type("manual")
        .send()
        .await
        .expect("DescribeClusterSnapshots");
    let [snapshot] = snapshots.snapshots() else {
        panic!("one final snapshot: {snapshots:#?}");
    };
    assert!(
        snapshot
            .tags()
            .iter()
            .any(|t| (t.key(), t.value()) == (Some(RETAINED_TAG), Some("true"))),
        "{snapshot:#?}"
    );
    let listed: Vec<(&str, &str)> = report
        .outputs
        .resources
        .iter()
        .filter(|r| r.component == ComponentKind::Analytics.name())
        .map(|r| (r.type_.as_str(), r.id.as_str()))
        .collect();
    let snapshot_id = snapshot.snapshot_identifier().unwrap_or_default();
    assert_eq!(listed, [("AWS::Redshift::ClusterSnapshot", snapshot_id)]);

    // Off stays off: nothing changes, and the kept snapshot is left alone.
    aws.calls.reset();
    let again = engine.apply(&off).await;
    assert!(again.is_ready());
    assert_eq!(again.changes().count(), 0);
    assert_eq!(aws.calls.successful_mutations(), 0, "{:#?}", aws.calls.counts());
}

async fn apply_until_ready(engine: &Engine, ctx: &PipelineContext) -> PassReport {
    let mut last = None;
    for _ in 0..5 {
        let report = engine.apply(ctx).await;
        if report.is_ready() {
            return report;
        }
        last = Some(report.components);
    }
    panic!("not ready after 5 passes: {last:#?}");
}
