//! `ImagePipeline` v1alpha1: the API users write.
//!
//! These types are the source of truth: the CRD in `crds/` is generated from
//! them (`imagepipeline crd`). Doc comments become `kubectl explain` text, so
//! they are written for the user. Rules that Kubernetes can check at admission
//! live here as `x-kubernetes-validations`, each with a message that names the
//! field, so `kubectl apply` rejects a bad spec before the operator sees it.
//!
//! Defaults sit in the schema wherever the apiserver can apply them. A few
//! cannot: the managed-broker settings (`kafka.brokers`, `kafka.volumeGiB`,
//! `kafka.instanceType`) would otherwise appear in every object and collide
//! with `kafka.bootstrapServers`, so the reconciler applies those, and the
//! documentation of each field says so.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::{CustomResource, KubeSchema};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

mod defaults;
mod status;

pub use status::{
    AwsErrorRecord, AwsResource, DriftCorrection, Endpoints, EstimatedMonthlyCost, ImagePipelineStatus,
    KafkaBrokerStatus, Phase, PipelineCondition,
};

/// Defaults that the reconciler applies to managed Kafka brokers. They are not
/// schema defaults: see the module documentation.
pub mod managed_kafka_defaults {
    /// Number of broker instances when `kafka.brokers` is unset.
    pub const BROKERS: i32 = 3;
    /// EBS data volume size when `kafka.volumeGiB` is unset.
    pub const VOLUME_GIB: i32 = 100;
    /// Broker instance type when `kafka.instanceType` is unset.
    pub const INSTANCE_TYPE: &str = "m7i.large";
    /// The Kafka release the brokers install when `kafka.distribution` gives
    /// neither `url` nor `s3Uri`: Apache's, over HTTPS, checked against the
    /// `.sha512` published beside it.
    pub const DISTRIBUTION_URL: &str = "https://archive.apache.org/dist/kafka/4.1.1/kafka_2.13-4.1.1.tgz";
}

/// Desired state of an image-ingestion pipeline on AWS.
///
/// One ImagePipeline becomes an upload API on an Auto Scaling Group behind a
/// load balancer, Kafka brokers in an isolated VPC, a Firehose stream into an
/// S3 bucket that expires objects after `storage.retentionDays`, a DynamoDB
/// table of image metadata, an optional Redshift cluster, and the in-cluster
/// upload-api and stream-bridge services.
// Each printer column repeats `type_ = "string"`; clippy takes that for a
// duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "imagepipeline.io",
    version = "v1alpha1",
    kind = "ImagePipeline",
    plural = "imagepipelines",
    shortname = "ipl",
    category = "imagepipeline",
    namespaced,
    doc = "An image-ingestion pipeline on AWS that the ImagePipeline operator creates and keeps in shape. `kubectl explain imagepipeline.spec` describes every setting.",
    status = "ImagePipelineStatus",
    printcolumn(
        name = "Ready",
        type_ = "string",
        description = "Whether every component of the pipeline is ready",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        description = "Lifecycle phase",
        json_path = ".status.phase"
    ),
    printcolumn(
        name = "Cost/Month",
        type_ = "string",
        description = "Estimated monthly cost of the parts with a fixed price, in status.estimatedMonthlyCost.currency (plan shows the rest)",
        json_path = ".status.estimatedMonthlyCost.amount"
    ),
    printcolumn(
        name = "Upload URL",
        type_ = "string",
        description = "Public URL of the upload API",
        json_path = ".status.endpoints.uploadUrl"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(
    validation = Rule::new("self.network.availabilityZones.all(z, z.startsWith(self.region))")
        .message("every spec.network.availabilityZones entry must be a zone of spec.region (for example eu-west-1a in eu-west-1)")
        .field_path(".network.availabilityZones"),
    validation = Rule::new("!has(self.uploadApi.certificateArn) || self.uploadApi.certificateArn.split(':')[3] == self.region")
        .message("spec.uploadApi.certificateArn must be an ACM certificate in spec.region: the load balancer can only use certificates of its own region")
        .field_path(".uploadApi.certificateArn"),
)]
#[serde(rename_all = "camelCase")]
pub struct ImagePipelineSpec {
    /// AWS region of every resource of the pipeline, for example `eu-west-1`.
    /// Immutable: a pipeline cannot move regions; create a new ImagePipeline instead.
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.region is immutable: create a new ImagePipeline to use another region"))]
    #[schemars(length(max = 32), regex(pattern = r"^[a-z]{2}(-[a-z]+)+-[0-9]+$"))]
    pub region: String,

