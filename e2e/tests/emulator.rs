//! The AWS emulator refuses what AWS refuses: deleting a subnet, a security
//! group, a VPC or a Redshift subnet group that something still stands on.
//! Without that a teardown in the wrong order passes every test and never
//! finishes on AWS (scripts/moto/server.py has the fixes). Likewise an S3
//! POST upload its policy does not allow (scripts/moto/post_policy.py):
//! without that a direct upload's limits would go untested. And an object
//! whose bytes do not have the checksum it was sent with
//! (scripts/moto/checksums.py): the services send the SHA-256 of what they
//! checked, and S3 refusing anything else is what makes that worth sending.
//! And Firehose streams up to AWS's quota, not moto's old 50: one operator
//! runs a stream per pipeline. And lists that go on past their first page,
//! as AWS's do: the operator reads the region's launch templates at once.
//! And, once asked, EC2's throttling with a token bucket per action
//! (scripts/moto/ec2_limits.py): the operator's scale test is held to it.

use std::fmt::Debug;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_redshift::types::Tag;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, ChecksumMode, CompletedMultipartUpload, CompletedPart,
    CreateBucketConfiguration,
};
use aws_smithy_types::date_time::{DateTime, Format};
use imagepipeline_e2e::{AwsEmulator, REGION, form_data};
use sha2::{Digest, Sha256};

/// A VPC with one subnet and one security group, as the pipeline's Kafka VPC
/// holds the warehouse.
struct Network {
    ec2: aws_sdk_ec2::Client,
    vpc: String,
    subnet: String,
    group: String,
}

impl Network {
    async fn new(emulator: &AwsEmulator) -> Self {
        let ec2 = aws_sdk_ec2::Client::new(&emulator.sdk_config().await);
        let vpc = ec2
            .create_vpc()
            .cidr_block("10.41.0.0/16")
            .send()
            .await
            .expect("CreateVpc");
        let vpc = vpc.vpc().and_then(|v| v.vpc_id()).expect("a VPC id").to_owned();
        let subnet = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block("10.41.0.0/24")
            .availability_zone("eu-west-1a")
            .send()
            .await
            .expect("CreateSubnet");
        let subnet = subnet
            .subnet()
            .and_then(|s| s.subnet_id())
            .expect("a subnet id")
            .to_owned();
        let group = ec2
            .create_security_group()
            .group_name("warehouse")
            .description("warehouse")
            .vpc_id(&vpc)
            .send()
            .await
            .expect("CreateSecurityGroup");
        let group = group.group_id().expect("a group id").to_owned();
        Self {
            ec2,
            vpc,
            subnet,
            group,
        }
    }

    /// The error codes of deleting the subnet, the group and the VPC, in that
    /// order; `None` where the deletion succeeded.
    async fn delete_all(&self) -> [Option<String>; 3] {
        [
            outcome(self.ec2.delete_subnet().subnet_id(&self.subnet).send().await),
            outcome(
                self.ec2
                    .delete_security_group()
                    .group_id(&self.group)
                    .send()
                    .await,
            ),
            outcome(self.ec2.delete_vpc().vpc_id(&self.vpc).send().await),
        ]
    }
}

/// The error code of a call, printing its message; `None` when it succeeded.
fn outcome<T: Debug, E: ProvideErrorMetadata + Debug>(result: Result<T, E>) -> Option<String> {
    let err = result.err()?;
    println!("{}: {}", err.code().unwrap_or("?"), err.message().unwrap_or("?"));
    Some(err.code().unwrap_or("(no code)").to_owned())
}

fn refused(code: &str) -> Option<String> {
    Some(code.to_owned())
}

