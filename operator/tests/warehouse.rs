//! `imagepipeline warehouse ddl` and `imagepipeline query` as a user runs
//! them, against the AWS emulator. The emulator's Redshift Data API never
//! finishes a statement, so the rows and the failure come from a stand-in
//! for that one API (support/data_api.rs), reached through the SDK's
//! standard `AWS_ENDPOINT_URL_REDSHIFT_DATA`; the cluster, its status and the
//! account are the emulator's.

use std::process::{Command, Output};
use std::time::Instant;

use command::{imagepipeline, repo_path, text};
use data_api::{Answer, DataApiStandIn};
use imagepipeline_e2e::AwsEmulator;
use serde_json::{Value, json};
use support::MINIMAL;

#[path = "support/command.rs"]
mod command;
#[path = "support/data_api.rs"]
mod data_api;
mod support;

/// `imagepipeline` against the emulator, with `extra` variables on top.
fn imagepipeline_with(emulator: &AwsEmulator, extra: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_imagepipeline"))
        .args(args)
        .current_dir(repo_path(""))
        .envs(emulator.env())
        .envs(extra.iter().copied())
        .env_remove("RUST_LOG")
        .output()
        .expect("run imagepipeline")
}

/// The one `error: …` line of a failed run, which exits 1.
fn failure(output: &Output) -> String {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{}{stderr}", text(&output.stdout));
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "one error, plainly: {stderr}");
    assert!(
        output.stdout.is_empty(),
        "nothing on stdout: {}",
        text(&output.stdout)
    );
    errors[0].to_owned()
}

fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

fn write(dir: &tempfile::TempDir, name: &str, yaml: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, yaml).expect("write the manifest");
    path.to_str().expect("a UTF-8 path").to_owned()
}

/// A pipeline of namespace `media` with its own bucket and database names.
fn named(name: &str, analytics: &str) -> String {
    format!(
        "apiVersion: imagepipeline.io/v1alpha1\nkind: ImagePipeline\nmetadata: {{ name: {name}, namespace: media }}\n\
         spec:\n  region: eu-west-1\n  network: {{ availabilityZones: [eu-west-1a, eu-west-1b] }}\n  \
         storage: {{ bucketName: {name}-bucket }}\n  analytics: {analytics}\n"
    )
}

#[tokio::test]
async fn warehouse_ddl_prints_each_pipelines_statements_in_version_order() {
    let emulator = AwsEmulator::start().await.expect("moto server starts");
    let dir = tempfile::tempdir().unwrap();
    let one = write(&dir, "one.yaml", &named("photos", "{ database: photos }"));
    let started = Instant::now();
    let script = succeeded(&imagepipeline_with(
        &emulator,
        &[],
        &["warehouse", "ddl", "-f", &one],
    ));
    println!("warehouse ddl of one pipeline: {:?}", started.elapsed());

    // One pipeline: the script alone, headed by where it runs.
    assert!(
        script.starts_with("-- Run in Redshift cluster ipl-media-photos-warehouse-")
            && script.contains(", database photos, as its admin user"),
        "{script}"
    );
    // The pipeline's names are filled in: its bucket, its database (the
    // analysts' schema and the external one) and its account's role.
    for piece in [
        "s3://photos-bucket/events/",
        "CREATE SCHEMA IF NOT EXISTS \"photos\";",
        "CREATE EXTERNAL SCHEMA IF NOT EXISTS \"photos_events\" FROM DATA CATALOG DATABASE 'ipl_media_photos_events_",
        "IAM_ROLE 'arn:aws:iam::123456789012:role/imagepipeline/ipl-media-photos-redshift-",
        "CREATE OR REPLACE VIEW \"photos\".images AS ",
    ] {
        assert!(script.contains(piece), "{piece:?} in:\n{script}");
    }
    // Every migration, once, in version order, each a statement ending in `;`.
    let positions: Vec<usize> = (1..=18)
        .map(|version| {
            let heading = format!("\n-- migration {version}: ");
            assert_eq!(script.matches(&heading).count(), 1, "{heading:?} once");
            script.find(&heading).unwrap()
        })
        .collect();
    assert!(positions.is_sorted(), "in version order: {positions:?}");
    assert!(!script.contains("-- migration 19:"), "{script}");
    let statements: Vec<&str> = script
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with("--"))
        .collect();
    // Eighteen migrations, then the check that the analysts' view answers.
    assert_eq!(statements.len(), 19, "{statements:#?}");
    assert!(statements.iter().all(|s| s.ends_with(';')), "{statements:#?}");
    assert_eq!(statements[18], "SELECT COUNT(*) FROM \"photos\".images;");

    // Several pipelines: each under its own line; one without analytics says so.
    let two = write(
        &dir,
        "two.yaml",
        &format!(
            "{}---\n{}",
            named("photos", "{ database: photos }"),
            named("archive", "{ enabled: false }")
        ),
    );
    let both = succeeded(&imagepipeline_with(
        &emulator,
        &[],
        &["warehouse", "ddl", "-f", &two],
    ));
    assert!(
        both.starts_with(&format!("-- ImagePipeline media/photos\n{script}")),
        "{both}"
    );
    assert!(
        both.ends_with(
            "\n\n-- ImagePipeline media/archive\n-- ImagePipeline media/archive has no warehouse \
             (spec.analytics.enabled is false): nothing runs in Redshift.\n"
        ),
        "{both}"
    );
}

