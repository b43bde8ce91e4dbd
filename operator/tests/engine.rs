//! The reconcile engine against a real AWS emulator (moto server over HTTP):
//! what a user would check in the AWS console after `imagepipeline apply`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record;
use imagepipeline_e2e::AwsEmulator;
use imagepipeline_operator::api::v1alpha1::{ImagePipeline, Phase};
use imagepipeline_operator::aws::{AwsClients, CallLog};
use imagepipeline_operator::components::network::NetworkOutputs;
use imagepipeline_operator::components::{analytics, kafka_broker_setup, upload_instance_setup};
use imagepipeline_operator::engine::status::{StatusContext, pipeline_status};
use imagepipeline_operator::engine::{
    ComponentKind, ComponentState, Engine, OWNER_TAG, Outputs, Owner, PassReport, PipelineContext,
};
use imagepipeline_operator::manifest;
use ingest_core::contract;
use support::MINIMAL;

mod support;

/// The status `apply` reports after `report`, for generation 1.
fn status_after(report: &PassReport) -> imagepipeline_operator::api::v1alpha1::ImagePipelineStatus {
    pipeline_status(
        report,
        &StatusContext::default(),
        None,
        Some(1),
        k8s_openapi::jiff::Timestamp::now(),
    )
}

fn pipeline(yaml: &str) -> ImagePipeline {
    manifest::parse(Path::new("test.yaml"), yaml)
        .expect("a valid manifest")
        .remove(0)
}