#[tokio::test]
async fn a_redshift_cluster_holds_its_subnets_security_group_and_subnet_group_until_it_is_deleted() {
    let emulator = AwsEmulator::start().await.expect("moto server starts");
    let network = Network::new(&emulator).await;
    let redshift = aws_sdk_redshift::Client::new(&emulator.sdk_config().await);
    redshift
        .create_cluster_subnet_group()
        .cluster_subnet_group_name("warehouse")
        .description("warehouse")
        .subnet_ids(&network.subnet)
        .send()
        .await
        .expect("CreateClusterSubnetGroup");
    redshift
        .create_cluster()
        .cluster_identifier("warehouse")
        .node_type("ra3.xlplus")
        .cluster_type("single-node")
        .master_username("admin")
        .master_user_password("Passw0rd-of-the-test")
        .cluster_subnet_group_name("warehouse")
        .vpc_security_group_ids(&network.group)
        .tags(Tag::builder().key("team").value("media").build())
        .send()
        .await
        .expect("CreateCluster");

    let dependency = refused("DependencyViolation");
    // The VPC is refused for the group left in it, as on AWS.
    assert_eq!(
        network.delete_all().await,
        [dependency.clone(), dependency.clone(), dependency]
    );
    let subnet_group = redshift
        .delete_cluster_subnet_group()
        .cluster_subnet_group_name("warehouse")
        .send()
        .await;
    assert_eq!(
        outcome(subnet_group),
        refused("InvalidClusterSubnetGroupStateFault")
    );

    redshift
        .delete_cluster()
        .cluster_identifier("warehouse")
        .skip_final_cluster_snapshot(false)
        .final_cluster_snapshot_identifier("warehouse-final")
        .send()
        .await
        .expect("DeleteCluster");
    let snapshots = redshift
        .describe_cluster_snapshots()
        .snapshot_identifier("warehouse-final")
        .send()
        .await
        .expect("the final snapshot is kept");
    let snapshot = &snapshots.snapshots()[0];
    assert_eq!(
        (
            snapshot.snapshot_type(),
            snapshot.manual_snapshot_retention_period()
        ),
        (Some("manual"), Some(-1)),
        "kept until deleted"
    );
    assert_eq!(
        snapshot.tags(),
        [Tag::builder().key("team").value("media").build()],
        "the cluster's tags"
    );

    let subnet_group = redshift
        .delete_cluster_subnet_group()
        .cluster_subnet_group_name("warehouse")
        .send()
        .await;
    assert_eq!(outcome(subnet_group), None);
    assert_eq!(network.delete_all().await, [None, None, None]);
}

#[tokio::test]
async fn a_network_interface_holds_its_subnet_and_security_group_until_it_is_deleted() {
    let emulator = AwsEmulator::start().await.expect("moto server starts");
    let network = Network::new(&emulator).await;
    let interface = network
        .ec2
        .create_network_interface()
        .subnet_id(&network.subnet)
        .groups(&network.group)
        .send()
        .await
        .expect("CreateNetworkInterface");
    let interface = interface
        .network_interface()
        .and_then(|i| i.network_interface_id())
        .expect("an interface id")
        .to_owned();

    let dependency = refused("DependencyViolation");
    assert_eq!(
        network.delete_all().await,
        [dependency.clone(), dependency.clone(), dependency]
    );

    network
        .ec2
        .delete_network_interface()
        .network_interface_id(&interface)
        .send()
        .await
        .expect("DeleteNetworkInterface");
    assert_eq!(network.delete_all().await, [None, None, None]);
}

/// The CPU target of the policy named `cpu` of `group`, if there is one.
async fn cpu_target(autoscaling: &aws_sdk_autoscaling::Client, group: &str) -> Option<f64> {
    autoscaling
        .describe_policies()
        .auto_scaling_group_name(group)
        .policy_names("cpu")
        .send()
        .await
        .expect("DescribePolicies")
        .scaling_policies()
        .iter()
        .find_map(|p| p.target_tracking_configuration().and_then(|c| c.target_value()))
}