    /// Tags added to every AWS resource of the pipeline, besides the operator's own
    /// `imagepipeline.io/owner` and `imagepipeline.io/component`. At most 40 tags;
    /// keys must not start with `aws:` or `imagepipeline.io/`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "aws_tags_schema")]
    #[x_kube(validation = Rule::new("self.all(k, !k.startsWith('aws:') && !k.startsWith('imagepipeline.io/'))")
        .message("spec.tags keys must not start with 'aws:' (reserved by AWS) or 'imagepipeline.io/' (reserved by the operator)"))]
    pub tags: BTreeMap<String, String>,

    /// What happens to the pipeline's data when the ImagePipeline is deleted.
    /// `Delete` removes the bucket, the table and the Redshift cluster.
    /// `Retain` keeps the bucket and the table, and deletes the Redshift cluster
    /// after AWS has taken a final snapshot of it, because a running cluster
    /// would hold the subnets and security group it stands on. The snapshot,
    /// `<cluster>-final-<UTC yyyymmddhhmmss>`, is kept until you delete it, is
    /// listed in `status.resources` and named in the deletion's event. What is
    /// kept is tagged `imagepipeline.io/retained=true` and stands on nothing the
    /// deletion removes. Compute, network and IAM are always removed.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// When true the operator only observes and reports: it changes nothing in AWS
    /// or in the cluster until this is false again.
    #[serde(default)]
    pub paused: bool,

    /// The two VPCs of the pipeline and how they are peered.
    pub network: NetworkSpec,

    /// The upload API on EC2: Auto Scaling Group, launch template and load balancer.
    #[serde(default)]
    pub upload_api: UploadApiSpec,

    /// Kafka: brokers managed by the operator on EC2, or an existing cluster.
    #[serde(default)]
    pub kafka: KafkaSpec,

    /// Firehose delivery of image events into the bucket under `events/`.
    #[serde(default)]
    pub delivery: DeliverySpec,

    /// The S3 bucket that holds images and events.
    #[serde(default)]
    pub storage: StorageSpec,

    /// The DynamoDB table of image metadata.
    #[serde(default)]
    pub metadata: MetadataSpec,

    /// The Redshift cluster analysts query.
    #[serde(default)]
    pub analytics: AnalyticsSpec,

    /// The upload-api and stream-bridge Deployments the operator runs in this namespace.
    #[serde(default)]
    pub services: ServicesSpec,
}

/// Fate of the stateful resources when the ImagePipeline is deleted.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Delete the bucket (with its objects), the table and the Redshift cluster.
    #[default]
    Delete,
    /// Keep the bucket and the table, and the Redshift cluster's data as a final
    /// snapshot taken before the cluster is deleted; all tagged as retained.
    Retain,
}

