//! AWS behaviour an emulator cannot produce — throttling and partial
//! failures — scripted with aws-smithy-mocks, against the components' own code.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_redshiftdata::types::StatusString;
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};
use aws_smithy_types::retry::RetryConfig;
use imagepipeline_operator::aws::{AwsClients, CallLog};
use imagepipeline_operator::components::analytics::{self, warehouse};
use imagepipeline_operator::components::network::security_groups::VpcRole;
use imagepipeline_operator::components::{Metadata, Network, Storage};
use imagepipeline_operator::engine::resource::{Resource, Walk, WalkMode};
use imagepipeline_operator::engine::{Declared, ErrorKind, Outputs, Owner, PipelineContext};
use imagepipeline_operator::manifest;
use imagepipeline_operator::resources::warehouse_check::WarehouseCheck;
use imagepipeline_operator::resources::warehouse_schema::{
    SCHEMA_CHECKED_TAG, SCHEMA_STATEMENT_TAG, SCHEMA_VERSION_TAG, SchemaRecord, WarehouseSchema,
};

/// Standard retries, three attempts, without the real backoff's seconds.
fn fast_retries() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(1))
}

macro_rules! mocked_client {
    ($sdk:ident, $mode:expr, [$($rule:expr),+ $(,)?]) => {
        mocked_client!($sdk, $mode, [$($rule),+], &CallLog::new())
    };
    ($sdk:ident, $mode:expr, [$($rule:expr),+ $(,)?], $log:expr) => {{
        let mut interceptor = MockResponseInterceptor::new().rule_mode($mode);
        $(interceptor = interceptor.with_rule($rule);)+
        $sdk::Client::from_conf(
            $sdk::Config::builder()
                .behavior_version_latest()
                .region($sdk::config::Region::new("eu-west-1"))
                .credentials_provider($sdk::config::Credentials::new("testing", "testing", None, None, "mock"))
                .http_client(create_mock_http_client())
                .interceptor(interceptor)
                .interceptor($log.interceptor())
                .retry_config(fast_retries())
                .build(),
        )
    }};
}

/// Clients for every service pointed at a closed port: a test replaces the
/// ones it scripts, and any other call fails loudly.
async fn clients() -> AwsClients {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .endpoint_url("http://127.0.0.1:9")
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "mock",
        ))
        .load()
        .await;
    AwsClients::from_sdk_config(&config, CallLog::new()).expect("clients")
}

fn context() -> PipelineContext {
    let yaml = "apiVersion: imagepipeline.io/v1alpha1\nkind: ImagePipeline\nmetadata: { name: photos, namespace: media }\n\
                spec: { region: eu-west-1, network: { availabilityZones: [eu-west-1a, eu-west-1b] } }\n";
    let pipeline = manifest::parse(Path::new("test.yaml"), yaml)
        .expect("valid")
        .remove(0);
    PipelineContext::new(
        Owner {
            namespace: "media".into(),
            name: "photos".into(),
        },
        "123456789012".into(),
        pipeline.spec,
    )
}

const EC2_REQUEST_LIMIT_EXCEEDED: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
    <Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error>\
    </Errors><RequestID>0e1f</RequestID></Response>";

