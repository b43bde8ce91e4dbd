//! The `imagepipeline` command as a user runs it.

use std::process::Command;

use command::{imagepipeline, imagepipeline_on, repo_path, text};
use imagepipeline_e2e::AwsEmulator;
use imagepipeline_e2e::brokers::KAFKA_DISTRIBUTION_URI;
use imagepipeline_e2e::local::Manifest;

#[path = "support/command.rs"]
mod command;

#[tokio::test]
async fn plan_apply_plan_destroy_round_trip_on_the_minimal_example() {
    let mut emulator = AwsEmulator::start().await.expect("moto server starts");
    emulator.play_brokers(None).await.expect("brokers' stand-ins");
    // The example, with Kafka from a copy in the emulator: no internet here.
    let dir = tempfile::tempdir().unwrap();
    let example = Manifest::with_kafka_distribution(
        &repo_path("examples/imagepipeline.yaml"),
        KAFKA_DISTRIBUTION_URI,
        dir.path(),
    )
    .expect("a copy of the example");
    let example = example.to_str().unwrap();

    let plan = imagepipeline_on(&emulator, &["plan", "-f", example, "--detailed-exitcode"]);
    let stdout = text(&plan.stdout);
    assert_eq!(
        plan.status.code(),
        Some(2),
        "changes pending: {stdout}{}",
        text(&plan.stderr)
    );
    assert!(
        stdout.contains("ImagePipeline default/demo in eu-west-1"),
        "{stdout}"
    );
    for line in [
        "+ create S3 bucket ipl-default-demo-",
        "+ create DynamoDB table ipl-default-demo-images-",
        "+ create Firehose stream ipl-default-demo-events-",
        "+ create Redshift cluster ipl-default-demo-warehouse-",
    ] {
        assert!(stdout.contains(line), "plan shows {line:?}: {stdout}");
    }
    // Nothing exists, so nothing can be updated: what a new resource is
    // given right after its creation is part of its create line.
    assert!(
        stdout.contains(" to create, 0 to update, 0 to delete."),
        "{stdout}"
    );
    assert!(!stdout.contains("~ update"), "{stdout}");
    let creates = stdout.matches("+ create ").count();
    assert!(
        stdout.contains(&format!("Plan: {creates} to create,")),
        "the summary counts the resources listed: {stdout}"
    );
    assert!(
        stdout.contains("expire images/ after 7d"),
        "lifecycle rules are spelled out: {stdout}"
    );

    let started = std::time::Instant::now();
    let apply = imagepipeline_on(&emulator, &["apply", "-f", example, "-o", "json"]);
    let apply_time = started.elapsed();
    let (stdout, stderr) = (text(&apply.stdout), text(&apply.stderr));
    assert!(apply.status.success(), "{stdout}{stderr}");
    let status: serde_json::Value = serde_json::from_str(&stdout).expect("status as JSON");
    assert_eq!(status["phase"], "Ready", "{stdout}");
    assert!(
        status["endpoints"]["bucket"]
            .as_str()
            .is_some_and(|b| b.starts_with("ipl-default-demo-"))
    );
    for component in [
        "Network",
        "Storage",
        "Metadata",
        "Delivery",
        "UploadTier",
        "Kafka",
        "Analytics",
    ] {
        assert!(
            stderr.contains(&format!("{component:<10} ready")),
            "progress for {component}: {stderr}"
        );
    }
    println!("apply of the minimal example against moto: {apply_time:?}");

    let plan = imagepipeline_on(&emulator, &["plan", "-f", example, "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan.stdout));
    assert!(text(&plan.stdout).contains("Plan: 0 to create, 0 to update, 0 to delete."));

    let destroy = imagepipeline_on(&emulator, &["destroy", "-f", example]);
    assert!(
        destroy.status.success(),
        "{}{}",
        text(&destroy.stdout),
        text(&destroy.stderr)
    );
    assert!(text(&destroy.stdout).contains("ImagePipeline default/demo: destroyed"));
    let plan = imagepipeline_on(&emulator, &["plan", "-f", example, "--detailed-exitcode"]);
    assert_eq!(
        plan.status.code(),
        Some(2),
        "everything is gone again: {}",
        text(&plan.stdout)
    );
}

#[tokio::test]
async fn apply_stops_at_once_on_a_terminal_error() {
    let mut emulator = AwsEmulator::start().await.expect("moto server starts");
    emulator.play_brokers(None).await.expect("brokers' stand-ins");
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("two.yaml");
    let pipeline = |name: &str| {
        format!(
            "apiVersion: imagepipeline.io/v1alpha1\nkind: ImagePipeline\nmetadata: {{ name: {name} }}\n\
             spec:\n  region: eu-west-1\n  network: {{ availabilityZones: [eu-west-1a, eu-west-1b] }}\n  \
             storage: {{ bucketName: shared-images }}\n  analytics: {{ enabled: false }}\n  \
             kafka: {{ distribution: {{ s3Uri: \"{KAFKA_DISTRIBUTION_URI}\" }} }}\n"
        )
    };
    std::fs::write(
        &manifest,
        format!("{}---\n{}", pipeline("first"), pipeline("second")),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let apply = imagepipeline_on(&emulator, &["apply", "-f", manifest.to_str().unwrap()]);
    let stderr = text(&apply.stderr);
    assert_eq!(apply.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("default/second: Storage cannot converge"),
        "{stderr}"
    );
    assert!(
        stderr.contains("already belongs to ImagePipeline default/first"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "no retry loop: {:?}",
        started.elapsed()
    );
}

#[test]
fn plan_rejects_an_invalid_manifest_naming_file_document_and_field() {
    let fixture = "operator/tests/fixtures/invalid/replication-factor-above-brokers.yaml";
    let output = imagepipeline(&["plan", "-f", fixture]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(fixture), "{stderr}");
    assert!(stderr.contains("document 1"), "{stderr}");
    assert!(stderr.contains("spec.kafka.replicationFactor"), "{stderr}");
    assert!(
        output.stdout.is_empty(),
        "nothing is planned from an invalid manifest"
    );
}

#[test]
fn unreadable_and_foreign_files_are_explained() {
    let output = imagepipeline(&["plan", "-f", "no/such/file.yaml"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("cannot read no/such/file.yaml"), "{stderr}");

    let output = imagepipeline(&["plan", "-f", "Cargo.toml"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("Cargo.toml is not valid YAML"), "{stderr}");

    let output = imagepipeline(&["plan", "-f", "crds/imagepipelines.imagepipeline.io.yaml"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("expected apiVersion imagepipeline.io/v1alpha1 and kind ImagePipeline"),
        "{stderr}"
    );
}

#[test]
fn run_without_a_cluster_says_how_to_reach_one() {
    let home = tempfile::tempdir().expect("a temporary home");
    let output = Command::new(env!("CARGO_BIN_EXE_imagepipeline"))
        .args(["run", "--listen", "127.0.0.1:0"])
        .env("KUBECONFIG", home.path().join("no-such-kubeconfig"))
        .env("HOME", home.path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .output()
        .expect("run imagepipeline");
    // The controller's failure is a line of its log, which goes to stdout.
    let output_text = text(&output.stdout) + &text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{output_text}");
    assert!(
        output_text.contains("cannot reach the Kubernetes API") && output_text.contains("KUBECONFIG"),
        "{output_text}"
    );
    assert_eq!(
        occurrences(&output_text, "cannot reach the Kubernetes API"),
        1,
        "printed once: {output_text}"
    );
    assert!(
        !output_text.contains('\u{1b}'),
        "no colour codes in a pipe: {output_text}"
    );
}

/// How many times `needle` appears in `haystack`.
fn occurrences(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn each_error_is_printed_once_and_without_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "spec: [unclosed\n").unwrap();
    let unreachable = dir.path().join("unreachable.yaml");
    std::fs::copy(repo_path("examples/imagepipeline.yaml"), &unreachable).unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "plan",
                "-f",
                "operator/tests/fixtures/invalid/replication-factor-above-brokers.yaml",
            ],
            "must not exceed spec.kafka.brokers",
        ),
        (
            &["plan", "-f", "crds/imagepipelines.imagepipeline.io.yaml"],
            "expected apiVersion imagepipeline.io/v1alpha1 and kind ImagePipeline",
        ),
        (&["plan", "-f", broken.to_str().unwrap()], "is not valid YAML"),
        (
            &["plan", "-f", unreachable.to_str().unwrap()],
            "cannot identify the AWS account",
        ),
    ];
    for (args, message) in cases {
        // Port 9 (discard) on loopback: nothing answers, so the SDK fails fast.
        let output = Command::new(env!("CARGO_BIN_EXE_imagepipeline"))
            .args(args)
            .current_dir(repo_path(""))
            .env("AWS_ENDPOINT_URL", "https://127.0.0.1:9")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_MAX_ATTEMPTS", "1")
            .env_remove("RUST_LOG")
            .output()
            .expect("run imagepipeline");
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(
            occurrences(&stderr, message),
            1,
            "{args:?}: the error is printed once:\n{stderr}"
        );
        assert_eq!(
            stderr.lines().filter(|line| line.starts_with("error: ")).count(),
            1,
            "{args:?}: one error, plainly:\n{stderr}"
        );
        assert!(
            !stderr.contains('\u{1b}'),
            "{args:?}: no colour codes in a pipe:\n{stderr}"
        );
    }
}

#[tokio::test]
async fn the_cli_takes_the_secrets_a_spec_names_from_the_manifest_file() {
    let mut emulator = AwsEmulator::start().await.expect("moto server starts");
    emulator.play_brokers(None).await.expect("brokers' stand-ins");
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("pipeline.yaml");
    let pipeline = "apiVersion: imagepipeline.io/v1alpha1\nkind: ImagePipeline\nmetadata: { name: keyed }\n\
                    spec:\n  region: eu-west-1\n  network: { availabilityZones: [eu-west-1a, eu-west-1b] }\n  \
                    analytics: { masterUserSecretRef: { name: keyed-admin } }\n  \
                    kafka: { distribution: { s3Uri: \"s3://imagepipeline-test-kafka/kafka_2.13-4.1.1.tgz\" } }\n";
    std::fs::write(&manifest, pipeline).unwrap();
    let plan = imagepipeline_on(&emulator, &["plan", "-f", manifest.to_str().unwrap()]);
    let stderr = text(&plan.stderr);
    assert_eq!(plan.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "spec.analytics.masterUserSecretRef: Secret default/keyed-admin is not in the manifest file"
        ),
        "{stderr}"
    );

    let secret = "---\napiVersion: v1\nkind: Secret\nmetadata: { name: keyed-admin }\n\
                  stringData: { username: admin, password: Correct-Horse-Battery-9 }\n";
    std::fs::write(&manifest, format!("{pipeline}{secret}")).unwrap();
    let plan = imagepipeline_on(&emulator, &["plan", "-f", manifest.to_str().unwrap()]);
    let stdout = text(&plan.stdout);
    assert!(plan.status.success(), "{stdout}{}", text(&plan.stderr));
    assert!(stdout.contains("+ create Redshift cluster"), "{stdout}");
    assert!(
        !stdout.contains("Correct-Horse"),
        "the password is never printed: {stdout}"
    );
}

#[tokio::test]
async fn plan_ends_with_the_monthly_cost_of_what_the_spec_makes() {
    let mut emulator = AwsEmulator::start().await.expect("moto server starts");
    emulator.play_brokers(None).await.expect("brokers' stand-ins");
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("pipeline.yaml");
    // us-east-1 and types pricing/aws.yaml has, but for the default Redshift
    // node type, which it lacks.
    let pipeline = "apiVersion: imagepipeline.io/v1alpha1\nkind: ImagePipeline\nmetadata: { name: costed }\n\
                    spec:\n  region: us-east-1\n  network: { availabilityZones: [us-east-1a, us-east-1b] }\n  \
                    uploadApi: { instanceType: t3.medium, minSize: 2, maxSize: 6, desiredCapacity: 3 }\n  \
                    kafka: { distribution: { s3Uri: \"s3://imagepipeline-test-kafka/kafka_2.13-4.1.1.tgz\" } }\n";
    std::fs::write(&manifest, pipeline).unwrap();
    let plan = imagepipeline_on(&emulator, &["plan", "-f", manifest.to_str().unwrap()]);
    let stdout = text(&plan.stdout);
    assert!(plan.status.success(), "{stdout}{}", text(&plan.stderr));
    let costs = stdout
        .split_once("Estimated monthly cost in us-east-1 (USD, on-demand list prices as of ")
        .unwrap_or_else(|| panic!("plan shows the cost: {stdout}"))
        .1;
    // 3 × 0.0416 × 730 and 6 × 0.0416 × 730; 3 × 0.1008 × 730; 0.0225 × 730;
    // 2 × 1.086 × 730. Every fixed item has a price, so the total is whole.
    for line in [
        "UploadTier 3 × t3.medium instances (desiredCapacity)",
        "USD 91.10  (6 at maxSize: USD 182.21)",
        "Kafka      3 × m7i.large brokers",
        "USD 220.75",
        "UploadTier application load balancer, 730 hours",
        "USD 16.43",
        "Analytics  2 × ra3.xlplus nodes",
        "USD 1585.56",
        "Total      fixed part                                     USD 1947.44\n",
        "Usage-priced, not in the total:",
        "USD 0.023 per GB-month (1000 GB-month: USD 23.00)",
        "Prices from operator/pricing/aws.yaml, which cites ",
    ] {
        assert!(costs.contains(line), "plan shows {line:?}: {costs}");
    }
}
