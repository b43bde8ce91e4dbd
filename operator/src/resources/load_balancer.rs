//! An internet-facing application load balancer in given subnets, behind one
//! security group. Found by its name (at most 32 characters).

use std::collections::BTreeSet;

use aws_sdk_elasticloadbalancingv2::types::{
    LoadBalancerSchemeEnum, LoadBalancerStateEnum, LoadBalancerTypeEnum,
};

use super::sdk::{deleted, failed};
use super::shared_lists;
use super::tags::to_sdk;
use crate::aws::AwsClients;
use crate::engine::resource::{Ref, Resource};
use crate::engine::{Readiness, Tags, field};
use crate::error::ComponentError;

#[derive(Clone, Debug, PartialEq)]
pub struct LoadBalancer {
    pub name: String,
    /// Made by another component, like the security group; known whenever
    /// this one applies.
    pub subnets: BTreeSet<String>,
    pub security_group: Ref,
    pub tags: Tags,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadBalancerState {
    pub name: String,
    pub arn: String,
    pub dns_name: String,
    pub state: String,
    pub subnets: BTreeSet<String>,
    pub security_groups: BTreeSet<String>,
    pub tags: Tags,
}

impl LoadBalancer {
    fn security_groups(&self) -> BTreeSet<String> {
        BTreeSet::from([self.security_group.to_string()])
    }
}

impl Resource for LoadBalancer {
    type Observed = LoadBalancerState;
    const TYPE: Option<&'static str> = Some("AWS::ElasticLoadBalancingV2::LoadBalancer");

    fn label(&self) -> String {
        format!("load balancer {}", self.name)
    }

    async fn find(&self, aws: &AwsClients) -> Result<Option<LoadBalancerState>, ComponentError> {
        let balancers = shared_lists::load_balancers(aws, &self.name).await?;
        let Some((lb, tags)) = balancers
            .iter()
            .find(|(lb, _)| lb.load_balancer_name() == Some(self.name.as_str()))
        else {
            return Ok(None);
        };
        let arn = lb.load_balancer_arn().unwrap_or_default().to_owned();
        Ok(Some(LoadBalancerState {
            name: self.name.clone(),
            tags: tags.clone(),
            dns_name: lb.dns_name().unwrap_or_default().to_owned(),
            state: lb
                .state()
                .and_then(|s| s.code())
                .map(|c| c.as_str().to_owned())
                .unwrap_or_default(),
            subnets: lb
                .availability_zones()
                .iter()
                .filter_map(|zone| zone.subnet_id().map(str::to_owned))
                .collect(),
            security_groups: lb.security_groups().iter().cloned().collect(),
            arn,
        }))
    }

    fn delta(&self, observed: &LoadBalancerState) -> Result<Vec<String>, ComponentError> {
        let mut fields = Vec::new();
        if observed.subnets != self.subnets {
            fields.push(field("subnets", join(&observed.subnets), join(&self.subnets)));
        }
        if observed.security_groups != self.security_groups() {
            fields.push(field(
                "security groups",
                join(&observed.security_groups),
                &self.security_group,
            ));
        }
        Ok(fields)
    }

    fn create_fields(&self) -> Vec<String> {
        vec!["internet-facing application load balancer in the public subnets".to_owned()]
    }

    async fn create(&self, aws: &AwsClients) -> Result<LoadBalancerState, ComponentError> {
        // ELB answers a create of an identical existing one with it.
        let out = aws
            .elbv2
            .create_load_balancer()
            .name(&self.name)
            .r#type(LoadBalancerTypeEnum::Application)
            .scheme(LoadBalancerSchemeEnum::InternetFacing)
            .set_subnets(Some(self.subnets.iter().cloned().collect()))
            .security_groups(self.security_group.id())
            .set_tags(Some(to_sdk(&self.tags)?))
            .send()
            .await
            .map_err(failed("create", &self.label()))?;
        let created = out.load_balancers().first();
        Ok(LoadBalancerState {
            name: self.name.clone(),
            arn: created
                .and_then(|l| l.load_balancer_arn())
                .unwrap_or_default()
                .to_owned(),
            dns_name: created.and_then(|l| l.dns_name()).unwrap_or_default().to_owned(),
            state: LoadBalancerStateEnum::Provisioning.as_str().to_owned(),
            subnets: self.subnets.clone(),
            security_groups: self.security_groups(),
            tags: self.tags.clone(),
        })
    }

    async fn update(&self, aws: &AwsClients, observed: &LoadBalancerState) -> Result<(), ComponentError> {
        if observed.subnets != self.subnets {
            aws.elbv2
                .set_subnets()
                .load_balancer_arn(&observed.arn)
                .set_subnets(Some(self.subnets.iter().cloned().collect()))
                .send()
                .await
                .map_err(failed("set the subnets of", &self.label()))?;
        }
        if observed.security_groups != self.security_groups() {
            aws.elbv2
                .set_security_groups()
                .load_balancer_arn(&observed.arn)
                .security_groups(self.security_group.id())
                .send()
                .await
                .map_err(failed("set the security groups of", &self.label()))?;
        }
        Ok(())
    }

    async fn delete(&self, aws: &AwsClients, observed: &LoadBalancerState) -> Result<(), ComponentError> {
        deleted(
            aws.elbv2
                .delete_load_balancer()
                .load_balancer_arn(&observed.arn)
                .send()
                .await,
            &["LoadBalancerNotFound"],
            &format!("delete {}", self.label()),
        )
    }

    fn id(observed: &LoadBalancerState) -> String {
        observed.name.clone()
    }

    fn arn(observed: &LoadBalancerState) -> Option<String> {
        Some(observed.arn.clone())
    }

    fn tags(observed: &LoadBalancerState) -> Option<&Tags> {
        Some(&observed.tags)
    }

    fn readiness(&self, observed: &LoadBalancerState) -> Readiness {
        Readiness::of(
            &self.label(),
            Some(&observed.state),
            LoadBalancerStateEnum::Active.as_str(),
        )
    }
}

fn join(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_balancer_is_ready_once_active_and_put_back_in_its_subnets_and_group() {
        let lb = LoadBalancer {
            name: "ipl-media-photos-upload".into(),
            subnets: BTreeSet::from(["subnet-a".to_owned(), "subnet-b".to_owned()]),
            security_group: Ref::Known("sg-lb".into()),
            tags: Tags::new(),
        };
        let mut observed = LoadBalancerState {
            name: lb.name.clone(),
            arn: "arn:lb".into(),
            dns_name: "lb.example".into(),
            state: "provisioning".into(),
            subnets: lb.subnets.clone(),
            security_groups: BTreeSet::from(["sg-lb".to_owned()]),
            tags: Tags::new(),
        };
        assert_eq!(lb.delta(&observed).unwrap(), Vec::<String>::new());
        assert_eq!(
            lb.readiness(&observed),
            Readiness::Waiting("load balancer ipl-media-photos-upload is provisioning".into())
        );
        observed.state = "active".into();
        assert_eq!(lb.readiness(&observed), Readiness::Ready);
        observed.subnets.remove("subnet-b");
        observed.security_groups = BTreeSet::from(["sg-other".to_owned()]);
        assert_eq!(
            lb.delta(&observed).unwrap(),
            [
                "subnets: subnet-a → subnet-a,subnet-b",
                "security groups: sg-other → sg-lb",
            ]
        );
    }
}