/// Network of the pipeline.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("!isCIDR(self.apiVpcCidr) || !isCIDR(self.kafkaVpcCidr) || !(cidr(self.apiVpcCidr).containsCIDR(self.kafkaVpcCidr) || cidr(self.kafkaVpcCidr).containsCIDR(self.apiVpcCidr))")
        .message("spec.network.kafkaVpcCidr must not overlap spec.network.apiVpcCidr: the two VPCs are peered")
        .field_path(".kafkaVpcCidr"),
)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSpec {
    /// Availability zones of the pipeline's region to spread subnets, instances
    /// and brokers over: at least 2 distinct zones, at most 6.
    #[schemars(
        length(min = 2, max = 6),
        inner(length(max = 32), regex(pattern = r"^[a-z]{2}(-[a-z]+)+-[0-9]+[a-z]$"))
    )]
    #[x_kube(validation = Rule::new("self.all(z, self.exists_one(y, y == z))")
        .message("spec.network.availabilityZones must list distinct zones"))]
    pub availability_zones: Vec<String>,

    /// IPv4 CIDR of the upload API's VPC, /16 to /24. Immutable.
    #[serde(default = "defaults::default_api_vpc_cidr")]
    #[schemars(length(max = 18))]
    #[x_kube(
        validation = Rule::new("isCIDR(self) && cidr(self).ip().family() == 4").message("spec.network.apiVpcCidr must be an IPv4 CIDR block such as 10.40.0.0/16"),
        validation = Rule::new("!isCIDR(self) || (cidr(self).prefixLength() >= 16 && cidr(self).prefixLength() <= 24)").message("spec.network.apiVpcCidr must have a prefix length from /16 to /24"),
        validation = Rule::new("!isCIDR(self) || cidr(self).masked().string() == self").message("spec.network.apiVpcCidr must be a network address, with no host bits set (10.40.0.0/16, not 10.40.1.0/16)"),
        validation = Rule::new("self == oldSelf").message("spec.network.apiVpcCidr is immutable: a VPC cannot change its CIDR"),
    )]
    pub api_vpc_cidr: String,

    /// IPv4 CIDR of the Kafka VPC, /16 to /24; must not overlap `apiVpcCidr` or the
    /// cluster's VPC. Immutable.
    #[serde(default = "defaults::default_kafka_vpc_cidr")]
    #[schemars(length(max = 18))]
    #[x_kube(
        validation = Rule::new("isCIDR(self) && cidr(self).ip().family() == 4").message("spec.network.kafkaVpcCidr must be an IPv4 CIDR block such as 10.41.0.0/16"),
        validation = Rule::new("!isCIDR(self) || (cidr(self).prefixLength() >= 16 && cidr(self).prefixLength() <= 24)").message("spec.network.kafkaVpcCidr must have a prefix length from /16 to /24"),
        validation = Rule::new("!isCIDR(self) || cidr(self).masked().string() == self").message("spec.network.kafkaVpcCidr must be a network address, with no host bits set (10.41.0.0/16, not 10.41.1.0/16)"),
        validation = Rule::new("self == oldSelf").message("spec.network.kafkaVpcCidr is immutable: a VPC cannot change its CIDR"),
    )]
    pub kafka_vpc_cidr: String,

    /// VPC of this Kubernetes cluster. When set, it is peered with the Kafka VPC so
    /// the in-cluster stream-bridge can reach the brokers; its CIDR must not overlap
    /// `kafkaVpcCidr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^vpc-[0-9a-f]{8,17}$"))]
    pub cluster_vpc_id: Option<String>,
}

/// The upload API tier on EC2.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("self.minSize <= self.maxSize")
        .message("spec.uploadApi.minSize must not exceed spec.uploadApi.maxSize")
        .field_path(".minSize"),
    validation = Rule::new("!has(self.desiredCapacity) || (self.minSize <= self.desiredCapacity && self.desiredCapacity <= self.maxSize)")
        .message("spec.uploadApi.desiredCapacity must lie between spec.uploadApi.minSize and spec.uploadApi.maxSize")
        .field_path(".desiredCapacity"),
)]
#[serde(rename_all = "camelCase")]
pub struct UploadApiSpec {
    /// Container image of the upload API run on each instance. Defaults to the
    /// upload-api image released with this operator version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,

    /// EC2 instance type of the upload API instances. Changing it rolls the instances.
    #[serde(default = "defaults::default_upload_instance_type")]
    #[schemars(length(max = 32), regex(pattern = r"^[a-z0-9-]+\.[a-z0-9-]+$"))]
    pub instance_type: String,

    /// AMI of the instances. Defaults to the latest Amazon Linux 2023 image, read
    /// from the SSM public parameter at each reconcile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^ami-[0-9a-f]{8,17}$"))]
    pub ami_id: Option<String>,

    /// Smallest number of instances in the Auto Scaling Group.
    #[serde(default = "defaults::default_min_size")]
    #[schemars(range(min = 0, max = 1000))]
    pub min_size: i32,

    /// Largest number of instances in the Auto Scaling Group.
    #[serde(default = "defaults::default_max_size")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_size: i32,

