//! `examples/full.yaml`, which sets every field, applied as a user would with
//! the `imagepipeline` binary: the AMI, certificate, cluster VPC, Kafka
//! archives and Secrets it names are made in the emulator (or, for the
//! archive's URL, a local HTTPS server) first and put in its place.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use archive_server::{ArchiveServer, Content, Generated};
use command::{imagepipeline_on, repo_path, text};
use imagepipeline_e2e::AwsEmulator;

// Shared with tests/kafka_distribution.rs, which also counts requests.
#[allow(dead_code)]
#[path = "support/archive_server.rs"]
mod archive_server;
#[path = "support/command.rs"]
mod command;

/// The placeholders of `examples/full.yaml`.
const EXAMPLE_AMI: &str = "ami-0123456789abcdef0";
const EXAMPLE_VPC: &str = "vpc-0a1b2c3d4e5f67890";
const EXAMPLE_CERTIFICATE: &str =
    "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789";
const EXAMPLE_KAFKA_URL: &str = "https://downloads.example.com/kafka/4.1.1/kafka_2.13-4.1.1.tgz";
const EXAMPLE_KAFKA_SHA512: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0\
                                    0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
/// The copy the air-gapped pipeline names.
const EXAMPLE_KAFKA_COPY: (&str, &str) = ("media-artifacts-eu-west-1", "kafka/kafka_2.13-4.1.1.tgz");
/// What the example's Kafka URL serves here: no internet in the tests.
const KAFKA_ARCHIVE: Generated = Generated {
    len: 6 * 1024 * 1024,
    seed: 20,
};

/// The Secrets the example names, as a user would add them to the file.
const SECRETS: &str = "---
apiVersion: v1
kind: Secret
metadata: { name: photos-upload-keys, namespace: media }
stringData:
  api-keys: |
    ci:0123456789abcdef0123456789abcdef
---
apiVersion: v1
kind: Secret
metadata: { name: photos-warehouse-admin, namespace: media }
stringData: { username: analyst_admin, password: Correct-Horse-Battery-9 }
";

/// What the example names, made in the emulator.
struct Made {
    ami: String,
    vpc: String,
    certificate: String,
    /// Serves the example's Kafka archive while the test runs.
    archives: ArchiveServer,
}

async fn make_what_the_example_names(emulator: &AwsEmulator) -> Made {
    let config = emulator.sdk_config().await;
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let ami = ec2
        .register_image()
        .name("imagepipeline-full-example")
        .root_device_name("/dev/xvda")
        .architecture(aws_sdk_ec2::types::ArchitectureValues::X8664)
        .virtualization_type("hvm")
        .send()
        .await
        .expect("RegisterImage")
        .image_id()
        .expect("an image id")
        .to_owned();
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.100.0.0/16")
        .send()
        .await
        .expect("CreateVpc")
        .vpc()
        .and_then(|v| v.vpc_id())
        .expect("a VPC id")
        .to_owned();
    let certificate = aws_sdk_acm::Client::new(&config)
        .request_certificate()
        .domain_name("images.example.com")
        .send()
        .await
        .expect("RequestCertificate")
        .certificate_arn()
        .expect("a certificate ARN")
        .to_owned();
    let archives = ArchiveServer::start(emulator.ca_file());
    archives.serve(
        "/kafka/4.1.1/kafka_2.13-4.1.1.tgz",
        Content::Generated(KAFKA_ARCHIVE),
    );
    let s3 = emulator.s3().await;
    let (bucket, key) = EXAMPLE_KAFKA_COPY;
    s3.create_bucket()
        .bucket(bucket)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint("eu-west-1".into())
                .build(),
        )
        .send()
        .await
        .expect("CreateBucket");
    for (key, body) in [
        (key.to_owned(), KAFKA_ARCHIVE.bytes()),
        (format!("{key}.sha512"), KAFKA_ARCHIVE.sha512().into_bytes()),
    ] {
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(body.into())
            .send()
            .await
            .expect("PutObject");
    }
    Made {
        ami,
        vpc,
        certificate,
        archives,
    }
}

/// The example with `made` in place of its placeholders, and the Secrets.
fn manifest(dir: &Path, made: &Made, certificate: &str) -> PathBuf {
    let example = std::fs::read_to_string(repo_path("examples/full.yaml")).expect("read examples/full.yaml");
    for placeholder in [
        EXAMPLE_AMI,
        EXAMPLE_VPC,
        EXAMPLE_CERTIFICATE,
        EXAMPLE_KAFKA_URL,
        EXAMPLE_KAFKA_SHA512,
    ] {
        assert!(
            example.contains(placeholder),
            "the example still names {placeholder}"
        );
    }
    let text = example
        .replace(EXAMPLE_AMI, &made.ami)
        .replace(EXAMPLE_VPC, &made.vpc)
        .replace(EXAMPLE_CERTIFICATE, certificate)
        .replace(
            EXAMPLE_KAFKA_URL,
            &made.archives.url("/kafka/4.1.1/kafka_2.13-4.1.1.tgz"),
        )
        .replace(EXAMPLE_KAFKA_SHA512, &KAFKA_ARCHIVE.sha512())
        + SECRETS;
    let path = dir.join("full.yaml");
    std::fs::write(&path, text).expect("write the manifest");
    path
}

