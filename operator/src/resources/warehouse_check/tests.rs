use super::*;

fn check(record: Option<&str>) -> WarehouseCheck {
    WarehouseCheck {
        cluster_id: "warehouse".into(),
        cluster_arn: "arn:aws:redshift:eu-west-1:123456789012:cluster:warehouse".into(),
        database: "images".into(),
        user: "imagepipeline_admin".into(),
        version: 9,
        sql: "SELECT COUNT(*) FROM \"images\".images".into(),
        record: record.map(str::to_owned),
    }
}

fn submitted(state: StatementState) -> CheckState {
    CheckState::Submitted {
        statement: "check-1".into(),
        state,
    }
}

#[test]
fn only_this_versions_check_in_flight_is_looked_at() {
    assert_eq!(check(Some("9:check-1")).submitted(), Some("check-1"));
    // Passed, passed at an older version, failed and reported, or never run.
    for record in [
        Some("9"),
        Some("8"),
        Some("8:check-0"),
        Some("9:check-1:failed"),
        None,
    ] {
        assert_eq!(check(record).submitted(), None, "{record:?}");
    }
}

#[test]
fn the_warehouse_is_ready_only_once_its_views_answered_at_this_version() {
    let check = check(None);
    assert_eq!(check.readiness(&CheckState::Passed), Readiness::Ready);
    let Readiness::Waiting(why) = check.readiness(&submitted(StatementState::Running)) else {
        panic!("a check that runs is not a pass");
    };
    assert!(why.contains("check-1"), "{why}");
    assert_eq!(check.delta(&CheckState::Passed), Ok(vec![]));
    assert_eq!(check.delta(&submitted(StatementState::Running)), Ok(vec![]));
    assert_eq!(
        check.delta(&submitted(StatementState::Finished)),
        Ok(vec!["checked at version 9: (running) → passed".to_owned()])
    );
    assert_eq!(
        check.create_fields(),
        ["run `SELECT COUNT(*) FROM \"images\".images` once, through the Redshift Data API"]
    );
}

#[test]
fn a_failed_check_names_the_query_redshifts_error_and_what_to_look_at() {
    let error = "ERROR: S3 Query Exception (Fetch). Access denied on s3://photos-bucket/events/";
    let check = check(Some("9:check-1"));
    assert_eq!(
        check.delta(&submitted(StatementState::Failed(error.into()))),
        Ok(vec![format!("check failed ({error}): run it again")])
    );
    let condition = check.failure("check-1", error);
    assert_eq!(condition.reason, "WarehouseNotServing");
    assert!(!condition.is_terminal());
    for part in [
        error,
        "check-1",
        "SELECT COUNT(*) FROM \"images\".images",
        "the cluster's role",
    ] {
        assert!(
            condition.message.contains(part),
            "{part} in {}",
            condition.message
        );
    }
}