fn tag_map<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> BTreeMap<String, String> {
    pairs.map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

/// What the emulator holds tagged as the test pipeline's.
async fn owned_by_photos(emulator: &AwsEmulator) -> Vec<String> {
    emulator
        .resources_owned_by("media/photos")
        .await
        .expect("the emulator lists its resources")
}

struct Fixture {
    emulator: AwsEmulator,
    engine: Engine,
    ctx: PipelineContext,
}

impl Fixture {
    async fn new(yaml: &str) -> Self {
        let mut emulator = AwsEmulator::start().await.expect("moto server starts");
        emulator.play_brokers(None).await.expect("brokers' stand-ins");
        let (engine, ctx) = engine_for(&emulator, &pipeline(yaml)).await;
        Self {
            emulator,
            engine,
            ctx,
        }
    }

    fn aws(&self) -> &AwsClients {
        self.engine.aws()
    }

    fn calls(&self) -> &CallLog {
        &self.engine.aws().calls
    }

    /// Applies until ready, as `imagepipeline apply` does, without its pauses.
    async fn apply_until_ready(&self) -> PassReport {
        let mut last = None;
        for _ in 0..5 {
            let report = self.engine.apply(&self.ctx).await;
            if report.is_ready() {
                return report;
            }
            last = Some(report);
        }
        panic!("not ready after 5 passes: {:#?}", last.map(|r| r.components));
    }

    async fn destroy_until_removed(&self) {
        let mut last = None;
        for _ in 0..5 {
            let report = self.engine.destroy(&self.ctx).await;
            if report.is_removed() {
                return;
            }
            last = Some(report.components);
        }
        panic!("not removed after 5 passes: {last:#?}");
    }
}

async fn engine_for(emulator: &AwsEmulator, pipeline: &ImagePipeline) -> (Engine, PipelineContext) {
    let config = emulator.sdk_config().await;
    let engine = imagepipeline_operator::pipeline::engine(
        AwsClients::from_sdk_config(&config, CallLog::new()).expect("clients"),
    );
    let owner = Owner {
        namespace: pipeline.metadata.namespace.clone().unwrap(),
        name: pipeline.metadata.name.clone().unwrap(),
    };
    let ctx = engine
        .context(owner, pipeline.spec.clone())
        .await
        .expect("account id from sts");
    (engine, ctx)
}

#[tokio::test]
async fn apply_makes_every_resource_with_the_specified_settings() {
    let fx = Fixture::new(MINIMAL).await;
    let report = fx.apply_until_ready().await;
    let aws = fx.aws();
    let bucket = report.outputs.bucket.clone().expect("bucket in outputs");
    let table = report.outputs.table.clone().expect("table in outputs");
    let stream = report.outputs.delivery_stream.clone().expect("stream in outputs");

    // Storage
    let lifecycle = aws
        .s3
        .get_bucket_lifecycle_configuration()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let mut expiring: Vec<(String, i32)> = lifecycle
        .rules()
        .iter()
        .filter_map(|r| Some((r.filter()?.prefix()?.to_owned(), r.expiration()?.days()?)))
        .collect();
    expiring.sort();
    assert_eq!(
        expiring,
        [
            (contract::prefix::ERRORS.to_owned(), 7),
            (contract::prefix::EVENTS.to_owned(), 7),
            (contract::prefix::IMAGES.to_owned(), 7),
            (contract::prefix::STAGING.to_owned(), 1),
        ]
    );
    let encryption = aws
        .s3
        .get_bucket_encryption()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let rule = &encryption.server_side_encryption_configuration().unwrap().rules()[0];
    assert_eq!(
        rule.apply_server_side_encryption_by_default()
            .unwrap()
            .sse_algorithm()
            .as_str(),
        "AES256"
    );
    let block = aws
        .s3
        .get_public_access_block()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let block = block.public_access_block_configuration().unwrap();
    assert_eq!(
        [
            block.block_public_acls(),
            block.ignore_public_acls(),
            block.block_public_policy(),
            block.restrict_public_buckets()
        ],
        [Some(true); 4]
    );
    // The emulator, like AWS, serves TLS and evaluates aws:SecureTransport, so
    // the policy is real here: every object read and write in these tests
    // passes it.
    let policy = aws.s3.get_bucket_policy().bucket(&bucket).send().await.unwrap();
    let policy: serde_json::Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    let denies_plain_http = policy["Statement"].as_array().unwrap().iter().any(|statement| {
        statement["Effect"] == "Deny"
            && statement["Principal"] == "*"
            && statement["Action"] == "s3:*"
            && statement["Resource"]
                == serde_json::json!([
                    format!("arn:aws:s3:::{bucket}"),
                    format!("arn:aws:s3:::{bucket}/*")
                ])
            && statement["Condition"]["Bool"]["aws:SecureTransport"] == "false"
    });
    assert!(
        denies_plain_http,
        "bucket policy must deny requests without TLS: {policy}"
    );
    let tags = aws.s3.get_bucket_tagging().bucket(&bucket).send().await.unwrap();
    let tags = tag_map(tags.tag_set().iter().map(|t| (t.key(), t.value())));
    assert_eq!(tags[OWNER_TAG], "media/photos");
    assert_eq!(tags["team"], "media");

    // Metadata
    let described = aws
        .dynamodb
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let description = described.table().unwrap();
    assert_eq!(
        description
            .billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .map(|m| m.as_str()),
        Some("PAY_PER_REQUEST")
    );
    assert_eq!(
        description.global_secondary_indexes()[0].index_name(),
        Some(contract::table::SHA256_INDEX)
    );
    assert_eq!(
        description
            .sse_description()
            .and_then(|s| s.status())
            .map(|s| s.as_str()),
        Some("ENABLED")
    );
    let ttl = aws
        .dynamodb
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), Some(contract::table::TTL_ATTRIBUTE));
    assert_eq!(ttl.time_to_live_status().map(|s| s.as_str()), Some("ENABLED"));
    let backups = aws
        .dynamodb
        .describe_continuous_backups()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let pitr = backups
        .continuous_backups_description()
        .and_then(|d| d.point_in_time_recovery_description());
    assert_eq!(
        pitr.and_then(|p| p.point_in_time_recovery_status())
            .map(|s| s.as_str()),
        Some("ENABLED")
    );

    // Delivery
    let described = aws
        .firehose
        .describe_delivery_stream()
        .delivery_stream_name(&stream)
        .send()
        .await
        .unwrap();
    let description = described.delivery_stream_description().unwrap();
    let destination = description.destinations()[0]
        .extended_s3_destination_description()
        .unwrap();
    assert_eq!(destination.bucket_arn(), format!("arn:aws:s3:::{bucket}"));
    assert_eq!(destination.prefix(), Some(contract::prefix::EVENTS));
    assert_eq!(destination.error_output_prefix(), Some(contract::prefix::ERRORS));
    assert_eq!(destination.compression_format().as_str(), "GZIP");
    let hints = destination.buffering_hints().unwrap();
    assert_eq!(
        (hints.size_in_mbs(), hints.interval_in_seconds()),
        (Some(5), Some(60))
    );
    let role = aws
        .iam
        .get_role()
        .role_name(destination.role_arn().rsplit('/').next().unwrap())
        .send()
        .await
        .unwrap();
    assert!(
        role.role()
            .unwrap()
            .assume_role_policy_document()
            .unwrap()
            .contains("firehose.amazonaws.com")
    );

    // Analytics
    let clusters = aws.redshift.describe_clusters().send().await.unwrap();
    let [cluster] = clusters.clusters() else {
        panic!("one cluster: {:?}", clusters.clusters())
    };
    assert_eq!(cluster.encrypted(), Some(true));
    assert_eq!(cluster.publicly_accessible(), Some(false));
    assert_eq!(cluster.node_type(), Some("ra3.xlplus"));
    assert_eq!(cluster.db_name(), Some("images"));
    let subnet_group = cluster.cluster_subnet_group_name().unwrap();
    let groups = aws
        .redshift
        .describe_cluster_subnet_groups()
        .cluster_subnet_group_name(subnet_group)
        .send()
        .await
        .unwrap();
    let subnets: Vec<&str> = groups.cluster_subnet_groups()[0]
        .subnets()
        .iter()
        .filter_map(|s| s.subnet_identifier())
        .collect();
    let mut expected: Vec<&str> = report
        .outputs
        .of::<NetworkOutputs>()
        .expect("the network published its outputs")
        .private_subnets
        .iter()
        .map(|s| s.id.as_str())
        .collect();
    expected.sort();
    let mut subnets = subnets;
    subnets.sort();
    assert_eq!(subnets, expected);
    assert_eq!(expected.len(), 2, "one private subnet per zone");
    // Every migration ran, in order, and the last one is recorded.
    let recorded: BTreeMap<&str, &str> = cluster
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?, t.value()?)))
        .collect();
    assert_eq!(recorded.get("imagepipeline.io/schema-version"), Some(&"18"));
    // And its views were queried once, which is what Ready waits for.
    assert_eq!(recorded.get("imagepipeline.io/schema-checked"), Some(&"18"));
    // Spectrum reads the events Firehose writes, through the Glue table.
    let names = analytics::warehouse_names(&fx.ctx);
    let table = aws
        .glue
        .get_table()
        .database_name(&names.catalog_database)
        .name("image_events")
        .send()
        .await
        .expect("the events table")
        .table
        .unwrap();
    let storage = table.storage_descriptor().unwrap();
    assert_eq!(
        storage.location(),
        Some(format!("s3://{bucket}/events/").as_str())
    );
    assert_eq!(
        storage.serde_info().and_then(|s| s.serialization_library()),
        Some("org.openx.data.jsonserde.JsonSerDe")
    );
    let cluster_roles: Vec<&str> = cluster
        .iam_roles()
        .iter()
        .filter_map(|r| r.iam_role_arn())
        .collect();
    assert_eq!(
        cluster_roles,
        [names.role_arn.as_str()],
        "the role the external schema names"
    );

    // Status
    let status = status_after(&report);
    assert_eq!(status.phase, Some(Phase::Ready));
    let ready: Vec<(&str, &str)> = status
        .conditions
        .iter()
        .map(|c| (c.type_.as_str(), c.status.as_str()))
        .collect();
    assert_eq!(
        ready,
        [
            ("Ready", "True"),
            ("NetworkReady", "True"),
            ("StorageReady", "True"),
            ("MetadataReady", "True"),
            ("DeliveryReady", "True"),
            ("UploadTierReady", "True"),
            ("KafkaReady", "True"),
            ("AnalyticsReady", "True")
        ]
    );
    let endpoints = status.endpoints.unwrap();
    assert_eq!(endpoints.bucket.as_deref(), Some(bucket.as_str()));
    assert!(endpoints.warehouse.is_some());
}

