//! Helpers shared by the operator's integration tests.
#![allow(dead_code)]

use imagepipeline_e2e::AwsEmulator;
use imagepipeline_operator::api::v1alpha1::ImagePipelineSpec;
use imagepipeline_operator::aws::{AwsClients, CallLog};
use imagepipeline_operator::engine::{Engine, Owner, PipelineContext};

/// The smallest pipeline of the tests: two zones, one Redshift node.
pub const MINIMAL: &str = "
apiVersion: imagepipeline.io/v1alpha1
kind: ImagePipeline
metadata: { name: photos, namespace: media }
spec:
  region: eu-west-1
  tags: { team: media }
  network: { availabilityZones: [eu-west-1a, eu-west-1b] }
  analytics: { nodes: 1 }
  # Tests have no internet: Kafka comes from a copy in the emulator
  # (imagepipeline_e2e::brokers::KAFKA_DISTRIBUTION_URI).
  kafka: { distribution: { s3Uri: s3://imagepipeline-test-kafka/kafka_2.13-4.1.1.tgz } }
";

/// The engine of pipeline `media/photos` with `spec`, against `emulator`,
/// as the controller makes it (the account resolved, no Secrets read).
pub async fn photos_engine(emulator: &AwsEmulator, spec: ImagePipelineSpec) -> (Engine, PipelineContext) {
    let config = emulator.sdk_config().await;
    let engine = imagepipeline_operator::pipeline::engine(
        AwsClients::from_sdk_config(&config, CallLog::new()).expect("clients"),
    );
    let owner = Owner {
        namespace: "media".into(),
        name: "photos".into(),
    };
    let ctx = engine.context(owner, spec).await.expect("account id from sts");
    (engine, ctx)
}