#[tokio::test]
async fn ec2_request_limit_exceeded_is_retried_by_the_sdk_and_then_succeeds() {
    let throttled_twice: Rule = mock!(aws_sdk_ec2::Client::describe_vpcs)
        .sequence()
        .http_status(503, Some(EC2_REQUEST_LIMIT_EXCEEDED.to_owned()))
        .times(2)
        .output(|| aws_sdk_ec2::operation::describe_vpcs::DescribeVpcsOutput::builder().build())
        .repeatedly()
        .build();
    let no_gateways: Rule = mock!(aws_sdk_ec2::Client::describe_internet_gateways).then_output(|| {
        aws_sdk_ec2::operation::describe_internet_gateways::DescribeInternetGatewaysOutput::builder().build()
    });
    let no_peerings: Rule = mock!(aws_sdk_ec2::Client::describe_vpc_peering_connections).then_output(|| {
        aws_sdk_ec2::operation::describe_vpc_peering_connections::DescribeVpcPeeringConnectionsOutput::builder()
            .build()
    });
    let mut aws = clients().await;
    let log = CallLog::new();
    aws.ec2 = mocked_client!(
        aws_sdk_ec2,
        RuleMode::MatchAny,
        [&throttled_twice, &no_gateways, &no_peerings],
        &log
    );
    let desired = Network::desired(&context(), &Outputs::default()).unwrap();
    let mut observed = Vec::new();
    for role in [VpcRole::Api, VpcRole::Kafka] {
        let vpc = desired.vpc_resource(role);
        observed.extend(vpc.find(&aws).await.expect("the third attempt succeeds"));
    }
    assert!(observed.is_empty());
    // Two throttled attempts and the answer for the API VPC; the Kafka VPC
    // is picked out of that same list of every pipeline's VPCs.
    assert_eq!(throttled_twice.num_calls(), 3);
    // The call succeeded; both throttled answers are still counted.
    assert!(outcomes(&log).contains(&"DescribeVpcs success 1".to_owned()));
    assert_eq!(
        log.throttled_answers(),
        [(("EC2".to_owned(), "DescribeVpcs".to_owned()), 2)].into()
    );
}

#[tokio::test]
async fn ec2_throttling_that_outlasts_the_retries_is_a_retryable_throttled_error() {
    let always_throttled: Rule = mock!(aws_sdk_ec2::Client::describe_vpcs)
        .sequence()
        .http_status(503, Some(EC2_REQUEST_LIMIT_EXCEEDED.to_owned()))
        .repeatedly()
        .build();
    let mut aws = clients().await;
    let log = CallLog::new();
    aws.ec2 = mocked_client!(aws_sdk_ec2, RuleMode::Sequential, [&always_throttled], &log);
    let desired = Network::desired(&context(), &Outputs::default()).unwrap();
    let err = desired
        .vpc_resource(VpcRole::Api)
        .find(&aws)
        .await
        .expect_err("throttled throughout");
    assert_eq!(
        (err.kind, err.reason.as_str()),
        (ErrorKind::Retryable, "Throttled")
    );
    assert!(err.message.contains("RequestLimitExceeded"), "{}", err.message);
    assert_eq!(
        always_throttled.num_calls(),
        3,
        "bounded by the retry policy, never a tight loop"
    );
    assert_eq!(
        outcomes(&log),
        ["DescribeVpcs throttled 1"],
        "one call, after its retries"
    );
    assert_eq!(
        log.throttled_answers(),
        [(("EC2".to_owned(), "DescribeVpcs".to_owned()), 3)].into(),
        "each attempt's answer"
    );
}

/// The calls a log counted, as `operation outcome count`.
fn outcomes(log: &CallLog) -> Vec<String> {
    log.counts()
        .into_iter()
        .map(|(key, count)| format!("{} {} {count}", key.operation, key.outcome.as_str()))
        .collect()
}

#[tokio::test]
async fn dynamodb_throttling_exception_is_a_retryable_throttled_error() {
    let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#;
    let throttled: Rule = mock!(aws_sdk_dynamodb::Client::describe_table)
        .sequence()
        .http_status(400, Some(body.to_owned()))
        .repeatedly()
        .build();
    let mut aws = clients().await;
    let log = CallLog::new();
    aws.dynamodb = mocked_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&throttled], &log);
    let table = Metadata::desired(&context(), &Outputs::default()).unwrap();
    let err = table.find(&aws).await.expect_err("throttled throughout");
    assert_eq!(
        (err.kind, err.reason.as_str()),
        (ErrorKind::Retryable, "Throttled")
    );
    assert!(err.message.contains("ThrottlingException"), "{}", err.message);
    assert_eq!(throttled.num_calls(), 3);
    assert_eq!(outcomes(&log), ["DescribeTable throttled 1"]);
}

