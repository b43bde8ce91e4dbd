//! A subnet of one of the pipeline's VPCs, found by its VPC, CIDR and zone.

use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType};

use super::sdk::{deleted, failed, tag_specification};
use super::shared_lists;
use super::tags::from_sdk;
use crate::aws::AwsClients;
use crate::engine::resource::{Ref, Resource};
use crate::engine::{Tags, field};
use crate::error::ComponentError;

#[derive(Clone, Debug, PartialEq)]
pub struct Subnet {
    pub vpc_id: Ref,
    pub cidr: String,
    pub availability_zone: String,
    /// Instances launched in it get a public address (the API VPC's).
    pub public: bool,
    pub tags: Tags,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubnetState {
    pub id: String,
    pub availability_zone: String,
    pub cidr: String,
    pub map_public_ip_on_launch: bool,
    pub tags: Tags,
}

impl Subnet {
    fn tier(&self) -> &'static str {
        if self.public { "public" } else { "private" }
    }

    /// A subnet found in the VPC that the spec no longer lists, as the
    /// resource to delete.
    pub fn unwanted(vpc_id: Ref, observed: &SubnetState) -> Self {
        Self {
            vpc_id,
            cidr: observed.cidr.clone(),
            availability_zone: observed.availability_zone.clone(),
            public: observed.map_public_ip_on_launch,
            tags: observed.tags.clone(),
        }
    }
}

impl Resource for Subnet {
    type Observed = SubnetState;
    const TYPE: Option<&'static str> = Some("AWS::EC2::Subnet");

    fn label(&self) -> String {
        format!(
            "{} subnet {} in {}",
            self.tier(),
            self.cidr,
            self.availability_zone
        )
    }

    fn references(&self) -> Vec<&Ref> {
        vec![&self.vpc_id]
    }

    async fn find(&self, aws: &AwsClients) -> Result<Option<SubnetState>, ComponentError> {
        Ok(list(aws, self.vpc_id.id())
            .await?
            .into_iter()
            .find(|s| s.cidr == self.cidr && s.availability_zone == self.availability_zone))
    }

    fn delta(&self, observed: &SubnetState) -> Result<Vec<String>, ComponentError> {
        Ok(if self.public && !observed.map_public_ip_on_launch {
            vec![field("map public IP on launch", false, true)]
        } else {
            vec![]
        })
    }

    async fn create(&self, aws: &AwsClients) -> Result<SubnetState, ComponentError> {
        let out = aws
            .ec2
            .create_subnet()
            .vpc_id(self.vpc_id.id())
            .cidr_block(&self.cidr)
            .availability_zone(&self.availability_zone)
            .tag_specifications(tag_specification(ResourceType::Subnet, &self.tags))
            .send()
            .await
            .map_err(failed("create", &self.label()))?;
        let created = SubnetState {
            id: out
                .subnet()
                .and_then(|s| s.subnet_id())
                .unwrap_or_default()
                .to_owned(),
            availability_zone: self.availability_zone.clone(),
            cidr: self.cidr.clone(),
            map_public_ip_on_launch: false,
            tags: self.tags.clone(),
        };
        if self.public {
            self.update(aws, &created).await?;
        }
        Ok(SubnetState {
            map_public_ip_on_launch: self.public,
            ..created
        })
    }

    async fn update(&self, aws: &AwsClients, observed: &SubnetState) -> Result<(), ComponentError> {
        aws.ec2
            .modify_subnet_attribute()
            .subnet_id(&observed.id)
            .map_public_ip_on_launch(AttributeBooleanValue::builder().value(self.public).build())
            .send()
            .await
            .map(drop)
            .map_err(failed("map public IPs in", &self.label()))
    }

    async fn delete(&self, aws: &AwsClients, observed: &SubnetState) -> Result<(), ComponentError> {
        deleted(
            aws.ec2.delete_subnet().subnet_id(&observed.id).send().await,
            &["InvalidSubnetID.NotFound"],
            &format!(
                "delete subnet {} ({} in {})",
                observed.id, self.cidr, self.availability_zone
            ),
        )
    }

    fn id(observed: &SubnetState) -> String {
        observed.id.clone()
    }
}

/// Every subnet of the VPC `vpc_id` (one of the pipeline's, so its subnets
/// carry the owner tag), by CIDR.
pub async fn list(aws: &AwsClients, vpc_id: &str) -> Result<Vec<SubnetState>, ComponentError> {
    let mut subnets: Vec<SubnetState> =
        shared_lists::subnets(aws, vec![shared_lists::filter("vpc-id", vpc_id)])
            .await?
            .iter()
            .filter(|s| s.vpc_id() == Some(vpc_id))
            .map(|s| SubnetState {
                id: s.subnet_id().unwrap_or_default().to_owned(),
                availability_zone: s.availability_zone().unwrap_or_default().to_owned(),
                cidr: s.cidr_block().unwrap_or_default().to_owned(),
                map_public_ip_on_launch: s.map_public_ip_on_launch().unwrap_or(false),
                tags: from_sdk(s.tags()),
            })
            .collect();
    subnets.sort_by(|a, b| a.cidr.cmp(&b.cidr));
    Ok(subnets)
}
