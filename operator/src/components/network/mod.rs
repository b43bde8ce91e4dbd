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
//! The resources are declared in the order they are made; teardown deletes
//! them in reverse, and waits for AWS to release the network interfaces of
//! what stood in the VPCs before it deletes groups and subnets.

mod desired;
pub mod layout;
pub mod security_groups;

pub use desired::{DesiredNetwork, DesiredVpc, Links};

use std::collections::BTreeMap;

use aws_sdk_ec2::types::Filter;

use crate::aws::AwsClients;
use crate::aws::errors::{Lookup, SpecReference, classify, missing};
use crate::engine::resource::{Ref, Resource, Walk, WalkMode};
use crate::engine::{ComponentError, ComponentKind, Declared, Outputs, PipelineContext, SubnetOutput};
use crate::resources::internet_gateway::InternetGateway;
use crate::resources::route::Route;
use crate::resources::route_table::{RouteTable, RouteTarget};
use crate::resources::subnet::{self, Subnet, SubnetState};
use crate::resources::vpc::{self, ExternalVpc};
use desired::active;
use layout::subnet_cidrs;
use security_groups::{GroupRole, VpcRole};

pub struct Network;

/// What the network hands the components that stand in it. An id of a
/// resource not made yet (in a plan) is a pending reference, never `""`.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkOutputs {
    pub api_vpc: Ref,
    pub kafka_vpc: Ref,
    /// Subnets of the API VPC with a route to the internet gateway.
    pub public_subnets: Vec<SubnetOutput>,
    /// Subnets of the Kafka VPC, without a way out.
    pub private_subnets: Vec<SubnetOutput>,
    /// The route table of the Kafka VPC's subnets.
    pub kafka_route_table: Ref,
    pub load_balancer_group: Ref,
    pub upload_group: Ref,
    pub kafka_group: Ref,
}

impl NetworkOutputs {
    /// Nothing made yet: what a component sees when the network has not run
    /// in this pass (a teardown runs the other components first).
    pub fn pending() -> Self {
        let pending = |what: &str| Ref::Pending(what.to_owned());
        Self {
            api_vpc: pending("the API VPC"),
            kafka_vpc: pending("the Kafka VPC"),
            public_subnets: Vec::new(),
            private_subnets: Vec::new(),
            kafka_route_table: pending("the Kafka VPC's route table"),
            load_balancer_group: pending("the load balancer's security group"),
            upload_group: pending("the upload instances' security group"),
            kafka_group: pending("the brokers' security group"),
        }
    }

    /// The network's outputs in `upstream`, or all pending.
    pub fn from_upstream(upstream: &Outputs) -> Self {
        upstream.of::<Self>().cloned().unwrap_or_else(Self::pending)
    }
}