    /// Instances to start with, between minSize and maxSize. Unset leaves the
    /// count to the scaling policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub desired_capacity: Option<i32>,

    /// Average CPU utilisation, in percent, that the target-tracking scaling
    /// policy keeps the group at.
    #[serde(default = "defaults::default_target_cpu_percent")]
    #[schemars(range(min = 10, max = 90))]
    pub target_cpu_percent: i32,

    /// Largest image accepted, in bytes, through the API and from Kafka. At most 100 MiB.
    #[serde(default = "defaults::default_max_image_bytes")]
    #[schemars(range(min = 1024, max = 104_857_600))]
    pub max_image_bytes: i64,

    /// Most pixels an image may hold: width × height, times the frames of an
    /// animation. A larger image is refused (413) from its header, before it
    /// is decoded, so a decompression bomb costs nothing. At most 1 gigapixel.
    #[serde(default = "defaults::default_max_image_pixels")]
    #[schemars(range(min = 1, max = 1_000_000_000))]
    pub max_image_pixels: i64,

    /// Most frames an animated GIF, PNG or WebP may hold (413 beyond).
    #[serde(default = "defaults::default_max_image_frames")]
    #[schemars(range(min = 1, max = 100_000))]
    pub max_image_frames: i32,

    /// Metadata removed from every image before it is stored, without
    /// re-encoding its pixels: `all` (the default) keeps only the EXIF
    /// orientation and the colour profile; `location` removes GPS
    /// coordinates, XMP and IPTC; `none` stores the bytes as sent. The
    /// stored object, its SHA-256 and deduplication are of what remains;
    /// the item keeps the SHA-256 of what was sent (`originalSha256`).
    #[serde(default)]
    pub strip_metadata: StripMetadata,

    /// Image types accepted, as MIME types; bytes must match the declared type.
    #[serde(default = "defaults::default_allowed_content_types")]
    #[schemars(length(min = 1, max = 4), extend("x-kubernetes-list-type" = "set"))]
    pub allowed_content_types: Vec<ImageContentType>,

    /// ARN of an ACM certificate in the pipeline's region. When set, the load
    /// balancer listens on HTTPS 443 with it; otherwise on HTTP 80.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 2048),
        regex(pattern = r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[A-Za-z0-9-]+$")
    )]
    pub certificate_arn: Option<String>,

    /// Secret in this namespace holding the API keys clients send as
    /// `Authorization: Bearer <key>`, one key a line. When unset, the operator
    /// generates one key into the Secret `<name>-upload-api-keys`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_keys_secret_ref: Option<SecretKeyRef>,

    /// What each API key may send, by its name in the keys file (`name:key`
    /// lines; a plain key is named `key-` and the start of its SHA-256).
    /// Beyond it the answer is 429 with `Retry-After`. Unlimited when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_key_limits: Option<PerKeyLimits>,
}

/// Token buckets per API key, each holding a second's worth.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PerKeyLimits {
    /// Requests a second, on every authenticated route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100_000))]
    pub requests_per_second: Option<i32>,
    /// Upload bytes a second. An upload is admitted while the key is not in
    /// debt and charged what it sent, so one image larger than a second's
    /// worth still passes, and the key waits afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1024, max = 10_737_418_240_i64))]
    pub bytes_per_second: Option<i64>,
}

/// What `spec.uploadApi.stripMetadata` removes.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum StripMetadata {
    /// Everything but the EXIF orientation and the colour profile.
    #[default]
    All,
    /// What can say where a picture was taken: GPS coordinates, XMP, IPTC.
    Location,
    /// Nothing.
    None,
}

impl From<StripMetadata> for ingest_core::StripMetadata {
    fn from(policy: StripMetadata) -> Self {
        match policy {
            StripMetadata::All => ingest_core::StripMetadata::All,
            StripMetadata::Location => ingest_core::StripMetadata::Location,
            StripMetadata::None => ingest_core::StripMetadata::None,
        }
    }
}

/// An image type the pipeline accepts.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ImageContentType {
    /// JPEG.
    #[serde(rename = "image/jpeg")]
    Jpeg,
    /// PNG.
    #[serde(rename = "image/png")]
    Png,
    /// WebP.
    #[serde(rename = "image/webp")]
    Webp,
    /// GIF.
    #[serde(rename = "image/gif")]
    Gif,
}