#[tokio::test]
async fn scaling_policies_are_named_within_their_group_and_go_with_it() {
    use aws_sdk_autoscaling::types::{
        LaunchTemplateSpecification, MetricType, PredefinedMetricSpecification, TargetTrackingConfiguration,
    };
    let emulator = AwsEmulator::start().await.expect("moto server starts");
    let config = emulator.sdk_config().await;
    let network = Network::new(&emulator).await;
    network
        .ec2
        .create_launch_template()
        .launch_template_name("upload")
        .launch_template_data(
            aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                .image_id("ami-12c6146b")
                .instance_type(aws_sdk_ec2::types::InstanceType::T3Small)
                .build(),
        )
        .send()
        .await
        .expect("CreateLaunchTemplate");
    let autoscaling = aws_sdk_autoscaling::Client::new(&config);
    for (group, target) in [("first", 50.0), ("second", 60.0)] {
        autoscaling
            .create_auto_scaling_group()
            .auto_scaling_group_name(group)
            .launch_template(
                LaunchTemplateSpecification::builder()
                    .launch_template_name("upload")
                    .build(),
            )
            .min_size(0)
            .max_size(1)
            .desired_capacity(0)
            .vpc_zone_identifier(&network.subnet)
            .send()
            .await
            .expect("CreateAutoScalingGroup");
        autoscaling
            .put_scaling_policy()
            .auto_scaling_group_name(group)
            .policy_name("cpu")
            .policy_type("TargetTrackingScaling")
            .target_tracking_configuration(
                TargetTrackingConfiguration::builder()
                    .predefined_metric_specification(
                        PredefinedMetricSpecification::builder()
                            .predefined_metric_type(MetricType::AsgAverageCpuUtilization)
                            .build(),
                    )
                    .target_value(target)
                    .build(),
            )
            .send()
            .await
            .expect("PutScalingPolicy");
    }
    assert_eq!(
        cpu_target(&autoscaling, "first").await,
        Some(50.0),
        "each group keeps its own"
    );
    assert_eq!(cpu_target(&autoscaling, "second").await, Some(60.0));

    autoscaling
        .delete_auto_scaling_group()
        .auto_scaling_group_name("first")
        .force_delete(true)
        .send()
        .await
        .expect("DeleteAutoScalingGroup");
    assert_eq!(
        cpu_target(&autoscaling, "first").await,
        None,
        "gone with its group"
    );
    assert_eq!(cpu_target(&autoscaling, "second").await, Some(60.0));
}

/// The bucket and the one key a presigned POST of the tests allows.
const POST_BUCKET: &str = "direct-uploads";
const POST_KEY: &str = "staging/x";