impl Declared for Network {
    const KIND: ComponentKind = ComponentKind::Network;
    const DEPENDS_ON: &'static [ComponentKind] = &[];
    type Desired = DesiredNetwork;

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
            name: ctx.resource_name("", 200),
            api: vpc(VpcRole::Api, "spec.network.apiVpcCidr", &network.api_vpc_cidr)?,
            kafka: vpc(
                VpcRole::Kafka,
                "spec.network.kafkaVpcCidr",
                &network.kafka_vpc_cidr,
            )?,
            cluster_vpc_id: network.cluster_vpc_id.clone(),
            https: ctx.spec.upload_api.certificate_arn.is_some(),
            tags: ctx.tags(ComponentKind::Network),
        })
    }

    async fn declare(
        walk: &mut Walk<'_>,
        desired: &DesiredNetwork,
        outputs: &mut Outputs,
    ) -> Result<(), ComponentError> {
        let cluster = cluster_vpc(walk, desired).await?;
        let mut vpc_ids = BTreeMap::new();
        for role in [VpcRole::Api, VpcRole::Kafka] {
            let vpc = desired.vpc_resource(role);
            let found = walk.ensure(&vpc).await?;
            vpc_ids.insert(role, Ref::to(found.as_ref(), |v| v.id.clone(), vpc.label()));
        }
        let (api_id, kafka_id) = (vpc_ids[&VpcRole::Api].clone(), vpc_ids[&VpcRole::Kafka].clone());
        let mut made = NetworkOutputs {
            api_vpc: api_id.clone(),
            kafka_vpc: kafka_id.clone(),
            ..NetworkOutputs::pending()
        };
        let api_label = desired.vpc_resource(VpcRole::Api).label();
        let kafka_label = desired.vpc_resource(VpcRole::Kafka).label();

        let gateway = InternetGateway {
            vpc_id: api_id.clone(),
            vpc: api_label.clone(),
            tags: desired.tags_for(VpcRole::Api.tag_value(), desired.api.name.clone()),
        };
        let mut links = Links {
            gateway: walk.ensure(&gateway).await?.map(|g| g.id),
            ..Links::default()
        };
        let api_peering = desired.peering(
            "api",
            api_id.clone(),
            kafka_id.clone(),
            format!("{api_label} ↔ {kafka_label}"),
        );
        links.api_peering = active(walk.ensure(&api_peering).await?.as_ref());
        if let Some(cluster_vpc_id) = &desired.cluster_vpc_id {
            let peering = desired.peering(
                "cluster",
                kafka_id.clone(),
                Ref::Known(cluster_vpc_id.clone()),
                format!("cluster VPC {cluster_vpc_id} ↔ {kafka_label}"),
            );
            links.cluster_peering = active(walk.ensure(&peering).await?.as_ref());
            links.cluster_cidrs = cluster.as_ref().map(|c| c.cidrs.clone()).unwrap_or_default();
        }

        for (role, vpc_id) in &vpc_ids {
            let subnets = Self::subnets(walk, desired, *role, vpc_id).await?;
            let table = RouteTable {
                name: format!("route table of the {}", desired.vpc_resource(*role).label()),
                vpc_id: vpc_id.clone(),
                routes: desired.routes(*role, &links),
                subnets: subnets.iter().map(|s| s.id.clone()).collect(),
                tags: desired.tags_for(role.tag_value(), desired.vpc(*role).name.clone()),
            };
            let made_table = walk.ensure(&table).await?;
            let subnets = subnets.into_iter().map(SubnetOutput::from).collect();
            match role {
                VpcRole::Api => made.public_subnets = subnets,
                VpcRole::Kafka => {
                    made.private_subnets = subnets;
                    made.kafka_route_table = Ref::to(made_table.as_ref(), |t| t.id.clone(), table.label());
                }
            }
        }

        // Creation order: a group is made after the groups its rules name.
        let mut groups = BTreeMap::new();
        for role in [
            GroupRole::LoadBalancer,
            GroupRole::UploadInstances,
            GroupRole::KafkaBrokers,
        ] {
            let group = desired.group(role, &vpc_ids[&role.vpc()], &links, &groups);
            let found = walk.ensure(&group).await?;
            let id = Ref::to(found.as_ref(), |g| g.id.clone(), group.label());
            *match role {
                GroupRole::LoadBalancer => &mut made.load_balancer_group,
                GroupRole::UploadInstances => &mut made.upload_group,
                GroupRole::KafkaBrokers => &mut made.kafka_group,
            } = id.clone();
            groups.insert(role, id);
        }
        outputs.publish(made);
        if walk.mode() == WalkMode::Find {
            let ids: Vec<String> = vpc_ids
                .values()
                .filter_map(|r| r.known().map(str::to_owned))
                .collect();
            walk.hold(interfaces_in(walk.aws(), ids).await?);
        }

        if let (Some(cluster), Some(peering)) = (&cluster, &links.cluster_peering) {
            for table in &cluster.route_tables {
                let route = Route {
                    table: table.clone(),
                    destination: desired.kafka.cidr.clone(),
                    target: RouteTarget::Peering(peering.clone()),
                };
                walk.ensure(&route).await?;
            }
        }
        Ok(())
    }
}

impl Network {
    /// The subnets of one VPC, one per zone; a subnet of a zone the spec no
    /// longer lists is deleted.
    async fn subnets(
        walk: &mut Walk<'_>,
        desired: &DesiredNetwork,
        role: VpcRole,
        vpc_id: &Ref,
    ) -> Result<Vec<SubnetState>, ComponentError> {
        let wanted = &desired.vpc(role).subnets;
        let mut made = Vec::new();
        for subnet in wanted {
            made.extend(walk.ensure(&desired.subnet(role, vpc_id, subnet)).await?);
        }
        if let Some(id) = vpc_id.known() {
            for other in subnet::list(walk.aws(), id).await? {
                let listed = wanted
                    .iter()
                    .any(|d| d.cidr == other.cidr && d.availability_zone == other.availability_zone);
                if !listed {
                    walk.remove(&Subnet::unwanted(vpc_id.clone(), &other), &other)
                        .await?;
                }
            }
        }
        Ok(made)
    }
}

/// The VPC `spec.network.clusterVpcId` names. Missing, it is a terminal
/// error, except while tearing down: there is nothing of ours in it then.
async fn cluster_vpc(
    walk: &Walk<'_>,
    desired: &DesiredNetwork,
) -> Result<Option<ExternalVpc>, ComponentError> {
    let Some(id) = &desired.cluster_vpc_id else {
        return Ok(None);
    };
    let found = vpc::lookup(walk.aws(), id).await?;
    if found.is_none() && walk.mode() != WalkMode::Find {
        return Err(missing(
            SpecReference::new(Lookup::Vpc, "spec.network.clusterVpcId", id),
            "no VPC of that id in this account and region",
        ));
    }
    Ok(found)
}

