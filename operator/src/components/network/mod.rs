//! Network: two VPCs and what joins them.
//!
//! - API VPC: a public subnet per availability zone, an internet gateway and
//!   a route table sending 0.0.0.0/0 to it. The load balancer and the upload
//!   instances live here.
//! - Kafka VPC: a private subnet per zone and no internet gateway. Brokers and
//!   the Redshift cluster live here.
//! - Peering API↔Kafka, and cluster↔Kafka when `spec.network.clusterVpcId` is
//!   set, with routes on both sides (in every route table of the cluster VPC).
//! - Security groups with exactly the inbound rules of [`security_groups`].
//!
//! Creating steps carry their follow-ups (a gateway is attached, a peering
//! accepted, a subnet associated with its route table, a group given its
//! rules) so that a first apply settles in one round; a crash between the two
//! halves is found by the next observe and finished by a step of its own.

pub mod layout;
pub mod security_groups;

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{AttributeBooleanValue, Filter, ResourceType, Tag};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;

use super::ownership;
use super::sdk::{deleted, ec2_tag_list, ec2_tags, failed, tag_filter, tag_specification};
use crate::api::v1alpha1::DeletionPolicy;
use crate::aws::AwsClients;
use crate::aws::errors::{Lookup, SpecReference, classify, code, missing};
use crate::engine::{
    Action, Change, Component, ComponentError, ComponentKind, OWNER_TAG, Outputs, PipelineContext, Readiness,
    SubnetOutput, removed_tag_keys, tag_changes,
};
use layout::{DesiredSubnet, subnet_cidrs};
use security_groups::{GroupRole, Permission, RuleInputs, VpcRole};

/// Tells the pipeline's VPCs, route tables and gateway apart: `api` or `kafka`.
pub const NETWORK_TAG: &str = "imagepipeline.io/network";
/// Tells the two peering connections apart: `api` or `cluster`.
pub const PEERING_TAG: &str = "imagepipeline.io/peering";

const ANYWHERE: &str = "0.0.0.0/0";

pub struct Network;

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredNetwork {
    pub owner: String,
    pub name: String,
    pub api: DesiredVpc,
    pub kafka: DesiredVpc,
    pub cluster_vpc_id: Option<String>,
    pub https: bool,
    /// Owner, component and spec tags; each resource adds its role and Name.
    pub tags: BTreeMap<String, String>,
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

impl DesiredNetwork {
    fn vpc(&self, role: VpcRole) -> &DesiredVpc {
        match role {
            VpcRole::Api => &self.api,
            VpcRole::Kafka => &self.kafka,
        }
    }

    fn tags_for(&self, role: &str, name: String) -> BTreeMap<String, String> {
        let mut tags = self.tags.clone();
        tags.insert(NETWORK_TAG.to_owned(), role.to_owned());
        tags.insert("Name".to_owned(), name);
        tags
    }

    fn vpc_tags(&self, role: VpcRole) -> BTreeMap<String, String> {
        self.tags_for(role.tag_value(), self.vpc(role).name.clone())
    }

    fn group_name(&self, role: GroupRole) -> String {
        format!("{}-{}", self.name, role.name_suffix())
    }

    fn rule_inputs(&self, observed: &ObservedNetwork) -> RuleInputs {
        RuleInputs {
            https: self.https,
            api_vpc_cidr: self.api.cidr.clone(),
            cluster_vpc_cidrs: observed
                .cluster
                .as_ref()
                .map(|c| c.cidrs.clone())
                .unwrap_or_default(),
        }
    }

    /// The routes of `role`'s route table, with targets that exist so far.
    fn routes(&self, role: VpcRole, observed: &ObservedNetwork) -> BTreeMap<String, RouteTarget> {
        let mut routes = BTreeMap::new();
        let api_peering = observed.active_peering(PeeringRole::Api);
        match role {
            VpcRole::Api => {
                if let Some(gateway) = observed.internet_gateway.as_ref() {
                    routes.insert(ANYWHERE.to_owned(), RouteTarget::Gateway(gateway.id.clone()));
                }
                if let Some(peering) = api_peering {
                    routes.insert(self.kafka.cidr.clone(), RouteTarget::Peering(peering));
                }
            }
            VpcRole::Kafka => {
                if let Some(peering) = api_peering {
                    routes.insert(self.api.cidr.clone(), RouteTarget::Peering(peering));
                }
                if let (Some(peering), Some(cluster)) =
                    (observed.active_peering(PeeringRole::Cluster), &observed.cluster)
                {
                    for cidr in &cluster.cidrs {
                        routes.insert(cidr.clone(), RouteTarget::Peering(peering.clone()));
                    }
                }
            }
        }
        routes
    }
}

/// The two peering connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeeringRole {
    /// API VPC (requester) ↔ Kafka VPC.
    Api,
    /// Kafka VPC (requester) ↔ the cluster's VPC, so the bridge reaches brokers.
    Cluster,
}

