//! Staging the Kafka distribution against the AWS emulator and a local
//! HTTPS server standing in for the Apache archive: staged once per version,
//! streamed part by part, refused whole on a wrong SHA-512, and a copy the
//! user placed in S3 used where it is.

use archive_server::{ArchiveServer, Content, Generated};
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use imagepipeline_e2e::AwsEmulator;
use imagepipeline_operator::api::v1alpha1::KafkaDistributionSpec;
use imagepipeline_operator::aws::{AwsClients, CallLog};
use imagepipeline_operator::engine::resource::{Walk, WalkMode};
use imagepipeline_operator::engine::{Action, ComponentError, ErrorKind};
use imagepipeline_operator::resources::kafka_distribution::{
    ArchiveClient, ArchiveObject, KafkaDistribution, PART_SIZE, StagedArchive,
};
use tokio::sync::RwLock;

#[path = "support/archive_server.rs"]
mod archive_server;

const PIPELINE_BUCKET: &str = "media-photos-eu-west-1";
const OWNER: &str = "media/photos";
const ARCHIVE: &str = "/dist/kafka/4.1.1/kafka_2.13-4.1.1.tgz";
const CHECKSUM: &str = "/dist/kafka/4.1.1/kafka_2.13-4.1.1.tgz.sha512";
const STAGED_KEY: &str = "artifacts/kafka/4.1.1/kafka_2.13-4.1.1.tgz";

/// The memory test measures the whole process: it runs alone, the others
/// side by side.
static MEASURED: RwLock<()> = RwLock::const_new(());

/// An emulator with the pipeline's bucket, the operator's clients for it,
/// and an archive server trusted through the emulator's CA.
struct Setup {
    emulator: AwsEmulator,
    aws: AwsClients,
    server: ArchiveServer,
    client: ArchiveClient,
}

impl Setup {
    async fn new() -> Self {
        let emulator = AwsEmulator::start().await.expect("moto server starts");
        let aws = AwsClients::from_sdk_config(&emulator.sdk_config().await, CallLog::new()).expect("clients");
        let server = ArchiveServer::start(emulator.ca_file());
        let ca = std::fs::read(emulator.ca_file()).expect("the emulator's CA");
        let client = ArchiveClient::trusting(&ca).expect("a client trusting the emulator's CA");
        let setup = Self {
            emulator,
            aws,
            server,
            client,
        };
        setup.create_bucket(PIPELINE_BUCKET).await;
        setup
    }

    async fn create_bucket(&self, name: &str) {
        self.emulator
            .s3()
            .await
            .create_bucket()
            .bucket(name)
            .create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::EuWest1)
                    .build(),
            )
            .send()
            .await
            .expect("CreateBucket");
    }

    fn distribution(&self, spec: KafkaDistributionSpec) -> KafkaDistribution {
        KafkaDistribution::from_spec(Some(&spec), PIPELINE_BUCKET)
            .expect("a valid spec")
            .downloading_with(self.client.clone())
    }

    /// One walk of `mode` over the distribution: what ensure returned and
    /// the changes it recorded.
    async fn walk(
        &self,
        distribution: &KafkaDistribution,
        mode: WalkMode,
    ) -> (
        Result<Option<ArchiveObject>, ComponentError>,
        Vec<(Action, Vec<String>)>,
    ) {
        let mut walk = Walk::new(&self.aws, OWNER, mode);
        let found = walk.ensure(distribution).await;
        let changes = walk
            .take_changes()
            .into_iter()
            .map(|c| (c.action, c.fields))
            .collect();
        (found, changes)
    }

    /// A teardown of the distribution: finding, then deleting what was found.
    async fn tear_down(&self, distribution: &KafkaDistribution) {
        let mut walk = Walk::new(&self.aws, OWNER, WalkMode::Find);
        walk.ensure(distribution).await.expect("find");
        walk.tear_down().await.expect("teardown");
    }

    /// The object's bytes and metadata, or `None` when there is none.
    async fn object(&self, bucket: &str, key: &str) -> Option<(Vec<u8>, Option<String>)> {
        let out = self
            .emulator
            .s3()
            .await
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .ok()?;
        let sha512 = out.metadata().and_then(|m| m.get("sha512")).cloned();
        let bytes = out.body.collect().await.expect("the object's body").into_bytes();
        Some((bytes.to_vec(), sha512))
    }

    async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) {
        self.emulator
            .s3()
            .await
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body.into())
            .send()
            .await
            .expect("PutObject");
    }
}