/// Load balancers, instances and clusters release their network interfaces
/// minutes after they are deleted; subnets and groups must wait for them.
async fn interfaces_in(aws: &AwsClients, vpc_ids: Vec<String>) -> Result<Option<String>, ComponentError> {
    if vpc_ids.is_empty() {
        return Ok(None);
    }
    let interfaces = aws
        .ec2
        .describe_network_interfaces()
        .filters(Filter::builder().name("vpc-id").set_values(Some(vpc_ids)).build())
        .send()
        .await
        .map_err(|err| classify("list network interfaces in the pipeline's VPCs", err))?;
    let interfaces = interfaces.network_interfaces();
    Ok(interfaces.first().map(|first| {
        let what = match first.description() {
            None | Some("") => String::new(),
            Some(description) => format!(" ({description})"),
        };
        format!(
            "network interface {}{what} is still in VPC {}; {} interface(s) left to be released",
            first.network_interface_id().unwrap_or_default(),
            first.vpc_id().unwrap_or_default(),
            interfaces.len()
        )
    }))
}

impl From<SubnetState> for SubnetOutput {
    fn from(subnet: SubnetState) -> Self {
        SubnetOutput {
            id: subnet.id,
            availability_zone: subnet.availability_zone,
            cidr: subnet.cidr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{COMPONENT_TAG, OWNER_TAG, context_from_yaml};
    use crate::resources::vpc::NETWORK_TAG;

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
        let tags = desired.vpc_resource(VpcRole::Kafka).tags;
        assert_eq!(tags[OWNER_TAG], "media/photos");
        assert_eq!(tags[COMPONENT_TAG], "network");
        assert_eq!(tags[NETWORK_TAG], "kafka");
    }

    #[test]
    fn the_public_route_table_sends_the_internet_to_the_gateway_and_kafka_to_the_peering() {
        let desired = desired();
        let links = Links {
            gateway: Some("igw-1".into()),
            api_peering: Some("pcx-api".into()),
            ..Links::default()
        };
        let route = |d: &str, t: RouteTarget| (d.to_owned(), t);
        assert_eq!(
            desired.routes(VpcRole::Api, &links),
            BTreeMap::from([
                route("0.0.0.0/0", RouteTarget::Gateway("igw-1".into())),
                route("10.61.0.0/16", RouteTarget::Peering("pcx-api".into())),
            ])
        );
        assert_eq!(
            desired.routes(VpcRole::Kafka, &links),
            BTreeMap::from([route("10.40.0.0/16", RouteTarget::Peering("pcx-api".into()))])
        );
        // A peering not yet active gets no route: EC2 refuses one.
        assert_eq!(desired.routes(VpcRole::Kafka, &Links::default()), BTreeMap::new());
    }

    #[test]
    fn a_cluster_vpc_is_routed_to_the_brokers_and_let_in_on_9092() {
        let desired = desired_with("    clusterVpcId: vpc-0c1c2c3c4c5c6c7c8\n");
        let links = Links {
            api_peering: Some("pcx-api".into()),
            cluster_peering: Some("pcx-cluster".into()),
            cluster_cidrs: vec!["172.31.0.0/16".into()],
            ..Links::default()
        };
        assert_eq!(
            desired.routes(VpcRole::Kafka, &links)["172.31.0.0/16"],
            RouteTarget::Peering("pcx-cluster".into())
        );
        let kafka_vpc = Ref::Known("vpc-kafka".into());
        let brokers = desired.group(GroupRole::KafkaBrokers, &kafka_vpc, &links, &BTreeMap::new());
        let from_cluster: Vec<String> = brokers
            .permissions("sg-kafka")
            .into_iter()
            .filter(|(_, description)| description.contains("cluster VPC"))
            .map(|(permission, _)| permission.to_string())
            .collect();
        assert_eq!(from_cluster, ["tcp 9092 from 172.31.0.0/16"]);
    }

    #[test]
    fn groups_name_the_groups_made_before_them_and_themselves() {
        let desired = desired();
        let api_vpc = Ref::Known("vpc-api".into());
        let upload = desired.group(
            GroupRole::UploadInstances,
            &api_vpc,
            &Links::default(),
            &BTreeMap::new(),
        );
        assert!(
            upload.permissions("sg-upload").is_empty(),
            "no rule names a load balancer group that is not made yet"
        );
        let made = BTreeMap::from([(GroupRole::LoadBalancer, Ref::Known("sg-lb".into()))]);
        let upload = desired.group(GroupRole::UploadInstances, &api_vpc, &Links::default(), &made);
        let rules: Vec<String> = upload
            .permissions("sg-upload")
            .iter()
            .map(|(p, _)| p.to_string())
            .collect();
        assert_eq!(rules, ["tcp 8080 from sg-lb"]);
        let brokers = desired.group(GroupRole::KafkaBrokers, &api_vpc, &Links::default(), &made);
        let rules: Vec<String> = brokers
            .permissions("sg-kafka")
            .iter()
            .map(|(p, _)| p.to_string())
            .collect();
        assert!(rules.contains(&"tcp 9093 from sg-kafka".to_owned()), "{rules:?}");
        assert_eq!(upload.label(), format!("security group {}-upload", desired.name));
    }
}
