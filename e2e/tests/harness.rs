//! The test harness itself: the emulator and the broker are real, isolated
//! between tests, and never outlive the tests.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use imagepipeline_e2e::{AwsEmulator, KafkaBroker, REGION, Tool};
use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    consumer::{CommitMode, Consumer, StreamConsumer},
    producer::{FutureProducer, FutureRecord},
};

async fn bucket_names(aws: &AwsEmulator) -> Vec<String> {
    let listed = aws.s3().await.list_buckets().send().await.expect("ListBuckets");
    listed
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_owned))
        .collect()
}

async fn create_bucket(aws: &AwsEmulator, name: &str) {
    aws.s3()
        .await
        .create_bucket()
        .bucket(name)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(REGION))
                .build(),
        )
        .send()
        .await
        .expect("CreateBucket");
}

#[tokio::test]
async fn aws_emulator_serves_s3_and_reset_forgets_everything() {
    let aws = AwsEmulator::start().await.expect("AWS emulator");
    create_bucket(&aws, "harness-check").await;
    aws.s3()
        .await
        .put_object()
        .bucket("harness-check")
        .key("images/a.png")
        .body(b"not really a png".to_vec().into())
        .send()
        .await
        .expect("PutObject");
    assert_eq!(bucket_names(&aws).await, ["harness-check"]);

    aws.reset().await.expect("reset");
    assert!(
        bucket_names(&aws).await.is_empty(),
        "reset leaves no bucket behind"
    );
}

#[tokio::test]
async fn a_new_lease_never_sees_an_earlier_tests_resources() {
    let first = AwsEmulator::start().await.expect("AWS emulator");
    let endpoint = first.endpoint_url().to_owned();
    create_bucket(&first, "left-behind").await;
    drop(first);

    // The pool hands back a server, possibly the same one; it must be empty.
    let second = AwsEmulator::start().await.expect("AWS emulator");
    assert!(
        !bucket_names(&second).await.contains(&"left-behind".to_owned()),
        "lease of {} after {endpoint} still holds the earlier test's bucket",
        second.endpoint_url()
    );
}

#[tokio::test]
async fn kafka_broker_delivers_to_a_consumer_group_and_keeps_its_commit() {
    let kafka = KafkaBroker::start().await.expect("Kafka broker");
    kafka.create_topic("images", 3).await.expect("create topic");
    let bootstrap = kafka.bootstrap_servers();

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("message.timeout.ms", "15000")
        .create()
        .expect("producer");
    let delivery = producer
        .send(
            FutureRecord::to("images").key("k").payload(&b"image bytes"[..]),
            Duration::from_secs(15),
        )
        .await
        .expect("produce");
    let (partition, offset) = (delivery.partition, delivery.offset);

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "harness")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some("images"), Duration::from_secs(10))
        .expect("metadata");
    assert_eq!(metadata.topics()[0].partitions().len(), 3);

    consumer.subscribe(&["images"]).expect("subscribe");
    let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
        .await
        .expect("a record within 30 s")
        .expect("consume");
    assert_eq!(message.payload(), Some(&b"image bytes"[..]));
    assert_eq!((message.partition(), message.offset()), (partition, offset));
    consumer
        .commit_message(&message, CommitMode::Sync)
        .expect("commit");

    let mut wanted = TopicPartitionList::new();
    wanted.add_partition("images", partition);
    let committed = consumer
        .committed_offsets(wanted, Duration::from_secs(10))
        .expect("committed offsets");
    let committed = committed
        .find_partition("images", partition)
        .expect("partition")
        .offset();
    assert_eq!(committed, Offset::Offset(offset + 1));
}

#[tokio::test]
async fn kafka_broker_stops_when_dropped() {
    let kafka = KafkaBroker::start().await.expect("Kafka broker");
    let address = kafka.bootstrap_servers();
    drop(kafka);
    assert!(
        tokio::net::TcpStream::connect(&address).await.is_err(),
        "nothing listens on {address} once the broker is dropped"
    );
}

#[test]
fn a_missing_tool_fails_with_instructions_to_install_it() {
    let error = Tool::Tansu
        .path_with_override(Some("/nonexistent/tansu".into()))
        .expect_err("no tool there");
    let message = error.to_string();
    for expected in [
        "/nonexistent/tansu",
        "make tools",
        "scripts/tools.sh install tansu",
    ] {
        assert!(message.contains(expected), "{message:?} lacks {expected:?}");
    }
}

/// `make test` installs every tool first; a missing one fails here, by name,
/// rather than a test skipping quietly.
#[test]
fn every_pinned_tool_is_installed() {
    for tool in [
        Tool::MotoServer,
        Tool::MotoCertificate,
        Tool::Tansu,
        Tool::Helm,
        Tool::KubernetesValidate,
        Tool::Schemathesis,
        Tool::Promtool,
    ] {
        tool.path().unwrap_or_else(|e| panic!("{e}"));
    }
}

const CHILD_MARKER: &str = "IMAGEPIPELINE_HARNESS_CHILD";

/// Runs inside the child process of the next test: holds an emulator and a
/// broker, prints where they listen, and waits to be killed.
#[tokio::test]
#[ignore = "a child process of services_stop_when_the_test_process_is_killed"]
async fn hold_services_until_killed() {
    if std::env::var_os(CHILD_MARKER).is_none() {
        return;
    }
    let aws = AwsEmulator::start().await.expect("AWS emulator");
    let kafka = KafkaBroker::start().await.expect("Kafka broker");
    let port = aws.endpoint_url().rsplit(':').next().expect("port").to_owned();
    println!("LISTENING {port} {}", kafka.bootstrap_servers());
    tokio::time::sleep(Duration::from_secs(600)).await;
}

#[test]
fn services_stop_when_the_test_process_is_killed() {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "hold_services_until_killed",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_MARKER, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("child test process");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let line = stdout
        .lines()
        .map_while(Result::ok)
        .find(|line| line.starts_with("LISTENING "))
        .expect("the child reports its services");
    let mut fields = line.split_whitespace().skip(1);
    let moto = format!("127.0.0.1:{}", fields.next().expect("moto port"));
    let kafka = fields.next().expect("kafka address").to_owned();

    child.kill().expect("SIGKILL the child"); // no destructor runs
    child.wait().expect("reap the child");

    let deadline = Instant::now() + Duration::from_secs(15);
    for address in [moto, kafka] {
        while std::net::TcpStream::connect(&address).is_ok() {
            assert!(
                Instant::now() < deadline,
                "{address} still serves after its test process died"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