/// A presigned POST's form fields, as a service hands them to a client
/// (AWS's sigv4-post-example): a policy allowing `POST_KEY` with 1 to `max`
/// bytes until `expiration`, signed at `signed` with the emulator's
/// credentials.
fn presigned_post(signed: SystemTime, expiration: SystemTime, max: u64) -> Vec<(&'static str, String)> {
    let iso = |time: SystemTime| {
        DateTime::from(time)
            .fmt(Format::DateTime)
            .expect("a formattable time")
    };
    let amz_date = iso(signed).replace(['-', ':'], "");
    let credential = format!("testing/{}/{REGION}/s3/aws4_request", &amz_date[..8]);
    let policy = aws_smithy_types::base64::encode(
        serde_json::json!({
            "expiration": iso(expiration),
            "conditions": [
                {"bucket": POST_BUCKET},
                ["eq", "$key", POST_KEY],
                ["content-length-range", 1, max],
                {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
                {"x-amz-credential": credential},
                {"x-amz-date": amz_date},
            ],
        })
        .to_string(),
    );
    let signing_key = aws_sigv4::sign::v4::generate_signing_key("testing", signed, REGION, "s3");
    let signature = aws_sigv4::sign::v4::calculate_signature(signing_key, policy.as_bytes());
    vec![
        ("key", POST_KEY.to_owned()),
        ("x-amz-algorithm", "AWS4-HMAC-SHA256".to_owned()),
        ("x-amz-credential", credential),
        ("x-amz-date", amz_date),
        ("policy", policy),
        ("x-amz-signature", signature),
    ]
}

/// `fields` with the value of `name` replaced, or added when absent.
fn with(
    mut fields: Vec<(&'static str, String)>,
    name: &'static str,
    value: &str,
) -> Vec<(&'static str, String)> {
    match fields.iter_mut().find(|(field, _)| *field == name) {
        Some((_, old)) => *old = value.to_owned(),
        None => fields.push((name, value.to_owned())),
    }
    fields
}

/// The value of `name` in `fields`.
fn field<'a>(fields: &'a [(&'static str, String)], name: &str) -> &'a str {
    &fields
        .iter()
        .find(|(field, _)| *field == name)
        .expect("the field")
        .1
}

/// What S3 answers a POST upload: the status, and the error's code and
/// message when it refuses.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    code: String,
    message: String,
}

/// Posts `fields`, then `file` last, to `POST_BUCKET` as a browser does
/// (multipart/form-data, path style), trusting the emulator's CA only.
async fn post_upload(emulator: &AwsEmulator, fields: &[(&'static str, String)], file: &[u8]) -> Answer {
    let (content_type, body) = form_data(fields, file);
    let response = emulator
        .https_client()
        .post(format!("{}/{POST_BUCKET}", emulator.endpoint_url()))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("the emulator answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("an answer's body");
    let element = |name: &str| {
        text.split_once(&format!("<{name}>"))
            .and_then(|(_, rest)| rest.split_once(&format!("</{name}>")))
            .map(|(value, _)| value.to_owned())
            .unwrap_or_default()
    };
    Answer {
        status,
        code: element("Code"),
        message: element("Message"),
    }
}

/// Whether an object is stored under `key` (HeadObject).
async fn stored(s3: &aws_sdk_s3::Client, key: &str) -> bool {
    stored_in(s3, POST_BUCKET, key).await
}

async fn stored_in(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> bool {
    match s3.head_object().bucket(bucket).key(key).send().await {
        Ok(_) => true,
        Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => false,
        Err(err) => panic!("HeadObject {key}: {err:?}"),
    }
}

#[tokio::test]
async fn a_post_upload_is_stored_only_as_its_signed_policy_allows() {
    let emulator = AwsEmulator::start().await.expect("moto server starts");
    let s3 = emulator.s3().await;
    s3.create_bucket()
        .bucket(POST_BUCKET)
        .create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(REGION))
                .build(),
        )
        .send()
        .await
        .expect("CreateBucket");
    // Whole seconds, as the signed dates carry them.
    let now = UNIX_EPOCH
        + Duration::from_secs(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("after 1970")
                .as_secs(),
        );
    let in_an_hour = now + Duration::from_secs(3600);
    let valid = presigned_post(now, in_an_hour, 1000);
    let refused = |status: u16, code: &str, message: &str| Answer {
        status,
        code: code.to_owned(),
        message: message.to_owned(),
    };
    let too_large = "Your proposed upload exceeds the maximum allowed size";
    let too_small = "Your proposed upload is smaller than the minimum allowed size";
    let mismatch = "The request signature we calculated does not match the signature you provided. \
                    Check your key and signing method.";
    // The policy raised to 5000 bytes after signing, sent with its old signature.
    let raised = presigned_post(now, in_an_hour, 5000);
    let forged = with(valid.clone(), "policy", field(&raised, "policy"));
    let cases = [
        (
            "a file over the maximum",
            valid.clone(),
            vec![0; 1001],
            POST_KEY,
            refused(400, "EntityTooLarge", too_large),
        ),
        (
            "an empty file",
            valid.clone(),
            vec![],
            POST_KEY,
            refused(400, "EntityTooSmall", too_small),
        ),
        (
            "another key",
            with(valid.clone(), "key", "staging/y"),
            vec![1; 10],
            "staging/y",
            refused(
                403,
                "AccessDenied",
                r#"Invalid according to Policy: Policy Condition failed: ["eq", "$key", "staging/x"]"#,
            ),
        ),
        (
            "an expired policy",
            presigned_post(
                now - Duration::from_secs(120),
                now - Duration::from_secs(60),
                1000,
            ),
            vec![1; 10],
            POST_KEY,
            refused(
                403,
                "AccessDenied",
                "Invalid according to Policy: Policy expired.",
            ),
        ),
        (
            "a policy changed after signing",
            forged,
            vec![1; 2000],
            POST_KEY,
            refused(403, "SignatureDoesNotMatch", mismatch),
        ),
        (
            "a field the policy does not name",
            with(valid.clone(), "x-amz-meta-owner", "someone"),
            vec![1; 10],
            POST_KEY,
            refused(
                403,
                "AccessDenied",
                "Invalid according to Policy: Extra input fields: x-amz-meta-owner",
            ),
        ),
    ];
    for (case, fields, file, key, expected) in cases {
        assert_eq!(post_upload(&emulator, &fields, &file).await, expected, "{case}");
        assert!(!stored(&s3, key).await, "{case}: nothing is stored");
    }

    let file = b"an image's bytes".to_vec();
    let answer = post_upload(&emulator, &valid, &file).await;
    assert_eq!(answer.status, 204, "{answer:?}");
    let object = s3
        .get_object()
        .bucket(POST_BUCKET)
        .key(POST_KEY)
        .send()
        .await
        .expect("the upload is stored");
    let body = object
        .body
        .collect()
        .await
        .expect("the object's bytes")
        .into_bytes();
    assert_eq!(body.as_ref(), file.as_slice());
}

/// S3's checksum header value of `bytes` for SHA-256.
fn sha256_checksum(bytes: &[u8]) -> String {
    aws_smithy_types::base64::encode(Sha256::digest(bytes))
}

#[tokio::test]
async fn an_object_is_stored_only_if_its_bytes_have_the_checksum_it_was_sent_with() {
    const BUCKET: &str = "checksums";
    let emulator = AwsEmulator::start().await.expect("moto server starts");
    let s3 = emulator.s3().await;
    s3.create_bucket()
        .bucket(BUCKET)
        .create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(REGION))
                .build(),
        )
        .send()
        .await
        .expect("CreateBucket");
    let checked = b"the bytes that were checked".to_vec();
    let put = |key: &'static str| {
        s3.put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(checked.clone()))
    };

    let other = put("other")
        .checksum_sha256(sha256_checksum(b"other bytes"))
        .send()
        .await;
    assert_eq!(outcome(other), refused("BadDigest"));
    let crc32 = put("crc32").checksum_crc32("AAAAAA==").send().await;
    assert_eq!(outcome(crc32), refused("BadDigest"), "CRC32 too");
    let malformed = put("malformed").checksum_sha256("not a digest").send().await;
    assert_eq!(outcome(malformed), refused("InvalidRequest"));
    for key in ["other", "crc32", "malformed"] {
        assert!(!stored_in(&s3, BUCKET, key).await, "{key}: nothing is stored");
    }

    let upload = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("parts")
        .send()
        .await
        .expect("CreateMultipartUpload");
    let upload_id = upload.upload_id().expect("an upload id");
    let part = s3
        .upload_part()
        .bucket(BUCKET)
        .key("parts")
        .upload_id(upload_id)
        .part_number(1)
        .checksum_sha256(sha256_checksum(b"other bytes"))
        .body(ByteStream::from(checked.clone()))
        .send()
        .await;
    assert_eq!(outcome(part), refused("BadDigest"), "a part too");
    // The ETag the refused part would have had, from the same bytes sent
    // as part 2 with their checksum. (moto's ListParts answer is not one the
    // SDK parses, so completing the upload is how to ask for part 1.)
    let accepted = s3
        .upload_part()
        .bucket(BUCKET)
        .key("parts")
        .upload_id(upload_id)
        .part_number(2)
        .checksum_sha256(sha256_checksum(&checked))
        .body(ByteStream::from(checked.clone()))
        .send()
        .await
        .expect("a part with its checksum is kept");
    let complete = s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("parts")
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .set_e_tag(accepted.e_tag().map(str::to_owned))
                        .build(),
                )
                .build(),
        )
        .send()
        .await;
    assert_eq!(
        outcome(complete),
        refused("InvalidPart"),
        "the refused part is not kept"
    );

    put("checked")
        .checksum_sha256(sha256_checksum(&checked))
        .send()
        .await
        .expect("bytes with their checksum are stored");
    let object = s3
        .get_object()
        .bucket(BUCKET)
        .key("checked")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("GetObject");
    assert_eq!(
        object.checksum_sha256(),
        Some(sha256_checksum(&checked).as_str()),
        "S3 keeps the checksum it checked"
    );
    let body = object
        .body
        .collect()
        .await
        .expect("the object's bytes")
        .into_bytes();
    assert_eq!(body.as_ref(), checked.as_slice());
}

