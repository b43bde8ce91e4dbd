//! A VPC of the pipeline, found by its owner and network tags; and the
//! lookup of a VPC the spec names (the cluster's), which is never ours.

use aws_sdk_ec2::types::{Filter, ResourceType};

use super::route_table::{RouteTableState, route_table_state};
use super::sdk::{deleted, failed, set_ec2_tags, tag_specification};
use super::shared_lists::{self, tag_filter, tagged};
use super::tags::from_sdk;
use crate::aws::AwsClients;
use crate::aws::errors::{classify, code};
use crate::engine::{OWNER_TAG, Tags, resource::Resource, tag_changes};
use crate::error::ComponentError;

/// Tells the pipeline's VPCs, route tables and gateway apart: `api` or `kafka`.
pub const NETWORK_TAG: &str = "imagepipeline.io/network";

#[derive(Clone, Debug, PartialEq)]
pub struct Vpc {
    /// `api` or `kafka`: the value of [`NETWORK_TAG`].
    pub role: &'static str,
    /// The spec field its CIDR comes from, for messages.
    pub field: &'static str,
    pub name: String,
    pub cidr: String,
    /// Including the owner, [`NETWORK_TAG`] and `Name`.
    pub tags: Tags,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct VpcState {
    pub id: String,
    pub cidr: String,
    pub tags: Tags,
}

impl Resource for Vpc {
    type Observed = VpcState;
    const TYPE: Option<&'static str> = Some("AWS::EC2::VPC");

    fn label(&self) -> String {
        format!("{} VPC {}", self.role, self.name)
    }

    async fn find(&self, aws: &AwsClients) -> Result<Option<VpcState>, ComponentError> {
        let owner = self.tags.get(OWNER_TAG).map(String::as_str).unwrap_or_default();
        // Tags are set in the call that creates the VPC, so there is at most
        // one; the lowest id is the oldest should that ever be untrue.
        let narrow = vec![tag_filter(OWNER_TAG, owner), tag_filter(NETWORK_TAG, self.role)];
        Ok(shared_lists::vpcs(aws, narrow)
            .await?
            .iter()
            .filter(|vpc| tagged(vpc.tags(), OWNER_TAG, owner) && tagged(vpc.tags(), NETWORK_TAG, self.role))
            .min_by_key(|vpc| vpc.vpc_id().unwrap_or_default().to_owned())
            .map(|vpc| VpcState {
                id: vpc.vpc_id().unwrap_or_default().to_owned(),
                cidr: vpc.cidr_block().unwrap_or_default().to_owned(),
                tags: from_sdk(vpc.tags()),
            }))
    }

    fn delta(&self, observed: &VpcState) -> Result<Vec<String>, ComponentError> {
        if observed.cidr != self.cidr {
            return Err(ComponentError::terminal(
                "VpcCidrChanged",
                format!(
                    "the {} VPC {} has CIDR {} but {} is {}; a VPC's CIDR cannot change: \
                     restore the spec value",
                    self.role, observed.id, observed.cidr, self.field, self.cidr
                ),
            ));
        }
        Ok(tag_changes(&observed.tags, &self.tags))
    }

    fn create_fields(&self) -> Vec<String> {
        vec![format!("CIDR {}", self.cidr)]
    }

    async fn create(&self, aws: &AwsClients) -> Result<VpcState, ComponentError> {
        let out = aws
            .ec2
            .create_vpc()
            .cidr_block(&self.cidr)
            .tag_specifications(tag_specification(ResourceType::Vpc, &self.tags))
            .send()
            .await
            .map_err(failed("create", &self.label()))?;
        Ok(VpcState {
            id: out.vpc().and_then(|v| v.vpc_id()).unwrap_or_default().to_owned(),
            cidr: self.cidr.clone(),
            tags: self.tags.clone(),
        })
    }

    async fn update(&self, aws: &AwsClients, observed: &VpcState) -> Result<(), ComponentError> {
        set_ec2_tags(aws, &observed.id, &observed.tags, &self.tags, &self.label()).await
    }

    async fn delete(&self, aws: &AwsClients, observed: &VpcState) -> Result<(), ComponentError> {
        deleted(
            aws.ec2.delete_vpc().vpc_id(&observed.id).send().await,
            &["InvalidVpcID.NotFound"],
            &format!("delete {}", self.label()),
        )
    }

    fn id(observed: &VpcState) -> String {
        observed.id.clone()
    }

    fn tags(observed: &VpcState) -> Option<&Tags> {
        Some(&observed.tags)
    }
}

/// A VPC the spec names and the pipeline does not own: its address blocks
/// and its route tables.
#[derive(Clone, Debug, PartialEq)]
pub struct ExternalVpc {
    pub id: String,
    pub cidrs: Vec<String>,
    pub route_tables: Vec<RouteTableState>,
}

/// Looks up the VPC `id`; `None` when the account has no such VPC. The
/// pipelines of one cluster all name its VPC, so they share the answer.
pub async fn lookup(aws: &AwsClients, id: &str) -> Result<Option<ExternalVpc>, ComponentError> {
    let found = aws
        .reads
        .get(&format!("ec2:cluster-vpc:{id}"), || read_external(aws, id))
        .await?;
    Ok(Option::clone(&found))
}

async fn read_external(aws: &AwsClients, id: &str) -> Result<Option<ExternalVpc>, ComponentError> {
    let ec2 = &aws.ec2;
    let vpcs = match ec2.describe_vpcs().vpc_ids(id).send().await {
        Ok(out) => out,
        Err(err) if code(&err) == Some("InvalidVpcID.NotFound") => return Ok(None),
        Err(err) => return Err(classify(&format!("look up the cluster VPC {id}"), err)),
    };
    let Some(vpc) = vpcs.vpcs().first() else {
        return Ok(None);
    };
    let mut cidrs: Vec<String> = vpc
        .cidr_block_association_set()
        .iter()
        .filter(|a| {
            a.cidr_block_state()
                .and_then(|s| s.state())
                .is_none_or(|s| s.as_str() == "associated")
        })
        .filter_map(|a| a.cidr_block().map(str::to_owned))
        .collect();
    if cidrs.is_empty() {
        cidrs.extend(vpc.cidr_block().map(str::to_owned));
    }
    cidrs.sort();
    let tables = ec2
        .describe_route_tables()
        .filters(Filter::builder().name("vpc-id").values(id).build())
        .send()
        .await
        .map_err(|err| classify(&format!("list route tables of the cluster VPC {id}"), err))?;
    Ok(Some(ExternalVpc {
        id: id.to_owned(),
        cidrs,
        route_tables: tables.route_tables().iter().map(route_table_state).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vpc_whose_cidr_differs_from_the_spec_is_a_terminal_error_naming_the_field() {
        let vpc = Vpc {
            role: "kafka",
            field: "spec.network.kafkaVpcCidr",
            name: "ipl-media-photos-kafka".into(),
            cidr: "10.61.0.0/16".into(),
            tags: Tags::new(),
        };
        let observed = VpcState {
            id: "vpc-1".into(),
            cidr: "10.50.0.0/16".into(),
            tags: Tags::new(),
        };
        let err = vpc.delta(&observed).unwrap_err();
        assert!(err.is_terminal(), "{err:?}");
        assert!(err.message.contains("spec.network.kafkaVpcCidr"), "{err}");
        let drifted_tags = VpcState {
            cidr: vpc.cidr.clone(),
            tags: Tags::from([("team".to_owned(), "media".to_owned())]),
            ..observed
        };
        assert_eq!(vpc.delta(&drifted_tags).unwrap(), ["tag team: media → (absent)"]);
    }
}
