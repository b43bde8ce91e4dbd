use aws_sdk_redshiftdata::config::{Credentials, Region};
use aws_sdk_redshiftdata::operation::cancel_statement::CancelStatementOutput;
use aws_sdk_redshiftdata::operation::describe_statement::DescribeStatementOutput;
use aws_sdk_redshiftdata::operation::execute_statement::ExecuteStatementOutput;
use aws_sdk_redshiftdata::operation::get_statement_result::GetStatementResultOutput;
use aws_sdk_redshiftdata::types::{ColumnMetadata, Field};
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};

use super::*;

/// A Data API client answered by `rules` (the client crate's own
/// `mock_client!` needs its `test-util` feature, which the build has not).
fn client(mode: RuleMode, rules: &[&Rule]) -> Client {
    let interceptor = (rules.iter()).fold(MockResponseInterceptor::new().rule_mode(mode), |i, rule| {
        i.with_rule(rule)
    });
    Client::from_conf(
        aws_sdk_redshiftdata::Config::builder()
            .behavior_version_latest()
            .region(Region::new("eu-west-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "mock"))
            .http_client(create_mock_http_client())
            .interceptor(interceptor)
            .build(),
    )
}

const ID: &str = "0d6f3c4e-8f0a-4f7e-9a55-2b8f0e3c1a77";

fn target() -> Target {
    Target {
        cluster: "ipl-media-photos-warehouse".into(),
        database: "analytics".into(),
        user: "imagepipeline_admin".into(),
    }
}

fn fast() -> Polling {
    Polling {
        first: Duration::from_millis(1),
        max: Duration::from_millis(5),
    }
}

fn submitted() -> Rule {
    mock!(Client::execute_statement)
        .match_requests(|r| {
            r.cluster_identifier() == Some("ipl-media-photos-warehouse")
                && r.database() == Some("analytics")
                && r.db_user() == Some("imagepipeline_admin")
                && r.statement_name() == Some(STATEMENT_NAME)
        })
        .then_output(|| ExecuteStatementOutput::builder().id(ID).build())
}

fn described(status: StatusString) -> DescribeStatementOutput {
    DescribeStatementOutput::builder()
        .id(ID)
        .status(status)
        .build()
        .expect("an id")
}

fn page(records: &[[i64; 1]], next_token: Option<&str>) -> GetStatementResultOutput {
    let mut builder = GetStatementResultOutput::builder()
        .column_metadata(ColumnMetadata::builder().name("n").type_name("int8").build())
        .set_next_token(next_token.map(str::to_owned));
    for record in records {
        builder = builder.records(record.iter().map(|n| Field::LongValue(*n)).collect());
    }
    builder.build().expect("records")
}

#[tokio::test]
async fn polls_until_finished_and_reads_every_page() {
    let data = client(
        RuleMode::Sequential,
        &[
            &submitted(),
            &mock!(Client::describe_statement)
                .sequence()
                .output(|| described(StatusString::Submitted))
                .output(|| described(StatusString::Started))
                .output(|| {
                    DescribeStatementOutput::builder()
                        .id(ID)
                        .status(StatusString::Finished)
                        .has_result_set(true)
                        .result_rows(3)
                        .build()
                        .unwrap()
                })
                .build(),
            &mock!(Client::get_statement_result)
                .match_requests(|r| r.next_token().is_none())
                .then_output(|| page(&[[1], [2]], Some("page-2"))),
            &mock!(Client::get_statement_result)
                .match_requests(|r| r.next_token() == Some("page-2"))
                .then_output(|| page(&[[3]], None)),
        ],
    );
    let outcome = run(
        &data,
        &target(),
        "SELECT n FROM t",
        Duration::from_secs(5),
        fast(),
    )
    .await
    .expect("rows");
    let Outcome::Rows(result) = outcome else {
        panic!("a result set: {outcome:?}")
    };
    assert_eq!(result.columns.len(), 1);
    assert_eq!(
        result.rows,
        [[1], [2], [3]].map(|[n]| vec![Cell::Integer(n)]).to_vec()
    );
}

#[tokio::test]
async fn a_statement_without_a_result_set_reports_the_rows_it_affected() {
    for (rows, expected) in [(4, Some(4)), (-1, None)] {
        let data = client(
            RuleMode::Sequential,
            &[
                &submitted(),
                &mock!(Client::describe_statement).then_output(move || {
                    DescribeStatementOutput::builder()
                        .id(ID)
                        .status(StatusString::Finished)
                        .has_result_set(false)
                        .result_rows(rows)
                        .build()
                        .unwrap()
                }),
            ],
        );
        let outcome = run(&data, &target(), "DELETE FROM t", Duration::from_secs(5), fast()).await;
        assert_eq!(
            outcome.expect("done"),
            Outcome::Done {
                rows_affected: expected
            }
        );
    }
}

#[tokio::test]
async fn a_failed_statement_quotes_redshifts_error_and_names_the_statement() {
    let data = client(
        RuleMode::Sequential,
        &[
            &submitted(),
            &mock!(Client::describe_statement).then_output(|| {
                DescribeStatementOutput::builder()
                    .id(ID)
                    .status(StatusString::Failed)
                    .error("ERROR: relation \"nope\" does not exist")
                    .build()
                    .unwrap()
            }),
        ],
    );
    let err = run(
        &data,
        &target(),
        "SELECT * FROM nope",
        Duration::from_secs(5),
        fast(),
    )
    .await
    .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("ERROR: relation \"nope\" does not exist") && message.contains(ID),
        "{message}"
    );
}

#[tokio::test]
async fn a_statement_still_running_at_the_timeout_is_cancelled() {
    let data = client(
        RuleMode::MatchAny,
        &[
            &submitted(),
            &mock!(Client::describe_statement)
                .sequence()
                .output(|| described(StatusString::Started))
                .repeatedly()
                .build(),
            &mock!(Client::cancel_statement)
                .match_requests(|r| r.id() == Some(ID))
                .then_output(|| CancelStatementOutput::builder().status(true).build()),
        ],
    );
    let started = Instant::now();
    let err = run(
        &data,
        &target(),
        "SELECT pg_sleep(60)",
        Duration::from_millis(50),
        fast(),
    )
    .await
    .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let message = err.to_string();
    assert!(
        matches!(err, WarehouseError::Timeout { cancelled: true, .. }) && message.contains(ID),
        "{message}"
    );
}

#[tokio::test]
async fn an_aborted_statement_and_a_refused_submission_are_errors() {
    let data = client(
        RuleMode::Sequential,
        &[
            &submitted(),
            &mock!(Client::describe_statement).then_output(|| described(StatusString::Aborted)),
        ],
    );
    let err = run(&data, &target(), "SELECT 1", Duration::from_secs(5), fast())
        .await
        .unwrap_err();
    assert!(matches!(err, WarehouseError::Aborted { .. }), "{err}");

    let refused = mock!(Client::execute_statement).then_error(|| {
        aws_sdk_redshiftdata::operation::execute_statement::ExecuteStatementError::ValidationException(
            aws_sdk_redshiftdata::types::error::ValidationException::builder()
                .message("Redshift endpoint doesn't exist in this region.")
                .build(),
        )
    });
    let data = client(RuleMode::Sequential, &[&refused]);
    let message = run(&data, &target(), "SELECT 1", Duration::from_secs(5), fast())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("submit the statement to cluster ipl-media-photos-warehouse")
            && message.contains("Redshift endpoint doesn't exist"),
        "{message}"
    );
}