#[tokio::test]
async fn a_partial_delete_objects_failure_keeps_the_bucket_and_is_retried() {
    use aws_sdk_s3::operation::delete_objects::DeleteObjectsOutput;
    use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
    use aws_sdk_s3::types::{Error as S3Error, Object};

    let listed: Rule = mock!(aws_sdk_s3::Client::list_objects_v2).then_output(|| {
        ListObjectsV2Output::builder()
            .contents(Object::builder().key("images/a.png").build())
            .contents(Object::builder().key("images/b.png").build())
            .build()
    });
    let partly_deleted: Rule = mock!(aws_sdk_s3::Client::delete_objects).then_output(|| {
        DeleteObjectsOutput::builder()
            .errors(
                S3Error::builder()
                    .key("images/b.png")
                    .code("InternalError")
                    .message("try again")
                    .build(),
            )
            .build()
    });
    let bucket_deleted: Rule = mock!(aws_sdk_s3::Client::delete_bucket)
        .then_output(|| aws_sdk_s3::operation::delete_bucket::DeleteBucketOutput::builder().build());
    let mut aws = clients().await;
    aws.s3 = mocked_client!(
        aws_sdk_s3,
        RuleMode::MatchAny,
        [&listed, &partly_deleted, &bucket_deleted]
    );
    let bucket = Storage::desired(&context(), &Outputs::default()).unwrap().bucket;
    let err = bucket
        .delete(&aws, &bucket.unmade())
        .await
        .expect_err("one object was not deleted");
    assert_eq!(
        (err.kind, err.reason.as_str()),
        (ErrorKind::Retryable, "ObjectsNotDeleted")
    );
    assert!(
        err.message.contains("images/b.png") && err.message.contains("1 of 2"),
        "{}",
        err.message
    );
    assert_eq!(partly_deleted.num_calls(), 1);
    assert_eq!(
        bucket_deleted.num_calls(),
        0,
        "a bucket is never deleted half-emptied"
    );
}

#[tokio::test]
async fn access_denied_is_asked_once_and_reported_as_refused_with_what_to_do() {
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code>\
                <Message>User: arn:aws:sts::123456789012:assumed-role/operator is not authorized to perform: \
                s3:CreateBucket</Message><RequestId>4442587FB7D0A2F9</RequestId></Error>";
    let denied: Rule = mock!(aws_sdk_s3::Client::create_bucket)
        .sequence()
        .http_status(403, Some(body.to_owned()))
        .repeatedly()
        .build();
    let mut aws = clients().await;
    let log = CallLog::new();
    aws.s3 = mocked_client!(aws_sdk_s3, RuleMode::Sequential, [&denied], &log);
    let bucket = Storage::desired(&context(), &Outputs::default()).unwrap().bucket;
    let err = bucket.create(&aws).await.expect_err("denied");
    assert_eq!(
        (err.kind, err.reason.as_str()),
        (ErrorKind::Refused, "AccessDenied")
    );
    assert!(err.needs_person() && !err.is_terminal());
    assert!(
        err.message.contains("s3:CreateBucket") && err.message.contains("grant this permission"),
        "{}",
        err.message
    );
    assert_eq!(denied.num_calls(), 1, "a denied call is not retried by the SDK");
    assert_eq!(
        outcomes(&log),
        ["CreateBucket client_error 1"],
        "denied is not throttled"
    );
}

#[tokio::test]
async fn a_bucket_name_another_account_holds_is_terminal_and_names_the_field() {
    for (status, why) in [
        (403, "belongs to another AWS account"),
        (301, "exists in another region"),
    ] {
        let taken: Rule = mock!(aws_sdk_s3::Client::head_bucket)
            .sequence()
            .http_status(status, None)
            .repeatedly()
            .build();
        let mut aws = clients().await;
        aws.s3 = mocked_client!(aws_sdk_s3, RuleMode::Sequential, [&taken]);
        let bucket = Storage::desired(&context(), &Outputs::default()).unwrap().bucket;
        let mut walk = Walk::new(&aws, context().owner.tag_value(), WalkMode::Apply);
        let err = walk.ensure(&bucket).await.expect_err("the name is taken");
        assert_eq!(
            (err.kind, err.reason.as_str()),
            (ErrorKind::Terminal, "BucketNameTaken")
        );
        assert!(
            err.message.contains(why) && err.message.contains("spec.storage.bucketName"),
            "{}",
            err.message
        );
    }
}