fn url_spec(url: String, sha512: Option<String>) -> KafkaDistributionSpec {
    KafkaDistributionSpec {
        url: Some(url),
        sha512,
        s3_uri: None,
    }
}

/// The `.sha512` file as Apache publishes it: uppercase groups of eight hex
/// digits, wrapped over several lines.
fn apache_checksum_file(file: &str, sha512: &str) -> String {
    let groups: Vec<String> = sha512
        .to_ascii_uppercase()
        .as_bytes()
        .chunks(8)
        .map(|g| String::from_utf8_lossy(g).into_owned())
        .collect();
    let lines: Vec<String> = groups.chunks(6).map(|line| line.join(" ")).collect();
    format!(
        "{file}: {}\n",
        lines.join(&format!("\n{}", " ".repeat(file.len() + 2)))
    )
}

fn terminal(result: Result<Option<ArchiveObject>, ComponentError>) -> ComponentError {
    let err = result.expect_err("an error");
    assert_eq!(err.kind, ErrorKind::Terminal, "{err:?}");
    err
}

#[tokio::test]
async fn an_archive_of_several_parts_is_staged_once_with_its_published_sha512_and_deleted_in_a_teardown() {
    let _shared = MEASURED.read().await;
    let setup = Setup::new().await;
    let archive = Generated {
        len: 2 * PART_SIZE + 123_457,
        seed: 1,
    };
    let sha512 = archive.sha512();
    setup.server.serve(ARCHIVE, Content::Generated(archive));
    setup.server.serve(
        CHECKSUM,
        Content::Text(apache_checksum_file("kafka_2.13-4.1.1.tgz", &sha512)),
    );
    let distribution = setup.distribution(url_spec(setup.server.url(ARCHIVE), None));

    let (planned, changes) = setup.walk(&distribution, WalkMode::Plan).await;
    assert_eq!(planned.unwrap(), None);
    assert_eq!(
        changes,
        [(
            Action::Create,
            vec![
                format!("from {}", setup.server.url(ARCHIVE)),
                format!("SHA-512 from {}", setup.server.url(CHECKSUM)),
            ]
        )]
    );
    assert_eq!(setup.server.requests(ARCHIVE), 0, "a plan downloads nothing");

    let (staged, _) = setup.walk(&distribution, WalkMode::Apply).await;
    let staged = staged.expect("staged").expect("an archive");
    assert_eq!(
        distribution.archive(&staged),
        StagedArchive {
            bucket: PIPELINE_BUCKET.to_owned(),
            key: STAGED_KEY.to_owned(),
            sha512: sha512.clone(),
            version: "4.1.1".to_owned(),
        }
    );
    let (bytes, recorded) = setup
        .object(PIPELINE_BUCKET, STAGED_KEY)
        .await
        .expect("the staged object");
    assert!(bytes == archive.bytes(), "the staged bytes are the archive's");
    assert_eq!(recorded, Some(sha512.clone()));

    // Once per version: found with its recorded SHA-512, nothing fetched again.
    let (again, changes) = setup.walk(&distribution, WalkMode::Apply).await;
    assert_eq!(again.unwrap(), Some(staged));
    assert!(changes.is_empty(), "{changes:?}");
    assert_eq!(
        (setup.server.requests(ARCHIVE), setup.server.requests(CHECKSUM)),
        (1, 1)
    );

    setup.tear_down(&distribution).await;
    assert_eq!(setup.object(PIPELINE_BUCKET, STAGED_KEY).await, None);
}

