//! A security group with exactly its declared inbound rules, found by its
//! VPC and name. What it holds beyond them is revoked, so a rule added by hand
//! (or a port opened "for a minute") is taken away by the next reconcile.
//! Outbound rules keep AWS's default (all traffic out).

mod permission;

use aws_sdk_ec2::types::ResourceType;

pub use permission::{Permission, Source, ip_permission, permissions_of, rule_changes};

use super::sdk::{deleted, failed, tag_specification};
use super::shared_lists::{self, filter, tag_filter, tagged};
use super::tags::from_sdk;
use crate::aws::AwsClients;
use crate::aws::errors::{classify, code};
use crate::engine::resource::{Ref, Resource};
use crate::engine::{OWNER_TAG, Tags, field};
use crate::error::ComponentError;

#[derive(Clone, Debug, PartialEq)]
pub struct SecurityGroup {
    pub name: String,
    pub description: String,
    pub vpc_id: Ref,
    pub rules: Vec<Rule>,
    pub tags: Tags,
}

/// One inbound TCP port open to one source.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub port: i32,
    pub source: RuleSource,
    pub description: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum RuleSource {
    Cidr(String),
    /// Another group, which may not be made yet.
    Group(Ref),
    /// The group itself: its members talk to each other.
    Itself,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GroupState {
    pub id: String,
    pub permissions: Vec<Permission>,
    pub tags: Tags,
}

impl SecurityGroup {
    /// The permissions the rules stand for in the group `own_id`. A rule
    /// naming a group not made yet is left out: a later round adds it.
    pub fn permissions(&self, own_id: &str) -> Vec<(Permission, String)> {
        self.rules
            .iter()
            .filter_map(|rule| {
                let source = match &rule.source {
                    RuleSource::Cidr(cidr) => Source::Cidr(cidr.clone()),
                    RuleSource::Group(group) => Source::Group(group.known()?.to_owned()),
                    RuleSource::Itself => Source::Group(own_id.to_owned()),
                };
                let permission = Permission {
                    protocol: "tcp".to_owned(),
                    from_port: Some(rule.port),
                    to_port: Some(rule.port),
                    source,
                };
                Some((permission, rule.description.clone()))
            })
            .collect()
    }

    async fn authorize(
        &self,
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
                    .map(|(p, description)| ip_permission(p, Some(description)))
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
}

impl Resource for SecurityGroup {
    type Observed = GroupState;
    const TYPE: Option<&'static str> = Some("AWS::EC2::SecurityGroup");

    fn label(&self) -> String {
        format!("security group {}", self.name)
    }

    fn references(&self) -> Vec<&Ref> {
        vec![&self.vpc_id]
    }

    /// Found by owner and name, and by VPC when its id is known: a
    /// teardown may run before anything has told it the VPC's id.
    async fn find(&self, aws: &AwsClients) -> Result<Option<GroupState>, ComponentError> {
        let owner = self.tags.get(OWNER_TAG).map(String::as_str).unwrap_or_default();
        let vpc_id = self.vpc_id.known();
        let mut narrow = vec![tag_filter(OWNER_TAG, owner), filter("group-name", &self.name)];
        narrow.extend(vpc_id.map(|id| filter("vpc-id", id)));
        let groups = shared_lists::security_groups(aws, narrow).await?;
        let ours = groups.iter().find(|group| {
            tagged(group.tags(), OWNER_TAG, owner)
                && group.group_name() == Some(self.name.as_str())
                && vpc_id.is_none_or(|id| group.vpc_id() == Some(id))
        });
        Ok(ours.map(|group| GroupState {
            id: group.group_id().unwrap_or_default().to_owned(),
            permissions: permissions_of(group.ip_permissions()),
            tags: from_sdk(group.tags()),
        }))
    }

    fn delta(&self, observed: &GroupState) -> Result<Vec<String>, ComponentError> {
        let (authorize, revoke) = rule_changes(&self.permissions(&observed.id), &observed.permissions);
        let mut fields: Vec<String> = revoke
            .iter()
            .map(|permission| field("inbound", permission, "(closed)"))
            .collect();
        fields.extend(
            authorize
                .iter()
                .map(|(permission, _)| field("inbound", "(closed)", permission)),
        );
        Ok(fields)
    }

    fn create_fields(&self) -> Vec<String> {
        vec![self.description.clone()]
    }

    async fn create(&self, aws: &AwsClients) -> Result<GroupState, ComponentError> {
        let out = aws
            .ec2
            .create_security_group()
            .group_name(&self.name)
            .description(&self.description)
            .vpc_id(self.vpc_id.id())
            .tag_specifications(tag_specification(ResourceType::SecurityGroup, &self.tags))
            .send()
            .await
            .map_err(failed("create", &self.label()))?;
        let id = out.group_id().unwrap_or_default().to_owned();
        let permissions = self.permissions(&id);
        self.authorize(aws, &id, &permissions).await?;
        Ok(GroupState {
            id,
            permissions: permissions.into_iter().map(|(p, _)| p).collect(),
            tags: self.tags.clone(),
        })
    }

    async fn update(&self, aws: &AwsClients, observed: &GroupState) -> Result<(), ComponentError> {
        let (authorize, revoke) = rule_changes(&self.permissions(&observed.id), &observed.permissions);
        if !revoke.is_empty() {
            aws.ec2
                .revoke_security_group_ingress()
                .group_id(&observed.id)
                .set_ip_permissions(Some(revoke.iter().map(|p| ip_permission(p, None)).collect()))
                .send()
                .await
                .map_err(failed("close ports of", &self.label()))?;
        }
        self.authorize(aws, &observed.id, &authorize).await
    }

    async fn delete(&self, aws: &AwsClients, observed: &GroupState) -> Result<(), ComponentError> {
        deleted(
            aws.ec2
                .delete_security_group()
                .group_id(&observed.id)
                .send()
                .await,
            &["InvalidGroup.NotFound"],
            &format!("delete {} {}", self.label(), observed.id),
        )
    }

    fn id(observed: &GroupState) -> String {
        observed.id.clone()
    }

    fn tags(observed: &GroupState) -> Option<&Tags> {
        Some(&observed.tags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(port: i32, source: Source) -> Permission {
        Permission {
            protocol: "tcp".to_owned(),
            from_port: Some(port),
            to_port: Some(port),
            source,
        }
    }

    #[test]
    fn rules_naming_a_group_not_made_yet_wait_for_it() {
        let mut group = SecurityGroup {
            name: "upload".into(),
            description: String::new(),
            vpc_id: Ref::Known("vpc-1".into()),
            rules: vec![Rule {
                port: 8080,
                source: RuleSource::Group(Ref::Pending("security group lb".into())),
                description: String::new(),
            }],
            tags: Tags::new(),
        };
        assert!(group.permissions("sg-upload").is_empty());
        group.rules[0].source = RuleSource::Group(Ref::Known("sg-lb".into()));
        let resolved: Vec<Permission> = group
            .permissions("sg-upload")
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(resolved, [tcp(8080, Source::Group("sg-lb".to_owned()))]);
        group.rules[0].source = RuleSource::Itself;
        let resolved: Vec<Permission> = group
            .permissions("sg-upload")
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(resolved, [tcp(8080, Source::Group("sg-upload".to_owned()))]);
    }
}
