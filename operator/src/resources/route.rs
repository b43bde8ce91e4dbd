//! One route the pipeline adds to a route table it does not own (the
//! cluster VPC's), to a target of its own (the peering connection).

use super::route_table::{RouteTableState, RouteTarget, put_route};
use super::sdk::deleted;
use crate::aws::AwsClients;
use crate::engine::field;
use crate::engine::resource::Resource;
use crate::error::ComponentError;

/// One route the pipeline puts into a route table it does not own. Found in
/// what the lookup of that table read, so it costs no call of its own.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    pub table: RouteTableState,
    pub destination: String,
    pub target: RouteTarget,
}

impl Resource for Route {
    /// The target the route has now.
    type Observed = RouteTarget;
    const TYPE: Option<&'static str> = None;

    fn label(&self) -> String {
        format!("route {} in route table {}", self.destination, self.table.id)
    }

    async fn find(&self, _aws: &AwsClients) -> Result<Option<RouteTarget>, ComponentError> {
        Ok(self.table.routes.get(&self.destination).cloned())
    }

    fn delta(&self, observed: &RouteTarget) -> Result<Vec<String>, ComponentError> {
        Ok(if *observed == self.target {
            vec![]
        } else {
            vec![field("target", observed, &self.target)]
        })
    }

    fn create_fields(&self) -> Vec<String> {
        vec![format!("to {}", self.target)]
    }

    async fn create(&self, aws: &AwsClients) -> Result<RouteTarget, ComponentError> {
        put_route(aws, &self.table.id, &self.destination, &self.target, false).await?;
        Ok(self.target.clone())
    }

    async fn update(&self, aws: &AwsClients, _observed: &RouteTarget) -> Result<(), ComponentError> {
        put_route(aws, &self.table.id, &self.destination, &self.target, true).await
    }

    async fn delete(&self, aws: &AwsClients, observed: &RouteTarget) -> Result<(), ComponentError> {
        if *observed != self.target {
            // Someone else's route to the same block: not ours to remove.
            return Ok(());
        }
        deleted(
            aws.ec2
                .delete_route()
                .route_table_id(&self.table.id)
                .destination_cidr_block(&self.destination)
                .send()
                .await,
            &["InvalidRoute.NotFound"],
            &format!("delete {}", self.label()),
        )
    }

    fn id(_observed: &RouteTarget) -> String {
        String::new()
    }
}
