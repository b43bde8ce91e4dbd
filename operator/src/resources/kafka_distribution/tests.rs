use super::*;

const BUCKET: &str = "media-photos-eu-west-1";

fn spec(url: Option<&str>, sha512: Option<&str>, s3_uri: Option<&str>) -> KafkaDistributionSpec {
    KafkaDistributionSpec {
        url: url.map(str::to_owned),
        sha512: sha512.map(str::to_owned),
        s3_uri: s3_uri.map(str::to_owned),
    }
}

fn hash(digit: char) -> String {
    digit.to_string().repeat(128)
}

fn staged(distribution: &KafkaDistribution, sha512: &str) -> ArchiveObject {
    distribution.object(sha512.to_owned(), None)
}

#[test]
fn by_default_apaches_release_is_staged_under_the_artifacts_prefix_by_version() {
    let distribution = KafkaDistribution::from_spec(None, BUCKET).unwrap();
    assert_eq!(distribution.version(), "4.1.1");
    assert_eq!(distribution.bucket(), BUCKET);
    assert_eq!(distribution.key(), "artifacts/kafka/4.1.1/kafka_2.13-4.1.1.tgz");
    assert!(distribution.key().starts_with(KAFKA_ARTIFACTS));
    assert!(distribution.stages());
    assert_eq!(
        distribution.label(),
        "Kafka 4.1.1 distribution s3://media-photos-eu-west-1/artifacts/kafka/4.1.1/kafka_2.13-4.1.1.tgz"
    );
    assert_eq!(
        distribution.create_fields(),
        [
            "from https://archive.apache.org/dist/kafka/4.1.1/kafka_2.13-4.1.1.tgz",
            "SHA-512 from https://archive.apache.org/dist/kafka/4.1.1/kafka_2.13-4.1.1.tgz.sha512",
        ]
    );
    // An empty section is the same as none.
    let empty = KafkaDistribution::from_spec(Some(&KafkaDistributionSpec::default()), BUCKET).unwrap();
    assert_eq!(empty, distribution);
}

#[test]
fn a_mirror_with_an_uppercase_sha512_is_staged_under_its_own_version() {
    let upper = hash('A');
    let spec = spec(
        Some("https://mirror.example.com/kafka/kafka_2.12-3.9.1.tgz?token=t"),
        Some(&upper),
        None,
    );
    let distribution = KafkaDistribution::from_spec(Some(&spec), BUCKET).unwrap();
    assert_eq!(distribution.key(), "artifacts/kafka/3.9.1/kafka_2.12-3.9.1.tgz");
    assert_eq!(
        distribution.create_fields(),
        [
            "from https://mirror.example.com/kafka/kafka_2.12-3.9.1.tgz?token=t".to_owned(),
            format!("SHA-512 {}…", "a".repeat(16)),
        ]
    );
    let archive = distribution.archive(&staged(&distribution, &hash('a')));
    assert_eq!(
        archive,
        StagedArchive {
            bucket: BUCKET.to_owned(),
            key: "artifacts/kafka/3.9.1/kafka_2.12-3.9.1.tgz".to_owned(),
            sha512: hash('a'),
            version: "3.9.1".to_owned(),
        }
    );
}

#[test]
fn the_checksum_file_is_beside_the_archive_even_when_the_url_has_a_query() {
    assert_eq!(
        checksum_url("https://mirror.example.com/k/kafka_2.13-4.1.1.tgz?token=t"),
        "https://mirror.example.com/k/kafka_2.13-4.1.1.tgz.sha512?token=t"
    );
    assert_eq!(
        checksum_url(DISTRIBUTION_URL),
        format!("{DISTRIBUTION_URL}.sha512")
    );
}