#[tokio::test]
async fn a_sha512_that_differs_refuses_the_archive_and_leaves_nothing_in_the_bucket() {
    let _shared = MEASURED.read().await;
    let setup = Setup::new().await;
    // More than a part, so that parts are uploaded before the end shows the hash.
    let archive = Generated {
        len: PART_SIZE + 1000,
        seed: 2,
    };
    setup.server.serve(ARCHIVE, Content::Generated(archive));
    let other = Generated { len: 10, seed: 3 }.sha512();
    let expected = "0a".repeat(64);
    let url = setup.server.url(ARCHIVE);
    let s3 = setup.emulator.s3().await;

    let explicit = setup.distribution(url_spec(url.clone(), Some(expected.to_ascii_uppercase())));
    setup.server.serve(
        CHECKSUM,
        Content::Text(format!("{other}  kafka_2.13-4.1.1.tgz\n")),
    );
    let published = setup.distribution(url_spec(url.clone(), None));
    for (distribution, wrong, from) in [
        (explicit, &expected, "spec.kafka.distribution.sha512".to_owned()),
        (published, &other, setup.server.url(CHECKSUM)),
    ] {
        let err = terminal(setup.walk(&distribution, WalkMode::Apply).await.0);
        assert_eq!(err.reason, "KafkaDistributionChecksumMismatch");
        let actual = archive.sha512();
        let named = [
            url.as_str(),
            actual.as_str(),
            wrong.as_str(),
            from.as_str(),
            "spec.kafka.distribution.url",
        ];
        for part in named {
            assert!(err.message.contains(part), "{part}: {}", err.message);
        }
        let objects = s3.list_objects_v2().bucket(PIPELINE_BUCKET).send().await.unwrap();
        assert_eq!(objects.key_count(), Some(0), "{objects:?}");
        let uploads = s3
            .list_multipart_uploads()
            .bucket(PIPELINE_BUCKET)
            .send()
            .await
            .unwrap();
        assert!(uploads.uploads().is_empty(), "{uploads:?}");
    }
    assert_eq!(
        setup.server.requests(CHECKSUM),
        1,
        "an explicit SHA-512 is not looked up"
    );
}

