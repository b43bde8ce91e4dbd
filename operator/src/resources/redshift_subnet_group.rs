//! A Redshift cluster subnet group: the subnets a cluster may be placed in.
//! Found by its deterministic name.

use super::sdk::{deleted, failed, set_redshift_tags};
use super::tags::{from_sdk, to_sdk};
use crate::aws::AwsClients;
use crate::aws::errors::{classify, code};
use crate::engine::resource::Resource;
use crate::engine::{Tags, field, tag_changes};
use crate::error::ComponentError;

const NOT_FOUND: &str = "ClusterSubnetGroupNotFoundFault";

#[derive(Clone, Debug, PartialEq)]
pub struct RedshiftSubnetGroup {
    pub name: String,
    pub arn: String,
    /// Empty while the network has not made them (in a plan).
    pub subnet_ids: Vec<String>,
    pub tags: Tags,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SubnetGroupState {
    pub name: String,
    pub subnet_ids: Vec<String>,
    pub tags: Tags,
}

impl RedshiftSubnetGroup {
    fn subnets_differ(&self, observed: &SubnetGroupState) -> bool {
        sorted(&observed.subnet_ids) != sorted(&self.subnet_ids)
    }

    fn subnets(&self) -> String {
        if self.subnet_ids.is_empty() {
            "(known after apply)".to_owned()
        } else {
            self.subnet_ids.join(",")
        }
    }
}

impl Resource for RedshiftSubnetGroup {
    type Observed = SubnetGroupState;
    const TYPE: Option<&'static str> = Some("AWS::Redshift::ClusterSubnetGroup");

    fn label(&self) -> String {
        format!("Redshift subnet group {}", self.name)
    }

    async fn find(&self, aws: &AwsClients) -> Result<Option<SubnetGroupState>, ComponentError> {
        let out = match aws
            .redshift
            .describe_cluster_subnet_groups()
            .cluster_subnet_group_name(&self.name)
            .send()
            .await
        {
            Ok(out) => out,
            Err(err) if code(&err) == Some(NOT_FOUND) => return Ok(None),
            Err(err) => return Err(classify(&format!("look up {}", self.label()), err)),
        };
        Ok(out.cluster_subnet_groups().first().map(|group| SubnetGroupState {
            name: self.name.clone(),
            subnet_ids: group
                .subnets()
                .iter()
                .filter_map(|s| s.subnet_identifier())
                .map(str::to_owned)
                .collect(),
            tags: from_sdk(group.tags()),
        }))
    }

    fn delta(&self, observed: &SubnetGroupState) -> Result<Vec<String>, ComponentError> {
        let mut fields = Vec::new();
        if self.subnets_differ(observed) {
            fields.push(field("subnets", observed.subnet_ids.join(","), self.subnets()));
        }
        fields.extend(tag_changes(&observed.tags, &self.tags));
        Ok(fields)
    }

    fn create_fields(&self) -> Vec<String> {
        vec![format!("subnets {}", self.subnets())]
    }

    async fn create(&self, aws: &AwsClients) -> Result<SubnetGroupState, ComponentError> {
        match aws
            .redshift
            .create_cluster_subnet_group()
            .cluster_subnet_group_name(&self.name)
            .description("ImagePipeline warehouse subnets")
            .set_subnet_ids(Some(self.subnet_ids.clone()))
            .set_tags(Some(to_sdk(&self.tags)?))
            .send()
            .await
        {
            // Already there: made by a pass that crashed before it saw the answer.
            Ok(_) => {}
            Err(err) if code(&err) == Some("ClusterSubnetGroupAlreadyExists") => {}
            Err(err) => return Err(classify(&format!("create {}", self.label()), err)),
        }
        Ok(SubnetGroupState {
            name: self.name.clone(),
            subnet_ids: self.subnet_ids.clone(),
            tags: self.tags.clone(),
        })
    }

    async fn update(&self, aws: &AwsClients, observed: &SubnetGroupState) -> Result<(), ComponentError> {
        if self.subnets_differ(observed) {
            aws.redshift
                .modify_cluster_subnet_group()
                .cluster_subnet_group_name(&self.name)
                .set_subnet_ids(Some(self.subnet_ids.clone()))
                .send()
                .await
                .map_err(failed("change the subnets of", &self.label()))?;
        }
        if observed.tags != self.tags {
            set_redshift_tags(aws, &self.arn, Some(&observed.tags), &self.tags, &self.label()).await?;
        }
        Ok(())
    }

    async fn delete(&self, aws: &AwsClients, _observed: &SubnetGroupState) -> Result<(), ComponentError> {
        deleted(
            aws.redshift
                .delete_cluster_subnet_group()
                .cluster_subnet_group_name(&self.name)
                .send()
                .await,
            &[NOT_FOUND],
            &format!("delete {}", self.label()),
        )
    }

    fn id(observed: &SubnetGroupState) -> String {
        observed.name.clone()
    }

    fn tags(observed: &SubnetGroupState) -> Option<&Tags> {
        Some(&observed.tags)
    }
}

fn sorted(ids: &[String]) -> Vec<&String> {
    let mut ids: Vec<&String> = ids.iter().collect();
    ids.sort();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group() -> RedshiftSubnetGroup {
        RedshiftSubnetGroup {
            name: "warehouse".into(),
            arn: "arn:aws:redshift:eu-west-1:123456789012:subnetgroup:warehouse".into(),
            subnet_ids: vec!["subnet-a".into(), "subnet-b".into()],
            tags: Tags::from([("team".to_owned(), "media".to_owned())]),
        }
    }

    #[test]
    fn the_order_of_the_subnets_is_no_difference_but_another_subnet_is() {
        let group = group();
        let mut observed = SubnetGroupState {
            name: group.name.clone(),
            subnet_ids: vec!["subnet-b".into(), "subnet-a".into()],
            tags: group.tags.clone(),
        };
        assert_eq!(group.delta(&observed).unwrap(), Vec::<String>::new());
        observed.subnet_ids = vec!["subnet-old".into()];
        assert_eq!(
            group.delta(&observed).unwrap(),
            ["subnets: subnet-old → subnet-a,subnet-b"]
        );
    }

    #[test]
    fn subnets_the_network_has_not_made_are_known_after_apply() {
        let group = RedshiftSubnetGroup {
            subnet_ids: vec![],
            ..group()
        };
        assert_eq!(group.create_fields(), ["subnets (known after apply)"]);
    }
}