#[tokio::test]
async fn firehose_delivers_event_records_under_events() {
    let fx = Fixture::new(MINIMAL).await;
    let report = fx.apply_until_ready().await;
    let (bucket, stream) = (
        report.outputs.bucket.unwrap(),
        report.outputs.delivery_stream.unwrap(),
    );
    let records: Vec<Record> = (0..3)
        .map(|n| {
            Record::builder()
                .data(Blob::new(format!("{{\"id\":\"{n}\"}}\n")))
                .build()
                .unwrap()
        })
        .collect();
    let out = fx
        .aws()
        .firehose
        .put_record_batch()
        .delivery_stream_name(&stream)
        .set_records(Some(records))
        .send()
        .await
        .unwrap();
    assert_eq!(out.failed_put_count(), 0);
    let listed = fx
        .aws()
        .s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix(contract::prefix::EVENTS)
        .send()
        .await
        .unwrap();
    assert!(
        !listed.contents().is_empty(),
        "Firehose wrote an object under events/"
    );
    let key = listed.contents()[0].key().unwrap();
    let body = fx
        .aws()
        .s3
        .get_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let body = body.body.collect().await.unwrap().into_bytes();
    assert!(String::from_utf8_lossy(&body).contains("{\"id\":\"2\"}"));
}

#[tokio::test]
async fn a_second_apply_changes_nothing() {
    let fx = Fixture::new(MINIMAL).await;
    let started = std::time::Instant::now();
    fx.apply_until_ready().await;
    let first_time = started.elapsed();
    let first = fx.calls().counts();
    fx.calls().reset();
    let started = std::time::Instant::now();
    let report = fx.engine.apply(&fx.ctx).await;
    let steady_time = started.elapsed();
    assert!(report.is_ready());
    assert_eq!(
        report.changes().count(),
        0,
        "{:?}",
        report.changes().collect::<Vec<_>>()
    );
    assert_eq!(fx.calls().successful_mutations(), 0, "{:#?}", fx.calls().counts());
    let plan = fx.engine.plan(&fx.ctx).await;
    assert_eq!(plan.changes().count(), 0);
    // The note of the issue reports these: calls per service of a first and a steady-state apply.
    print_calls(&format!("first apply ({first_time:.2?})"), &first);
    print_calls(
        &format!("steady-state apply ({steady_time:.2?})"),
        &fx.calls().counts(),
    );
    fx.calls().reset();
    let started = std::time::Instant::now();
    fx.destroy_until_removed().await;
    print_calls(
        &format!("destroy ({:.2?})", started.elapsed()),
        &fx.calls().counts(),
    );
}

fn print_calls(title: &str, counts: &BTreeMap<imagepipeline_operator::aws::calls::CallKey, u64>) {
    let mut by_service: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (key, count) in counts {
        let entry = by_service.entry(&key.service).or_default();
        if key.is_mutating() {
            entry.1 += count
        } else {
            entry.0 += count
        }
    }
    println!("{title}: {by_service:?} (reads, mutations)");
}

/// What the network handed the components that stand in it.
fn network(outputs: &Outputs) -> &NetworkOutputs {
    outputs
        .of::<NetworkOutputs>()
        .expect("the network published its outputs")
}

fn kinds(resources: &[String]) -> Vec<&str> {
    let mut kinds: Vec<&str> = resources.iter().map(|r| r.rsplit_once(' ').unwrap().0).collect();
    kinds.sort();
    kinds
}

/// What a first apply of MINIMAL makes: 2 upload instances (the group's
/// minimum) and 3 brokers, each broker with a root and a data volume (the
/// upload instances' volumes carry tags only on AWS, where the launch
/// template applies them).
const EVERY_RESOURCE: [&str; 44] = [
    "auto scaling group",
    "bucket",
    "cluster",
    "delivery stream",
    "glue database",
    "glue table",
    "instance",
    "instance",
    "instance",
    "instance",
    "instance",
    "instance profile",
    "instance profile",
    "internet gateway",
    "launch template",
    "load balancer",
    "parameter",
    "peering",
    "role",
    "role",
    "role",
    "role",
    "route table",
    "route table",
    "security group",
    "security group",
    "security group",
    "security group",
    "subnet",
    "subnet",
    "subnet",
    "subnet",
    "subnet group",
    "table",
    "target group",
    "volume",
    "volume",
    "volume",
    "volume",
    "volume",
    "volume",
    "vpc",
    "vpc",
    "vpc endpoint",
];
// Four quarters of the mutating calls on four emulators, two at once in each
// test: an iteration mostly waits for the emulator's answers, so two tests
// of one quarter each left the two cores half idle.
#[tokio::test]
async fn a_crash_after_any_odd_numbered_mutating_call_converges_to_exactly_one_of_each() {
    tokio::join!(crash_after_each_mutation(1), crash_after_each_mutation(3));
}

#[tokio::test]
async fn a_crash_after_any_even_numbered_mutating_call_converges_to_exactly_one_of_each() {
    tokio::join!(crash_after_each_mutation(2), crash_after_each_mutation(4));
}

/// Injects a failure after mutating call `first`, `first + 4`, … of a first
/// apply, and checks that a new process converges to one of each resource.
async fn crash_after_each_mutation(first: u64) {
    let mut emulator = AwsEmulator::start().await.expect("moto server starts");
    emulator.play_brokers(None).await.expect("brokers' stand-ins");
    let pipeline = pipeline(MINIMAL);
    let (engine, ctx) = engine_for(&emulator, &pipeline).await;
    engine.apply(&ctx).await;
    let mutations = engine.aws().calls.successful_mutations();
    assert!(
        mutations > 10,
        "a first apply makes the whole pipeline: {mutations} mutations"
    );

    for n in (first..=mutations).step_by(4) {
        emulator.reset().await.expect("reset");
        // The reset took the Kafka archive the brokers install with it.
        imagepipeline_e2e::brokers::place_kafka_distribution(&emulator.s3().await, imagepipeline_e2e::REGION)
            .await
            .expect("the Kafka archive is placed again");
        let (engine, ctx) = engine_for(&emulator, &pipeline).await;
        engine.aws().calls.fail_after_mutation(n);
        let crashed = engine.apply(&ctx).await;
        let injected = engine.aws().calls.injected_failure();
        assert!(injected.is_some(), "mutation {n} of {mutations} was reached");
        assert!(
            crashed
                .components
                .iter()
                .any(|c| matches!(c.state, ComponentState::Failed(_))),
            "the failure after {injected:?} is reported"
        );
        // A new process, as after a crash: nothing remembered but AWS itself.
        let (engine, ctx) = engine_for(&emulator, &pipeline).await;
        let mut last = None;
        for _ in 0..5 {
            let report = engine.apply(&ctx).await;
            if report.is_ready() {
                last = None;
                break;
            }
            last = Some(report.components);
        }
        assert!(
            last.is_none(),
            "converges after a crash following {injected:?}: {last:#?}"
        );
        let resources = owned_by_photos(&emulator).await;
        assert_eq!(
            kinds(&resources),
            EVERY_RESOURCE,
            "after a crash following {injected:?}: {resources:#?}"
        );
    }
}