#[tokio::test]
async fn a_teardown_leaves_a_bucket_name_another_account_holds_alone() {
    let taken: Rule = mock!(aws_sdk_s3::Client::head_bucket)
        .sequence()
        .http_status(403, None)
        .repeatedly()
        .build();
    let mut aws = clients().await;
    aws.s3 = mocked_client!(aws_sdk_s3, RuleMode::Sequential, [&taken]);
    let bucket = Storage::desired(&context(), &Outputs::default()).unwrap().bucket;
    let mut walk = Walk::new(&aws, context().owner.tag_value(), WalkMode::Find);
    let found = walk
        .ensure(&bucket)
        .await
        .expect("not an error when tearing down");
    assert_eq!(found, None, "nothing of this pipeline's is there");
    assert!(!walk.found_any(), "nothing to delete");
    assert_eq!(taken.num_calls(), 1);
}

/// The warehouse schema of the test pipeline, with what its cluster's tags
/// `record`.
fn warehouse_schema(record: SchemaRecord) -> WarehouseSchema {
    let ctx = context();
    WarehouseSchema {
        cluster_id: analytics::cluster_id(&ctx),
        cluster_arn: format!(
            "arn:aws:redshift:eu-west-1:123456789012:cluster:{}",
            analytics::cluster_id(&ctx)
        ),
        database: ctx.spec.analytics.database.clone(),
        user: "imagepipeline_admin".into(),
        migrations: warehouse::migrations(&analytics::warehouse_names(&ctx)),
        record,
    }
}

/// The SQL texts and tags a scripted Redshift was sent, in order.
#[derive(Clone, Default)]
struct Sent(Arc<Mutex<Vec<String>>>);