/// A key of a Secret in the ImagePipeline's namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret.
    #[serde(default = "defaults::default_api_keys_secret_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Kafka: brokers managed on EC2 (`brokers`, `instanceType`, `amiId`, `volumeGiB`,
/// `distribution`) or an existing cluster (`bootstrapServers`), never both.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("!has(self.bootstrapServers) || !(has(self.brokers) || has(self.instanceType) || has(self.amiId) || has(self.volumeGiB) || has(self.distribution))")
        .message("spec.kafka.bootstrapServers cannot be combined with managed-broker settings (brokers, instanceType, amiId, volumeGiB, distribution): use an existing cluster or let the operator run brokers, not both")
        .field_path(".bootstrapServers"),
    validation = Rule::new("has(self.bootstrapServers) || self.replicationFactor <= (has(self.brokers) ? self.brokers : 3)")
        .message("spec.kafka.replicationFactor must not exceed spec.kafka.brokers (3 when unset)")
        .field_path(".replicationFactor"),
)]
#[serde(rename_all = "camelCase")]
pub struct KafkaSpec {
    /// Number of broker instances the operator runs, each a KRaft broker and
    /// controller with a fixed private IP. Default 3 when `bootstrapServers` is unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 9))]
    pub brokers: Option<i32>,

    /// EC2 instance type of the brokers. Default m7i.large.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), regex(pattern = r"^[a-z0-9-]+\.[a-z0-9-]+$"))]
    pub instance_type: Option<String>,

    /// AMI of the brokers. Defaults to the latest Amazon Linux 2023 image: the
    /// brokers install a Java runtime from the Amazon Linux repositories and
    /// Kafka from `distribution`, both through the Kafka VPC's S3 endpoint.
    /// An AMI that already has Kafka at /opt/kafka and Java skips both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^ami-[0-9a-f]{8,17}$"))]
    pub ami_id: Option<String>,

    /// Size of each broker's encrypted EBS data volume, in GiB. Default 100.
    #[serde(default, rename = "volumeGiB", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 16384))]
    pub volume_gib: Option<i32>,

    /// Where the managed brokers get Apache Kafka from. Default: Apache Kafka
    /// 4.1.1 from the Apache archive, checked against the SHA-512 published
    /// beside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<KafkaDistributionSpec>,

    /// `host:port` addresses of an existing Kafka cluster. When set, no broker
    /// instances are made and the stream-bridge consumes from this cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 16),
        inner(length(max = 261), regex(pattern = r"^[A-Za-z0-9.-]+:[0-9]{1,5}$"))
    )]
    pub bootstrap_servers: Option<Vec<String>>,

    /// Topic the stream-bridge consumes images from; dead letters go to `<topic>.dlq`.
    #[serde(default = "defaults::default_topic")]
    #[schemars(length(min = 1, max = 245), regex(pattern = r"^[A-Za-z0-9._-]+$"))]
    pub topic: String,

    /// Partitions of the topic (and of its dead-letter topic).
    #[serde(default = "defaults::default_partitions")]
    #[schemars(range(min = 1, max = 10000))]
    pub partitions: i32,

    /// Replication factor of the topics; at most `brokers`.
    #[serde(default = "defaults::default_replication_factor")]
    #[schemars(range(min = 1, max = 9))]
    pub replication_factor: i32,
}

/// The Apache Kafka binary release (`kafka_<scala>-<version>.tgz`) the managed
/// brokers install. The Kafka VPC has no internet access, so the operator
/// copies the archive from `url` into the pipeline's bucket, under
/// `artifacts/kafka/<version>/` (never expired), once per version, and
/// refuses it unless its SHA-512 is the one expected. The brokers install it
/// from the bucket and check the SHA-512 again. Give `url` (or nothing, for
/// the default release) or `s3Uri`, not both.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(
    validation = Rule::new("!(has(self.url) && has(self.s3Uri))")
        .message("spec.kafka.distribution.url and spec.kafka.distribution.s3Uri exclude each other: give the archive's HTTPS URL for the operator to copy, or the S3 URI of a copy you placed, not both")
        .field_path(".s3Uri"),
)]
#[serde(rename_all = "camelCase")]
pub struct KafkaDistributionSpec {
    /// HTTPS URL of the release archive, whose file name is
    /// `kafka_<scala>-<version>.tgz`, e.g.
    /// `https://archive.apache.org/dist/kafka/4.1.1/kafka_2.13-4.1.1.tgz` (the
    /// default). The operator downloads it once per version into the
    /// pipeline's bucket. Use a mirror the operator can reach, or `s3Uri`
    /// where it cannot reach any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https://[^\s/?#]+/\S+$"))]
    pub url: Option<String>,

