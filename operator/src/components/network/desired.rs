//! What the network should be, computed purely from the spec and what
//! earlier resources of the walk made.

use std::collections::BTreeMap;

use super::layout::DesiredSubnet;
use super::security_groups::{self, DesiredSource, GroupRole, RuleInputs, VpcRole};
use crate::engine::Tags;
use crate::engine::resource::Ref;
use crate::resources::peering::{PEERING_TAG, Peering, PeeringState};
use crate::resources::route_table::RouteTarget;
use crate::resources::security_group::{Rule, RuleSource, SecurityGroup};
use crate::resources::subnet::Subnet;
use crate::resources::vpc::{NETWORK_TAG, Vpc};

const ANYWHERE: &str = "0.0.0.0/0";

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredNetwork {
    pub name: String,
    pub api: DesiredVpc,
    pub kafka: DesiredVpc,
    pub cluster_vpc_id: Option<String>,
    pub https: bool,
    /// Owner, component and spec tags; each resource adds its role and Name.
    pub tags: Tags,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredVpc {
    pub role: VpcRole,
    /// The spec field its CIDR comes from, for messages.
    pub field: &'static str,
    pub name: String,
    pub cidr: String,
    pub subnets: Vec<DesiredSubnet>,
}

/// What earlier resources of a walk made that routes need.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Links {
    pub gateway: Option<String>,
    /// Active peering connections only: a route to a pending one is refused.
    pub api_peering: Option<String>,
    pub cluster_peering: Option<String>,
    pub cluster_cidrs: Vec<String>,
}

impl DesiredNetwork {
    pub(super) fn vpc(&self, role: VpcRole) -> &DesiredVpc {
        match role {
            VpcRole::Api => &self.api,
            VpcRole::Kafka => &self.kafka,
        }
    }

    pub(super) fn tags_for(&self, role: &str, name: String) -> Tags {
        let mut tags = self.tags.clone();
        tags.insert(NETWORK_TAG.to_owned(), role.to_owned());
        tags.insert("Name".to_owned(), name);
        tags
    }

    pub fn vpc_resource(&self, role: VpcRole) -> Vpc {
        let want = self.vpc(role);
        Vpc {
            role: role.tag_value(),
            field: want.field,
            name: want.name.clone(),
            cidr: want.cidr.clone(),
            tags: self.tags_for(role.tag_value(), want.name.clone()),
        }
    }

    pub(super) fn subnet(&self, role: VpcRole, vpc_id: &Ref, subnet: &DesiredSubnet) -> Subnet {
        let public = role == VpcRole::Api;
        let tier = if public { "public" } else { "private" };
        let name = format!("{}-{tier}-{}", self.vpc(role).name, subnet.availability_zone);
        Subnet {
            vpc_id: vpc_id.clone(),
            cidr: subnet.cidr.clone(),
            availability_zone: subnet.availability_zone.clone(),
            public,
            tags: self.tags_for(role.tag_value(), name),
        }
    }

    pub(super) fn peering(
        &self,
        role: &'static str,
        requester: Ref,
        accepter: Ref,
        between: String,
    ) -> Peering {
        let mut tags = self.tags_for(VpcRole::Kafka.tag_value(), format!("{}-{role}", self.name));
        tags.insert(PEERING_TAG.to_owned(), role.to_owned());
        Peering {
            role,
            requester,
            accepter,
            between,
            tags,
        }
    }

    pub(super) fn group_name(&self, role: GroupRole) -> String {
        format!("{}-{}", self.name, role.name_suffix())
    }

    pub(super) fn group(
        &self,
        role: GroupRole,
        vpc_id: &Ref,
        links: &Links,
        made: &BTreeMap<GroupRole, Ref>,
    ) -> SecurityGroup {
        let inputs = RuleInputs {
            https: self.https,
            api_vpc_cidr: self.api.cidr.clone(),
            cluster_vpc_cidrs: links.cluster_cidrs.clone(),
        };
        let name = self.group_name(role);
        let rules = security_groups::desired_rules(role, &inputs)
            .into_iter()
            .map(|rule| Rule {
                port: rule.port,
                source: match rule.source {
                    DesiredSource::Cidr(cidr) => RuleSource::Cidr(cidr),
                    DesiredSource::Group(other) if other == role => RuleSource::Itself,
                    DesiredSource::Group(other) => {
                        RuleSource::Group(made.get(&other).cloned().unwrap_or_else(|| {
                            Ref::Pending(format!("security group {}", self.group_name(other)))
                        }))
                    }
                },
                description: rule.description,
            })
            .collect();
        SecurityGroup {
            tags: self.tags_for(role.vpc().tag_value(), name.clone()),
            name,
            description: role.description().to_owned(),
            vpc_id: vpc_id.clone(),
            rules,
        }
    }

    /// The routes of `role`'s route table, with targets that exist so far.
    pub fn routes(&self, role: VpcRole, links: &Links) -> BTreeMap<String, RouteTarget> {
        let mut routes = BTreeMap::new();
        let api_peering = links.api_peering.clone().map(RouteTarget::Peering);
        match role {
            VpcRole::Api => {
                if let Some(gateway) = &links.gateway {
                    routes.insert(ANYWHERE.to_owned(), RouteTarget::Gateway(gateway.clone()));
                }
                if let Some(peering) = api_peering {
                    routes.insert(self.kafka.cidr.clone(), peering);
                }
            }
            VpcRole::Kafka => {
                if let Some(peering) = api_peering {
                    routes.insert(self.api.cidr.clone(), peering);
                }
                if let Some(peering) = &links.cluster_peering {
                    for cidr in &links.cluster_cidrs {
                        routes.insert(cidr.clone(), RouteTarget::Peering(peering.clone()));
                    }
                }
            }
        }
        routes
    }
}

pub(super) fn active(peering: Option<&PeeringState>) -> Option<String> {
    peering.filter(|p| p.is_active()).map(|p| p.id.clone())
}
