//! What the operator reports: the status of an ImagePipeline.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state of an ImagePipeline.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImagePipelineStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Lifecycle phase of the pipeline as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,

    /// `Ready`, plus one condition per component: `NetworkReady`, `StorageReady`,
    /// `MetadataReady`, `DeliveryReady`, `UploadTierReady`, `KafkaReady`,
    /// `AnalyticsReady`, `ServicesReady`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<PipelineCondition>,

    /// Per component, the last AWS error it met, kept after the component
    /// recovers (events expire within an hour; this does not).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["component"]))]
    pub last_aws_error: Vec<AwsErrorRecord>,

    /// Per component, the last time the operator put back what was changed
    /// in AWS outside the spec: one entry per resource it corrected then.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_drift: Vec<DriftCorrection>,

    /// Where to reach the pipeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Endpoints>,

    /// The AWS resources the operator made for this pipeline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<AwsResource>,

    /// The managed Kafka brokers and what each last reported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kafka_brokers: Vec<KafkaBrokerStatus>,

    /// What the spec's fixed AWS resources cost a month at on-demand list
    /// prices: instances, EBS volumes, the load balancer's hours and the
    /// Redshift nodes. Usage-priced parts (S3, DynamoDB, Firehose) are not
    /// in it; `imagepipeline plan` shows their rates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_monthly_cost: Option<EstimatedMonthlyCost>,
}

/// A `metav1.Condition` (so `kubectl wait --for=condition=Ready` and other
/// tools read it as one), which also says, when it is False because of an
/// AWS error, which answer and which resource.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PipelineCondition {
    /// `Ready`, or `<Component>Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// CamelCase reason, e.g. `AccessDenied`.
    pub reason: String,
    /// What is wrong and what to do, for a person.
    pub message: String,
    /// When `status` last changed.
    pub last_transition_time: Time,
    /// The `metadata.generation` this condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The AWS error code of the answer that failed the component, e.g.
    /// `UnauthorizedOperation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_error_code: Option<String>,
    /// The request id AWS gave that answer: what AWS support and CloudTrail
    /// look it up by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_request_id: Option<String>,
    /// The AWS resource the failure concerns, as `imagepipeline plan` names
    /// it, e.g. `S3 bucket ipl-media-photos-…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

/// The last AWS error a component met.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AwsErrorRecord {
    /// The component, e.g. `Storage`.
    pub component: String,
    /// The AWS error code, when AWS gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The request id of the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The resource it concerns, as plan names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The condition's message when it happened.
    pub message: String,
    /// When it was first seen (RFC 3339): the same error met again keeps
    /// this time.
    pub time: Time,
}

/// One resource the operator corrected because it no longer matched the
/// spec while the spec had not changed.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DriftCorrection {
    /// The component, e.g. `Storage`.
    pub component: String,
    /// The resource, as plan names it, e.g. `S3 bucket ipl-… lifecycle rules`.
    pub resource: String,
    /// What was put back, as `field: found → set`; `created` when it was
    /// gone and made again.
    pub fields: Vec<String>,
    /// When it was corrected.
    pub time: Time,
}

/// A monthly cost estimate of the fixed part of a pipeline.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EstimatedMonthlyCost {
    /// The sum of the items that have a price, with two decimals, for
    /// example `412.35`.
    pub amount: String,
    /// ISO 4217 currency of `amount`, for example `USD`.
    pub currency: String,
    /// True when some items have no price in the operator's table for the
    /// region (see `unpriced`): `amount` leaves them out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
    /// The items left out of `amount`, for example `Analytics: 2 × ra3.xlplus nodes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unpriced: Vec<String>,
    /// Date (YYYY-MM-DD) of the operator's price table: no price in it is older.
    pub prices_as_of: String,
}

/// Lifecycle phase of an ImagePipeline.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Accepted, not yet worked on.
    Pending,
    /// Components are being created or updated.
    Provisioning,
    /// Every component is ready.
    Ready,
    /// Was ready; at least one component is not.
    Degraded,
    /// `spec.paused` is true: observed, not changed.
    Paused,
    /// Being deleted.
    Deleting,
    /// Cannot proceed until the spec changes; see the conditions.
    Failed,
}

/// Endpoints of a pipeline.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    /// Public URL of the upload API's load balancer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_url: Option<String>,
    /// URL of the upload-api Service inside the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_cluster_upload_url: Option<String>,
    /// Comma-separated `host:port` list of the Kafka brokers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_bootstrap: Option<String>,
    /// Name of the S3 bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Name of the DynamoDB table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Name of the Firehose delivery stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_stream: Option<String>,
    /// `host:port/database` of the Redshift cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warehouse: Option<String>,
}

/// A managed Kafka broker as its last heartbeat describes it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KafkaBrokerStatus {
    /// Kafka `node.id`.
    pub node_id: u32,
    /// The EC2 instance running it, once launched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// `host:port` clients connect to.
    pub address: String,
    /// `installing`, `starting`, `serving` or `failed` as the broker last
    /// said; `silent` when its last heartbeat is older than 2 minutes;
    /// `unknown` before its instance's first heartbeat.
    pub state: String,
    /// When its last heartbeat was written (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat: Option<String>,
    /// The last error line it reported, when `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One AWS resource the operator made.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AwsResource {
    /// Component it belongs to, for example `Storage`.
    pub component: String,
    /// CloudFormation-style resource type, for example `AWS::S3::Bucket`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Its identifier: name or id.
    pub id: String,
    /// Its ARN, where it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// `Ready`, `Pending` (AWS still making or changing it), `Deleting`,
    /// or `Retained` (kept under `deletionPolicy: Retain`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}
