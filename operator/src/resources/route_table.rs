//! The pipeline's own route table of a VPC (never the main one): its routes
//! and the subnets associated with it.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::ResourceType;

use super::sdk::{deleted, failed, tag_specification};
use super::shared_lists::{self, filter, tag_filter, tagged};
use crate::aws::AwsClients;
use crate::aws::errors::classify;
use crate::engine::resource::{Ref, Resource};
use crate::engine::{OWNER_TAG, Tags, field};
use crate::error::ComponentError;

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

#[derive(Clone, Debug, PartialEq)]
pub struct RouteTable {
    /// How plan names the table, e.g. `route table of the api VPC ipl-…`.
    pub name: String,
    pub vpc_id: Ref,
    /// The routes it must hold, with targets that exist so far. Routes it
    /// holds beyond these (`local`, a user's own) are left alone.
    pub routes: BTreeMap<String, RouteTarget>,
    /// The subnets that must use it.
    pub subnets: Vec<String>,
    pub tags: Tags,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteTableState {
    pub id: String,
    pub routes: BTreeMap<String, RouteTarget>,
    /// Subnet id → association id.
    pub associations: BTreeMap<String, String>,
}

impl RouteTable {
    fn missing_routes<'a>(
        &'a self,
        observed: &'a RouteTableState,
    ) -> impl Iterator<Item = (&'a String, &'a RouteTarget, bool)> {
        self.routes
            .iter()
            .filter(|(destination, target)| observed.routes.get(*destination) != Some(target))
            .map(|(destination, target)| (destination, target, observed.routes.contains_key(destination)))
    }

    fn unassociated<'a>(&'a self, observed: &'a RouteTableState) -> impl Iterator<Item = &'a String> {
        self.subnets
            .iter()
            .filter(|subnet| !observed.associations.contains_key(*subnet))
    }

    async fn put_missing(&self, aws: &AwsClients, observed: &RouteTableState) -> Result<(), ComponentError> {
        for (destination, target, replace) in self.missing_routes(observed) {
            put_route(aws, &observed.id, destination, target, replace).await?;
        }
        for subnet in self.unassociated(observed) {
            aws.ec2
                .associate_route_table()
                .route_table_id(&observed.id)
                .subnet_id(subnet)
                .send()
                .await
                .map_err(failed(
                    "associate",
                    &format!("subnet {subnet} with {}", self.name),
                ))?;
        }
        Ok(())
    }
}

impl Resource for RouteTable {
    type Observed = RouteTableState;
    const TYPE: Option<&'static str> = Some("AWS::EC2::RouteTable");

    fn label(&self) -> String {
        self.name.clone()
    }

    fn references(&self) -> Vec<&Ref> {
        vec![&self.vpc_id]
    }

    async fn find(&self, aws: &AwsClients) -> Result<Option<RouteTableState>, ComponentError> {
        let owner = self.tags.get(OWNER_TAG).map(String::as_str).unwrap_or_default();
        let narrow = vec![filter("vpc-id", self.vpc_id.id()), tag_filter(OWNER_TAG, owner)];
        Ok(shared_lists::route_tables(aws, narrow)
            .await?
            .iter()
            .filter(|t| t.vpc_id() == Some(self.vpc_id.id()) && tagged(t.tags(), OWNER_TAG, owner))
            .min_by_key(|t| t.route_table_id().unwrap_or_default().to_owned())
            .map(route_table_state))
    }

    fn delta(&self, observed: &RouteTableState) -> Result<Vec<String>, ComponentError> {
        let mut fields: Vec<String> = self
            .missing_routes(observed)
            .map(|(destination, target, replace)| {
                let old = if replace { "(other target)" } else { "(none)" };
                field(&format!("route {destination}"), old, target)
            })
            .collect();
        fields.extend(
            self.unassociated(observed)
                .map(|subnet| field(&format!("subnet {subnet}"), "(main route table)", "associated")),
        );
        Ok(fields)
    }

    async fn create(&self, aws: &AwsClients) -> Result<RouteTableState, ComponentError> {
        let out = aws
            .ec2
            .create_route_table()
            .vpc_id(self.vpc_id.id())
            .tag_specifications(tag_specification(ResourceType::RouteTable, &self.tags))
            .send()
            .await
            .map_err(failed("create", &self.name))?;
        let id = out
            .route_table()
            .and_then(|t| t.route_table_id())
            .unwrap_or_default()
            .to_owned();
        let created = RouteTableState {
            id,
            ..RouteTableState::default()
        };
        self.put_missing(aws, &created).await?;
        Ok(created)
    }

    async fn update(&self, aws: &AwsClients, observed: &RouteTableState) -> Result<(), ComponentError> {
        self.put_missing(aws, observed).await
    }

    async fn delete(&self, aws: &AwsClients, observed: &RouteTableState) -> Result<(), ComponentError> {
        let ec2 = &aws.ec2;
        for association in observed.associations.values() {
            deleted(
                ec2.disassociate_route_table()
                    .association_id(association)
                    .send()
                    .await,
                &["InvalidAssociationID.NotFound"],
                &format!("disassociate {}", self.name),
            )?;
        }
        deleted(
            ec2.delete_route_table().route_table_id(&observed.id).send().await,
            &["InvalidRouteTableID.NotFound"],
            &format!("delete {}", self.name),
        )
    }

    fn id(observed: &RouteTableState) -> String {
        observed.id.clone()
    }
}

pub fn route_table_state(table: &aws_sdk_ec2::types::RouteTable) -> RouteTableState {
    RouteTableState {
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

pub(super) async fn put_route(
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