impl Sent {
    fn push(&self, what: String) {
        self.0.lock().unwrap().push(what);
    }
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

fn tagged(sent: &Sent) -> Rule {
    let sent = sent.clone();
    mock!(aws_sdk_redshift::Client::create_tags)
        .match_requests(move |req| {
            let tags: Vec<String> = req
                .tags()
                .iter()
                .map(|t| {
                    format!(
                        "{}={}",
                        t.key().unwrap_or_default(),
                        t.value().unwrap_or_default()
                    )
                })
                .collect();
            sent.push(format!("tags {}", tags.join(" ")));
            true
        })
        .then_output(|| aws_sdk_redshift::operation::create_tags::CreateTagsOutput::builder().build())
}

fn executed(sent: &Sent, id: &'static str) -> Rule {
    let sent = sent.clone();
    mock!(aws_sdk_redshiftdata::Client::execute_statement)
        .match_requests(move |req| {
            sent.push(format!("run {}", req.sql().unwrap_or_default()));
            true
        })
        .then_output(move || {
            aws_sdk_redshiftdata::operation::execute_statement::ExecuteStatementOutput::builder()
                .id(id)
                .build()
        })
}

#[tokio::test]
async fn a_new_warehouse_runs_every_migration_once_in_order_and_records_the_last() {
    let sent = Sent::default();
    let finished: Rule = mock!(aws_sdk_redshiftdata::Client::describe_statement).then_output(|| {
        aws_sdk_redshiftdata::operation::describe_statement::DescribeStatementOutput::builder()
            .id("statement")
            .status(StatusString::Finished)
            .build()
            .unwrap()
    });
    let run = executed(&sent, "statement");
    let tags = tagged(&sent);
    let mut aws = clients().await;
    aws.redshift_data = mocked_client!(aws_sdk_redshiftdata, RuleMode::MatchAny, [&run, &finished]);
    aws.redshift = mocked_client!(aws_sdk_redshift, RuleMode::MatchAny, [&tags]);

    let schema = warehouse_schema(SchemaRecord::default());
    let mut walk = Walk::new(&aws, "media/photos", WalkMode::Apply);
    walk.ensure(&schema).await.expect("migrations run");

    let expected: Vec<String> = schema
        .migrations
        .iter()
        .flat_map(|m| {
            [
                format!("run {}", m.sql),
                format!(
                    "tags {SCHEMA_STATEMENT_TAG}={}:statement {SCHEMA_VERSION_TAG}={}",
                    m.version,
                    m.version - 1
                ),
            ]
        })
        .chain([format!("tags {SCHEMA_VERSION_TAG}={}", schema.migrations.len())])
        .collect();
    assert_eq!(sent.all(), expected);
    assert_eq!(
        finished.num_calls(),
        schema.migrations.len(),
        "each statement is waited for once"
    );
}

#[tokio::test]
async fn a_failed_migration_names_the_statement_and_redshifts_error_and_is_submitted_again_next_time() {
    let sent = Sent::default();
    let error = "ERROR: permission denied for schema images_events";
    let failed: Rule = mock!(aws_sdk_redshiftdata::Client::describe_statement)
        .match_requests(|req| req.id() == Some("statement-3"))
        .then_output(move || {
            aws_sdk_redshiftdata::operation::describe_statement::DescribeStatementOutput::builder()
                .id("statement-3")
                .status(StatusString::Failed)
                .error(error)
                .build()
                .unwrap()
        });
    let failed_again: Rule = mock!(aws_sdk_redshiftdata::Client::describe_statement)
        .match_requests(|req| req.id() == Some("statement-3b"))
        .then_output(|| {
            aws_sdk_redshiftdata::operation::describe_statement::DescribeStatementOutput::builder()
                .id("statement-3b")
                .status(StatusString::Failed)
                .error("ERROR: still denied")
                .build()
                .unwrap()
        });
    let run = executed(&sent, "statement-3b");
    let tags = tagged(&sent);
    let mut aws = clients().await;
    aws.redshift_data = mocked_client!(
        aws_sdk_redshiftdata,
        RuleMode::MatchAny,
        [&failed, &failed_again, &run]
    );
    aws.redshift = mocked_client!(aws_sdk_redshift, RuleMode::MatchAny, [&tags]);

    // Migrations 1 and 2 applied; 3 submitted and failed.
    let schema = warehouse_schema(SchemaRecord {
        version: Some("2".into()),
        statement: Some("3:statement-3".into()),
        checked: None,
    });
    let mut plan = Walk::new(&aws, "media/photos", WalkMode::Plan);
    plan.ensure(&schema).await.expect("a plan shows the failure");
    let shown = plan.take_changes();
    assert_eq!(
        shown[0].fields,
        [format!("migration 3 failed ({error}): apply migrations 3–18")]
    );
    assert!(sent.all().is_empty(), "a plan changes nothing");

    let mut walk = Walk::new(&aws, "media/photos", WalkMode::Apply);
    let err = walk
        .ensure(&schema)
        .await
        .expect_err("the failure is the condition");
    assert_eq!(
        (err.kind, err.reason.as_str()),
        (ErrorKind::Retryable, "WarehouseMigrationFailed")
    );
    for part in [
        "warehouse migration 3 (map the Glue database",
        error,
        "statement-3",
        "CREATE EXTERNAL SCHEMA",
    ] {
        assert!(err.message.contains(part), "{part} in {}", err.message);
    }
    // Recorded as reported; nothing is run until the next attempt.
    assert_eq!(
        sent.all(),
        [format!(
            "tags {SCHEMA_STATEMENT_TAG}=3:statement-3:failed {SCHEMA_VERSION_TAG}=2"
        )]
    );

    // The next attempt, after the backoff, submits migration 3 again.
    let next = warehouse_schema(SchemaRecord {
        version: Some("2".into()),
        statement: Some("3:statement-3:failed".into()),
        checked: None,
    });
    let mut plan = Walk::new(&aws, "media/photos", WalkMode::Plan);
    plan.ensure(&next).await.expect("plan");
    assert_eq!(plan.take_changes()[0].fields, ["apply migrations 3–18"]);
    let mut walk = Walk::new(&aws, "media/photos", WalkMode::Apply);
    let err = walk.ensure(&next).await.expect_err("failed again");
    assert!(err.message.contains("ERROR: still denied"), "{}", err.message);
    let migration_3 = &schema.migrations[2].sql;
    assert_eq!(
        sent.all()[1..3],
        [
            format!("run {migration_3}"),
            format!("tags {SCHEMA_STATEMENT_TAG}=3:statement-3b {SCHEMA_VERSION_TAG}=2"),
        ]
    );
}

#[tokio::test]
async fn a_statement_the_data_api_forgot_is_run_again_and_throttling_is_retryable() {
    let forgotten: Rule = mock!(aws_sdk_redshiftdata::Client::describe_statement)
        .sequence()
        .http_status(
            400,
            Some(r#"{"__type":"ResourceNotFoundException","message":"Query does not exist."}"#.to_owned()),
        )
        .build();
    let throttled: Rule = mock!(aws_sdk_redshiftdata::Client::execute_statement)
        .sequence()
        .http_status(
            400,
            Some(r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.to_owned()),
        )
        .repeatedly()
        .build();
    let mut aws = clients().await;
    aws.redshift_data = mocked_client!(aws_sdk_redshiftdata, RuleMode::MatchAny, [&forgotten, &throttled]);

    // Version 4 submitted a day ago: the Data API no longer knows it.
    let schema = warehouse_schema(SchemaRecord {
        version: Some("3".into()),
        statement: Some("4:statement-4".into()),
        checked: None,
    });
    let mut walk = Walk::new(&aws, "media/photos", WalkMode::Apply);
    let err = walk.ensure(&schema).await.expect_err("throttled");
    assert_eq!(err.kind, ErrorKind::Retryable, "{err:?}");
    assert!(err.message.contains("warehouse migration 4"), "{}", err.message);
    assert_eq!(throttled.num_calls(), 3, "the SDK retried before giving up");
}

#[tokio::test]
async fn a_check_redshift_fails_is_the_condition_naming_the_query_and_runs_again_next_time() {
    let sent = Sent::default();
    let error = "ERROR: S3 Query Exception (Fetch). Access denied";
    let failed: Rule = mock!(aws_sdk_redshiftdata::Client::describe_statement).then_output(move || {
        aws_sdk_redshiftdata::operation::describe_statement::DescribeStatementOutput::builder()
            .id("check-1")
            .status(StatusString::Failed)
            .error(error)
            .build()
            .unwrap()
    });
    let run = executed(&sent, "check-1");
    let tags = tagged(&sent);
    let mut aws = clients().await;
    aws.redshift_data = mocked_client!(aws_sdk_redshiftdata, RuleMode::MatchAny, [&failed, &run]);
    aws.redshift = mocked_client!(aws_sdk_redshift, RuleMode::MatchAny, [&tags]);

    let ctx = context();
    let names = analytics::warehouse_names(&ctx);
    let check = |record: Option<&str>| WarehouseCheck {
        cluster_id: analytics::cluster_id(&ctx),
        cluster_arn: "arn:aws:redshift:eu-west-1:123456789012:cluster:warehouse".into(),
        database: "images".into(),
        user: "imagepipeline_admin".into(),
        version: 9,
        sql: warehouse::check(&names),
        record: record.map(str::to_owned),
    };
    let mut walk = Walk::new(&aws, "media/photos", WalkMode::Apply);
    let err = walk.ensure(&check(None)).await.expect_err("the check failed");
    assert_eq!(
        (err.kind, err.reason.as_str()),
        (ErrorKind::Retryable, "WarehouseNotServing")
    );
    for part in [error, "check-1", "SELECT COUNT(*) FROM \"images\".images"] {
        assert!(err.message.contains(part), "{part} in {}", err.message);
    }
    assert_eq!(
        sent.all(),
        [
            format!("run {}", warehouse::check(&names)),
            format!("tags {SCHEMA_CHECKED_TAG}=9:check-1"),
            format!("tags {SCHEMA_CHECKED_TAG}=9:check-1:failed"),
        ]
    );
    // Reported: the next attempt plans to run it again.
    let mut plan = Walk::new(&aws, "media/photos", WalkMode::Plan);
    plan.ensure(&check(Some("9:check-1:failed"))).await.expect("plan");
    let changes = plan.take_changes();
    assert_eq!(changes.len(), 1);
    assert!(
        changes[0].fields[0].starts_with("run `SELECT COUNT(*)"),
        "{changes:?}"
    );
}