#[tokio::test]
async fn drift_is_shown_by_plan_and_put_back_by_apply() {
    let fx = Fixture::new(MINIMAL).await;
    let report = fx.apply_until_ready().await;
    let (bucket, table) = (report.outputs.bucket.unwrap(), report.outputs.table.unwrap());
    let aws = fx.aws();
    aws.s3
        .delete_bucket_lifecycle()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    aws.s3
        .delete_bucket_encryption()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    aws.s3
        .put_bucket_tagging()
        .bucket(&bucket)
        .tagging(
            aws_sdk_s3::types::Tagging::builder()
                .tag_set(
                    aws_sdk_s3::types::Tag::builder()
                        .key("team")
                        .value("someone-else")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    aws.dynamodb
        .update_time_to_live()
        .table_name(&table)
        .time_to_live_specification(
            aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
                .enabled(false)
                .attribute_name(contract::table::TTL_ATTRIBUTE)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    fx.calls().reset();
    let plan = fx.engine.plan(&fx.ctx).await;
    assert_eq!(fx.calls().successful_mutations(), 0, "plan changes nothing");
    let planned: Vec<String> = plan
        .changes()
        .map(|(kind, change)| format!("{kind}: {}", change.resource))
        .collect();
    for expected in [
        format!("Storage: S3 bucket {bucket} lifecycle rules"),
        format!("Storage: S3 bucket {bucket} default encryption"),
        format!("Storage: S3 bucket {bucket} tags"),
        format!("Metadata: DynamoDB table {table} time to live"),
    ] {
        assert!(planned.contains(&expected), "plan shows {expected}: {planned:#?}");
    }
    let tag_fields: Vec<&String> = plan.changes().flat_map(|(_, c)| &c.fields).collect();
    assert!(
        tag_fields
            .iter()
            .any(|f| f.contains("team: someone-else → media")),
        "{tag_fields:?}"
    );

    fx.apply_until_ready().await;
    assert_eq!(
        fx.engine.plan(&fx.ctx).await.changes().count(),
        0,
        "apply put everything back"
    );
    let ttl = aws
        .dynamodb
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ttl.time_to_live_description()
            .unwrap()
            .time_to_live_status()
            .unwrap()
            .as_str(),
        "ENABLED"
    );
    assert_eq!(
        aws.s3
            .get_bucket_lifecycle_configuration()
            .bucket(&bucket)
            .send()
            .await
            .unwrap()
            .rules()
            .len(),
        // errors/, events/, images/, staging/ and the abort of stale multipart uploads
        5
    );
}

#[tokio::test]
async fn destroy_leaves_nothing_owned_behind() {
    let fx = Fixture::new(MINIMAL).await;
    let report = fx.apply_until_ready().await;
    // Objects in the bucket do not stop deletion.
    let bucket = report.outputs.bucket.unwrap();
    fx.aws()
        .s3
        .put_object()
        .bucket(&bucket)
        .key("images/a.png")
        .body(vec![1u8; 16].into())
        .send()
        .await
        .unwrap();
    assert_eq!(kinds(&owned_by_photos(&fx.emulator).await), EVERY_RESOURCE);
    fx.destroy_until_removed().await;
    assert_eq!(owned_by_photos(&fx.emulator).await, Vec::<String>::new());
}

#[tokio::test]
async fn a_bucket_of_another_pipeline_is_a_terminal_error_without_retries() {
    let mut emulator = AwsEmulator::start().await.expect("moto server starts");
    emulator.play_brokers(None).await.expect("brokers' stand-ins");
    let first = pipeline(&MINIMAL.replace("tags: { team: media }", "storage: { bucketName: shared-photos }"));
    let (engine, ctx) = engine_for(&emulator, &first).await;
    assert!(
        engine
            .apply(&ctx)
            .await
            .components
            .iter()
            .any(|c| c.kind == ComponentKind::Storage && c.state == ComponentState::Ready)
    );

    let second = pipeline(
        &MINIMAL
            .replace("name: photos", "name: thumbnails")
            .replace("tags: { team: media }", "storage: { bucketName: shared-photos }"),
    );
    let (engine, ctx) = engine_for(&emulator, &second).await;
    let report = engine.apply(&ctx).await;
    let (kind, err) = report.terminal_error().expect("a terminal error");
    assert_eq!(kind, ComponentKind::Storage);
    assert_eq!(err.reason, "OwnedByAnotherPipeline");
    assert!(
        err.message.contains("shared-photos") && err.message.contains("media/photos"),
        "{}",
        err.message
    );
    let status = status_after(&report);
    assert_eq!(status.phase, Some(Phase::Failed));
    let condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == "StorageReady")
        .unwrap();
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str()),
        ("False", "OwnedByAnotherPipeline")
    );
    // Another pass fails the same way and changes nothing: no retry storm.
    let calls = engine.aws().calls.total();
    engine.aws().calls.reset();
    let again = engine.apply(&ctx).await;
    assert!(again.terminal_error().is_some());
    assert_eq!(engine.aws().calls.successful_mutations(), 0);
    assert!(
        engine.aws().calls.total() <= calls,
        "no more calls than the first pass"
    );
    // Nothing of the first pipeline was touched.
    let tags = engine
        .aws()
        .s3
        .get_bucket_tagging()
        .bucket("shared-photos")
        .send()
        .await
        .unwrap();
    assert!(
        tags.tag_set()
            .iter()
            .any(|t| t.key() == OWNER_TAG && t.value() == "media/photos")
    );
}

