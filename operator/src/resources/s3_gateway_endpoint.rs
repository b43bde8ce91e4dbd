//! The S3 gateway endpoint of the Kafka VPC: the isolated VPC's only way out,
//! to S3 and to nothing else. Its policy lets the brokers reach exactly what
//! they need: the Kafka distribution, their heartbeats, and the Amazon Linux
//! package repositories (which are served from S3).

use aws_sdk_ec2::types::{ResourceType, VpcEndpointType};
use serde_json::Value;

use super::sdk::{deleted, failed, tag_specification};
use super::shared_lists::{self, filter, tag_filter, tagged};
use crate::aws::AwsClients;
use crate::engine::resource::{Ref, Resource};
use crate::engine::{OWNER_TAG, Readiness, Tags, field};
use crate::error::ComponentError;

#[derive(Clone, Debug, PartialEq)]
pub struct S3GatewayEndpoint {
    pub vpc_id: Ref,
    /// How plan names the VPC.
    pub vpc: String,
    /// `com.amazonaws.<region>.s3`.
    pub service_name: String,
    /// The route tables that send S3 traffic through it.
    pub route_tables: Vec<Ref>,
    pub policy: Value,
    pub tags: Tags,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EndpointState {
    pub id: String,
    pub state: String,
    pub route_tables: Vec<String>,
    pub policy: Option<Value>,
}

impl S3GatewayEndpoint {
    fn wanted_tables(&self) -> Vec<String> {
        let mut tables: Vec<String> = self.route_tables.iter().map(|t| t.id().to_owned()).collect();
        tables.sort();
        tables
    }
}

/// The endpoint policy: only `objects` may be read and only `writable`
/// written, by anyone in the VPC (the instance role narrows it further).
pub fn policy(partition: &str, readable: &[String], writable: &[String]) -> Value {
    let arns = |keys: &[String]| -> Vec<String> {
        keys.iter().map(|k| format!("arn:{partition}:s3:::{k}")).collect()
    };
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadKafkaAndPackages",
                "Effect": "Allow",
                "Principal": "*",
                "Action": ["s3:GetObject"],
                "Resource": arns(readable)
            },
            {
                "Sid": "WriteHeartbeats",
                "Effect": "Allow",
                "Principal": "*",
                "Action": ["s3:PutObject"],
                "Resource": arns(writable)
            }
        ]
    })
}

/// The S3 endpoints of `owner`, whichever VPC they are in.
pub async fn list(aws: &AwsClients, owner: &str) -> Result<Vec<EndpointState>, ComponentError> {
    Ok(
        shared_lists::vpc_endpoints(aws, vec![tag_filter(OWNER_TAG, owner)])
            .await?
            .iter()
            .filter(|e| tagged(e.tags(), OWNER_TAG, owner))
            .filter(|e| e.service_name().is_some_and(|s| s.ends_with(".s3")))
            .map(endpoint_state)
            .filter(|e| e.state != "deleted")
            .collect(),
    )
}

fn endpoint_state(endpoint: &aws_sdk_ec2::types::VpcEndpoint) -> EndpointState {
    let mut route_tables: Vec<String> = endpoint.route_table_ids().to_vec();
    route_tables.sort();
    EndpointState {
        id: endpoint.vpc_endpoint_id().unwrap_or_default().to_owned(),
        state: endpoint
            .state()
            .map(|s| s.as_str().to_lowercase())
            .unwrap_or_default(),
        route_tables,
        policy: endpoint
            .policy_document()
            .and_then(|p| serde_json::from_str(p).ok()),
    }
}

impl Resource for S3GatewayEndpoint {
    type Observed = EndpointState;
    const TYPE: Option<&'static str> = Some("AWS::EC2::VPCEndpoint");
    // AWS takes a moment to delete it, and refuses to delete the VPC till then.
    const DELETED_LATER: bool = true;

    fn label(&self) -> String {
        format!("S3 gateway endpoint of the {}", self.vpc)
    }

    fn references(&self) -> Vec<&Ref> {
        std::iter::once(&self.vpc_id).chain(&self.route_tables).collect()
    }

