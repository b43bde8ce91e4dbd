//! Helpers shared by the operator's integration tests.

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