/// A result in two pages, with the kinds of value Redshift sends: text,
/// BIGINT, DECIMAL (as text), DOUBLE, BOOLEAN and NULL.
fn summary() -> Answer {
    let row = |source: Value, images: Value, bytes: Value, share: Value, ok: Value, note: Value| {
        vec![source, images, bytes, share, ok, note]
    };
    let s = |text: &str| json!({ "stringValue": text });
    let null = || json!({ "isNull": true });
    Answer::Rows {
        columns: vec![
            ("source", "varchar"),
            ("images", "int8"),
            ("bytes", "numeric"),
            ("share", "float8"),
            ("ok", "bool"),
            ("note", "varchar"),
        ],
        pages: vec![
            vec![
                row(
                    s("api"),
                    json!({ "longValue": 3 }),
                    s("12345678901234567890.25"),
                    json!({ "doubleValue": 0.75 }),
                    json!({ "booleanValue": true }),
                    s("plain"),
                ),
                row(
                    s("kafka"),
                    json!({ "longValue": 1 }),
                    s("288.00"),
                    json!({ "doubleValue": 0.25 }),
                    json!({ "booleanValue": false }),
                    s("a, b and \"c\""),
                ),
            ],
            vec![row(
                null(),
                json!({ "longValue": 0 }),
                null(),
                null(),
                null(),
                s("two\nlines"),
            )],
        ],
    }
}

const SUMMARY: &str = "SELECT source, images, bytes, share, ok, note FROM images.summary";
const DELETE: &str = "DELETE FROM images.scratch WHERE day < '2026-01-01'";
const MISSING_TABLE: &str = "SELECT * FROM images.nope";
const NO_TABLE_ERROR: &str = "ERROR: relation \"images.nope\" does not exist";

