use serde_json::Value;

use super::*;
use crate::engine::{MasterUser, RETAINED_TAG, Readiness, context_from_yaml};
use crate::resources::iam_role::ObservedRole;
use crate::resources::redshift_cluster::ClusterState;
use crate::resources::redshift_subnet_group::SubnetGroupState;

/// Pipeline media/photos with bucket photos-bucket, table photos-table and
/// `analytics` as its `spec.analytics` (a YAML flow mapping).
fn context(analytics: &str) -> PipelineContext {
    context_from_yaml(&format!(
        "
apiVersion: imagepipeline.io/v1alpha1
kind: ImagePipeline
metadata: {{name: photos, namespace: media}}
spec:
  region: eu-west-1
  network: {{availabilityZones: [eu-west-1a, eu-west-1b]}}
  storage: {{bucketName: photos-bucket}}
  metadata: {{tableName: photos-table}}
  analytics: {analytics}
"
    ))
}

fn desired_of(ctx: &PipelineContext) -> Result<DesiredAnalytics, ComponentError> {
    let mut upstream = Outputs::default();
    upstream.publish(NetworkOutputs {
        private_subnets: ["subnet-a", "subnet-b"]
            .map(|id| crate::engine::SubnetOutput {
                id: id.into(),
                ..Default::default()
            })
            .to_vec(),
        kafka_vpc: Ref::Known("vpc-kafka".into()),
        ..NetworkOutputs::pending()
    });
    Analytics::desired(ctx, &upstream)
}

fn desired(analytics: &str) -> DesiredAnalytics {
    desired_of(&context(analytics)).expect("analytics of a valid spec")
}

fn retained(analytics: &str) -> DesiredAnalytics {
    DesiredAnalytics {
        policy: DeletionPolicy::Retain,
        ..desired(analytics)
    }
}

const SIZED: &str = "{nodeType: ra3.4xlarge, nodes: 4, database: photos}";

/// When the teardowns below run; final snapshots are named after it.
fn deletion_time() -> Timestamp {
    "2026-03-04T05:06:07Z".parse().unwrap()
}

fn final_snapshot_id(desired: &DesiredAnalytics) -> String {
    format!("{}-final-20260304050607", desired.cluster.id)
}

/// The cluster as AWS reports it once made as desired.
fn cluster_as_desired(desired: &DesiredAnalytics) -> ClusterState {
    let cluster = &desired.cluster;
    ClusterState {
        id: cluster.id.clone(),
        arn: cluster.arn.clone(),
        status: "available".into(),
        encrypted: true,
        publicly_accessible: false,
        node_type: cluster.node_type.clone(),
        nodes: cluster.nodes,
        iam_roles: vec![desired.role.arn.clone()],
        endpoint: Some("warehouse.example:5439".into()),
        tags: cluster.tags.clone(),
        schema: SchemaRecord {
            version: Some("1".into()),
            statement: Some("statement-1".into()),
            checked: None,
        },
        final_snapshot: None,
    }
}

#[test]
fn disabled_analytics_wants_nothing_and_removes_the_cluster_without_a_snapshot() {
    let desired = desired("{enabled: false}");
    assert!(!desired.enabled);
    let cluster = desired.ending_cluster(deletion_time());
    assert_eq!(
        (cluster.label(), cluster.delete_fields()),
        (
            format!("Redshift cluster {}", desired.cluster.id),
            vec!["without a final snapshot".to_owned()]
        )
    );
}

#[test]
fn cluster_is_sized_as_the_spec_says_in_the_private_network() {
    let desired = desired(SIZED);
    assert!(desired.enabled);
    let cluster = &desired.cluster;
    assert_eq!(
        (
            cluster.node_type.as_str(),
            cluster.nodes,
            cluster.database.as_str()
        ),
        ("ra3.4xlarge", 4, "photos")
    );
    assert_eq!(desired.subnet_group.subnet_ids, ["subnet-a", "subnet-b"]);
    assert_eq!(cluster.subnet_group, desired.subnet_group.name);
    assert_eq!(desired.security_group.vpc_id, Ref::Known("vpc-kafka".into()));
    assert!(desired.security_group.rules.is_empty());
    assert_eq!(cluster.master_user, None);
    assert_eq!(cluster.role_arn, desired.role.arn);
}