    /// SHA-512 of the archive, 128 hexadecimal digits (`sha512sum` prints it).
    /// Default: the one published beside the archive, at `<url>.sha512` (or
    /// `<s3Uri>.sha512`), in Apache's format or `sha512sum`'s. An archive
    /// whose SHA-512 differs is refused. Setting it to another value stages the
    /// archive again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9a-fA-F]{128}$"))]
    pub sha512: Option<String>,

    /// S3 URI of a copy of the archive you placed, for an operator without
    /// internet access, e.g. `s3://my-artifacts/kafka/kafka_2.13-4.1.1.tgz`:
    /// the brokers install it from there, and nothing is staged. The
    /// operator never changes or deletes it. Its SHA-512 is `sha512`, or the
    /// `<s3Uri>.sha512` object beside it. The brokers read it through the
    /// Kafka VPC's S3 endpoint, so the bucket must be in the pipeline's
    /// region.
    #[serde(default, rename = "s3Uri", skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1100), regex(pattern = r"^s3://[a-z0-9.-]{3,63}/.+"))]
    pub s3_uri: Option<String>,
}

/// Firehose delivery of image events to S3.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeliverySpec {
    /// Longest time Firehose buffers events before writing an object, in seconds.
    #[serde(default = "defaults::default_buffer_interval_seconds")]
    #[schemars(range(min = 0, max = 900))]
    pub buffer_interval_seconds: i32,

    /// Largest buffer Firehose fills before writing an object, in MiB.
    #[serde(default = "defaults::default_buffer_size_mib", rename = "bufferSizeMiB")]
    #[schemars(range(min = 1, max = 128))]
    pub buffer_size_mib: i32,

    /// Compression of the event objects Firehose writes.
    #[serde(default)]
    pub compression: Compression,
}

/// Compression formats Firehose can write to S3.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// No compression.
    #[serde(rename = "UNCOMPRESSED")]
    Uncompressed,
    /// gzip; Redshift's COPY reads it directly.
    #[default]
    #[serde(rename = "GZIP")]
    Gzip,
    /// zip.
    #[serde(rename = "ZIP")]
    Zip,
    /// Raw Snappy.
    #[serde(rename = "Snappy")]
    Snappy,
    /// Hadoop-compatible Snappy.
    #[serde(rename = "HADOOP_SNAPPY")]
    HadoopSnappy,
}

/// The S3 bucket of the pipeline.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("has(self.bucketName) == has(oldSelf.bucketName) && (!has(self.bucketName) || self.bucketName == oldSelf.bucketName)")
        .message("spec.storage.bucketName is immutable: it cannot be set, changed or removed after creation")
        .field_path(".bucketName"),
)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Name of the bucket, globally unique in S3. Defaults to a name derived from
    /// the ImagePipeline's namespace and name. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 63))]
    #[x_kube(
        validation = Rule::new("self.matches('^[a-z0-9][a-z0-9.-]*[a-z0-9]$')").message("spec.storage.bucketName must use only lowercase letters, digits, dots and hyphens, and begin and end with a letter or digit"),
        validation = Rule::new("!self.contains('..')").message("spec.storage.bucketName must not contain two adjacent periods"),
        validation = Rule::new("!self.matches('^[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+$')").message("spec.storage.bucketName must not be formatted as an IP address"),
        validation = Rule::new("!(self.startsWith('xn--') || self.startsWith('sthree-') || self.startsWith('amzn-s3-demo-'))").message("spec.storage.bucketName must not start with a prefix S3 reserves (xn--, sthree-, amzn-s3-demo-)"),
        validation = Rule::new("!(self.endsWith('-s3alias') || self.endsWith('--ol-s3') || self.endsWith('.mrap') || self.endsWith('--x-s3') || self.endsWith('--table-s3'))").message("spec.storage.bucketName must not end with a suffix S3 reserves (-s3alias, --ol-s3, .mrap, --x-s3, --table-s3)"),
    )]
    pub bucket_name: Option<String>,

    /// Days after which images (`images/`) and events (`events/`) expire from the
    /// bucket, and after which DynamoDB items expire (`expiresAt`). 1 to 3650.
    #[serde(default = "defaults::default_retention_days")]
    #[schemars(range(min = 1, max = 3650))]
    pub retention_days: i32,
}

