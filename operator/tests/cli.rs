//! The `imagepipeline` command as a user runs it.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(relative)
}

fn imagepipeline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_imagepipeline"))
        .args(args)
        .current_dir(repo_path(""))
        .output()
        .expect("run imagepipeline")
}

#[test]
fn plan_accepts_the_examples_and_shows_the_defaults() {
    let output = imagepipeline(&["plan", "-f", "examples/imagepipeline.yaml"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("ImagePipeline default/demo: valid"), "{stdout}");
    assert!(
        stdout.contains("retentionDays: 7"),
        "defaults are shown: {stdout}"
    );

    let output = imagepipeline(&["plan", "-f", "examples/full.yaml"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("ImagePipeline media/photos: valid"), "{stdout}");
    assert!(
        stdout.contains("ImagePipeline media/photos-shared-kafka: valid"),
        "{stdout}"
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
fn plan_explains_unreadable_and_foreign_files() {
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