/// Inbound rules of a security group as `port from source`, sorted.
async fn inbound_rules(aws: &AwsClients, group_id: &str) -> Vec<String> {
    let groups = aws
        .ec2
        .describe_security_groups()
        .group_ids(group_id)
        .send()
        .await
        .unwrap();
    let mut rules = Vec::new();
    for permission in groups.security_groups()[0].ip_permissions() {
        let port = format!(
            "{} {}-{}",
            permission.ip_protocol().unwrap(),
            permission.from_port().unwrap_or(-1),
            permission.to_port().unwrap_or(-1)
        );
        for range in permission.ip_ranges() {
            rules.push(format!("{port} from {}", range.cidr_ip().unwrap()));
        }
        for pair in permission.user_id_group_pairs() {
            rules.push(format!("{port} from {}", pair.group_id().unwrap()));
        }
    }
    rules.sort();
    rules
}

#[tokio::test]
async fn the_network_is_wired_and_its_security_groups_hold_exactly_the_designed_rules() {
    let fx = Fixture::new(MINIMAL).await;
    let report = fx.apply_until_ready().await;
    let outputs = &report.outputs;
    let aws = fx.aws();
    let (api_vpc, kafka_vpc) = (
        network(outputs).api_vpc.known().unwrap().to_owned(),
        network(outputs).kafka_vpc.known().unwrap().to_owned(),
    );
    let lb = network(outputs).load_balancer_group.known().unwrap().to_owned();
    let upload = network(outputs).upload_group.known().unwrap().to_owned();
    let kafka = network(outputs).kafka_group.known().unwrap().to_owned();

    assert_eq!(inbound_rules(aws, &lb).await, ["tcp 80-80 from 0.0.0.0/0"]);
    assert_eq!(
        inbound_rules(aws, &upload).await,
        [format!("tcp 8080-8080 from {lb}")]
    );
    assert_eq!(
        inbound_rules(aws, &kafka).await,
        [
            "tcp 9092-9092 from 10.40.0.0/16".to_owned(),
            format!("tcp 9092-9092 from {kafka}"),
            format!("tcp 9093-9093 from {kafka}"),
        ]
    );

    // Peering API↔Kafka is active and both sides route to it.
    let peerings = aws
        .ec2
        .describe_vpc_peering_connections()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("requester-vpc-info.vpc-id")
                .values(&api_vpc)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let peering = &peerings.vpc_peering_connections()[0];
    assert_eq!(peering.status().unwrap().code().unwrap().as_str(), "active");
    assert_eq!(
        peering.accepter_vpc_info().unwrap().vpc_id(),
        Some(kafka_vpc.as_str())
    );
    let peering_id = peering.vpc_peering_connection_id().unwrap();
    let routes_of = |vpc: String| async move {
        let tables = aws
            .ec2
            .describe_route_tables()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("vpc-id")
                    .values(vpc)
                    .build(),
            )
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name(format!("tag:{OWNER_TAG}"))
                    .values("media/photos")
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let table = &tables.route_tables()[0];
        let mut routes: Vec<(String, String)> = table
            .routes()
            .iter()
            .map(|r| {
                let target = r
                    .vpc_peering_connection_id()
                    .or(r.gateway_id())
                    .unwrap_or_default()
                    .to_owned();
                let destination = r.destination_cidr_block().or(r.destination_prefix_list_id());
                (destination.unwrap().to_owned(), target)
            })
            .collect();
        routes.sort();
        let associated = table
            .associations()
            .iter()
            .filter(|a| a.subnet_id().is_some())
            .count();
        (routes, associated)
    };
    let (api_routes, api_associated) = routes_of(api_vpc.clone()).await;
    let gateways = aws
        .ec2
        .describe_internet_gateways()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("attachment.vpc-id")
                .values(&api_vpc)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let gateway = gateways.internet_gateways()[0].internet_gateway_id().unwrap();
    assert_eq!(
        api_routes,
        [
            ("0.0.0.0/0".to_owned(), gateway.to_owned()),
            ("10.40.0.0/16".to_owned(), "local".to_owned()),
            ("10.41.0.0/16".to_owned(), peering_id.to_owned()),
        ]
    );
    assert_eq!(
        api_associated, 2,
        "both public subnets use the public route table"
    );
    let (kafka_routes, kafka_associated) = routes_of(kafka_vpc.clone()).await;
    let endpoints = aws
        .ec2
        .describe_vpc_endpoints()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("vpc-id")
                .values(&kafka_vpc)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let [endpoint] = endpoints.vpc_endpoints() else {
        panic!("one endpoint in the Kafka VPC: {endpoints:#?}");
    };
    assert_eq!(endpoint.service_name(), Some("com.amazonaws.eu-west-1.s3"));
    assert_eq!(endpoint.vpc_endpoint_type().map(|t| t.as_str()), Some("Gateway"));
    let prefix_list = kafka_routes
        .iter()
        .find(|(_, target)| Some(target.as_str()) == endpoint.vpc_endpoint_id())
        .map(|(destination, _)| destination.clone())
        .expect("a route to S3 through the endpoint");
    assert_eq!(
        kafka_routes,
        [
            ("10.40.0.0/16".to_owned(), peering_id.to_owned()),
            ("10.41.0.0/16".to_owned(), "local".to_owned()),
            (prefix_list, endpoint.vpc_endpoint_id().unwrap().to_owned()),
        ],
        "no way out of the Kafka VPC but the peering and S3 through the endpoint"
    );
    let policy: serde_json::Value = serde_json::from_str(endpoint.policy_document().unwrap()).unwrap();
    let allowed: Vec<(String, String)> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|statement| {
            assert_eq!(statement["Effect"], "Allow");
            let action = statement["Action"][0].as_str().unwrap().to_owned();
            statement["Resource"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |r| (action.clone(), r.as_str().unwrap().to_owned()))
        })
        .collect();
    let bucket = format!("arn:aws:s3:::{}", fx.ctx.bucket_name());
    assert_eq!(
        allowed,
        [
            (
                "s3:GetObject".to_owned(),
                "arn:aws:s3:::imagepipeline-test-kafka/kafka_2.13-4.1.1.tgz".to_owned()
            ),
            (
                "s3:GetObject".to_owned(),
                "arn:aws:s3:::al2023-repos-eu-west-1-de612dc2/*".to_owned()
            ),
            ("s3:PutObject".to_owned(), format!("{bucket}/kafka/brokers/*")),
        ],
        "the brokers reach only the Kafka distribution, the package repositories and their heartbeats"
    );
    assert_eq!(kafka_associated, 2);
    for subnet in &network(outputs).public_subnets {
        let described = aws
            .ec2
            .describe_subnets()
            .subnet_ids(&subnet.id)
            .send()
            .await
            .unwrap();
        assert_eq!(described.subnets()[0].map_public_ip_on_launch(), Some(true));
    }

    // A port opened by hand is closed again, and plan shows it first.
    aws.ec2
        .authorize_security_group_ingress()
        .group_id(&kafka)
        .ip_protocol("tcp")
        .from_port(22)
        .to_port(22)
        .cidr_ip("0.0.0.0/0")
        .send()
        .await
        .unwrap();
    let plan = fx.engine.plan(&fx.ctx).await;
    let fields: Vec<&String> = plan.changes().flat_map(|(_, c)| &c.fields).collect();
    assert!(
        fields.iter().any(|f| f.contains("tcp 22 from 0.0.0.0/0")),
        "plan shows the hand-opened port: {fields:?}"
    );
    fx.apply_until_ready().await;
    assert_eq!(inbound_rules(aws, &kafka).await.len(), 3, "port 22 closed again");
}