/// The DynamoDB table of image metadata.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("has(self.tableName) == has(oldSelf.tableName) && (!has(self.tableName) || self.tableName == oldSelf.tableName)")
        .message("spec.metadata.tableName is immutable: it cannot be set, changed or removed after creation")
        .field_path(".tableName"),
)]
#[serde(rename_all = "camelCase")]
pub struct MetadataSpec {
    /// Name of the table. Defaults to a name derived from the ImagePipeline's
    /// namespace and name. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 255), regex(pattern = r"^[A-Za-z0-9_.-]+$"))]
    pub table_name: Option<String>,
}

/// The Redshift cluster for analysts.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsSpec {
    /// Whether to run the Redshift cluster at all.
    #[serde(default = "defaults::default_true")]
    pub enabled: bool,

    /// Redshift node type.
    #[serde(default = "defaults::default_node_type")]
    #[schemars(length(max = 32), regex(pattern = r"^[a-z0-9]+\.[a-z0-9]+$"))]
    pub node_type: String,

    /// Number of nodes; 1 makes a single-node cluster.
    #[serde(default = "defaults::default_nodes")]
    #[schemars(range(min = 1, max = 128))]
    pub nodes: i32,

    /// Database the analysis schema is created in.
    #[serde(default = "defaults::default_database")]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-z_][a-z0-9_$]*$"))]
    pub database: String,

    /// Secret in this namespace with keys `username` and `password` for the
    /// cluster's admin user. When unset, Redshift manages the password in AWS
    /// Secrets Manager and it never passes through Kubernetes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_user_secret_ref: Option<SecretRef>,
}

/// A Secret in the ImagePipeline's namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub struct SecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// The services the operator runs in the cluster.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServicesSpec {
    /// The upload-api Deployment and its Service.
    #[serde(default)]
    pub upload: ServiceSpec,

    /// The stream-bridge Deployment, consuming the Kafka topic.
    #[serde(default)]
    pub stream_bridge: ServiceSpec,

    /// Annotations of the services' ServiceAccount, for example
    /// `eks.amazonaws.com/role-arn` for IAM Roles for Service Accounts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub service_account_annotations: BTreeMap<String, String>,
}

/// One in-cluster service.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Number of pods.
    #[serde(default = "defaults::default_service_replicas")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,

    /// Container image. Defaults to the image released with this operator version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,

    /// CPU and memory requests and limits of the container. Defaults suit a
    /// small pipeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// AWS allows 50 tags a resource; the operator keeps some for its own.
const MAX_USER_TAGS: u32 = 40;

fn aws_tags_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "maxProperties": MAX_USER_TAGS,
        "additionalProperties": { "type": "string", "maxLength": 256 },
    })
}

/// Each `Default` is what the schema defaults produce for an omitted section,
/// so the typed value and the admitted object never disagree.
macro_rules! default_from_empty_object {
    ($($ty:ty),* $(,)?) => {$(
        impl Default for $ty {
            fn default() -> Self {
                serde_json::from_value(serde_json::json!({}))
                    .expect(concat!(stringify!($ty), " has a default for every field"))
            }
        }
    )*};
}
default_from_empty_object!(
    UploadApiSpec,
    KafkaSpec,
    DeliverySpec,
    StorageSpec,
    MetadataSpec,
    AnalyticsSpec,
    ServicesSpec,
    ServiceSpec,
);