#[test]
fn role_may_only_read_the_pipelines_events_and_their_catalog_table() {
    let role = desired("{}").role;
    let statements = role.policy["Statement"].as_array().expect("statements");
    let resources: Vec<&str> = statements
        .iter()
        .flat_map(|s| s["Resource"].as_array().expect("a list of resources"))
        .filter_map(Value::as_str)
        .collect();
    let database = warehouse_names(&context("{}")).catalog_database;
    assert!(database.starts_with("ipl_media_photos_events_"), "{database}");
    assert_eq!(
        resources,
        [
            "arn:aws:s3:::photos-bucket/events/*".to_owned(),
            "arn:aws:s3:::photos-bucket".to_owned(),
            "arn:aws:s3:::photos-bucket".to_owned(),
            "arn:aws:glue:eu-west-1:123456789012:catalog".to_owned(),
            format!("arn:aws:glue:eu-west-1:123456789012:database/{database}"),
            format!("arn:aws:glue:eu-west-1:123456789012:table/{database}/image_events"),
        ]
    );
    // Listing is limited to the events' prefix as well.
    assert_eq!(
        statements[1]["Condition"],
        json!({ "StringLike": { "s3:prefix": ["events/*"] } })
    );
    let actions: Vec<&str> = statements
        .iter()
        .flat_map(|s| s["Action"].as_array().expect("a list of actions"))
        .filter_map(Value::as_str)
        .collect();
    let reads = ["s3:Get", "s3:List", "glue:Get", "glue:BatchGet"];
    assert!(
        actions
            .iter()
            .all(|a| reads.iter().any(|r| a.starts_with(r)) && !a.contains('*')),
        "{actions:?}"
    );
    assert_eq!(
        role.trust_policy["Statement"][0]["Principal"],
        json!({ "Service": "redshift.amazonaws.com" })
    );
    assert_eq!(
        role.trust_policy["Statement"][0]["Condition"],
        json!({ "StringEquals": { "aws:SourceAccount": "123456789012" } })
    );
}

#[test]
fn a_master_user_secret_that_was_not_read_is_a_terminal_error_naming_the_field() {
    let secret = "{masterUserSecretRef: {name: warehouse-admin}}";
    let mut ctx = context(secret);
    let err = desired_of(&ctx).unwrap_err();
    assert!(
        err.is_terminal() && err.message.contains("spec.analytics.masterUserSecretRef"),
        "{err:?}"
    );

    let user = MasterUser {
        username: "admin".into(),
        password: "secret".into(),
    };
    ctx.master_user = Some(user.clone());
    let desired = desired_of(&ctx).expect("analytics with its master user");
    assert_eq!(desired.cluster.master_user, Some(user));
    // The schema is made as that user.
    assert_eq!(desired.schema(&cluster_as_desired(&desired).schema).user, "admin");
    let managed = desired_of(&context("{}")).unwrap();
    assert_eq!(
        managed.schema(&cluster_as_desired(&managed).schema).user,
        MASTER_USERNAME
    );

    let disabled = "{enabled: false, masterUserSecretRef: {name: warehouse-admin}}";
    assert!(desired_of(&context(disabled)).is_ok());
}

#[test]
fn a_warehouse_as_desired_has_no_delta_and_is_ready() {
    let desired = desired(SIZED);
    let cluster = cluster_as_desired(&desired);
    assert_eq!(desired.cluster.delta(&cluster), Ok(vec![]));
    assert_eq!(desired.cluster.readiness(&cluster), Readiness::Ready);
    let subnets = SubnetGroupState {
        name: desired.subnet_group.name.clone(),
        subnet_ids: vec!["subnet-b".into(), "subnet-a".into()],
        tags: desired.subnet_group.tags.clone(),
    };
    assert_eq!(desired.subnet_group.delta(&subnets), Ok(vec![]));
    let group = GroupState {
        id: "sg-warehouse".into(),
        permissions: vec![],
        tags: desired.security_group.tags.clone(),
    };
    assert_eq!(desired.security_group.delta(&group), Ok(vec![]));
    let role = ObservedRole {
        arn: desired.role.arn.clone(),
        trust_policy: Some(desired.role.trust_policy.clone()),
        tags: desired.role.tags.clone(),
        policy: Some(desired.role.policy.clone()),
    };
    assert_eq!(desired.role.delta(&role), Ok(vec![]));
    // The schema's record is not tag drift.
    assert!(!cluster.tags.keys().any(|k| k.contains("schema")));
}