#[tokio::test]
async fn a_missing_file_stops_apply_naming_the_field_to_fix_and_a_failed_download_is_retried() {
    let _shared = MEASURED.read().await;
    let setup = Setup::new().await;
    let some_sha512 = Some("1".repeat(128));

    let missing = setup.distribution(url_spec(setup.server.url(ARCHIVE), some_sha512.clone()));
    let err = terminal(setup.walk(&missing, WalkMode::Apply).await.0);
    assert_eq!(err.reason, "KafkaDistributionNotFound");
    assert!(
        err.message.contains("404") && err.message.contains("fix spec.kafka.distribution.url"),
        "{}",
        err.message
    );

    setup
        .server
        .serve(ARCHIVE, Content::Text("an archive".to_owned()));
    let unpublished = setup.distribution(url_spec(setup.server.url(ARCHIVE), None));
    let err = terminal(setup.walk(&unpublished, WalkMode::Apply).await.0);
    assert_eq!(err.reason, "KafkaDistributionChecksumMissing");
    assert!(
        err.message.contains(&setup.server.url(CHECKSUM))
            && err.message.contains("set spec.kafka.distribution.sha512"),
        "{}",
        err.message
    );
    assert_eq!(
        setup.server.requests(ARCHIVE),
        1,
        "only the first, explicit, one got this far"
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("https://{closed}{ARCHIVE}");
    let unreachable = setup.distribution(url_spec(url.clone(), some_sha512));
    let err = setup.walk(&unreachable, WalkMode::Apply).await.0.unwrap_err();
    assert_eq!(
        (err.kind, err.reason.as_str()),
        (ErrorKind::Retryable, "KafkaDistributionUnreachable")
    );
    assert!(err.message.contains(&url), "{}", err.message);
}

#[tokio::test]
async fn a_copy_placed_in_s3_is_used_where_it_is_and_never_changed() {
    let _shared = MEASURED.read().await;
    let setup = Setup::new().await;
    setup.create_bucket("user-artifacts").await;
    let key = "mirror/kafka/kafka_2.13-4.1.1.tgz";
    let uri = format!("s3://user-artifacts/{key}");
    let placed = setup.distribution(KafkaDistributionSpec {
        s3_uri: Some(uri.clone()),
        ..KafkaDistributionSpec::default()
    });

    for mode in [WalkMode::Plan, WalkMode::Apply] {
        let err = terminal(setup.walk(&placed, mode).await.0);
        assert_eq!(err.reason, "KafkaDistributionNotFound");
        assert!(
            err.message
                .starts_with(&format!("spec.kafka.distribution.s3Uri {uri} does not exist")),
            "{mode:?}: {}",
            err.message
        );
    }
    let (found, _) = setup.walk(&placed, WalkMode::Find).await;
    assert_eq!(found.unwrap(), None, "a teardown is not stopped by it");

    let content = b"a Kafka release".to_vec();
    setup.put("user-artifacts", key, content.clone()).await;
    let err = terminal(setup.walk(&placed, WalkMode::Apply).await.0);
    assert_eq!(err.reason, "KafkaDistributionChecksumMissing");
    assert!(
        err.message.contains("set spec.kafka.distribution.sha512")
            && err.message.contains(&format!("{uri}.sha512")),
        "{}",
        err.message
    );

    let sha512 = "ab".repeat(64);
    let beside = format!("{key}.sha512");
    let checksum_file = format!("{sha512}  kafka_2.13-4.1.1.tgz\n").into_bytes();
    setup.put("user-artifacts", &beside, checksum_file).await;
    let (found, changes) = setup.walk(&placed, WalkMode::Apply).await;
    let found = found.unwrap().expect("the placed copy");
    assert!(changes.is_empty(), "{changes:?}");
    assert_eq!(
        placed.archive(&found),
        StagedArchive {
            bucket: "user-artifacts".to_owned(),
            key: key.to_owned(),
            sha512,
            version: "4.1.1".to_owned(),
        }
    );

    setup.tear_down(&placed).await;
    assert_eq!(
        setup.object("user-artifacts", key).await.map(|(bytes, _)| bytes),
        Some(content)
    );
    assert_eq!(
        setup.aws.calls.successful_mutations(),
        0,
        "{:?}",
        setup.aws.calls.counts()
    );
    let staged = setup
        .emulator
        .s3()
        .await
        .list_objects_v2()
        .bucket(PIPELINE_BUCKET)
        .send()
        .await
        .unwrap();
    assert_eq!(staged.key_count(), Some(0), "nothing is staged");
}

/// The archive is never held whole: it goes to S3 in parts of `PART_SIZE`,
/// and the process's peak memory grows by a few parts, not by the archive.
/// (Streaming is also structural: `fetch.rs` reads the body as a stream into
/// one part buffer and has no call that collects it.)
#[tokio::test]
async fn a_large_archive_streams_through_in_parts_without_being_held_whole() {
    let _alone = MEASURED.write().await;
    let setup = Setup::new().await;
    let archive = Generated {
        len: 64 * 1024 * 1024,
        seed: 4,
    };
    setup.server.serve(ARCHIVE, Content::Generated(archive));
    let distribution = setup.distribution(url_spec(setup.server.url(ARCHIVE), Some(archive.sha512())));

    // Linux resets the peak (VmHWM) to the current size on "5".
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak resident size");
    let before = resident_kib("VmRSS");
    let (staged, _) = setup.walk(&distribution, WalkMode::Apply).await;
    let peak = resident_kib("VmHWM");
    staged.expect("staged").expect("an archive");
    let growth_mib = (peak - before) / 1024;
    println!("peak resident size grew by {growth_mib} MiB staging a 64 MiB archive");
    assert!(
        growth_mib < 32,
        "staging a 64 MiB archive took {growth_mib} MiB more memory at its peak"
    );

    let head = setup
        .emulator
        .s3()
        .await
        .head_object()
        .bucket(PIPELINE_BUCKET)
        .key(STAGED_KEY)
        .send()
        .await
        .expect("the staged object");
    assert_eq!(head.content_length(), Some(archive.len as i64));
    let parts = archive.len / PART_SIZE;
    assert!(
        head.e_tag()
            .is_some_and(|etag| etag.trim_matches('"').ends_with(&format!("-{parts}"))),
        "uploaded in {parts} parts: {:?}",
        head.e_tag()
    );
}

/// A `/proc/self/status` field, in KiB.
fn resident_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}