#[test]
fn a_staged_archive_is_staged_again_only_when_the_spec_gives_another_sha512() {
    let implicit = KafkaDistribution::from_spec(None, BUCKET).unwrap();
    assert_eq!(
        implicit.delta(&staged(&implicit, &hash('1'))).unwrap(),
        Vec::<String>::new(),
        "once per version: the published SHA-512 is not fetched again"
    );

    let explicit = KafkaDistribution::from_spec(Some(&spec(None, Some(&hash('2')), None)), BUCKET).unwrap();
    assert_eq!(
        explicit.delta(&staged(&explicit, &hash('2'))).unwrap(),
        Vec::<String>::new()
    );
    let stale = staged(&explicit, &hash('1'));
    assert_eq!(
        explicit.delta(&stale).unwrap(),
        [
            format!("SHA-512: {}… → {}…", "1".repeat(16), "2".repeat(16)),
            format!("staged again from {DISTRIBUTION_URL}"),
        ]
    );
    assert_eq!(
        explicit.archive(&stale).sha512,
        hash('2'),
        "what the brokers get is what this apply stages"
    );
}

#[test]
fn a_placed_copy_is_used_where_it_is_and_never_staged_or_deleted() {
    let uri = "s3://my-artifacts/mirror/kafka/kafka_2.13-4.1.1.tgz";
    let distribution = KafkaDistribution::from_spec(Some(&spec(None, None, Some(uri))), BUCKET).unwrap();
    assert!(!distribution.stages());
    assert_eq!(
        (distribution.bucket(), distribution.key(), distribution.version()),
        ("my-artifacts", "mirror/kafka/kafka_2.13-4.1.1.tgz", "4.1.1")
    );
    assert_eq!(distribution.label(), format!("Kafka 4.1.1 distribution {uri}"));
    let found = staged(&distribution, &hash('3'));
    assert_eq!(distribution.delta(&found).unwrap(), Vec::<String>::new());
    assert_eq!(distribution.delete_fields(), ["a copy you placed: left in place"]);
    assert_eq!(distribution.unavailable(&found), None);
    assert_eq!(KafkaDistribution::id(&found), uri);

    let missing = distribution.object(String::new(), Some(unusable_copy(uri, Some(404))));
    let err = distribution
        .unavailable(&missing)
        .expect("a missing copy stops apply and plan");
    assert!(err.is_terminal());
    assert_eq!(err.reason, "KafkaDistributionNotFound");
    assert!(
        err.message
            .starts_with(&format!("spec.kafka.distribution.s3Uri {uri} does not exist")),
        "{}",
        err.message
    );
}

#[test]
fn a_spec_that_names_no_release_is_refused_naming_its_field() {
    let cases = [
        (
            spec(Some("https://mirror.example.com/kafka/latest.tgz"), None, None),
            "spec.kafka.distribution.url https://mirror.example.com/kafka/latest.tgz does not name",
        ),
        (
            spec(
                Some("http://archive.apache.org/dist/kafka/4.1.1/kafka_2.13-4.1.1.tgz"),
                None,
                None,
            ),
            "spec.kafka.distribution.url http://archive.apache.org/dist/kafka/4.1.1/kafka_2.13-4.1.1.tgz is not an HTTPS URL",
        ),
        (
            spec(None, None, Some("s3://my-artifacts/kafka.tar.gz")),
            "spec.kafka.distribution.s3Uri s3://my-artifacts/kafka.tar.gz does not name",
        ),
        (
            spec(None, Some("abc"), None),
            "spec.kafka.distribution.sha512 abc is not a SHA-512",
        ),
        (
            spec(
                Some(DISTRIBUTION_URL),
                None,
                Some("s3://my-artifacts/kafka_2.13-4.1.1.tgz"),
            ),
            "spec.kafka.distribution.url and spec.kafka.distribution.s3Uri exclude each other",
        ),
    ];
    for (spec, says) in cases {
        let err = KafkaDistribution::from_spec(Some(&spec), BUCKET).unwrap_err();
        assert!(err.is_terminal(), "{spec:?}");
        assert_eq!(err.reason, "InvalidKafkaDistribution");
        assert!(err.message.starts_with(says), "{spec:?}: {}", err.message);
    }
}