    async fn find(&self, aws: &AwsClients) -> Result<Option<EndpointState>, ComponentError> {
        let owner = self.tags.get(OWNER_TAG).map(String::as_str).unwrap_or_default();
        let narrow = vec![
            filter("vpc-id", self.vpc_id.id()),
            filter("service-name", &self.service_name),
            tag_filter(OWNER_TAG, owner),
        ];
        Ok(shared_lists::vpc_endpoints(aws, narrow)
            .await?
            .iter()
            .filter(|e| {
                e.vpc_id() == Some(self.vpc_id.id())
                    && e.service_name() == Some(self.service_name.as_str())
                    && tagged(e.tags(), OWNER_TAG, owner)
            })
            .map(endpoint_state)
            .filter(|e| e.state != "deleted")
            .min_by_key(|e| e.id.clone()))
    }

    fn delta(&self, observed: &EndpointState) -> Result<Vec<String>, ComponentError> {
        let mut fields = Vec::new();
        let wanted = self.wanted_tables();
        if observed.route_tables != wanted {
            fields.push(field(
                "route tables",
                observed.route_tables.join(", "),
                wanted.join(", "),
            ));
        }
        if observed.policy.as_ref() != Some(&self.policy) {
            fields.push("policy: (other) → only the Kafka distribution, heartbeats and packages".to_owned());
        }
        Ok(fields)
    }

    fn create_fields(&self) -> Vec<String> {
        vec![format!(
            "{} on the route table, policy: only the Kafka distribution, heartbeats and packages",
            self.service_name
        )]
    }

    async fn create(&self, aws: &AwsClients) -> Result<EndpointState, ComponentError> {
        let made = aws
            .ec2
            .create_vpc_endpoint()
            .vpc_endpoint_type(VpcEndpointType::Gateway)
            .vpc_id(self.vpc_id.id())
            .service_name(&self.service_name)
            .set_route_table_ids(Some(self.wanted_tables()))
            .policy_document(self.policy.to_string())
            .tag_specifications(tag_specification(ResourceType::VpcEndpoint, &self.tags))
            .send()
            .await
            .map_err(failed("create", &self.label()))?;
        let endpoint = made.vpc_endpoint();
        Ok(EndpointState {
            id: endpoint
                .and_then(|e| e.vpc_endpoint_id())
                .unwrap_or_default()
                .to_owned(),
            state: endpoint
                .and_then(|e| e.state())
                .map(|s| s.as_str().to_lowercase())
                .unwrap_or_default(),
            route_tables: self.wanted_tables(),
            policy: Some(self.policy.clone()),
        })
    }

    async fn update(&self, aws: &AwsClients, observed: &EndpointState) -> Result<(), ComponentError> {
        let wanted = self.wanted_tables();
        let add: Vec<String> = wanted
            .iter()
            .filter(|t| !observed.route_tables.contains(t))
            .cloned()
            .collect();
        let remove: Vec<String> = observed
            .route_tables
            .iter()
            .filter(|t| !wanted.contains(t))
            .cloned()
            .collect();
        aws.ec2
            .modify_vpc_endpoint()
            .vpc_endpoint_id(&observed.id)
            .policy_document(self.policy.to_string())
            .set_add_route_table_ids((!add.is_empty()).then_some(add))
            .set_remove_route_table_ids((!remove.is_empty()).then_some(remove))
            .send()
            .await
            .map(drop)
            .map_err(failed("update", &self.label()))
    }

    async fn delete(&self, aws: &AwsClients, observed: &EndpointState) -> Result<(), ComponentError> {
        let result = aws
            .ec2
            .delete_vpc_endpoints()
            .vpc_endpoint_ids(&observed.id)
            .send()
            .await;
        if let Ok(answer) = &result {
            // A batch call: a refusal comes back as an item, not an error.
            if let Some(refused) = answer.unsuccessful().first() {
                let error = refused.error();
                return Err(ComponentError::retryable(
                    error.and_then(|e| e.code()).unwrap_or("DeleteVpcEndpointFailed"),
                    format!(
                        "delete {}: {}",
                        self.label(),
                        error.and_then(|e| e.message()).unwrap_or("refused")
                    ),
                ));
            }
        }
        deleted(
            result,
            &["InvalidVpcEndpointId.NotFound"],
            &format!("delete {}", self.label()),
        )
    }

    fn id(observed: &EndpointState) -> String {
        observed.id.clone()
    }

    fn readiness(&self, observed: &EndpointState) -> Readiness {
        Readiness::of(&self.label(), Some(observed.state.as_str()), "available")
    }

    fn going(&self, observed: &EndpointState) -> Option<String> {
        (observed.state == "deleting").then(|| format!("waiting for the {} to be deleted", self.label()))
    }
}