/// Makes a Direct PUT stream into S3 named `name` in `firehose`'s region,
/// tagged as `owner`'s; the error code when refused.
async fn create_stream(firehose: &aws_sdk_firehose::Client, name: &str, owner: &str) -> Option<String> {
    use aws_sdk_firehose::types::{ExtendedS3DestinationConfiguration, Tag};
    let destination = ExtendedS3DestinationConfiguration::builder()
        .role_arn("arn:aws:iam::123456789012:role/firehose")
        .bucket_arn("arn:aws:s3:::imagepipeline-streams")
        .build()
        .expect("a destination");
    let owner = Tag::builder()
        .key(imagepipeline_e2e::OWNER_TAG)
        .value(owner)
        .build()
        .expect("a tag");
    outcome(
        firehose
            .create_delivery_stream()
            .delivery_stream_name(name)
            .extended_s3_destination_configuration(destination)
            .tags(owner)
            .send()
            .await,
    )
}

#[tokio::test]
async fn a_region_holds_as_many_firehose_streams_as_aws_allows_and_lists_them_ten_at_a_time() {
    let emulator = AwsEmulator::start().await.expect("emulator");
    let config = emulator.sdk_config().await;

    // eu-west-1 allows 5,000 streams: an operator's 60 pipelines fit (moto
    // alone refused the 51st).
    let firehose = aws_sdk_firehose::Client::new(&config);
    for n in 0..60 {
        assert_eq!(
            create_stream(&firehose, &format!("ipl-events-{n:02}"), "team/p").await,
            None
        );
    }
    let first = firehose.list_delivery_streams().send().await.expect("a page");
    assert_eq!(
        first.delivery_stream_names().len(),
        10,
        "AWS's page without a Limit"
    );
    assert!(first.has_more_delivery_streams());
    let owned = emulator.resources_owned_by("team/p").await.expect("inventory");
    assert_eq!(owned.len(), 60, "every page is read: {owned:?}");

    // A region the quota page does not name allows 100: the 101st is refused.
    let elsewhere = aws_sdk_firehose::Client::from_conf(
        aws_sdk_firehose::config::Builder::from(&config)
            .region(aws_sdk_firehose::config::Region::new("eu-central-2"))
            .build(),
    );
    for n in 0..100 {
        assert_eq!(
            create_stream(&elsewhere, &format!("ipl-events-{n:03}"), "team/q").await,
            None
        );
    }
    assert_eq!(
        create_stream(&elsewhere, "ipl-events-100", "team/q").await,
        refused("LimitExceededException")
    );
    // One that exists is still "in use", not over the quota.
    assert_eq!(
        create_stream(&elsewhere, "ipl-events-000", "team/q").await,
        refused("ResourceInUseException")
    );
}