#[tokio::test]
async fn the_full_example_applies_plans_clean_and_is_destroyed_under_both_policies() {
    let mut emulator = AwsEmulator::start().await.expect("moto server starts");
    emulator.play_brokers(None).await.expect("brokers' stand-ins");
    let made = make_what_the_example_names(&emulator).await;
    let dir = tempfile::tempdir().unwrap();
    let file = manifest(dir.path(), &made, &made.certificate);
    let file = file.to_str().unwrap();

    let started = Instant::now();
    let apply = imagepipeline_on(&emulator, &["apply", "-f", file, "-o", "json"]);
    let (stdout, stderr) = (text(&apply.stdout), text(&apply.stderr));
    assert!(apply.status.success(), "{stdout}{stderr}");
    println!(
        "apply of the three pipelines of the full example: {:?}",
        started.elapsed()
    );
    let statuses: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("one JSON status per pipeline");
    assert_eq!(statuses.len(), 3, "{stdout}");
    for status in &statuses {
        assert_eq!(status["phase"], "Ready", "{status:#}");
    }
    let photos = &statuses[0];
    assert_eq!(photos["endpoints"]["bucket"], "media-photos-eu-west-1");
    assert_eq!(photos["endpoints"]["table"], "media-photos");
    assert!(
        photos["endpoints"]["uploadUrl"]
            .as_str()
            .is_some_and(|url| url.starts_with("https://")),
        "the certificate makes the listener HTTPS: {photos:#}"
    );

    let plan = imagepipeline_on(&emulator, &["plan", "-f", file, "--detailed-exitcode"]);
    let plan_text = text(&plan.stdout);
    assert_eq!(plan.status.code(), Some(0), "{plan_text}{}", text(&plan.stderr));
    assert_eq!(
        plan_text
            .matches("Plan: 0 to create, 0 to update, 0 to delete.")
            .count(),
        3,
        "{plan_text}"
    );

    // photos is `deletionPolicy: Retain`, photos-shared-kafka and
    // photos-air-gapped `Delete`.
    let destroy = imagepipeline_on(&emulator, &["destroy", "-f", file, "--timeout", "5m"]);
    assert!(
        destroy.status.success(),
        "{}{}",
        text(&destroy.stdout),
        text(&destroy.stderr)
    );
    for deleted in ["media/photos-shared-kafka", "media/photos-air-gapped"] {
        assert_eq!(
            emulator.resources_owned_by(deleted).await.unwrap(),
            Vec::<String>::new(),
            "Delete leaves nothing of {deleted}"
        );
    }
    let retained = emulator.resources_owned_by("media/photos").await.unwrap();
    let kinds: Vec<&str> = retained.iter().filter_map(|r| r.split(' ').next()).collect();
    assert_eq!(
        kinds,
        ["bucket", "snapshot", "table"],
        "Retain keeps the data (the warehouse as a final snapshot) and nothing that runs or stands \
         on the deleted network: {retained:?}"
    );

    // The same pipeline with Delete takes the retained data back and removes it.
    let with_delete = std::fs::read_to_string(file)
        .unwrap()
        .replace("deletionPolicy: Retain", "deletionPolicy: Delete");
    std::fs::write(file, with_delete).unwrap();
    let apply = imagepipeline_on(&emulator, &["apply", "-f", file]);
    assert!(apply.status.success(), "{}", text(&apply.stderr));
    let destroy = imagepipeline_on(&emulator, &["destroy", "-f", file, "--timeout", "5m"]);
    assert!(destroy.status.success(), "{}", text(&destroy.stderr));
    let left: Vec<String> = emulator
        .resources_owned_by("media/photos")
        .await
        .unwrap()
        .into_iter()
        .filter(|r| !r.contains("snapshot"))
        .collect();
    assert_eq!(
        left,
        Vec::<String>::new(),
        "Delete leaves nothing but earlier snapshots"
    );
}

#[tokio::test]
async fn a_certificate_that_does_not_exist_stops_apply_within_a_minute_naming_the_field() {
    let mut emulator = AwsEmulator::start().await.expect("moto server starts");
    emulator.play_brokers(None).await.expect("brokers' stand-ins");
    let made = make_what_the_example_names(&emulator).await;
    let dir = tempfile::tempdir().unwrap();
    // The example's own placeholder: a well-formed ARN of no certificate.
    let file = manifest(dir.path(), &made, EXAMPLE_CERTIFICATE);

    let started = Instant::now();
    let apply = imagepipeline_on(&emulator, &["apply", "-f", file.to_str().unwrap()]);
    let elapsed = started.elapsed();
    let stderr = text(&apply.stderr);
    assert_eq!(apply.status.code(), Some(1), "{stderr}");
    assert!(
        elapsed < Duration::from_secs(60),
        "stopped after {elapsed:?}: {stderr}"
    );
    let error = stderr
        .lines()
        .find(|line| line.starts_with("error: "))
        .unwrap_or_default();
    assert!(
        error.contains("spec.uploadApi.certificateArn")
            && error.contains(EXAMPLE_CERTIFICATE)
            && error.contains("CertificateNotFound"),
        "{stderr}"
    );
    assert!(!stderr.contains("retrying"), "{stderr}");
}

