//! A VPC peering connection between two VPCs of this account, which the
//! pipeline requests and accepts itself; found by its owner and peering tags.

use aws_sdk_ec2::types::ResourceType;

use super::sdk::{deleted, failed, tag_specification};
use super::shared_lists::{self, tag_filter, tagged};
use crate::aws::AwsClients;
use crate::engine::resource::{Ref, Resource};
use crate::engine::{OWNER_TAG, Readiness, Tags, field};
use crate::error::ComponentError;

/// Tells the pipeline's peering connections apart: `api` or `cluster`.
pub const PEERING_TAG: &str = "imagepipeline.io/peering";

/// States of a connection that is gone or going.
const ENDED: [&str; 5] = ["deleted", "deleting", "rejected", "failed", "expired"];

#[derive(Clone, Debug, PartialEq)]
pub struct Peering {
    /// `api` or `cluster`: the value of [`PEERING_TAG`].
    pub role: &'static str,
    pub requester: Ref,
    pub accepter: Ref,
    /// The two sides, as plan shows them.
    pub between: String,
    /// Including the owner and [`PEERING_TAG`].
    pub tags: Tags,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PeeringState {
    pub id: String,
    pub status: String,
}

impl PeeringState {
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }
}

impl Peering {
    /// Both sides are in this account, so the pipeline accepts its own request.
    async fn accept(&self, aws: &AwsClients, id: &str) -> Result<(), ComponentError> {
        aws.ec2
            .accept_vpc_peering_connection()
            .vpc_peering_connection_id(id)
            .send()
            .await
            .map(drop)
            .map_err(failed("accept", &format!("VPC peering {id}")))
    }
}

impl Resource for Peering {
    type Observed = PeeringState;
    const TYPE: Option<&'static str> = Some("AWS::EC2::VPCPeeringConnection");

    fn label(&self) -> String {
        format!("VPC peering {}", self.role)
    }

    fn references(&self) -> Vec<&Ref> {
        vec![&self.requester, &self.accepter]
    }

    async fn find(&self, aws: &AwsClients) -> Result<Option<PeeringState>, ComponentError> {
        let owner = self.tags.get(OWNER_TAG).map(String::as_str).unwrap_or_default();
        let narrow = vec![tag_filter(OWNER_TAG, owner), tag_filter(PEERING_TAG, self.role)];
        Ok(shared_lists::peerings(aws, narrow)
            .await?
            .iter()
            .filter(|p| tagged(p.tags(), OWNER_TAG, owner) && tagged(p.tags(), PEERING_TAG, self.role))
            .map(|p| PeeringState {
                id: p.vpc_peering_connection_id().unwrap_or_default().to_owned(),
                status: p
                    .status()
                    .and_then(|s| s.code())
                    .map(|c| c.as_str().to_owned())
                    .unwrap_or_default(),
            })
            .find(|p| !ENDED.contains(&p.status.as_str())))
    }

    fn delta(&self, observed: &PeeringState) -> Result<Vec<String>, ComponentError> {
        Ok(if observed.status == "pending-acceptance" {
            vec![field("status", "pending-acceptance", "active")]
        } else {
            vec![]
        })
    }

    fn create_fields(&self) -> Vec<String> {
        vec![self.between.clone()]
    }

    async fn create(&self, aws: &AwsClients) -> Result<PeeringState, ComponentError> {
        let out = aws
            .ec2
            .create_vpc_peering_connection()
            .vpc_id(self.requester.id())
            .peer_vpc_id(self.accepter.id())
            .tag_specifications(tag_specification(ResourceType::VpcPeeringConnection, &self.tags))
            .send()
            .await
            .map_err(failed("create", &self.label()))?;
        let id = out
            .vpc_peering_connection()
            .and_then(|p| p.vpc_peering_connection_id())
            .unwrap_or_default()
            .to_owned();
        self.accept(aws, &id).await?;
        Ok(PeeringState {
            id,
            status: "active".to_owned(),
        })
    }

    async fn update(&self, aws: &AwsClients, observed: &PeeringState) -> Result<(), ComponentError> {
        self.accept(aws, &observed.id).await
    }

    async fn delete(&self, aws: &AwsClients, observed: &PeeringState) -> Result<(), ComponentError> {
        deleted(
            aws.ec2
                .delete_vpc_peering_connection()
                .vpc_peering_connection_id(&observed.id)
                .send()
                .await,
            &["InvalidVpcPeeringConnectionID.NotFound"],
            &format!("delete VPC peering {} {}", self.role, observed.id),
        )
    }

    fn id(observed: &PeeringState) -> String {
        observed.id.clone()
    }

    fn readiness(&self, observed: &PeeringState) -> Readiness {
        Readiness::of(&self.label(), Some(&observed.status), "active")
    }
}