#[tokio::test]
async fn a_regions_launch_templates_and_their_latest_versions_are_listed_page_by_page() {
    let emulator = AwsEmulator::start().await.expect("emulator");
    let ec2 = aws_sdk_ec2::Client::new(&emulator.sdk_config().await);
    for n in 0..40 {
        ec2.create_launch_template()
            .launch_template_name(format!("ipl-upload-{n:02}"))
            .launch_template_data(
                aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                    .instance_type(aws_sdk_ec2::types::InstanceType::T3Small)
                    .build(),
            )
            .send()
            .await
            .expect("a launch template");
    }
    let first = ec2.describe_launch_templates().send().await.expect("a page");
    assert!(
        first.launch_templates().len() < 40 && first.next_token().is_some(),
        "a first page with a token for the rest: {} templates, token {:?}",
        first.launch_templates().len(),
        first.next_token()
    );

    let mut names = std::collections::BTreeSet::new();
    let mut pages = ec2.describe_launch_templates().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.expect("a page");
        names.extend(
            page.launch_templates()
                .iter()
                .filter_map(|t| t.launch_template_name())
                .map(str::to_owned),
        );
    }
    assert_eq!(names.len(), 40, "every page read: {names:?}");

    let mut latest = 0;
    let mut pages = ec2
        .describe_launch_template_versions()
        .versions("$Latest")
        .max_results(7)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.expect("a page");
        assert!(page.launch_template_versions().len() <= 7);
        latest += page.launch_template_versions().len();
    }
    assert_eq!(latest, 40, "the latest version of every template");
}

