//! Turning analytics off (`analytics.enabled: false`) against the emulator:
//! the warehouse is removed as a teardown under the pipeline's
//! `deletionPolicy` would remove it, and the rest of the pipeline stays.

use std::path::Path;

use imagepipeline_e2e::AwsEmulator;
use imagepipeline_operator::aws::{AwsClients, CallLog};
use imagepipeline_operator::engine::{
    ComponentKind, Engine, Owner, PassReport, PipelineContext, RETAINED_TAG,
};
use imagepipeline_operator::manifest;
use support::MINIMAL;

mod support;

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

async fn owned_kinds(emulator: &AwsEmulator) -> Vec<String> {
    let mut kinds: Vec<String> = emulator
        .resources_owned_by("media/photos")
        .await
        .expect("the emulator lists its resources")
        .iter()
        .map(|r| r.rsplit_once(' ').unwrap().0.to_owned())
        .collect();
    kinds.sort();
    kinds
}

#[tokio::test]
async fn turning_analytics_off_under_retain_keeps_a_final_snapshot_and_removes_the_rest_of_the_warehouse() {
    let yaml = MINIMAL.replace("region: eu-west-1", "region: eu-west-1\n  deletionPolicy: Retain");
    let pipeline = manifest::parse(Path::new("test.yaml"), &yaml)
        .expect("a valid manifest")
        .remove(0);
    let emulator = AwsEmulator::start().await.expect("moto server starts");
    let config = emulator.sdk_config().await;
    let engine = imagepipeline_operator::pipeline::engine(
        AwsClients::from_sdk_config(&config, CallLog::new()).expect("clients"),
    );
    let owner = Owner {
        namespace: "media".into(),
        name: "photos".into(),
    };
    let ctx = engine
        .context(owner.clone(), pipeline.spec.clone())
        .await
        .expect("account id from sts");
    apply_until_ready(&engine, &ctx).await;
    let before = owned_kinds(&emulator).await;

    let mut spec = pipeline.spec;
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

    let report = apply_until_ready(&engine, &off).await;
    let mut expected = before.clone();
    for gone in ["cluster", "subnet group", "security group", "role"] {
        let at = expected.iter().position(|k| k == gone).unwrap();
        expected.remove(at);
    }
    expected.push("snapshot".to_owned());
    expected.sort();
    assert_eq!(owned_kinds(&emulator).await, expected);

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
