//! Network: the isolated VPC with one private subnet per availability zone
//! (no internet gateway). Kafka brokers and the Redshift cluster live here.
//!
//! This is the seam for the network issue: it adds the API VPC, the internet
//! gateway, peering and the security groups; the analytics component only
//! reads `Outputs::private_subnet_ids` and `Outputs::kafka_vpc_id`.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use ipnet::Ipv4Net;

use super::ownership;
use crate::api::v1alpha1::DeletionPolicy;
use crate::aws::AwsClients;
use crate::aws::errors::{classify, code};
use crate::engine::{
    Action, Change, Component, ComponentError, ComponentKind, OWNER_TAG, Outputs, PipelineContext, Readiness,
    removed_tag_keys, tag_changes,
};

/// Tells the pipeline's VPCs apart: `kafka` here, `api` from the network issue.
pub const NETWORK_TAG: &str = "imagepipeline.io/network";
/// Each private subnet gets this many more prefix bits than its VPC (a /16
/// VPC gives /20 subnets), leaving room for 16 zones and later subnet tiers.
const SUBNET_EXTRA_PREFIX_BITS: u8 = 4;
const SMALLEST_SUBNET_PREFIX: u8 = 28;

pub struct Network;

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredNetwork {
    pub name: String,
    pub owner: String,
    pub vpc_cidr: String,
    pub subnets: Vec<DesiredSubnet>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredSubnet {
    pub availability_zone: String,
    pub cidr: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedNetwork {
    pub vpc: Option<ObservedVpc>,
    pub subnets: Vec<ObservedSubnet>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedVpc {
    pub id: String,
    pub cidr: String,
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedSubnet {
    pub id: String,
    pub availability_zone: String,
    pub cidr: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum NetworkStep {
    CreateVpc,
    SetVpcTags { observed: BTreeMap<String, String> },
    CreateSubnet(DesiredSubnet),
    DeleteSubnet(ObservedSubnet),
    DeleteVpc { id: String },
}

impl Component for Network {
    const KIND: ComponentKind = ComponentKind::Network;
    const DEPENDS_ON: &'static [ComponentKind] = &[];
    type Desired = DesiredNetwork;
    type Observed = ObservedNetwork;
    type Step = NetworkStep;

    fn desired(ctx: &PipelineContext, _upstream: &Outputs) -> Result<DesiredNetwork, ComponentError> {
        let network = &ctx.spec.network;
        let cidrs = private_subnet_cidrs(&network.kafka_vpc_cidr, network.availability_zones.len())?;
        let name = ctx.resource_name("kafka", 255);
        let mut tags = ctx.tags(Self::KIND);
        tags.insert(NETWORK_TAG.to_owned(), "kafka".to_owned());
        tags.insert("Name".to_owned(), name.clone());
        Ok(DesiredNetwork {
            owner: ctx.owner.tag_value(),
            vpc_cidr: network.kafka_vpc_cidr.clone(),
            subnets: network
                .availability_zones
                .iter()
                .zip(cidrs)
                .map(|(zone, cidr)| DesiredSubnet {
                    availability_zone: zone.clone(),
                    cidr,
                })
                .collect(),
            name,
            tags,
        })
    }

    async fn observe(aws: &AwsClients, desired: &DesiredNetwork) -> Result<ObservedNetwork, ComponentError> {
        let vpcs = aws
            .ec2
            .describe_vpcs()
            .filters(tag_filter(OWNER_TAG, &desired.owner))
            .filters(tag_filter(NETWORK_TAG, "kafka"))
            .send()
            .await
            .map_err(|err| classify("look up the Kafka VPC", err))?;
        // Tags are set in the same call that creates the VPC, so there is at
        // most one; the lowest id is the oldest should that ever be untrue.
        let Some(vpc) = vpcs
            .vpcs()
            .iter()
            .min_by_key(|vpc| vpc.vpc_id().unwrap_or_default().to_owned())
        else {
            return Ok(ObservedNetwork::default());
        };
        let vpc = ObservedVpc {
            id: vpc.vpc_id().unwrap_or_default().to_owned(),
            cidr: vpc.cidr_block().unwrap_or_default().to_owned(),
            tags: ec2_tags(vpc.tags()),
        };
        let subnets = aws
            .ec2
            .describe_subnets()
            .filters(Filter::builder().name("vpc-id").values(&vpc.id).build())
            .send()
            .await
            .map_err(|err| classify(&format!("list subnets of VPC {}", vpc.id), err))?;
        let mut subnets: Vec<ObservedSubnet> = subnets
            .subnets()
            .iter()
            .map(|s| ObservedSubnet {
                id: s.subnet_id().unwrap_or_default().to_owned(),
                availability_zone: s.availability_zone().unwrap_or_default().to_owned(),
                cidr: s.cidr_block().unwrap_or_default().to_owned(),
            })
            .collect();
        subnets.sort_by(|a, b| a.cidr.cmp(&b.cidr));
        Ok(ObservedNetwork {
            vpc: Some(vpc),
            subnets,
        })
    }

    fn converge(
        desired: &DesiredNetwork,
        observed: &ObservedNetwork,
    ) -> Result<Vec<NetworkStep>, ComponentError> {
        let mut steps = Vec::new();
        match &observed.vpc {
            None => steps.push(NetworkStep::CreateVpc),
            Some(vpc) => {
                if vpc.cidr != desired.vpc_cidr {
                    return Err(ComponentError::terminal(
                        "VpcCidrChanged",
                        format!(
                            "the Kafka VPC {} has CIDR {} but spec.network.kafkaVpcCidr is {}; \
                             a VPC's CIDR cannot change: restore the spec value",
                            vpc.id, vpc.cidr, desired.vpc_cidr
                        ),
                    ));
                }
                if vpc.tags != desired.tags {
                    steps.push(NetworkStep::SetVpcTags {
                        observed: vpc.tags.clone(),
                    });
                }
            }
        }
        for subnet in &observed.subnets {
            let wanted = desired
                .subnets
                .iter()
                .any(|d| d.cidr == subnet.cidr && d.availability_zone == subnet.availability_zone);
            if !wanted {
                steps.push(NetworkStep::DeleteSubnet(subnet.clone()));
            }
        }
        for subnet in &desired.subnets {
            let present = observed
                .subnets
                .iter()
                .any(|o| o.cidr == subnet.cidr && o.availability_zone == subnet.availability_zone);
            if !present {
                steps.push(NetworkStep::CreateSubnet(subnet.clone()));
            }
        }
        Ok(steps)
    }

    fn teardown(
        desired: &DesiredNetwork,
        observed: &ObservedNetwork,
        _policy: DeletionPolicy,
    ) -> (Vec<NetworkStep>, Option<String>) {
        // Network is never retained; what a retained cluster needs is in the note of its component.
        let Some(vpc) = &observed.vpc else {
            return (vec![], None);
        };
        if !ownership::is_ours(&vpc.tags, &desired.owner) {
            return (vec![], None);
        }
        let mut steps: Vec<NetworkStep> = observed
            .subnets
            .iter()
            .cloned()
            .map(NetworkStep::DeleteSubnet)
            .collect();
        steps.push(NetworkStep::DeleteVpc { id: vpc.id.clone() });
        (steps, None)
    }

    async fn execute(
        aws: &AwsClients,
        desired: &DesiredNetwork,
        observed: &mut ObservedNetwork,
        step: &NetworkStep,
    ) -> Result<(), ComponentError> {
        let ec2 = &aws.ec2;
        let action = Self::describe(desired, step).resource;
        match step {
            NetworkStep::CreateVpc => {
                let out = ec2
                    .create_vpc()
                    .cidr_block(&desired.vpc_cidr)
                    .tag_specifications(tag_specification(ResourceType::Vpc, &desired.tags))
                    .send()
                    .await
                    .map_err(|err| classify(&format!("create {action}"), err))?;
                let id = out.vpc().and_then(|v| v.vpc_id()).unwrap_or_default().to_owned();
                observed.vpc = Some(ObservedVpc {
                    id,
                    cidr: desired.vpc_cidr.clone(),
                    tags: desired.tags.clone(),
                });
                Ok(())
            }
            NetworkStep::SetVpcTags { observed: old } => {
                let Some(vpc) = &observed.vpc else { return Ok(()) };
                let stale: Vec<Tag> = removed_tag_keys(old, &desired.tags)
                    .into_iter()
                    .map(|k| Tag::builder().key(k).build())
                    .collect();
                if !stale.is_empty() {
                    ec2.delete_tags()
                        .resources(&vpc.id)
                        .set_tags(Some(stale))
                        .send()
                        .await
                        .map_err(|err| classify(&format!("untag {action}"), err))?;
                }
                ec2.create_tags()
                    .resources(&vpc.id)
                    .set_tags(Some(tags(&desired.tags)))
                    .send()
                    .await
                    .map(drop)
                    .map_err(|err| classify(&format!("tag {action}"), err))
            }
            NetworkStep::CreateSubnet(subnet) => {
                let Some(vpc) = &observed.vpc else {
                    return Err(ComponentError::retryable(
                        "VpcMissing",
                        "the Kafka VPC disappeared while creating subnets",
                    ));
                };
                let mut subnet_tags = desired.tags.clone();
                subnet_tags.insert(
                    "Name".to_owned(),
                    format!("{}-private-{}", desired.name, subnet.availability_zone),
                );
                let out = ec2
                    .create_subnet()
                    .vpc_id(&vpc.id)
                    .cidr_block(&subnet.cidr)
                    .availability_zone(&subnet.availability_zone)
                    .tag_specifications(tag_specification(ResourceType::Subnet, &subnet_tags))
                    .send()
                    .await
                    .map_err(|err| classify(&format!("create {action}"), err))?;
                observed.subnets.push(ObservedSubnet {
                    id: out
                        .subnet()
                        .and_then(|s| s.subnet_id())
                        .unwrap_or_default()
                        .to_owned(),
                    availability_zone: subnet.availability_zone.clone(),
                    cidr: subnet.cidr.clone(),
                });
                Ok(())
            }
            NetworkStep::DeleteSubnet(subnet) => match ec2.delete_subnet().subnet_id(&subnet.id).send().await
            {
                Ok(_) => Ok(()),
                Err(err) if code(&err) == Some("InvalidSubnetID.NotFound") => Ok(()),
                Err(err) => Err(blocked_or(err, &format!("delete {action}"))),
            },
            NetworkStep::DeleteVpc { id } => match ec2.delete_vpc().vpc_id(id).send().await {
                Ok(_) => Ok(()),
                Err(err) if code(&err) == Some("InvalidVpcID.NotFound") => Ok(()),
                Err(err) => Err(blocked_or(err, &format!("delete {action}"))),
            },
        }
    }

    fn describe(desired: &DesiredNetwork, step: &NetworkStep) -> Change {
        match step {
            NetworkStep::CreateVpc => Change::new(Action::Create, format!("VPC {}", desired.name))
                .note(format!("CIDR {}", desired.vpc_cidr)),
            NetworkStep::SetVpcTags { observed } => {
                let mut change = Change::new(Action::Update, format!("VPC {} tags", desired.name));
                change.fields = tag_changes(observed, &desired.tags);
                change
            }
            NetworkStep::CreateSubnet(subnet) => Change::new(
                Action::Create,
                format!("private subnet {} in {}", subnet.cidr, subnet.availability_zone),
            ),
            NetworkStep::DeleteSubnet(subnet) => Change::new(
                Action::Delete,
                format!(
                    "subnet {} ({} in {})",
                    subnet.id, subnet.cidr, subnet.availability_zone
                ),
            ),
            NetworkStep::DeleteVpc { id } => Change::new(Action::Delete, format!("VPC {id}")),
        }
    }

    fn readiness(desired: &DesiredNetwork, observed: &ObservedNetwork) -> Readiness {
        if observed.vpc.is_some() && observed.subnets.len() == desired.subnets.len() {
            Readiness::Ready
        } else {
            Readiness::Waiting("the Kafka VPC and its subnets are being created".to_owned())
        }
    }

    fn publish(_desired: &DesiredNetwork, observed: &ObservedNetwork, outputs: &mut Outputs) {
        if let Some(vpc) = &observed.vpc {
            outputs.kafka_vpc_id = Some(vpc.id.clone());
            outputs.resource(Self::KIND, "AWS::EC2::VPC", &vpc.id, None);
        }
        for subnet in &observed.subnets {
            outputs.private_subnet_ids.push(subnet.id.clone());
            outputs.resource(Self::KIND, "AWS::EC2::Subnet", &subnet.id, None);
        }
    }
}

/// One subnet CIDR per zone, carved in order from the start of the VPC.
pub fn private_subnet_cidrs(vpc_cidr: &str, zones: usize) -> Result<Vec<String>, ComponentError> {
    let vpc: Ipv4Net = vpc_cidr.parse().map_err(|err| {
        ComponentError::terminal(
            "InvalidCidr",
            format!("spec.network.kafkaVpcCidr {vpc_cidr} is not an IPv4 CIDR: {err}"),
        )
    })?;
    let prefix = (vpc.prefix_len() + SUBNET_EXTRA_PREFIX_BITS).min(SMALLEST_SUBNET_PREFIX);
    let subnets: Vec<String> = vpc
        .subnets(prefix)
        .map(|subnets| subnets.take(zones).map(|s| s.to_string()).collect())
        .unwrap_or_default();
    if subnets.len() < zones {
        return Err(ComponentError::terminal(
            "CidrTooSmall",
            format!("spec.network.kafkaVpcCidr {vpc_cidr} is too small for {zones} subnets of /{prefix}"),
        ));
    }
    Ok(subnets)
}

/// EC2 refuses to delete what something still stands on: that is waiting,
/// and the message names what blocks.
fn blocked_or<E>(err: SdkError<E, HttpResponse>, action: &str) -> ComponentError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let dependency = code(&err) == Some("DependencyViolation");
    let mut err = classify(action, err);
    if dependency {
        err.reason = "DeletionBlocked".to_owned();
    }
    err
}

fn tag_filter(key: &str, value: &str) -> Filter {
    Filter::builder().name(format!("tag:{key}")).values(value).build()
}

fn tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

pub(crate) fn tag_specification(
    resource_type: ResourceType,
    tags_: &BTreeMap<String, String>,
) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource_type)
        .set_tags(Some(tags(tags_)))
        .build()
}

pub(crate) fn ec2_tags(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_owned(),
                t.value().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_are_carved_from_the_start_of_the_vpc() {
        assert_eq!(
            private_subnet_cidrs("10.41.0.0/16", 3).unwrap(),
            ["10.41.0.0/20", "10.41.16.0/20", "10.41.32.0/20"]
        );
        assert_eq!(
            private_subnet_cidrs("10.41.0.0/24", 2).unwrap(),
            ["10.41.0.0/28", "10.41.0.16/28"]
        );
    }

    #[test]
    fn a_cidr_too_small_for_the_zones_is_a_terminal_error() {
        let err = private_subnet_cidrs("10.41.0.0/27", 3).unwrap_err();
        assert!(err.is_terminal() && err.message.contains("too small"), "{err:?}");
    }
}