/// Each value the spec names that AWS does not have stops `apply` at once
/// with the field, the value and the condition reason. (`c8a.large` is
/// offered in eu-west-1a and eu-west-1b but not eu-west-1c: the emulator holds
/// AWS's published offerings.)
#[tokio::test]
async fn each_missing_reference_stops_apply_at_once_naming_its_field() {
    let mut emulator = AwsEmulator::start().await.expect("moto server starts");
    emulator.play_brokers(None).await.expect("brokers' stand-ins");
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "uploadApi: { instanceType: c8a.large }\n  kafka: { distribution: { s3Uri: \"s3://imagepipeline-test-kafka/kafka_2.13-4.1.1.tgz\" } }",
            "spec.uploadApi.instanceType c8a.large",
            "InstanceTypeNotOffered",
            "not offered in eu-west-1c",
        ),
        (
            "kafka: { instanceType: c8a.large, distribution: { s3Uri: \"s3://imagepipeline-test-kafka/kafka_2.13-4.1.1.tgz\" } }",
            "spec.kafka.instanceType c8a.large",
            "InstanceTypeNotOffered",
            "not offered in eu-west-1c",
        ),
        (
            "uploadApi: { amiId: ami-0000000000000dead }\n  kafka: { distribution: { s3Uri: \"s3://imagepipeline-test-kafka/kafka_2.13-4.1.1.tgz\" } }",
            "spec.uploadApi.amiId ami-0000000000000dead",
            "ImageNotFound",
            "latest Amazon Linux 2023",
        ),
        (
            "kafka: { amiId: ami-0000000000000dead, distribution: { s3Uri: \"s3://imagepipeline-test-kafka/kafka_2.13-4.1.1.tgz\" } }",
            "spec.kafka.amiId ami-0000000000000dead",
            "ImageNotFound",
            "describe-images",
        ),
    ];
    for (spec, names, reason, advice) in cases {
        let file = dir.path().join("pipeline.yaml");
        std::fs::write(
            &file,
            format!(
                "apiVersion: imagepipeline.io/v1alpha1\nkind: ImagePipeline\nmetadata: {{ name: missing }}\n\
                 spec:\n  region: eu-west-1\n  analytics: {{ enabled: false }}\n  \
                 network: {{ availabilityZones: [eu-west-1a, eu-west-1b, eu-west-1c] }}\n  {spec}\n"
            ),
        )
        .unwrap();
        let started = Instant::now();
        let apply = imagepipeline_on(&emulator, &["apply", "-f", file.to_str().unwrap()]);
        let stderr = text(&apply.stderr);
        assert_eq!(apply.status.code(), Some(1), "{spec}: {stderr}");
        assert!(started.elapsed() < Duration::from_secs(60), "{spec}: {stderr}");
        let error = stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_default();
        assert!(
            error.contains(names) && error.contains(reason) && error.contains(advice),
            "{spec}: {stderr}"
        );
        let destroy = imagepipeline_on(&emulator, &["destroy", "-f", file.to_str().unwrap()]);
        assert!(destroy.status.success(), "{}", text(&destroy.stderr));
    }

    // The cluster VPC is looked up before anything is made.
    let file = dir.path().join("pipeline.yaml");
    std::fs::write(
        &file,
        "apiVersion: imagepipeline.io/v1alpha1\nkind: ImagePipeline\nmetadata: { name: peered }\n\
         spec:\n  region: eu-west-1\n  \
         network: { availabilityZones: [eu-west-1a, eu-west-1b], clusterVpcId: vpc-0000000000000dead }\n  \
         kafka: { distribution: { s3Uri: \"s3://imagepipeline-test-kafka/kafka_2.13-4.1.1.tgz\" } }\n",
    )
    .unwrap();
    let apply = imagepipeline_on(&emulator, &["apply", "-f", file.to_str().unwrap()]);
    let stderr = text(&apply.stderr);
    assert_eq!(apply.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("spec.network.clusterVpcId vpc-0000000000000dead does not exist")
            && stderr.contains("ClusterVpcNotFound"),
        "{stderr}"
    );
    let made = emulator.resources_owned_by("default/peered").await.unwrap();
    assert!(
        !made
            .iter()
            .any(|r| r.starts_with("vpc ") || r.starts_with("subnet ")),
        "no network is made: {made:?}"
    );
    let destroy = imagepipeline_on(&emulator, &["destroy", "-f", file.to_str().unwrap()]);
    assert!(destroy.status.success(), "{}", text(&destroy.stderr));
    assert_eq!(
        emulator.resources_owned_by("default/peered").await.unwrap(),
        Vec::<String>::new(),
        "destroy removes what the other components made"
    );
}