impl PeeringRole {
    fn tag_value(self) -> &'static str {
        match self {
            PeeringRole::Api => "api",
            PeeringRole::Cluster => "cluster",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RouteTarget {
    Gateway(String),
    Peering(String),
    /// `local`, NAT gateways, endpoints: whatever else a route table holds.
    Other(String),
}

impl std::fmt::Display for RouteTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteTarget::Gateway(id) | RouteTarget::Peering(id) | RouteTarget::Other(id) => f.write_str(id),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedNetwork {
    pub vpcs: BTreeMap<VpcRole, ObservedVpc>,
    pub internet_gateway: Option<ObservedGateway>,
    pub peerings: BTreeMap<PeeringRole, ObservedPeering>,
    pub groups: BTreeMap<GroupRole, ObservedGroup>,
    pub cluster: Option<ObservedClusterVpc>,
    /// Network interfaces still in the pipeline's VPCs; they block deletion.
    pub interfaces: Vec<ObservedInterface>,
}

impl ObservedNetwork {
    fn active_peering(&self, role: PeeringRole) -> Option<String> {
        self.peerings
            .get(&role)
            .filter(|p| p.status == "active")
            .map(|p| p.id.clone())
    }

    fn group_ids(&self) -> BTreeMap<GroupRole, String> {
        self.groups
            .iter()
            .map(|(role, g)| (*role, g.id.clone()))
            .collect()
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedVpc {
    pub id: String,
    pub cidr: String,
    pub tags: BTreeMap<String, String>,
    pub subnets: Vec<ObservedSubnet>,
    /// The pipeline's own route table in this VPC (never the main one).
    pub route_table: Option<ObservedRouteTable>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedSubnet {
    pub id: String,
    pub availability_zone: String,
    pub cidr: String,
    pub map_public_ip_on_launch: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedRouteTable {
    pub id: String,
    pub routes: BTreeMap<String, RouteTarget>,
    /// Subnet id → association id.
    pub associations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ObservedGateway {
    pub id: String,
    pub attached_to: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ObservedPeering {
    pub id: String,
    pub status: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ObservedGroup {
    pub id: String,
    pub permissions: Vec<Permission>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ObservedClusterVpc {
    pub id: String,
    pub cidrs: Vec<String>,
    pub route_tables: Vec<ObservedRouteTable>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ObservedInterface {
    pub id: String,
    pub description: String,
    pub vpc_id: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum NetworkStep {
    CreateVpc(VpcRole),
    SetVpcTags {
        vpc: VpcRole,
        observed: BTreeMap<String, String>,
    },
    CreateInternetGateway,
    AttachInternetGateway {
        gateway_id: String,
    },
    CreatePeering(PeeringRole),
    AcceptPeering {
        role: PeeringRole,
        id: String,
    },
    CreateRouteTable(VpcRole),
    PutRoute {
        route_table_id: String,
        destination: String,
        target: RouteTarget,
        replace: bool,
    },
    CreateSubnet {
        vpc: VpcRole,
        subnet: DesiredSubnet,
    },
    AssociateRouteTable {
        vpc: VpcRole,
        subnet_id: String,
    },
    MapPublicIps {
        subnet_id: String,
    },
    CreateSecurityGroup(GroupRole),
    AuthorizeIngress {
        group: GroupRole,
        permissions: Vec<(Permission, String)>,
    },
    RevokeIngress {
        group: GroupRole,
        permissions: Vec<Permission>,
    },
    DeleteRoute {
        route_table_id: String,
        destination: String,
    },
    DeletePeering {
        role: PeeringRole,
        id: String,
    },
    DeleteSecurityGroup {
        role: GroupRole,
        id: String,
    },
    DeleteRouteTable {
        id: String,
        associations: Vec<String>,
    },
    DeleteInternetGateway {
        id: String,
        attached_to: Option<String>,
    },
    DeleteSubnet(ObservedSubnet),
    DeleteVpc {
        role: VpcRole,
        id: String,
    },
}

impl Component for Network {
    const KIND: ComponentKind = ComponentKind::Network;
    const DEPENDS_ON: &'static [ComponentKind] = &[];
    type Desired = DesiredNetwork;
    type Observed = ObservedNetwork;
    type Step = NetworkStep;

    fn desired(ctx: &PipelineContext, _upstream: &Outputs) -> Result<DesiredNetwork, ComponentError> {
        let network = &ctx.spec.network;
        let vpc = |role: VpcRole, field: &'static str, cidr: &str| -> Result<DesiredVpc, ComponentError> {
            Ok(DesiredVpc {
                role,
                field,
                name: ctx.resource_name(role.tag_value(), 255),
                cidr: cidr.to_owned(),
                subnets: subnet_cidrs(field, cidr, &network.availability_zones)?,
            })
        };
        Ok(DesiredNetwork {
            owner: ctx.owner.tag_value(),
            name: ctx.resource_name("", 200),
            api: vpc(VpcRole::Api, "spec.network.apiVpcCidr", &network.api_vpc_cidr)?,
            kafka: vpc(
                VpcRole::Kafka,
                "spec.network.kafkaVpcCidr",
                &network.kafka_vpc_cidr,
            )?,
            cluster_vpc_id: network.cluster_vpc_id.clone(),
            https: ctx.spec.upload_api.certificate_arn.is_some(),
            tags: ctx.tags(Self::KIND),
        })
    }

    async fn observe(aws: &AwsClients, desired: &DesiredNetwork) -> Result<ObservedNetwork, ComponentError> {
        let ec2 = &aws.ec2;
        let mut observed = ObservedNetwork::default();
        for role in [VpcRole::Api, VpcRole::Kafka] {
            if let Some(vpc) = observe_vpc(aws, desired, role).await? {
                observed.vpcs.insert(role, vpc);
            }
        }
        let gateways = ec2
            .describe_internet_gateways()
            .filters(tag_filter(OWNER_TAG, &desired.owner))
            .filters(tag_filter(NETWORK_TAG, VpcRole::Api.tag_value()))
            .send()
            .await
            .map_err(|err| classify("look up the internet gateway", err))?;
        observed.internet_gateway = gateways
            .internet_gateways()
            .iter()
            .min_by_key(|g| g.internet_gateway_id().unwrap_or_default().to_owned())
            .map(|g| ObservedGateway {
                id: g.internet_gateway_id().unwrap_or_default().to_owned(),
                attached_to: g
                    .attachments()
                    .iter()
                    .filter_map(|a| a.vpc_id())
                    .next()
                    .map(str::to_owned),
            });
        let peerings = ec2
            .describe_vpc_peering_connections()
            .filters(tag_filter(OWNER_TAG, &desired.owner))
            .send()
            .await
            .map_err(|err| classify("look up VPC peering connections", err))?;
        for peering in peerings.vpc_peering_connections() {
            let status = peering
                .status()
                .and_then(|s| s.code())
                .map(|c| c.as_str().to_owned())
                .unwrap_or_default();
            if ["deleted", "deleting", "rejected", "failed", "expired"].contains(&status.as_str()) {
                continue;
            }
            let tags = ec2_tags(peering.tags());
            let role = match tags.get(PEERING_TAG).map(String::as_str) {
                Some("api") => PeeringRole::Api,
                Some("cluster") => PeeringRole::Cluster,
                _ => continue,
            };
            observed.peerings.insert(
                role,
                ObservedPeering {
                    id: peering.vpc_peering_connection_id().unwrap_or_default().to_owned(),
                    status,
                },
            );
        }
        for role in GroupRole::ALL {
            let Some(vpc) = observed.vpcs.get(&role.vpc()) else {
                continue;
            };
            let groups = ec2
                .describe_security_groups()
                .filters(Filter::builder().name("vpc-id").values(&vpc.id).build())
                .filters(
                    Filter::builder()
                        .name("group-name")
                        .values(desired.group_name(role))
                        .build(),
                )
                .send()
                .await
                .map_err(|err| {
                    classify(
                        &format!("look up security group {}", desired.group_name(role)),
                        err,
                    )
                })?;
            if let Some(group) = groups.security_groups().first() {
                observed.groups.insert(
                    role,
                    ObservedGroup {
                        id: group.group_id().unwrap_or_default().to_owned(),
                        permissions: security_groups::permissions_of(group.ip_permissions()),
                    },
                );
            }
        }
        if let Some(cluster_vpc_id) = &desired.cluster_vpc_id {
            observed.cluster = observe_cluster_vpc(aws, cluster_vpc_id).await?;
        }
        let vpc_ids: Vec<String> = observed.vpcs.values().map(|v| v.id.clone()).collect();
        if !vpc_ids.is_empty() {
            let interfaces = ec2
                .describe_network_interfaces()
                .filters(Filter::builder().name("vpc-id").set_values(Some(vpc_ids)).build())
                .send()
                .await
                .map_err(|err| classify("list network interfaces in the pipeline's VPCs", err))?;
            observed.interfaces = interfaces
                .network_interfaces()
                .iter()
                .map(|i| ObservedInterface {
                    id: i.network_interface_id().unwrap_or_default().to_owned(),
                    description: i.description().unwrap_or_default().to_owned(),
                    vpc_id: i.vpc_id().unwrap_or_default().to_owned(),
                })
                .collect();
        }
        Ok(observed)
    }

    fn converge(
        desired: &DesiredNetwork,
        observed: &ObservedNetwork,
    ) -> Result<Vec<NetworkStep>, ComponentError> {
        if desired.cluster_vpc_id.is_some() && observed.cluster.is_none() {
            let id = desired.cluster_vpc_id.as_deref().unwrap_or_default();
            return Err(missing(
                SpecReference::new(Lookup::Vpc, "spec.network.clusterVpcId", id),
                "no VPC of that id in this account and region",
            ));
        }
        let mut steps = Vec::new();
        for role in [VpcRole::Api, VpcRole::Kafka] {
            let want = desired.vpc(role);
            let Some(vpc) = observed.vpcs.get(&role) else {
                steps.push(NetworkStep::CreateVpc(role));
                continue;
            };
            if vpc.cidr != want.cidr {
                return Err(ComponentError::terminal(
                    "VpcCidrChanged",
                    format!(
                        "the {} VPC {} has CIDR {} but {} is {}; a VPC's CIDR cannot change: \
                         restore the spec value",
                        role.tag_value(),
                        vpc.id,
                        vpc.cidr,
                        want.field,
                        want.cidr
                    ),
                ));
            }
            let tags = desired.vpc_tags(role);
            if vpc.tags != tags {
                steps.push(NetworkStep::SetVpcTags {
                    vpc: role,
                    observed: vpc.tags.clone(),
                });
            }
        }
        match &observed.internet_gateway {
            None => steps.push(NetworkStep::CreateInternetGateway),
            Some(gateway) => {
                let api_vpc = observed.vpcs.get(&VpcRole::Api).map(|v| v.id.clone());
                if gateway.attached_to.is_none() && api_vpc.is_some() {
                    steps.push(NetworkStep::AttachInternetGateway {
                        gateway_id: gateway.id.clone(),
                    });
                }
            }
        }
        let mut peerings = vec![PeeringRole::Api];
        peerings.extend(desired.cluster_vpc_id.as_ref().map(|_| PeeringRole::Cluster));
        for role in peerings {
            match observed.peerings.get(&role) {
                None => steps.push(NetworkStep::CreatePeering(role)),
                Some(p) if p.status == "pending-acceptance" => steps.push(NetworkStep::AcceptPeering {
                    role,
                    id: p.id.clone(),
                }),
                Some(_) => {}
            }
        }
        for role in [VpcRole::Api, VpcRole::Kafka] {
            let Some(vpc) = observed.vpcs.get(&role) else {
                continue;
            };
            let Some(table) = &vpc.route_table else {
                steps.push(NetworkStep::CreateRouteTable(role));
                continue;
            };
            steps.extend(route_steps(
                &table.id,
                &table.routes,
                &desired.routes(role, observed),
            ));
            for subnet in &vpc.subnets {
                if !table.associations.contains_key(&subnet.id) {
                    steps.push(NetworkStep::AssociateRouteTable {
                        vpc: role,
                        subnet_id: subnet.id.clone(),
                    });
                }
            }
        }
        for role in [VpcRole::Api, VpcRole::Kafka] {
            let Some(vpc) = observed.vpcs.get(&role) else {
                continue;
            };
            let want = &desired.vpc(role).subnets;
            for subnet in &vpc.subnets {
                let wanted = want
                    .iter()
                    .any(|d| d.cidr == subnet.cidr && d.availability_zone == subnet.availability_zone);
                if !wanted {
                    steps.push(NetworkStep::DeleteSubnet(subnet.clone()));
                } else if role == VpcRole::Api && !subnet.map_public_ip_on_launch {
                    steps.push(NetworkStep::MapPublicIps {
                        subnet_id: subnet.id.clone(),
                    });
                }
            }
            for subnet in want {
                let present = vpc
                    .subnets
                    .iter()
                    .any(|o| o.cidr == subnet.cidr && o.availability_zone == subnet.availability_zone);
                if !present {
                    steps.push(NetworkStep::CreateSubnet {
                        vpc: role,
                        subnet: subnet.clone(),
                    });
                }
            }
        }
        let group_ids = observed.group_ids();
        let inputs = desired.rule_inputs(observed);
        for role in [
            GroupRole::LoadBalancer,
            GroupRole::UploadInstances,
            GroupRole::KafkaBrokers,
        ] {
            let Some(group) = observed.groups.get(&role) else {
                if observed.vpcs.contains_key(&role.vpc()) {
                    steps.push(NetworkStep::CreateSecurityGroup(role));
                }
                continue;
            };
            let want = security_groups::resolve(&security_groups::desired_rules(role, &inputs), &group_ids);
            let (authorize, revoke) = security_groups::rule_changes(&want, &group.permissions);
            if !revoke.is_empty() {
                steps.push(NetworkStep::RevokeIngress {
                    group: role,
                    permissions: revoke,
                });
            }
            if !authorize.is_empty() {
                steps.push(NetworkStep::AuthorizeIngress {
                    group: role,
                    permissions: authorize,
                });
            }
        }
        if let (Some(cluster), Some(peering)) =
            (&observed.cluster, observed.active_peering(PeeringRole::Cluster))
        {
            for table in &cluster.route_tables {
                let want =
                    BTreeMap::from([(desired.kafka.cidr.clone(), RouteTarget::Peering(peering.clone()))]);
                steps.extend(route_steps(&table.id, &table.routes, &want));
            }
        }
        Ok(steps)
    }

    fn teardown(
        desired: &DesiredNetwork,
        observed: &ObservedNetwork,
        _policy: DeletionPolicy,
    ) -> (Vec<NetworkStep>, Option<String>) {
        // The network is never retained. Routes in the cluster's VPC and the
        // peerings go first: nothing stands on them.
        let mut steps = Vec::new();
        if let Some(cluster) = &observed.cluster {
            let ours: Vec<&String> = observed.peerings.values().map(|p| &p.id).collect();
            for table in &cluster.route_tables {
                for (destination, target) in &table.routes {
                    if matches!(target, RouteTarget::Peering(id) if ours.contains(&id)) {
                        steps.push(NetworkStep::DeleteRoute {
                            route_table_id: table.id.clone(),
                            destination: destination.clone(),
                        });
                    }
                }
            }
        }
        steps.extend(
            observed
                .peerings
                .iter()
                .map(|(role, p)| NetworkStep::DeletePeering {
                    role: *role,
                    id: p.id.clone(),
                }),
        );
        let ours = observed
            .vpcs
            .values()
            .any(|vpc| ownership::is_ours(&vpc.tags, &desired.owner));
        if !ours {
            let waiting = (!steps.is_empty()).then(|| "deleting the VPC peering connections".to_owned());
            return (steps, waiting);
        }
        if let Some(interface) = observed.interfaces.first() {
            // Load balancers, instances and clusters release their interfaces
            // minutes after they are deleted; subnets and groups must wait.
            let what = if interface.description.is_empty() {
                String::new()
            } else {
                format!(" ({})", interface.description)
            };
            let waiting = format!(
                "network interface {}{what} is still in VPC {}; {} interface(s) left to be released",
                interface.id,
                interface.vpc_id,
                observed.interfaces.len()
            );
            return (steps, Some(waiting));
        }
        for role in GroupRole::ALL {
            if let Some(group) = observed.groups.get(&role) {
                steps.push(NetworkStep::DeleteSecurityGroup {
                    role,
                    id: group.id.clone(),
                });
            }
        }
        for vpc in observed.vpcs.values() {
            if let Some(table) = &vpc.route_table {
                steps.push(NetworkStep::DeleteRouteTable {
                    id: table.id.clone(),
                    associations: table.associations.values().cloned().collect(),
                });
            }
        }
        if let Some(gateway) = &observed.internet_gateway {
            steps.push(NetworkStep::DeleteInternetGateway {
                id: gateway.id.clone(),
                attached_to: gateway.attached_to.clone(),
            });
        }
        for vpc in observed.vpcs.values() {
            steps.extend(vpc.subnets.iter().cloned().map(NetworkStep::DeleteSubnet));
        }
        for (role, vpc) in &observed.vpcs {
            steps.push(NetworkStep::DeleteVpc {
                role: *role,
                id: vpc.id.clone(),
            });
        }
        (steps, None)
    }

    async fn execute(
        aws: &AwsClients,
        desired: &DesiredNetwork,
        observed: &mut ObservedNetwork,
        step: &NetworkStep,
    ) -> Result<(), ComponentError> {
        let ec2 = &aws.ec2;
        let what = Self::describe(desired, step).resource;
        match step {
            NetworkStep::CreateVpc(role) => {
                let want = desired.vpc(*role);
                let tags = desired.vpc_tags(*role);
                let out = ec2
                    .create_vpc()
                    .cidr_block(&want.cidr)
                    .tag_specifications(tag_specification(ResourceType::Vpc, &tags))
                    .send()
                    .await
                    .map_err(failed("create", &what))?;
                let id = out.vpc().and_then(|v| v.vpc_id()).unwrap_or_default().to_owned();
                observed.vpcs.insert(
                    *role,
                    ObservedVpc {
                        id,
                        cidr: want.cidr.clone(),
                        tags,
                        ..ObservedVpc::default()
                    },
                );
            }
            NetworkStep::SetVpcTags { vpc, observed: old } => {
                let Some(id) = observed.vpcs.get(vpc).map(|v| v.id.clone()) else {
                    return Ok(());
                };
                let tags = desired.vpc_tags(*vpc);
                let stale: Vec<Tag> = removed_tag_keys(old, &tags)
                    .into_iter()
                    .map(|k| Tag::builder().key(k).build())
                    .collect();
                if !stale.is_empty() {
                    ec2.delete_tags()
                        .resources(&id)
                        .set_tags(Some(stale))
                        .send()
                        .await
                        .map_err(failed("untag", &what))?;
                }
                ec2.create_tags()
                    .resources(&id)
                    .set_tags(Some(ec2_tag_list(&tags)))
                    .send()
                    .await
                    .map_err(failed("tag", &what))?;
            }
            NetworkStep::CreateInternetGateway => {
                let tags = desired.tags_for(VpcRole::Api.tag_value(), desired.api.name.clone());
                let out = ec2
                    .create_internet_gateway()
                    .tag_specifications(tag_specification(ResourceType::InternetGateway, &tags))
                    .send()
                    .await
                    .map_err(failed("create", &what))?;
                let id = out
                    .internet_gateway()
                    .and_then(|g| g.internet_gateway_id())
                    .unwrap_or_default()
                    .to_owned();
                observed.internet_gateway = Some(ObservedGateway {
                    id: id.clone(),
                    attached_to: None,
                });
                attach_gateway(aws, observed, &id)
                    .await
                    .map_err(failed("attach", &what))?;
            }
            NetworkStep::AttachInternetGateway { gateway_id } => {
                attach_gateway(aws, observed, gateway_id)
                    .await
                    .map_err(failed("attach", &what))?;
            }
            NetworkStep::CreatePeering(role) => {
                let (requester, accepter) = match role {
                    PeeringRole::Api => (
                        observed.vpcs.get(&VpcRole::Api).map(|v| v.id.clone()),
                        observed.vpcs.get(&VpcRole::Kafka).map(|v| v.id.clone()),
                    ),
                    PeeringRole::Cluster => (
                        observed.vpcs.get(&VpcRole::Kafka).map(|v| v.id.clone()),
                        desired.cluster_vpc_id.clone(),
                    ),
                };
                let (Some(requester), Some(accepter)) = (requester, accepter) else {
                    return Ok(());
                };
                let tags = desired.tags_for(
                    VpcRole::Kafka.tag_value(),
                    format!("{}-{}", desired.name, role.tag_value()),
                );
                let mut tags = tags;
                tags.insert(PEERING_TAG.to_owned(), role.tag_value().to_owned());
                let out = ec2
                    .create_vpc_peering_connection()
                    .vpc_id(requester)
                    .peer_vpc_id(accepter)
                    .tag_specifications(tag_specification(ResourceType::VpcPeeringConnection, &tags))
                    .send()
                    .await
                    .map_err(failed("create", &what))?;
                let id = out
                    .vpc_peering_connection()
                    .and_then(|p| p.vpc_peering_connection_id())
                    .unwrap_or_default()
                    .to_owned();
                accept_peering(aws, observed, *role, &id)
                    .await
                    .map_err(failed("accept", &what))?;
            }
            NetworkStep::AcceptPeering { role, id } => {
                accept_peering(aws, observed, *role, id)
                    .await
                    .map_err(failed("accept", &what))?;
            }
            NetworkStep::CreateRouteTable(role) => {
                let Some(vpc_id) = observed.vpcs.get(role).map(|v| v.id.clone()) else {
                    return Ok(());
                };
                let tags = desired.tags_for(role.tag_value(), desired.vpc(*role).name.clone());
                let out = ec2
                    .create_route_table()
                    .vpc_id(vpc_id)
                    .tag_specifications(tag_specification(ResourceType::RouteTable, &tags))
                    .send()
                    .await
                    .map_err(failed("create", &what))?;
                let id = out
                    .route_table()
                    .and_then(|t| t.route_table_id())
                    .unwrap_or_default()
                    .to_owned();
                let mut table = ObservedRouteTable {
                    id: id.clone(),
                    ..ObservedRouteTable::default()
                };
                for (destination, target) in desired.routes(*role, observed) {
                    put_route(aws, &id, &destination, &target, false).await?;
                    table.routes.insert(destination, target);
                }
                let subnets: Vec<String> = observed.vpcs[role].subnets.iter().map(|s| s.id.clone()).collect();
                for subnet_id in subnets {
                    let association = associate(aws, &id, &subnet_id)
                        .await
                        .map_err(failed("associate", &what))?;
                    table.associations.insert(subnet_id, association);
                }
                if let Some(vpc) = observed.vpcs.get_mut(role) {
                    vpc.route_table = Some(table);
                }
            }
            NetworkStep::PutRoute {
                route_table_id,
                destination,
                target,
                replace,
            } => {
                put_route(aws, route_table_id, destination, target, *replace).await?;
            }
            NetworkStep::CreateSubnet { vpc, subnet } => {
                let Some(vpc_id) = observed.vpcs.get(vpc).map(|v| v.id.clone()) else {
                    return Ok(());
                };
                let tier = if *vpc == VpcRole::Api { "public" } else { "private" };
                let tags = desired.tags_for(
                    vpc.tag_value(),
                    format!("{}-{tier}-{}", desired.vpc(*vpc).name, subnet.availability_zone),
                );
                let out = ec2
                    .create_subnet()
                    .vpc_id(vpc_id)
                    .cidr_block(&subnet.cidr)
                    .availability_zone(&subnet.availability_zone)
                    .tag_specifications(tag_specification(ResourceType::Subnet, &tags))
                    .send()
                    .await
                    .map_err(failed("create", &what))?;
                let id = out
                    .subnet()
                    .and_then(|s| s.subnet_id())
                    .unwrap_or_default()
                    .to_owned();
                let public = *vpc == VpcRole::Api;
                if public {
                    map_public_ips(aws, &id)
                        .await
                        .map_err(failed("map public IPs in", &what))?;
                }
                let table_id = observed.vpcs[vpc].route_table.as_ref().map(|t| t.id.clone());
                let association = match &table_id {
                    Some(table_id) => Some(
                        associate(aws, table_id, &id)
                            .await
                            .map_err(failed("associate", &what))?,
                    ),
                    None => None,
                };
                if let Some(entry) = observed.vpcs.get_mut(vpc) {
                    if let (Some(table), Some(association)) = (entry.route_table.as_mut(), association) {
                        table.associations.insert(id.clone(), association);
                    }
                    entry.subnets.push(ObservedSubnet {
                        id,
                        availability_zone: subnet.availability_zone.clone(),
                        cidr: subnet.cidr.clone(),
                        map_public_ip_on_launch: public,
                    });
                }
            }
            NetworkStep::AssociateRouteTable { vpc, subnet_id } => {
                let Some(table_id) = observed
                    .vpcs
                    .get(vpc)
                    .and_then(|v| v.route_table.as_ref())
                    .map(|t| t.id.clone())
                else {
                    return Ok(());
                };
                associate(aws, &table_id, subnet_id)
                    .await
                    .map_err(failed("associate", &what))?;
            }
            NetworkStep::MapPublicIps { subnet_id } => {
                map_public_ips(aws, subnet_id)
                    .await
                    .map_err(failed("update", &what))?;
            }
            NetworkStep::CreateSecurityGroup(role) => {
                let Some(vpc_id) = observed.vpcs.get(&role.vpc()).map(|v| v.id.clone()) else {
                    return Ok(());
                };
                let name = desired.group_name(*role);
                let tags = desired.tags_for(role.vpc().tag_value(), name.clone());
                let out = ec2
                    .create_security_group()
                    .group_name(&name)
                    .description(role.description())
                    .vpc_id(vpc_id)
                    .tag_specifications(tag_specification(ResourceType::SecurityGroup, &tags))
                    .send()
                    .await
                    .map_err(failed("create", &what))?;
                let id = out.group_id().unwrap_or_default().to_owned();
                observed.groups.insert(
                    *role,
                    ObservedGroup {
                        id,
                        permissions: vec![],
                    },
                );
                let rules = security_groups::desired_rules(*role, &desired.rule_inputs(observed));
                let permissions = security_groups::resolve(&rules, &observed.group_ids());
                authorize(aws, &observed.groups[role].id, &permissions).await?;
            }
            NetworkStep::AuthorizeIngress { group, permissions } => {
                let Some(id) = observed.groups.get(group).map(|g| g.id.clone()) else {
                    return Ok(());
                };
                authorize(aws, &id, permissions).await?;
            }
            NetworkStep::RevokeIngress { group, permissions } => {
                let Some(id) = observed.groups.get(group).map(|g| g.id.clone()) else {
                    return Ok(());
                };
                ec2.revoke_security_group_ingress()
                    .group_id(id)
                    .set_ip_permissions(Some(
                        permissions
                            .iter()
                            .map(|p| security_groups::ip_permission(p, None))
                            .collect(),
                    ))
                    .send()
                    .await
                    .map_err(failed("close ports of", &what))?;
            }
            NetworkStep::DeleteRoute {
                route_table_id,
                destination,
            } => deleted(
                ec2.delete_route()
                    .route_table_id(route_table_id)
                    .destination_cidr_block(destination)
                    .send()
                    .await,
                &["InvalidRoute.NotFound"],
                &format!("delete {what}"),
            )?,
            NetworkStep::DeletePeering { id, .. } => deleted(
                ec2.delete_vpc_peering_connection()
                    .vpc_peering_connection_id(id)
                    .send()
                    .await,
                &["InvalidVpcPeeringConnectionID.NotFound"],
                &format!("delete {what}"),
            )?,
            NetworkStep::DeleteSecurityGroup { id, .. } => deleted(
                ec2.delete_security_group().group_id(id).send().await,
                &["InvalidGroup.NotFound"],
                &format!("delete {what}"),
            )?,
            NetworkStep::DeleteRouteTable { id, associations } => {
                for association in associations {
                    deleted(
                        ec2.disassociate_route_table()
                            .association_id(association)
                            .send()
                            .await,
                        &["InvalidAssociationID.NotFound"],
                        &format!("disassociate {what}"),
                    )?;
                }
                deleted(
                    ec2.delete_route_table().route_table_id(id).send().await,
                    &["InvalidRouteTableID.NotFound"],
                    &format!("delete {what}"),
                )?;
            }
            NetworkStep::DeleteInternetGateway { id, attached_to } => {
                if let Some(vpc_id) = attached_to {
                    deleted(
                        ec2.detach_internet_gateway()
                            .internet_gateway_id(id)
                            .vpc_id(vpc_id)
                            .send()
                            .await,
                        &["Gateway.NotAttached", "InvalidInternetGatewayID.NotFound"],
                        &format!("detach {what}"),
                    )?;
                }
                deleted(
                    ec2.delete_internet_gateway().internet_gateway_id(id).send().await,
                    &["InvalidInternetGatewayID.NotFound"],
                    &format!("delete {what}"),
                )?;
            }
            NetworkStep::DeleteSubnet(subnet) => deleted(
                ec2.delete_subnet().subnet_id(&subnet.id).send().await,
                &["InvalidSubnetID.NotFound"],
                &format!("delete {what}"),
            )?,
            NetworkStep::DeleteVpc { id, .. } => deleted(
                ec2.delete_vpc().vpc_id(id).send().await,
                &["InvalidVpcID.NotFound"],
                &format!("delete {what}"),
            )?,
        }
        Ok(())
    }

    fn describe(desired: &DesiredNetwork, step: &NetworkStep) -> Change {
        let vpc_name = |role: VpcRole| format!("{} VPC {}", role.tag_value(), desired.vpc(role).name);
        match step {
            NetworkStep::CreateVpc(role) => {
                Change::new(Action::Create, vpc_name(*role)).note(format!("CIDR {}", desired.vpc(*role).cidr))
            }
            NetworkStep::SetVpcTags { vpc, observed } => {
                let mut change = Change::new(Action::Update, format!("{} tags", vpc_name(*vpc)));
                change.fields = tag_changes(observed, &desired.vpc_tags(*vpc));
                change
            }
            NetworkStep::CreateInternetGateway => Change::new(Action::Create, "internet gateway")
                .note(format!("attached to {}", vpc_name(VpcRole::Api))),
            NetworkStep::AttachInternetGateway { gateway_id } => Change::new(
                Action::Update,
                format!("internet gateway {gateway_id}"),
            )
            .field("attached to", "(nothing)", vpc_name(VpcRole::Api)),
            NetworkStep::CreatePeering(role) => {
                let other = match role {
                    PeeringRole::Api => vpc_name(VpcRole::Api),
                    PeeringRole::Cluster => {
                        format!("cluster VPC {}", desired.cluster_vpc_id.as_deref().unwrap_or("?"))
                    }
                };
                Change::new(Action::Create, format!("VPC peering {}", role.tag_value()))
                    .note(format!("{other} ↔ {}", vpc_name(VpcRole::Kafka)))
            }
            NetworkStep::AcceptPeering { id, .. } => Change::new(Action::Update, format!("VPC peering {id}"))
                .field("status", "pending-acceptance", "active"),
            NetworkStep::CreateRouteTable(role) => {
                Change::new(Action::Create, format!("route table of the {}", vpc_name(*role)))
            }
            NetworkStep::PutRoute {
                route_table_id,
                destination,
                target,
                replace,
            } => {
                let change = Change::new(Action::Update, format!("route table {route_table_id}"));
                if *replace {
                    change.field(&format!("route {destination}"), "(other target)", target)
                } else {
                    change.field(&format!("route {destination}"), "(none)", target)
                }
            }
            NetworkStep::CreateSubnet { vpc, subnet } => Change::new(
                Action::Create,
                format!(
                    "{} subnet {} in {}",
                    if *vpc == VpcRole::Api { "public" } else { "private" },
                    subnet.cidr,
                    subnet.availability_zone
                ),
            ),
            NetworkStep::AssociateRouteTable { vpc, subnet_id } => {
                Change::new(Action::Update, format!("subnet {subnet_id}")).field(
                    "route table",
                    "(main)",
                    format!("route table of the {}", vpc_name(*vpc)),
                )
            }
            NetworkStep::MapPublicIps { subnet_id } => Change::new(
                Action::Update,
                format!("subnet {subnet_id}"),
            )
            .field("map public IP on launch", false, true),
            NetworkStep::CreateSecurityGroup(role) => Change::new(
                Action::Create,
                format!("security group {}", desired.group_name(*role)),
            )
            .note(role.description()),
            NetworkStep::AuthorizeIngress { group, permissions } => {
                let mut change = Change::new(
                    Action::Update,
                    format!("security group {}", desired.group_name(*group)),
                );
                for (permission, _) in permissions {
                    change = change.field("inbound", "(closed)", permission);
                }
                change
            }
            NetworkStep::RevokeIngress { group, permissions } => {
                let mut change = Change::new(
                    Action::Update,
                    format!("security group {}", desired.group_name(*group)),
                );
                for permission in permissions {
                    change = change.field("inbound", permission, "(closed)");
                }
                change
            }
            NetworkStep::DeleteRoute {
                route_table_id,
                destination,
            } => Change::new(
                Action::Delete,
                format!("route {destination} in route table {route_table_id}"),
            ),
            NetworkStep::DeletePeering { role, id } => {
                Change::new(Action::Delete, format!("VPC peering {} {id}", role.tag_value()))
            }
            NetworkStep::DeleteSecurityGroup { role, id } => Change::new(
                Action::Delete,
                format!("security group {} {id}", desired.group_name(*role)),
            ),
            NetworkStep::DeleteRouteTable { id, .. } => {
                Change::new(Action::Delete, format!("route table {id}"))
            }
            NetworkStep::DeleteInternetGateway { id, .. } => {
                Change::new(Action::Delete, format!("internet gateway {id}"))
            }
            NetworkStep::DeleteSubnet(subnet) => Change::new(
                Action::Delete,
                format!(
                    "subnet {} ({} in {})",
                    subnet.id, subnet.cidr, subnet.availability_zone
                ),
            ),
            NetworkStep::DeleteVpc { role, id } => {
                Change::new(Action::Delete, format!("{} VPC {id}", role.tag_value()))
            }
        }
    }

    fn readiness(desired: &DesiredNetwork, observed: &ObservedNetwork) -> Readiness {
        let complete = [VpcRole::Api, VpcRole::Kafka].into_iter().all(|role| {
            observed.vpcs.get(&role).is_some_and(|v| {
                v.subnets.len() == desired.vpc(role).subnets.len() && v.route_table.is_some()
            })
        });
        let peered = observed.active_peering(PeeringRole::Api).is_some()
            && (desired.cluster_vpc_id.is_none() || observed.active_peering(PeeringRole::Cluster).is_some());
        if complete && peered && observed.groups.len() == GroupRole::ALL.len() {
            Readiness::Ready
        } else {
            Readiness::Waiting("the VPCs, peering and security groups are being created".to_owned())
        }
    }

    fn publish(_desired: &DesiredNetwork, observed: &ObservedNetwork, outputs: &mut Outputs) {
        for (role, vpc) in &observed.vpcs {
            outputs.resource(Self::KIND, "AWS::EC2::VPC", &vpc.id, None);
            let subnets: Vec<SubnetOutput> = vpc
                .subnets
                .iter()
                .map(|s| SubnetOutput {
                    id: s.id.clone(),
                    availability_zone: s.availability_zone.clone(),
                    cidr: s.cidr.clone(),
                })
                .collect();
            for subnet in &subnets {
                outputs.resource(Self::KIND, "AWS::EC2::Subnet", &subnet.id, None);
            }
            match role {
                VpcRole::Api => {
                    outputs.api_vpc_id = Some(vpc.id.clone());
                    outputs.public_subnets = subnets;
                }
                VpcRole::Kafka => {
                    outputs.kafka_vpc_id = Some(vpc.id.clone());
                    outputs.private_subnets = subnets;
                }
            }
            if let Some(table) = &vpc.route_table {
                outputs.resource(Self::KIND, "AWS::EC2::RouteTable", &table.id, None);
            }
        }
        if let Some(gateway) = &observed.internet_gateway {
            outputs.resource(Self::KIND, "AWS::EC2::InternetGateway", &gateway.id, None);
        }
        for peering in observed.peerings.values() {
            outputs.resource(Self::KIND, "AWS::EC2::VPCPeeringConnection", &peering.id, None);
        }
        for (role, group) in &observed.groups {
            outputs.resource(Self::KIND, "AWS::EC2::SecurityGroup", &group.id, None);
            let slot = match role {
                GroupRole::LoadBalancer => &mut outputs.load_balancer_security_group,
                GroupRole::UploadInstances => &mut outputs.upload_security_group,
                GroupRole::KafkaBrokers => &mut outputs.kafka_security_group,
            };
            *slot = Some(group.id.clone());
        }
    }
}

/// The routes to add or replace so that `observed` holds every `desired` one.
/// Routes the pipeline did not ask for (`local`, a user's own) are left alone.
fn route_steps(
    table_id: &str,
    observed: &BTreeMap<String, RouteTarget>,
    desired: &BTreeMap<String, RouteTarget>,
) -> Vec<NetworkStep> {
    desired
        .iter()
        .filter(|(destination, target)| observed.get(*destination) != Some(target))
        .map(|(destination, target)| NetworkStep::PutRoute {
            route_table_id: table_id.to_owned(),
            destination: destination.clone(),
            target: target.clone(),
            replace: observed.contains_key(destination),
        })
        .collect()
}

async fn observe_vpc(
    aws: &AwsClients,
    desired: &DesiredNetwork,
    role: VpcRole,
) -> Result<Option<ObservedVpc>, ComponentError> {
    let ec2 = &aws.ec2;
    let vpcs = ec2
        .describe_vpcs()
        .filters(tag_filter(OWNER_TAG, &desired.owner))
        .filters(tag_filter(NETWORK_TAG, role.tag_value()))
        .send()
        .await
        .map_err(|err| classify(&format!("look up the {} VPC", role.tag_value()), err))?;
    // Tags are set in the call that creates the VPC, so there is at most one;
    // the lowest id is the oldest should that ever be untrue.
    let Some(vpc) = vpcs
        .vpcs()
        .iter()
        .min_by_key(|vpc| vpc.vpc_id().unwrap_or_default().to_owned())
    else {
        return Ok(None);
    };
    let id = vpc.vpc_id().unwrap_or_default().to_owned();
    let subnets = ec2
        .describe_subnets()
        .filters(Filter::builder().name("vpc-id").values(&id).build())
        .send()
        .await
        .map_err(|err| classify(&format!("list subnets of VPC {id}"), err))?;
    let mut subnets: Vec<ObservedSubnet> = subnets
        .subnets()
        .iter()
        .map(|s| ObservedSubnet {
            id: s.subnet_id().unwrap_or_default().to_owned(),
            availability_zone: s.availability_zone().unwrap_or_default().to_owned(),
            cidr: s.cidr_block().unwrap_or_default().to_owned(),
            map_public_ip_on_launch: s.map_public_ip_on_launch().unwrap_or(false),
        })
        .collect();
    subnets.sort_by(|a, b| a.cidr.cmp(&b.cidr));
    let tables = ec2
        .describe_route_tables()
        .filters(Filter::builder().name("vpc-id").values(&id).build())
        .filters(tag_filter(OWNER_TAG, &desired.owner))
        .send()
        .await
        .map_err(|err| classify(&format!("list route tables of VPC {id}"), err))?;
    let route_table = tables
        .route_tables()
        .iter()
        .min_by_key(|t| t.route_table_id().unwrap_or_default().to_owned())
        .map(route_table_of);
    Ok(Some(ObservedVpc {
        id,
        cidr: vpc.cidr_block().unwrap_or_default().to_owned(),
        tags: ec2_tags(vpc.tags()),
        subnets,
        route_table,
    }))
}

async fn observe_cluster_vpc(
    aws: &AwsClients,
    id: &str,
) -> Result<Option<ObservedClusterVpc>, ComponentError> {
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
    Ok(Some(ObservedClusterVpc {
        id: id.to_owned(),
        cidrs,
        route_tables: tables.route_tables().iter().map(route_table_of).collect(),
    }))
}

fn route_table_of(table: &aws_sdk_ec2::types::RouteTable) -> ObservedRouteTable {
    ObservedRouteTable {
        id: table.route_table_id().unwrap_or_default().to_owned(),
        routes: table
            .routes()
            .iter()
            .filter_map(|r| {
                let destination = r.destination_cidr_block()?.to_owned();
                let target = if let Some(id) = r.vpc_peering_connection_id() {
                    RouteTarget::Peering(id.to_owned())
                } else {
                    match r.gateway_id() {
                        Some(id) if id.starts_with("igw-") => RouteTarget::Gateway(id.to_owned()),
                        Some(id) => RouteTarget::Other(id.to_owned()),
                        None => RouteTarget::Other(String::new()),
                    }
                };
                Some((destination, target))
            })
            .collect(),
        associations: table
            .associations()
            .iter()
            .filter_map(|a| {
                Some((
                    a.subnet_id()?.to_owned(),
                    a.route_table_association_id()?.to_owned(),
                ))
            })
            .collect(),
    }
}

async fn attach_gateway(
    aws: &AwsClients,
    observed: &mut ObservedNetwork,
    gateway_id: &str,
) -> Result<
    (),
    SdkError<aws_sdk_ec2::operation::attach_internet_gateway::AttachInternetGatewayError, HttpResponse>,
> {
    let Some(vpc_id) = observed.vpcs.get(&VpcRole::Api).map(|v| v.id.clone()) else {
        return Ok(());
    };
    aws.ec2
        .attach_internet_gateway()
        .internet_gateway_id(gateway_id)
        .vpc_id(&vpc_id)
        .send()
        .await?;
    if let Some(gateway) = observed.internet_gateway.as_mut() {
        gateway.attached_to = Some(vpc_id);
    }
    Ok(())
}

async fn put_route(
    aws: &AwsClients,
    table_id: &str,
    destination: &str,
    target: &RouteTarget,
    replace: bool,
) -> Result<(), ComponentError> {
    let action = format!("route {destination} → {target} in route table {table_id}");
    let (gateway, peering) = match target {
        RouteTarget::Gateway(id) => (Some(id.clone()), None),
        RouteTarget::Peering(id) => (None, Some(id.clone())),
        RouteTarget::Other(_) => return Ok(()),
    };
    if replace {
        aws.ec2
            .replace_route()
            .route_table_id(table_id)
            .destination_cidr_block(destination)
            .set_gateway_id(gateway)
            .set_vpc_peering_connection_id(peering)
            .send()
            .await
            .map(drop)
            .map_err(|err| classify(&format!("replace {action}"), err))
    } else {
        aws.ec2
            .create_route()
            .route_table_id(table_id)
            .destination_cidr_block(destination)
            .set_gateway_id(gateway)
            .set_vpc_peering_connection_id(peering)
            .send()
            .await
            .map(drop)
            .map_err(|err| classify(&format!("add {action}"), err))
    }
}

async fn associate(
    aws: &AwsClients,
    table_id: &str,
    subnet_id: &str,
) -> Result<
    String,
    SdkError<aws_sdk_ec2::operation::associate_route_table::AssociateRouteTableError, HttpResponse>,
> {
    let out = aws
        .ec2
        .associate_route_table()
        .route_table_id(table_id)
        .subnet_id(subnet_id)
        .send()
        .await?;
    Ok(out.association_id().unwrap_or_default().to_owned())
}

async fn map_public_ips(
    aws: &AwsClients,
    subnet_id: &str,
) -> Result<
    (),
    SdkError<aws_sdk_ec2::operation::modify_subnet_attribute::ModifySubnetAttributeError, HttpResponse>,
> {
    aws.ec2
        .modify_subnet_attribute()
        .subnet_id(subnet_id)
        .map_public_ip_on_launch(AttributeBooleanValue::builder().value(true).build())
        .send()
        .await
        .map(drop)
}

async fn authorize(
    aws: &AwsClients,
    group_id: &str,
    permissions: &[(Permission, String)],
) -> Result<(), ComponentError> {
    if permissions.is_empty() {
        return Ok(());
    }
    match aws
        .ec2
        .authorize_security_group_ingress()
        .group_id(group_id)
        .set_ip_permissions(Some(
            permissions
                .iter()
                .map(|(p, description)| security_groups::ip_permission(p, Some(description)))
                .collect(),
        ))
        .send()
        .await
    {
        Ok(_) => Ok(()),
        // Another round already opened it.
        Err(err) if code(&err) == Some("InvalidPermission.Duplicate") => Ok(()),
        Err(err) => Err(classify(&format!("open ports of security group {group_id}"), err)),
    }
}

/// Both sides are in this account, so the pipeline accepts its own requests.
async fn accept_peering(
    aws: &AwsClients,
    observed: &mut ObservedNetwork,
    role: PeeringRole,
    id: &str,
) -> Result<
    (),
    SdkError<
        aws_sdk_ec2::operation::accept_vpc_peering_connection::AcceptVpcPeeringConnectionError,
        HttpResponse,
    >,
> {
    aws.ec2
        .accept_vpc_peering_connection()
        .vpc_peering_connection_id(id)
        .send()
        .await?;
    observed.peerings.insert(
        role,
        ObservedPeering {
            id: id.to_owned(),
            status: "active".to_owned(),
        },
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{COMPONENT_TAG, context_from_yaml};

    fn desired_with(extra: &str) -> DesiredNetwork {
        let ctx = context_from_yaml(&format!(
            "
apiVersion: imagepipeline.io/v1alpha1
kind: ImagePipeline
metadata: {{name: photos, namespace: media}}
spec:
  region: eu-west-1
  network:
    availabilityZones: [eu-west-1a, eu-west-1b, eu-west-1c]
    kafkaVpcCidr: 10.61.0.0/16
{extra}"
        ));
        Network::desired(&ctx, &Outputs::default()).expect("network of a valid spec")
    }

    fn desired() -> DesiredNetwork {
        desired_with("")
    }

    /// What AWS holds once a first apply is done.
    fn as_desired(desired: &DesiredNetwork) -> ObservedNetwork {
        let mut observed = ObservedNetwork {
            internet_gateway: Some(ObservedGateway {
                id: "igw-1".into(),
                attached_to: Some("vpc-api".into()),
            }),
            ..ObservedNetwork::default()
        };
        observed.peerings.insert(
            PeeringRole::Api,
            ObservedPeering {
                id: "pcx-api".into(),
                status: "active".into(),
            },
        );
        for role in GroupRole::ALL {
            observed.groups.insert(
                role,
                ObservedGroup {
                    id: format!("sg-{}", role.name_suffix()),
                    permissions: vec![],
                },
            );
        }
        for role in GroupRole::ALL {
            let rules = security_groups::desired_rules(role, &desired.rule_inputs(&observed));
            let permissions = security_groups::resolve(&rules, &observed.group_ids());
            observed.groups.get_mut(&role).unwrap().permissions =
                permissions.into_iter().map(|(p, _)| p).collect();
        }
        for role in [VpcRole::Api, VpcRole::Kafka] {
            let want = desired.vpc(role);
            let subnets: Vec<ObservedSubnet> = want
                .subnets
                .iter()
                .enumerate()
                .map(|(i, s)| ObservedSubnet {
                    id: format!("subnet-{}-{i}", role.tag_value()),
                    availability_zone: s.availability_zone.clone(),
                    cidr: s.cidr.clone(),
                    map_public_ip_on_launch: role == VpcRole::Api,
                })
                .collect();
            let table = ObservedRouteTable {
                id: format!("rtb-{}", role.tag_value()),
                routes: desired.routes(role, &observed),
                associations: subnets
                    .iter()
                    .map(|s| (s.id.clone(), format!("rtbassoc-{}", s.id)))
                    .collect(),
            };
            observed.vpcs.insert(
                role,
                ObservedVpc {
                    id: format!("vpc-{}", role.tag_value()),
                    cidr: want.cidr.clone(),
                    tags: desired.vpc_tags(role),
                    subnets,
                    route_table: Some(table),
                },
            );
        }
        observed
    }

    #[test]
    fn each_vpc_has_one_subnet_per_zone_from_its_cidr() {
        let desired = desired();
        let cidrs = |vpc: &DesiredVpc| -> Vec<(String, String)> {
            vpc.subnets
                .iter()
                .map(|s| (s.availability_zone.clone(), s.cidr.clone()))
                .collect()
        };
        let zones = ["eu-west-1a", "eu-west-1b", "eu-west-1c"].map(String::from);
        assert_eq!(
            cidrs(&desired.kafka),
            zones
                .iter()
                .cloned()
                .zip(["10.61.0.0/20", "10.61.16.0/20", "10.61.32.0/20"].map(String::from))
                .collect::<Vec<_>>()
        );
        assert_eq!(
            cidrs(&desired.api),
            zones
                .iter()
                .cloned()
                .zip(["10.40.0.0/20", "10.40.16.0/20", "10.40.32.0/20"].map(String::from))
                .collect::<Vec<_>>()
        );
        let tags = desired.vpc_tags(VpcRole::Kafka);
        assert_eq!(tags[OWNER_TAG], "media/photos");
        assert_eq!(tags[COMPONENT_TAG], "network");
        assert_eq!(tags[NETWORK_TAG], "kafka");
    }

    #[test]
    fn a_network_as_desired_needs_no_steps_and_is_ready() {
        let desired = desired();
        let observed = as_desired(&desired);
        assert_eq!(Network::converge(&desired, &observed), Ok(vec![]));
        assert_eq!(Network::readiness(&desired, &observed), Readiness::Ready);
    }

    #[test]
    fn nothing_observed_plans_every_top_level_resource() {
        let steps = Network::converge(&desired(), &ObservedNetwork::default()).unwrap();
        assert_eq!(
            steps,
            [
                NetworkStep::CreateVpc(VpcRole::Api),
                NetworkStep::CreateVpc(VpcRole::Kafka),
                NetworkStep::CreateInternetGateway,
                NetworkStep::CreatePeering(PeeringRole::Api),
            ]
        );
    }

    #[test]
    fn the_public_route_table_sends_the_internet_to_the_gateway_and_kafka_to_the_peering() {
        let desired = desired();
        let observed = as_desired(&desired);
        let route = |d: &str, t: RouteTarget| (d.to_owned(), t);
        assert_eq!(
            desired.routes(VpcRole::Api, &observed),
            BTreeMap::from([
                route("0.0.0.0/0", RouteTarget::Gateway("igw-1".into())),
                route("10.61.0.0/16", RouteTarget::Peering("pcx-api".into())),
            ])
        );
        assert_eq!(
            desired.routes(VpcRole::Kafka, &observed),
            BTreeMap::from([route("10.40.0.0/16", RouteTarget::Peering("pcx-api".into()))])
        );
    }

    #[test]
    fn drift_yields_only_the_steps_that_repair_it() {
        let desired = desired();
        let mut observed = as_desired(&desired);
        let api = observed.vpcs.get_mut(&VpcRole::Api).unwrap();
        api.route_table.as_mut().unwrap().routes.remove("0.0.0.0/0");
        api.subnets[0].map_public_ip_on_launch = false;
        let opened = Permission {
            protocol: "tcp".into(),
            from_port: Some(22),
            to_port: Some(22),
            source: security_groups::Source::Cidr("0.0.0.0/0".into()),
        };
        observed
            .groups
            .get_mut(&GroupRole::KafkaBrokers)
            .unwrap()
            .permissions
            .push(opened.clone());
        assert_eq!(
            Network::converge(&desired, &observed),
            Ok(vec![
                NetworkStep::PutRoute {
                    route_table_id: "rtb-api".into(),
                    destination: "0.0.0.0/0".into(),
                    target: RouteTarget::Gateway("igw-1".into()),
                    replace: false,
                },
                NetworkStep::MapPublicIps {
                    subnet_id: "subnet-api-0".into()
                },
                NetworkStep::RevokeIngress {
                    group: GroupRole::KafkaBrokers,
                    permissions: vec![opened],
                },
            ])
        );
    }

    #[test]
    fn missing_subnets_are_created_and_subnets_of_unlisted_zones_deleted() {
        let desired = desired();
        let mut observed = as_desired(&desired);
        let kafka = observed.vpcs.get_mut(&VpcRole::Kafka).unwrap();
        let missing = kafka.subnets.remove(1);
        kafka
            .route_table
            .as_mut()
            .unwrap()
            .associations
            .remove(&missing.id);
        let stray = ObservedSubnet {
            id: "subnet-stray".into(),
            availability_zone: "eu-west-1d".into(),
            cidr: "10.61.48.0/20".into(),
            map_public_ip_on_launch: false,
        };
        kafka.subnets.push(stray.clone());
        kafka
            .route_table
            .as_mut()
            .unwrap()
            .associations
            .insert(stray.id.clone(), "rtbassoc-stray".into());
        assert_eq!(
            Network::converge(&desired, &observed),
            Ok(vec![
                NetworkStep::DeleteSubnet(stray),
                NetworkStep::CreateSubnet {
                    vpc: VpcRole::Kafka,
                    subnet: DesiredSubnet {
                        availability_zone: missing.availability_zone,
                        cidr: missing.cidr,
                    },
                },
            ])
        );
    }

    #[test]
    fn a_cluster_vpc_is_peered_routed_both_ways_and_let_in_on_9092() {
        let desired = desired_with("    clusterVpcId: vpc-0c1c2c3c4c5c6c7c8\n");
        let mut observed = as_desired(&desired);
        let cluster_table = ObservedRouteTable {
            id: "rtb-cluster".into(),
            routes: BTreeMap::from([("172.31.0.0/16".into(), RouteTarget::Other("local".into()))]),
            associations: BTreeMap::new(),
        };
        observed.cluster = Some(ObservedClusterVpc {
            id: "vpc-0c1c2c3c4c5c6c7c8".into(),
            cidrs: vec!["172.31.0.0/16".into()],
            route_tables: vec![cluster_table],
        });
        let from_cluster = Permission {
            protocol: "tcp".into(),
            from_port: Some(9092),
            to_port: Some(9092),
            source: security_groups::Source::Cidr("172.31.0.0/16".into()),
        };
        assert_eq!(
            Network::converge(&desired, &observed).unwrap(),
            [
                NetworkStep::CreatePeering(PeeringRole::Cluster),
                NetworkStep::AuthorizeIngress {
                    group: GroupRole::KafkaBrokers,
                    permissions: vec![(
                        from_cluster.clone(),
                        "Kafka clients in the cluster VPC (peered)".into()
                    )],
                },
            ]
        );
        observed.peerings.insert(
            PeeringRole::Cluster,
            ObservedPeering {
                id: "pcx-cluster".into(),
                status: "active".into(),
            },
        );
        let kafka_group = observed.groups.get_mut(&GroupRole::KafkaBrokers).unwrap();
        kafka_group.permissions.push(from_cluster);
        kafka_group.permissions.sort();
        let peering = RouteTarget::Peering("pcx-cluster".into());
        assert_eq!(
            Network::converge(&desired, &observed).unwrap(),
            [
                NetworkStep::PutRoute {
                    route_table_id: "rtb-kafka".into(),
                    destination: "172.31.0.0/16".into(),
                    target: peering.clone(),
                    replace: false,
                },
                NetworkStep::PutRoute {
                    route_table_id: "rtb-cluster".into(),
                    destination: "10.61.0.0/16".into(),
                    target: peering,
                    replace: false,
                },
            ]
        );
    }

    #[test]
    fn a_cluster_vpc_that_does_not_exist_is_a_terminal_error_naming_the_field() {
        let desired = desired_with("    clusterVpcId: vpc-0dead0dead0dead0\n");
        let err = Network::converge(&desired, &as_desired(&desired)).unwrap_err();
        assert!(
            err.is_terminal() && err.message.contains("spec.network.clusterVpcId"),
            "{err:?}"
        );
    }

    #[test]
    fn a_vpc_whose_cidr_differs_from_the_spec_is_a_terminal_error_naming_the_field() {
        let desired = desired();
        let mut observed = as_desired(&desired);
        observed.vpcs.get_mut(&VpcRole::Kafka).unwrap().cidr = "10.41.0.0/16".into();
        let err = Network::converge(&desired, &observed).unwrap_err();
        assert!(
            err.is_terminal() && err.message.contains("spec.network.kafkaVpcCidr"),
            "{err:?}"
        );
    }

    #[test]
    fn deletion_waits_for_network_interfaces_and_names_the_first() {
        let desired = desired();
        let mut observed = as_desired(&desired);
        observed.interfaces.push(ObservedInterface {
            id: "eni-1".into(),
            description: "ELB app/upload".into(),
            vpc_id: "vpc-api".into(),
        });
        let (steps, waiting) = Network::teardown(&desired, &observed, DeletionPolicy::Delete);
        assert_eq!(
            steps,
            [NetworkStep::DeletePeering {
                role: PeeringRole::Api,
                id: "pcx-api".into()
            }]
        );
        let waiting = waiting.expect("waits for the interface");
        assert!(
            waiting.contains("eni-1") && waiting.contains("ELB app/upload"),
            "{waiting}"
        );
    }

    #[test]
    fn deletion_removes_groups_before_what_they_name_and_vpcs_last() {
        let desired = desired();
        let mut observed = as_desired(&desired);
        observed.peerings.clear();
        let (steps, waiting) = Network::teardown(&desired, &observed, DeletionPolicy::Retain);
        assert_eq!(waiting, None);
        let position =
            |wanted: fn(&NetworkStep) -> bool| steps.iter().position(wanted).expect("step present");
        let upload_group = position(|s| {
            matches!(
                s,
                NetworkStep::DeleteSecurityGroup {
                    role: GroupRole::UploadInstances,
                    ..
                }
            )
        });
        let lb_group = position(|s| {
            matches!(
                s,
                NetworkStep::DeleteSecurityGroup {
                    role: GroupRole::LoadBalancer,
                    ..
                }
            )
        });
        let gateway = position(|s| matches!(s, NetworkStep::DeleteInternetGateway { .. }));
        let subnet = position(|s| matches!(s, NetworkStep::DeleteSubnet(_)));
        let vpc = position(|s| matches!(s, NetworkStep::DeleteVpc { .. }));
        assert!(
            upload_group < lb_group && lb_group < gateway && gateway < subnet && subnet < vpc,
            "{steps:?}"
        );
        assert_eq!(
            steps
                .iter()
                .filter(|s| matches!(s, NetworkStep::DeleteVpc { .. }))
                .count(),
            2
        );
    }
}