#[test]
fn each_drift_shows_only_the_field_that_repairs_it() {
    let desired = desired(SIZED);
    let drifted = |drift: fn(&mut ClusterState)| {
        let mut observed = cluster_as_desired(&desired);
        drift(&mut observed);
        desired.cluster.delta(&observed).expect("a delta")
    };
    let role = &desired.role.name;
    let cases = [
        (
            drifted(|c| c.encrypted = false),
            "encrypted: false → true".to_owned(),
        ),
        (
            drifted(|c| c.publicly_accessible = true),
            "publicly accessible: true → false".to_owned(),
        ),
        (
            drifted(|c| c.nodes = 2),
            "nodes: 2 x ra3.4xlarge → 4 x ra3.4xlarge".to_owned(),
        ),
        (
            drifted(|c| c.iam_roles.clear()),
            format!("roles: (without the pipeline role) → {role}"),
        ),
        (
            drifted(|c| c.tags.clear()),
            "tag imagepipeline.io/component: (absent) → analytics".to_owned(),
        ),
    ];
    for (delta, repair) in cases {
        assert!(delta.contains(&repair), "{delta:?} repairs with {repair}");
        let tags = delta.iter().all(|f| f.starts_with("tag "));
        assert!(delta.len() == 1 || tags, "{delta:?}");
    }
    // Only tags change while the cluster is busy.
    let busy = drifted(|c| {
        c.status = "modifying".into();
        c.encrypted = false;
    });
    assert_eq!(busy, Vec::<String>::new());
}

#[test]
fn retain_deletes_the_cluster_with_a_final_snapshot_the_change_names() {
    let desired = retained("{}");
    let cluster = desired.ending_cluster(deletion_time());
    let snapshot = final_snapshot_id(&desired);
    assert_eq!(cluster.final_snapshot.as_deref(), Some(snapshot.as_str()));
    // The controller's Deleted event and the CLI show the resource text.
    let label = cluster.label();
    assert!(
        label.contains(&desired.cluster.id) && label.contains(&snapshot),
        "{label}"
    );
    assert!(cluster.delete_fields()[0].contains("kept, tagged retained"));
}

#[test]
fn delete_deletes_the_cluster_without_a_final_snapshot() {
    let desired = desired("{}");
    let cluster = desired.ending_cluster(deletion_time());
    assert_eq!(cluster.final_snapshot, None);
    assert_eq!(cluster.delete_fields(), ["without a final snapshot"]);
}

#[test]
fn nothing_under_the_cluster_is_touched_while_aws_deletes_it() {
    let cases = [
        ("final-snapshot", "is taking its final snapshot"),
        ("deleting", "is being deleted; its final snapshot"),
    ];
    for policy in [DeletionPolicy::Retain, DeletionPolicy::Delete] {
        let desired = DesiredAnalytics {
            policy,
            ..desired("{}")
        };
        let snapshot = final_snapshot_id(&desired);
        for (status, says) in cases {
            let mut observed = cluster_as_desired(&desired);
            observed.status = status.into();
            observed.final_snapshot = Some(snapshot.clone());
            let waiting = desired
                .ending_cluster(deletion_time())
                .going(&observed)
                .unwrap_or_default();
            assert!(
                waiting.contains(says) && waiting.contains(&snapshot),
                "{policy:?} {status}: {waiting}"
            );
            // Nor is a cluster made again while the old one is still going.
            let err = desired.cluster.delta(&observed).unwrap_err();
            assert_eq!(err.reason, "ClusterDeleting");
        }
    }
    // Right after asking, a teardown looks again before going on.
    const { assert!(RedshiftCluster::DELETED_LATER) };
    let available = cluster_as_desired(&desired("{}"));
    assert_eq!(desired("{}").cluster.going(&available), None);
}

#[test]
fn once_the_cluster_is_gone_retain_keeps_its_snapshot_tagged_as_the_cluster_was() {
    let desired = retained("{}");
    let snapshot = desired.kept_snapshot().expect("Retain keeps the final snapshot");
    const { assert!(FinalSnapshot::KEEPS_DATA) };
    assert_eq!(snapshot.desired_tags(), Some(&desired.cluster.tags));
    assert!(!desired.cluster.tags.contains_key(RETAINED_TAG));
    assert_eq!(FinalSnapshot::TYPE, Some("AWS::Redshift::ClusterSnapshot"));
    assert_eq!(
        snapshot.arn_prefix,
        format!(
            "arn:aws:redshift:eu-west-1:123456789012:snapshot:{}/",
            desired.cluster.id
        )
    );
}

#[test]
fn delete_leaves_a_snapshot_an_earlier_retain_kept_as_it_is() {
    assert_eq!(desired("{}").kept_snapshot(), None);
}
