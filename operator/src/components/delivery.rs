//! Delivery: the Firehose stream that writes image events into the bucket
//! under `events/` (failures under `errors/`), and the IAM role it writes with,
//! which can reach this bucket and nothing else.

use serde_json::json;

use crate::engine::resource::Walk;
use crate::engine::{ComponentError, ComponentKind, Declared, Outputs, PipelineContext};
use crate::resources::delivery_stream::{DeliveryStream, Destination, compression_format};
use crate::resources::iam_role::{self, DesiredRole};

pub use ingest_core::contract::prefix::{ERRORS as ERRORS_PREFIX, EVENTS as EVENTS_PREFIX};

pub struct Delivery;

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredDelivery {
    pub role: DesiredRole,
    pub stream: DeliveryStream,
}

impl Declared for Delivery {
    const KIND: ComponentKind = ComponentKind::Delivery;
    const DEPENDS_ON: &'static [ComponentKind] = &[ComponentKind::Storage];
    type Desired = DesiredDelivery;

    fn desired(ctx: &PipelineContext, _upstream: &Outputs) -> Result<DesiredDelivery, ComponentError> {
        let bucket_arn = ctx.bucket_arn();
        let role_name = ctx.resource_name("firehose", 64);
        let role_arn = ctx.global_arn("iam", &format!("role{}{role_name}", iam_role::ROLE_PATH));
        // What Firehose needs to write objects, on this bucket only.
        let policy = json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Action": [
                    "s3:AbortMultipartUpload", "s3:GetBucketLocation", "s3:GetObject",
                    "s3:ListBucket", "s3:ListBucketMultipartUploads", "s3:PutObject"
                ],
                "Resource": [bucket_arn.clone(), format!("{bucket_arn}/*")]
            }]
        });
        let tags = ctx.tags(Self::KIND);
        let role = DesiredRole::for_service(
            role_name,
            role_arn.clone(),
            "firehose.amazonaws.com",
            &ctx.account_id,
            "deliver-to-bucket",
            policy,
            tags.clone(),
        );
        let name = ctx.resource_name("events", 64);
        let delivery = &ctx.spec.delivery;
        Ok(DesiredDelivery {
            role,
            stream: DeliveryStream {
                arn: ctx.arn("firehose", &format!("deliverystream/{name}")),
                name,
                destination: Destination {
                    bucket_arn,
                    role_arn,
                    prefix: EVENTS_PREFIX.to_owned(),
                    error_prefix: ERRORS_PREFIX.to_owned(),
                    buffer_size_mib: delivery.buffer_size_mib,
                    buffer_interval_seconds: delivery.buffer_interval_seconds,
                    compression: compression_format(delivery.compression),
                },
                tags,
            },
        })
    }

    /// The role, then the stream that writes with it. The stream is given
    /// the role's ARN, which follows from the role's name, rather than a
    /// reference to the role found: a plan finds the stream even while the
    /// role is missing. A teardown deletes the role only once the stream,
    /// which Firehose deletes in the background, is gone.
    async fn declare(
        walk: &mut Walk<'_>,
        desired: &DesiredDelivery,
        outputs: &mut Outputs,
    ) -> Result<(), ComponentError> {
        walk.ensure(&desired.role).await?;
        let stream = walk.ensure(&desired.stream).await?;
        outputs.delivery_stream = stream.map(|stream| stream.name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::engine::resource::Resource;
    use crate::engine::{COMPONENT_TAG, Readiness, context_from_yaml};
    use crate::resources::delivery_stream::StreamState;
    use crate::resources::iam_role::ObservedRole;

    /// The delivery of pipeline media/photos into bucket photos-bucket, with
    /// `delivery` as its `spec.delivery` (a YAML flow mapping).
    fn desired(delivery: &str) -> DesiredDelivery {
        let ctx = context_from_yaml(&format!(
            "
apiVersion: imagepipeline.io/v1alpha1
kind: ImagePipeline
metadata: {{name: photos, namespace: media}}
spec:
  region: eu-west-1
  network: {{availabilityZones: [eu-west-1a, eu-west-1b]}}
  storage: {{bucketName: photos-bucket}}
  delivery: {delivery}
"
        ));
        Delivery::desired(&ctx, &Outputs::default()).expect("delivery of a valid spec")
    }

    const TUNED: &str = "{bufferIntervalSeconds: 120, bufferSizeMiB: 16, compression: ZIP}";

    fn role_as_desired(role: &DesiredRole) -> ObservedRole {
        ObservedRole {
            arn: role.arn.clone(),
            trust_policy: Some(role.trust_policy.clone()),
            tags: role.tags.clone(),
            policy: Some(role.policy.clone()),
        }
    }

    fn stream_as_desired(stream: &DeliveryStream) -> StreamState {
        StreamState {
            name: stream.name.clone(),
            arn: stream.arn.clone(),
            status: "ACTIVE".into(),
            version_id: "1".into(),
            destination_id: "destinationId-000000000001".into(),
            destination: Some(stream.destination.clone()),
            encrypted: true,
            tags: stream.tags.clone(),
        }
    }

    #[test]
    fn stream_writes_events_and_errors_into_the_bucket_buffered_and_compressed_as_the_spec_says() {
        let desired = desired(TUNED);
        let destination = &desired.stream.destination;
        assert_eq!(
            *destination,
            Destination {
                bucket_arn: "arn:aws:s3:::photos-bucket".into(),
                role_arn: desired.role.arn.clone(),
                prefix: "events/".into(),
                error_prefix: "errors/".into(),
                buffer_size_mib: 16,
                buffer_interval_seconds: 120,
                compression: "ZIP".into(),
            }
        );
        assert!(
            desired
                .role
                .arn
                .starts_with("arn:aws:iam::123456789012:role/imagepipeline/ipl-media-photos-firehose-"),
            "{}",
            desired.role.arn
        );
        assert_eq!(desired.stream.tags[COMPONENT_TAG], "delivery");
    }

    #[test]
    fn every_compression_of_the_spec_is_the_firehose_format_of_that_name() {
        for format in ["UNCOMPRESSED", "GZIP", "ZIP", "Snappy", "HADOOP_SNAPPY"] {
            let desired = desired(&format!("{{compression: {format}}}"));
            assert_eq!(desired.stream.destination.compression, format);
        }
    }

    #[test]
    fn role_may_write_to_the_pipelines_bucket_and_nothing_else() {
        let policy = desired("{}").role.policy;
        let statements = policy["Statement"].as_array().expect("statements");
        assert!(!statements.is_empty());
        for statement in statements {
            assert_eq!(
                statement["Resource"],
                json!(["arn:aws:s3:::photos-bucket", "arn:aws:s3:::photos-bucket/*"])
            );
            let actions = statement["Action"].as_array().expect("a list of actions");
            assert!(
                actions
                    .iter()
                    .filter_map(Value::as_str)
                    .all(|a| a.starts_with("s3:") && !a.contains('*')),
                "{actions:?}"
            );
        }
    }

    #[test]
    fn only_firehose_on_behalf_of_this_account_may_assume_the_role() {
        let trust = desired("{}").role.trust_policy;
        assert_eq!(
            trust["Statement"],
            json!([{
                "Effect": "Allow",
                "Principal": { "Service": "firehose.amazonaws.com" },
                "Action": "sts:AssumeRole",
                "Condition": { "StringEquals": { "aws:SourceAccount": "123456789012" } }
            }])
        );
    }

    #[test]
    fn a_delivery_as_desired_needs_no_change() {
        let desired = desired(TUNED);
        assert_eq!(desired.role.delta(&role_as_desired(&desired.role)), Ok(vec![]));
        let stream = stream_as_desired(&desired.stream);
        assert_eq!(desired.stream.delta(&stream), Ok(vec![]));
        assert_eq!(desired.stream.readiness(&stream), Readiness::Ready);
    }

    #[test]
    fn each_drift_yields_only_the_field_that_repairs_it() {
        let desired = desired(TUNED);
        let stream = |drift: fn(&mut StreamState)| {
            let mut observed = stream_as_desired(&desired.stream);
            drift(&mut observed);
            desired.stream.delta(&observed).unwrap()
        };
        let destination = |drift: fn(&mut Destination)| {
            let mut observed = stream_as_desired(&desired.stream);
            drift(observed.destination.as_mut().unwrap());
            desired.stream.delta(&observed).unwrap()
        };
        let role = |drift: fn(&mut ObservedRole)| {
            let mut observed = role_as_desired(&desired.role);
            drift(&mut observed);
            desired.role.delta(&observed).unwrap()
        };
        let cases = [
            (destination(|d| d.buffer_size_mib = 5), "buffer size MiB: 5 → 16"),
            (
                destination(|d| d.buffer_interval_seconds = 60),
                "buffer interval seconds: 60 → 120",
            ),
            (
                destination(|d| d.compression = "GZIP".into()),
                "compression: GZIP → ZIP",
            ),
            (
                destination(|d| d.prefix = String::new()),
                "prefix: (none) → events/",
            ),
            (stream(|s| s.encrypted = false), "encrypted: false → true"),
            (
                stream(|s| {
                    s.tags.insert("team".into(), "other".into());
                }),
                "tag team: other → (absent)",
            ),
            (
                role(|r| r.policy.as_mut().unwrap()["Statement"][0]["Resource"] = json!("*")),
                "policy deliver-to-bucket: (other statements) → as specified",
            ),
            (
                role(|r| r.trust_policy.as_mut().unwrap()["Statement"][0]["Condition"] = json!({})),
                "trust policy: who may assume the role differs from the spec",
            ),
        ];
        for (delta, repair) in cases {
            assert_eq!(delta, [repair]);
        }
    }

    #[test]
    fn a_stream_not_yet_active_only_gets_its_tags_and_one_being_deleted_is_waited_for() {
        let desired = desired(TUNED);
        let mut creating = stream_as_desired(&desired.stream);
        creating.status = "CREATING".into();
        creating.encrypted = false;
        creating.destination = None;
        creating.tags.clear();
        let delta = desired.stream.delta(&creating).unwrap();
        assert!(delta.iter().all(|f| f.starts_with("tag ")), "{delta:?}");
        assert_eq!(
            desired.stream.readiness(&creating),
            Readiness::Waiting(format!("Firehose stream {} is CREATING", desired.stream.name))
        );
        let deleting = StreamState {
            status: "DELETING".into(),
            ..creating
        };
        let err = desired.stream.delta(&deleting).unwrap_err();
        assert_eq!(
            (err.reason.as_str(), err.is_terminal()),
            ("StreamDeleting", false)
        );
        assert!(desired.stream.going(&deleting).is_some());
    }
}