/// EC2 with AWS's token bucket per action, once asked: a burst beyond an
/// action's bucket is refused with `RequestLimitExceeded`, other actions go
/// on, filtered describes draw from the larger bucket, and the next lease
/// starts without limits.
#[tokio::test]
async fn ec2_refuses_an_action_over_its_own_rate_once_asked_as_aws_does() {
    let emulator = AwsEmulator::start().await.expect("emulator");
    // No retries: each refusal is seen as AWS sends it.
    let config = emulator
        .sdk_config()
        .await
        .into_builder()
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let vpc = Network::new(&emulator).await.vpc;
    let endpoint = || {
        ec2.create_vpc_endpoint()
            .vpc_id(&vpc)
            .service_name(format!("com.amazonaws.{REGION}.s3"))
            .send()
    };
    for _ in 0..6 {
        endpoint().await.expect("without limits, any rate");
    }
    assert_eq!(emulator.ec2_requests_refused().await.unwrap().len(), 0);

    emulator.limit_ec2_requests_as_aws().await.expect("limits on");
    // CreateVpcEndpoint: a bucket of 4, refilled at 0.3 a second.
    for n in 0..4 {
        endpoint()
            .await
            .unwrap_or_else(|e| panic!("request {n} is inside the burst: {e:?}"));
    }
    let refused = endpoint().await.expect_err("the fifth is over the rate");
    assert_eq!(refused.code(), Some("RequestLimitExceeded"));
    assert_eq!(refused.raw_response().map(|r| r.status().as_u16()), Some(503));
    // Another action has its own bucket.
    ec2.create_tags()
        .resources(&vpc)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("team")
                .value("scale")
                .build(),
        )
        .send()
        .await
        .expect("CreateTags has a bucket of its own");
    // Unfiltered DescribeInstances: a bucket of 50 (refilled at 10 a
    // second while the 70 are answered); filtered ones draw from another.
    let mut answers = tokio::task::JoinSet::new();
    for _ in 0..70 {
        let ec2 = ec2.clone();
        answers.spawn(async move { ec2.describe_instances().send().await.is_ok() });
    }
    let unfiltered = answers.join_all().await.into_iter().filter(|ok| *ok).count();
    assert!(
        (50..65).contains(&unfiltered),
        "{unfiltered} of 70 unfiltered describes at once went through"
    );
    let filter = aws_sdk_ec2::types::Filter::builder()
        .name("vpc-id")
        .values(&vpc)
        .build();
    ec2.describe_instances()
        .filters(filter)
        .send()
        .await
        .expect("a filtered describe draws from the larger bucket");
    let counted = emulator.ec2_requests_refused().await.unwrap();
    assert_eq!(counted.get("CreateVpcEndpoint"), Some(&1));
    assert_eq!(counted.get("DescribeInstances"), Some(&(70 - unfiltered as u64)));
    drop(ec2);
    drop(emulator);

    let next = AwsEmulator::start().await.expect("the next lease");
    assert!(next.ec2_requests_refused().await.unwrap().is_empty());
    let ec2 = aws_sdk_ec2::Client::new(&next.sdk_config().await);
    for _ in 0..60 {
        ec2.describe_instances()
            .send()
            .await
            .expect("no limits after a reset");
    }
}