/// IAM answers policy documents URL-encoded.
fn percent_decoded(document: &str) -> String {
    percent_encoding::percent_decode_str(document)
        .decode_utf8()
        .expect("UTF-8 policy")
        .into_owned()
}

fn decoded(base64: &str) -> String {
    String::from_utf8(aws_smithy_types::base64::decode(base64).expect("base64 user data"))
        .expect("UTF-8 user data")
}

#[tokio::test]
async fn the_upload_tier_and_the_brokers_are_wired_as_designed() {
    let fx = Fixture::new(MINIMAL).await;
    let report = fx.apply_until_ready().await;
    let outputs = &report.outputs;
    let aws = fx.aws();
    let public_subnets: BTreeSet<String> = network(outputs)
        .public_subnets
        .iter()
        .map(|s| s.id.clone())
        .collect();

    // Load balancer → listener → target group.
    let lb = aws.elbv2.describe_load_balancers().send().await.unwrap();
    let [lb] = lb.load_balancers() else {
        panic!("one load balancer: {lb:?}")
    };
    assert_eq!(lb.scheme().unwrap().as_str(), "internet-facing");
    assert_eq!(lb.state().unwrap().code().unwrap().as_str(), "active");
    assert_eq!(
        lb.security_groups(),
        [network(outputs).load_balancer_group.known().unwrap().to_owned()]
    );
    let lb_subnets: BTreeSet<String> = lb
        .availability_zones()
        .iter()
        .map(|z| z.subnet_id().unwrap().to_owned())
        .collect();
    assert_eq!(
        lb_subnets, public_subnets,
        "the load balancer is in the public subnets"
    );
    assert_eq!(
        outputs.upload_url.as_deref(),
        Some(format!("http://{}", lb.dns_name().unwrap()).as_str())
    );
    let listeners = aws
        .elbv2
        .describe_listeners()
        .load_balancer_arn(lb.load_balancer_arn().unwrap())
        .send()
        .await
        .unwrap();
    let [listener] = listeners.listeners() else {
        panic!("one listener: {listeners:?}")
    };
    assert_eq!(
        (listener.port(), listener.protocol().unwrap().as_str()),
        (Some(80), "HTTP")
    );
    let target_group_arn = listener.default_actions()[0].target_group_arn().unwrap();
    let tg = aws
        .elbv2
        .describe_target_groups()
        .target_group_arns(target_group_arn)
        .send()
        .await
        .unwrap();
    let tg = &tg.target_groups()[0];
    assert_eq!(
        (tg.protocol().unwrap().as_str(), tg.port(), tg.health_check_path()),
        ("HTTP", Some(8080), Some("/healthz"))
    );
    assert_eq!(tg.vpc_id(), network(outputs).api_vpc.known());

    // The group runs the template's latest version behind that target group.
    let groups = aws
        .autoscaling
        .describe_auto_scaling_groups()
        .send()
        .await
        .unwrap();
    let [group] = groups.auto_scaling_groups() else {
        panic!("one group: {groups:?}")
    };
    assert_eq!(group.target_group_arns(), [target_group_arn.to_owned()]);
    assert_eq!(group.health_check_type(), Some("ELB"));
    assert_eq!((group.min_size(), group.max_size()), (Some(2), Some(6)));
    let group_subnets: BTreeSet<String> = group
        .vpc_zone_identifier()
        .unwrap()
        .split(',')
        .map(str::to_owned)
        .collect();
    assert_eq!(
        group_subnets, public_subnets,
        "the group spans every public subnet"
    );
    let template = group.launch_template().expect("the group uses a launch template");
    assert_eq!(template.version(), Some("1"));
    let in_service: BTreeSet<String> = group
        .instances()
        .iter()
        .filter(|i| i.lifecycle_state().unwrap().as_str() == "InService")
        .map(|i| i.instance_id().unwrap().to_owned())
        .collect();
    assert_eq!(in_service.len(), 2, "minSize instances in service: {group:?}");
    let health = aws
        .elbv2
        .describe_target_health()
        .target_group_arn(target_group_arn)
        .send()
        .await
        .unwrap();
    let healthy: BTreeSet<String> = health
        .target_health_descriptions()
        .iter()
        .filter(|t| t.target_health().unwrap().state().unwrap().as_str() == "healthy")
        .map(|t| t.target().unwrap().id().unwrap().to_owned())
        .collect();
    assert_eq!(
        healthy, in_service,
        "every instance in service is a healthy target"
    );
    let policies = aws
        .autoscaling
        .describe_policies()
        .auto_scaling_group_name(group.auto_scaling_group_name().unwrap())
        .send()
        .await
        .unwrap();
    let [policy] = policies.scaling_policies() else {
        panic!("one policy: {policies:?}")
    };
    let tracking = policy.target_tracking_configuration().unwrap();
    assert_eq!(tracking.target_value(), Some(60.0));
    assert_eq!(
        tracking
            .predefined_metric_specification()
            .unwrap()
            .predefined_metric_type()
            .unwrap()
            .as_str(),
        "ASGAverageCPUUtilization"
    );

    // The launch template: IMDSv2 only, encrypted root volume, the instance
    // profile, the instances' group, and user data that runs upload-api
    // against this pipeline's bucket, table and stream.
    let versions = aws
        .ec2
        .describe_launch_template_versions()
        .launch_template_id(template.launch_template_id().unwrap())
        .versions("1")
        .send()
        .await
        .unwrap();
    let data = versions.launch_template_versions()[0]
        .launch_template_data()
        .unwrap();
    let metadata = data.metadata_options().unwrap();
    assert_eq!(metadata.http_tokens().unwrap().as_str(), "required");
    assert_eq!(metadata.http_put_response_hop_limit(), Some(2));
    let root = &data.block_device_mappings()[0];
    assert_eq!(root.ebs().unwrap().encrypted(), Some(true));
    assert_eq!(
        data.security_group_ids(),
        [network(outputs).upload_group.known().unwrap().to_owned()]
    );
    let profile_arn = data.iam_instance_profile().unwrap().arn().unwrap();
    assert!(
        profile_arn.contains(":instance-profile/imagepipeline/"),
        "{profile_arn}"
    );
    let environment = upload_instance_setup::environment_from_user_data(&decoded(data.user_data().unwrap()))
        .expect("the user data writes the upload-api environment");
    assert_eq!(
        environment[contract::env::BUCKET],
        outputs.bucket.clone().unwrap()
    );
    assert_eq!(environment[contract::env::TABLE], outputs.table.clone().unwrap());
    assert_eq!(
        environment[contract::env::DELIVERY_STREAM],
        outputs.delivery_stream.clone().unwrap()
    );
    assert_eq!(
        environment[contract::env::MAX_IMAGE_BYTES],
        (20 * 1024 * 1024).to_string()
    );
    // The API key is generated into SSM, never put into the user data.
    let key = aws
        .ssm
        .get_parameter()
        .name("/imagepipeline/media/photos/api-keys")
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    let key = key.parameter().unwrap();
    assert_eq!(key.r#type().unwrap().as_str(), "SecureString");
    let key = key.value().unwrap();
    assert_eq!(key.len(), 64, "a 256-bit key in hex");
    assert!(!decoded(data.user_data().unwrap()).contains(key));

    // Brokers: fixed addresses spread over the zones' private subnets, an
    // encrypted data volume each, and their KRaft configuration.
    let brokers = aws
        .ec2
        .describe_instances()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:imagepipeline.io/component")
                .values("kafka")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut brokers: Vec<_> = brokers
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .collect();
    brokers.sort_by_key(|i| i.private_ip_address().unwrap().to_owned());
    let subnet_of = |zone: &str| {
        network(outputs)
            .private_subnets
            .iter()
            .find(|s| s.availability_zone == zone)
            .unwrap()
            .id
            .clone()
    };
    let placed: Vec<(String, String, String)> = brokers
        .iter()
        .map(|i| {
            let tags = tag_map(i.tags().iter().map(|t| (t.key().unwrap(), t.value().unwrap())));
            (
                tags["imagepipeline.io/broker"].clone(),
                i.private_ip_address().unwrap().to_owned(),
                i.subnet_id().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        placed,
        [
            ("1".to_owned(), "10.41.0.10".to_owned(), subnet_of("eu-west-1a")),
            ("3".to_owned(), "10.41.0.11".to_owned(), subnet_of("eu-west-1a")),
            ("2".to_owned(), "10.41.16.10".to_owned(), subnet_of("eu-west-1b")),
        ]
    );
    assert_eq!(
        outputs.kafka_bootstrap.as_deref(),
        Some("10.41.0.10:9092,10.41.16.10:9092,10.41.0.11:9092")
    );
    // The brokers' role may read the Kafka distribution and write their
    // heartbeats, nothing else.
    let profile_arn = format!(
        "arn:aws:iam::{}:instance-profile/imagepipeline/{}",
        fx.ctx.account_id,
        fx.ctx.resource_name("kafka", 64)
    );
    let role = aws
        .iam
        .get_role_policy()
        .role_name(fx.ctx.resource_name("kafka", 64))
        .policy_name("kafka-broker")
        .send()
        .await
        .unwrap();
    let policy: serde_json::Value = serde_json::from_str(&percent_decoded(role.policy_document())).unwrap();
    let bucket = format!("arn:aws:s3:::{}", fx.ctx.bucket_name());
    let granted: Vec<(String, String)> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["Action"][0].as_str().unwrap().to_owned(),
                s["Resource"][0].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        granted,
        [
            (
                "s3:GetObject".to_owned(),
                "arn:aws:s3:::imagepipeline-test-kafka/kafka_2.13-4.1.1.tgz".to_owned()
            ),
            ("s3:PutObject".to_owned(), format!("{bucket}/kafka/brokers/*")),
        ]
    );
    // Each broker is listed with what its heartbeat said.
    let listed: Vec<(u32, String, String)> = outputs
        .kafka_brokers
        .iter()
        .map(|b| (b.node_id, b.address.clone(), b.state.clone()))
        .collect();
    assert_eq!(
        listed,
        [
            (1, "10.41.0.10:9092".to_owned(), "serving".to_owned()),
            (2, "10.41.16.10:9092".to_owned(), "serving".to_owned()),
            (3, "10.41.0.11:9092".to_owned(), "serving".to_owned()),
        ]
    );
    for broker in &brokers {
        let id = broker.instance_id().unwrap();
        assert_eq!(broker.instance_type().unwrap().as_str(), "m7i.large");
        assert_eq!(
            broker.iam_instance_profile().and_then(|p| p.arn()),
            Some(profile_arn.as_str()),
            "broker {id} runs with the brokers' instance profile"
        );
        assert_eq!(
            broker
                .security_groups()
                .iter()
                .map(|g| g.group_id().unwrap())
                .collect::<Vec<_>>(),
            [network(outputs).kafka_group.known().unwrap().to_owned()]
        );
        let volumes = aws
            .ec2
            .describe_volumes()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("attachment.instance-id")
                    .values(id)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let data_volume = volumes
            .volumes()
            .iter()
            .find(|v| v.attachments()[0].device() == Some("/dev/sdf"))
            .expect("a data volume at /dev/sdf");
        assert_eq!(
            (data_volume.size(), data_volume.encrypted()),
            (Some(100), Some(true))
        );
        assert!(
            volumes.volumes().iter().all(|v| v.encrypted() == Some(true)),
            "every volume of {id} is encrypted"
        );
        let tags = tag_map(
            data_volume
                .tags()
                .iter()
                .map(|t| (t.key().unwrap(), t.value().unwrap())),
        );
        assert_eq!(tags.get(OWNER_TAG).map(String::as_str), Some("media/photos"));

        let user_data = aws
            .ec2
            .describe_instance_attribute()
            .instance_id(id)
            .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
            .send()
            .await
            .unwrap();
        let script = decoded(user_data.user_data().unwrap().value().unwrap());
        let properties = kafka_broker_setup::properties_from_user_data(&script)
            .expect("the user data writes server.properties");
        let ip = broker.private_ip_address().unwrap();
        assert_eq!(properties["process.roles"], "broker,controller");
        assert_eq!(
            properties["controller.quorum.voters"],
            "1@10.41.0.10:9093,2@10.41.16.10:9093,3@10.41.0.11:9093"
        );
        assert_eq!(
            properties["advertised.listeners"],
            format!("PLAINTEXT://{ip}:9092")
        );
        assert_eq!(properties["log.dirs"], "/var/lib/kafka/data");
        let max: i64 = properties["message.max.bytes"].parse().unwrap();
        assert!(
            max >= 20 * 1024 * 1024,
            "message.max.bytes {max} holds the largest image"
        );
        let node: u32 = properties["node.id"].parse().unwrap();
        // Broker 1 creates the topics once the quorum stands.
        assert_eq!(
            script.contains("TOPIC='images'")
                && script.contains("DLQ_TOPIC='images.dlq'")
                && script.contains("PARTITIONS='12'"),
            node == 1,
            "broker {node}"
        );
    }
}

/// Applies `yaml` as a changed spec for the same pipeline and returns the
/// mutating calls it made, as `service:Operation`.
async fn mutations_of_applying(fx: &Fixture, yaml: &str) -> (PassReport, Vec<String>) {
    let ctx = PipelineContext {
        spec: pipeline(yaml).spec,
        ..fx.ctx.clone()
    };
    fx.calls().reset();
    let report = fx.engine.apply(&ctx).await;
    let mutations = fx
        .calls()
        .counts()
        .into_iter()
        .filter(|(key, _)| key.is_mutating())
        .map(|(key, n)| format!("{}:{} x{n}", key.service, key.operation))
        .collect();
    (report, mutations)
}

#[tokio::test]
async fn a_scaling_change_changes_only_the_group_and_an_instance_type_change_rolls_a_new_template_version() {
    let fx = Fixture::new(MINIMAL).await;
    fx.apply_until_ready().await;

    let scaled = MINIMAL.replace(
        "  analytics: { nodes: 1 }",
        "  analytics: { nodes: 1 }\n  uploadApi: { minSize: 3, maxSize: 8, desiredCapacity: 4 }",
    );
    let plan = fx
        .engine
        .plan(&PipelineContext {
            spec: pipeline(&scaled).spec,
            ..fx.ctx.clone()
        })
        .await;
    let planned: Vec<String> = plan.changes().map(|(_, c)| c.resource.clone()).collect();
    assert_eq!(planned.len(), 1, "{planned:?}");
    assert!(planned[0].starts_with("Auto Scaling group"), "{planned:?}");
    let (report, mutations) = mutations_of_applying(&fx, &scaled).await;
    assert_eq!(mutations, ["Auto Scaling:UpdateAutoScalingGroup x1"]);
    assert!(
        report
            .components
            .iter()
            .all(|c| c.state != ComponentState::ChangesPending)
    );
    let groups = fx
        .aws()
        .autoscaling
        .describe_auto_scaling_groups()
        .send()
        .await
        .unwrap();
    let group = &groups.auto_scaling_groups()[0];
    assert_eq!(
        (group.min_size(), group.max_size(), group.desired_capacity()),
        (Some(3), Some(8), Some(4))
    );
    assert_eq!(group.launch_template().unwrap().version(), Some("1"));

    let bigger = scaled.replace("uploadApi: {", "uploadApi: { instanceType: t3.large,");
    let (_, mutations) = mutations_of_applying(&fx, &bigger).await;
    assert_eq!(
        mutations,
        [
            "Auto Scaling:StartInstanceRefresh x1",
            "Auto Scaling:UpdateAutoScalingGroup x1",
            "EC2:CreateLaunchTemplateVersion x1",
        ]
    );
    let groups = fx
        .aws()
        .autoscaling
        .describe_auto_scaling_groups()
        .send()
        .await
        .unwrap();
    let group = &groups.auto_scaling_groups()[0];
    let template = group.launch_template().unwrap();
    assert_eq!(template.version(), Some("2"));
    let versions = fx
        .aws()
        .ec2
        .describe_launch_template_versions()
        .launch_template_id(template.launch_template_id().unwrap())
        .versions("2")
        .send()
        .await
        .unwrap();
    let data = versions.launch_template_versions()[0]
        .launch_template_data()
        .unwrap();
    assert_eq!(data.instance_type().unwrap().as_str(), "t3.large");
    assert_eq!(
        data.metadata_options().unwrap().http_tokens().unwrap().as_str(),
        "required"
    );
    let refreshes = fx
        .aws()
        .autoscaling
        .describe_instance_refreshes()
        .auto_scaling_group_name(group.auto_scaling_group_name().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(refreshes.instance_refreshes().len(), 1);
    // The refresh replaced every instance with one of the new version.
    let groups = fx
        .aws()
        .autoscaling
        .describe_auto_scaling_groups()
        .send()
        .await
        .unwrap();
    let instances = groups.auto_scaling_groups()[0].instances();
    assert_eq!(instances.len(), 4);
    assert!(
        instances
            .iter()
            .all(|i| i.launch_template().unwrap().version() == Some("2")),
        "{instances:?}"
    );
    fx.calls().reset();
    let settled = fx
        .engine
        .apply(&PipelineContext {
            spec: pipeline(&bigger).spec,
            ..fx.ctx.clone()
        })
        .await;
    assert!(settled.is_ready(), "{:#?}", settled.components);
    assert_eq!(fx.calls().successful_mutations(), 0);
}
