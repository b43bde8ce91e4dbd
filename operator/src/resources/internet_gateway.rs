//! The internet gateway of the API VPC, found by its owner and network tags.

use aws_sdk_ec2::types::ResourceType;

use super::sdk::{deleted, failed, tag_specification};
use super::shared_lists::{self, tag_filter, tagged};
use super::vpc::NETWORK_TAG;
use crate::aws::AwsClients;
use crate::engine::resource::{Ref, Resource};
use crate::engine::{OWNER_TAG, Tags, field};
use crate::error::ComponentError;

#[derive(Clone, Debug, PartialEq)]
pub struct InternetGateway {
    /// The VPC it is attached to, and how plan names it.
    pub vpc_id: Ref,
    pub vpc: String,
    /// Including the owner and [`NETWORK_TAG`].
    pub tags: Tags,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GatewayState {
    pub id: String,
    pub attached_to: Option<String>,
}

impl InternetGateway {
    async fn attach(&self, aws: &AwsClients, id: &str) -> Result<(), ComponentError> {
        aws.ec2
            .attach_internet_gateway()
            .internet_gateway_id(id)
            .vpc_id(self.vpc_id.id())
            .send()
            .await
            .map(drop)
            .map_err(failed("attach", &format!("internet gateway {id}")))
    }
}

impl Resource for InternetGateway {
    type Observed = GatewayState;
    const TYPE: Option<&'static str> = Some("AWS::EC2::InternetGateway");

    fn label(&self) -> String {
        "internet gateway".to_owned()
    }

    fn references(&self) -> Vec<&Ref> {
        vec![&self.vpc_id]
    }

    async fn find(&self, aws: &AwsClients) -> Result<Option<GatewayState>, ComponentError> {
        let owner = self.tags.get(OWNER_TAG).map(String::as_str).unwrap_or_default();
        let role = self.tags.get(NETWORK_TAG).map(String::as_str).unwrap_or_default();
        let narrow = vec![tag_filter(OWNER_TAG, owner), tag_filter(NETWORK_TAG, role)];
        Ok(shared_lists::internet_gateways(aws, narrow)
            .await?
            .iter()
            .filter(|g| tagged(g.tags(), OWNER_TAG, owner) && tagged(g.tags(), NETWORK_TAG, role))
            .min_by_key(|g| g.internet_gateway_id().unwrap_or_default().to_owned())
            .map(|g| GatewayState {
                id: g.internet_gateway_id().unwrap_or_default().to_owned(),
                attached_to: g
                    .attachments()
                    .iter()
                    .filter_map(|a| a.vpc_id())
                    .next()
                    .map(str::to_owned),
            }))
    }

    fn delta(&self, observed: &GatewayState) -> Result<Vec<String>, ComponentError> {
        Ok(match &observed.attached_to {
            None => vec![field("attached to", "(nothing)", &self.vpc)],
            Some(_) => vec![],
        })
    }

    fn create_fields(&self) -> Vec<String> {
        vec![format!("attached to {}", self.vpc)]
    }

    async fn create(&self, aws: &AwsClients) -> Result<GatewayState, ComponentError> {
        let out = aws
            .ec2
            .create_internet_gateway()
            .tag_specifications(tag_specification(ResourceType::InternetGateway, &self.tags))
            .send()
            .await
            .map_err(failed("create", "internet gateway"))?;
        let id = out
            .internet_gateway()
            .and_then(|g| g.internet_gateway_id())
            .unwrap_or_default()
            .to_owned();
        self.attach(aws, &id).await?;
        Ok(GatewayState {
            id,
            attached_to: self.vpc_id.known().map(str::to_owned),
        })
    }

    async fn update(&self, aws: &AwsClients, observed: &GatewayState) -> Result<(), ComponentError> {
        self.attach(aws, &observed.id).await
    }

    async fn delete(&self, aws: &AwsClients, observed: &GatewayState) -> Result<(), ComponentError> {
        let ec2 = &aws.ec2;
        let what = format!("internet gateway {}", observed.id);
        if let Some(vpc_id) = &observed.attached_to {
            deleted(
                ec2.detach_internet_gateway()
                    .internet_gateway_id(&observed.id)
                    .vpc_id(vpc_id)
                    .send()
                    .await,
                &["Gateway.NotAttached", "InvalidInternetGatewayID.NotFound"],
                &format!("detach {what}"),
            )?;
        }
        deleted(
            ec2.delete_internet_gateway()
                .internet_gateway_id(&observed.id)
                .send()
                .await,
            &["InvalidInternetGatewayID.NotFound"],
            &format!("delete {what}"),
        )
    }

    fn id(observed: &GatewayState) -> String {
        observed.id.clone()
    }
}