#[tokio::test]
async fn query_runs_one_statement_in_the_pipelines_warehouse_as_the_operator_does() {
    let mut emulator = AwsEmulator::start().await.expect("moto server starts");
    emulator.play_brokers(None).await.expect("brokers' stand-ins");
    let dir = tempfile::tempdir().unwrap();
    let manifest = write(&dir, "photos.yaml", MINIMAL);
    let sdk = emulator.sdk_config().await;

    // Nothing applied yet: there is no cluster to run in. (The upload API's
    // keys Secret, not in the file, is of no use to a query: not asked for.)
    let keyed = format!("{MINIMAL}  uploadApi: {{ apiKeysSecretRef: {{ name: photos-keys, key: keys }} }}\n");
    let keyed = write(&dir, "keyed.yaml", &keyed);
    let missing = failure(&imagepipeline_with(
        &emulator,
        &[],
        &["query", "-f", &keyed, "SELECT 1"],
    ));
    assert!(
        missing.contains("there is no warehouse cluster ipl-media-photos-warehouse-")
            && missing.contains("in eu-west-1: apply the pipeline first (`imagepipeline apply -f FILE`)")
            && missing.contains("spec.analytics.enabled true"),
        "{missing}"
    );

    let started = Instant::now();
    succeeded(&imagepipeline_with(&emulator, &[], &["apply", "-f", &manifest]));
    println!("apply of the minimal pipeline: {:?}", started.elapsed());
    let redshift = aws_sdk_redshift::Client::new(&sdk);
    let clusters = redshift.describe_clusters().send().await.expect("clusters");
    let [cluster] = clusters.clusters() else {
        panic!("one cluster: {clusters:?}")
    };
    let cluster_id = cluster.cluster_identifier().expect("an id").to_owned();

    let stand_in = DataApiStandIn::start(vec![
        (SUMMARY, summary()),
        (DELETE, Answer::Affected(4)),
        (MISSING_TABLE, Answer::Failed(NO_TABLE_ERROR)),
    ]);
    let data_api = stand_in.endpoint_url();
    let through_stand_in = [("AWS_ENDPOINT_URL_REDSHIFT_DATA", data_api.as_str())];
    let query = |args: &[&str]| {
        let mut all = vec!["query", "-f", manifest.as_str()];
        all.extend_from_slice(args);
        imagepipeline_with(&emulator, &through_stand_in, &all)
    };

    let started = Instant::now();
    let table = succeeded(&query(&[SUMMARY]));
    println!("query, two pages, table: {:?}", started.elapsed());
    assert_eq!(
        table.lines().collect::<Vec<_>>(),
        [
            " source | images |          bytes          | share |  ok   |     note",
            "--------+--------+-------------------------+-------+-------+--------------",
            " api    |      3 | 12345678901234567890.25 |  0.75 | true  | plain",
            " kafka  |      1 |                  288.00 |  0.25 | false | a, b and \"c\"",
            "        |      0 |                         |       |       | two\\nlines",
            "(3 rows)",
        ],
        "{table}"
    );

    let json_text = succeeded(&query(&["-o", "json", SUMMARY]));
    let rows: Value = serde_json::from_str(&json_text).expect("JSON");
    assert_eq!(
        rows,
        json!([
            {"source": "api", "images": 3, "bytes": 12345678901234567890.25_f64, "share": 0.75,
             "ok": true, "note": "plain"},
            {"source": "kafka", "images": 1, "bytes": 288.0, "share": 0.25, "ok": false,
             "note": "a, b and \"c\""},
            {"source": null, "images": 0, "bytes": null, "share": null, "ok": null, "note": "two\nlines"},
        ]),
        "{json_text}"
    );
    assert!(
        json_text.contains("\"bytes\": 12345678901234567890.25,"),
        "the decimal's digits, all of them: {json_text}"
    );

    let csv = succeeded(&query(&["-o", "csv", SUMMARY]));
    assert_eq!(
        csv,
        "source,images,bytes,share,ok,note\n\
         api,3,12345678901234567890.25,0.75,true,plain\n\
         kafka,1,288.00,0.25,false,\"a, b and \"\"c\"\"\"\n\
         ,0,,,,\"two\nlines\"\n"
    );

    assert_eq!(succeeded(&query(&[DELETE])), "4 rows affected\n");
    assert_eq!(
        succeeded(&query(&["-o", "json", DELETE])),
        "{\"rowsAffected\":4}\n"
    );

    let failed = failure(&query(&[MISSING_TABLE]));
    let submitted = stand_in.submitted();
    let failed_id = submitted.len();
    assert_eq!(
        failed,
        format!("error: statement 00000000-0000-4000-8000-{failed_id:012} failed: {NO_TABLE_ERROR}")
    );

    // Every statement ran where and as whom the operator runs its own.
    assert_eq!(submitted.len(), 6, "{submitted:#?}");
    for request in &submitted {
        assert_eq!(request["ClusterIdentifier"], cluster_id.as_str(), "{request}");
        assert_eq!(request["Database"], "images", "{request}");
        assert_eq!(request["DbUser"], "imagepipeline_admin", "{request}");
        assert_eq!(request["StatementName"], "imagepipeline-query", "{request}");
    }

    // The emulator's own Data API (scripts/moto/redshift_data.py) runs a
    // statement to FINISHED on the pipeline's cluster; one without a result
    // set prints what it did.
    const GRANT: &str = "GRANT USAGE ON SCHEMA images TO GROUP analysts";
    let granted = imagepipeline_with(&emulator, &[], &["query", "-f", &manifest, GRANT]);
    assert!(
        granted.status.success(),
        "{}",
        String::from_utf8_lossy(&granted.stderr)
    );
    let printed = String::from_utf8_lossy(&granted.stdout);
    assert_eq!(
        printed,
        "finished; Redshift did not say how many rows it affected\n"
    );

    // A paused cluster runs nothing: the error says how to resume it.
    redshift
        .pause_cluster()
        .cluster_identifier(&cluster_id)
        .send()
        .await
        .expect("paused");
    let paused = failure(&query(&[SUMMARY]));
    assert_eq!(
        paused,
        format!(
            "error: warehouse cluster {cluster_id} is paused: resume it with \
             `aws redshift resume-cluster --cluster-identifier {cluster_id} --region eu-west-1`, \
             then run the query again once it is available (a few minutes)"
        )
    );
    assert_eq!(stand_in.submitted().len(), 6, "nothing was submitted");
}

#[test]
fn query_refuses_a_manifest_without_exactly_one_warehouse_before_calling_aws() {
    let dir = tempfile::tempdir().unwrap();
    let two = write(
        &dir,
        "two.yaml",
        &format!("{}---\n{}", named("photos", "{}"), named("archive", "{}")),
    );
    let error = failure(&imagepipeline(&["query", "-f", &two, "SELECT 1"]));
    assert!(
        error.contains("two.yaml holds 2 ImagePipelines (media/photos, media/archive); `query` runs in one"),
        "{error}"
    );
    let off = write(&dir, "off.yaml", &named("archive", "{ enabled: false }"));
    let error = failure(&imagepipeline(&["query", "-f", &off, "SELECT 1"]));
    assert_eq!(
        error,
        "error: ImagePipeline media/archive has no warehouse: its spec.analytics.enabled is false; \
         set it to true and apply the pipeline to make one"
    );
}
