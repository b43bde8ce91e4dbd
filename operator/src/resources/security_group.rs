//! A security group with exactly its declared inbound rules, found by its
//! VPC and name. What it holds beyond them is revoked, so a rule added by hand
//! (or a port opened "for a minute") is taken away by the next reconcile.
//! Outbound rules keep AWS's default (all traffic out).

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{Filter, IpPermission, IpRange, ResourceType, UserIdGroupPair};

use super::sdk::{deleted, failed, tag_specification};
use crate::aws::AwsClients;
use crate::aws::errors::{classify, code};
use crate::engine::resource::{Ref, Resource};
use crate::engine::{Tags, field};
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

    async fn find(&self, aws: &AwsClients) -> Result<Option<GroupState>, ComponentError> {
        let groups = aws
            .ec2
            .describe_security_groups()
            .filters(Filter::builder().name("vpc-id").values(self.vpc_id.id()).build())
            .filters(Filter::builder().name("group-name").values(&self.name).build())
            .send()
            .await
            .map_err(|err| classify(&format!("look up {}", self.label()), err))?;
        Ok(groups.security_groups().first().map(|group| GroupState {
            id: group.group_id().unwrap_or_default().to_owned(),
            permissions: permissions_of(group.ip_permissions()),
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
}

/// A rule as EC2 holds it, with group sources resolved to ids. Anything the
/// operator does not make (UDP, port ranges, IPv6, prefix lists) is kept as
/// found so that it can be revoked exactly.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Permission {
    pub protocol: String,
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
    pub source: Source,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    Cidr(String),
    Ipv6Cidr(String),
    Group(String),
    PrefixList(String),
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ports = match (self.from_port, self.to_port) {
            (Some(from), Some(to)) if from == to => format!("{from}"),
            (Some(from), Some(to)) => format!("{from}-{to}"),
            _ => "all ports".to_owned(),
        };
        let protocol = if self.protocol == "-1" {
            "all"
        } else {
            &self.protocol
        };
        let source = match &self.source {
            Source::Cidr(cidr) | Source::Ipv6Cidr(cidr) => cidr,
            Source::Group(id) | Source::PrefixList(id) => id,
        };
        write!(f, "{protocol} {ports} from {source}")
    }
}

/// What to authorize and what to revoke so that `observed` becomes `desired`.
pub fn rule_changes(
    desired: &[(Permission, String)],
    observed: &[Permission],
) -> (Vec<(Permission, String)>, Vec<Permission>) {
    let have: BTreeSet<&Permission> = observed.iter().collect();
    let want: BTreeSet<&Permission> = desired.iter().map(|(p, _)| p).collect();
    let authorize = desired
        .iter()
        .filter(|(p, _)| !have.contains(p))
        .cloned()
        .collect();
    let revoke = observed.iter().filter(|p| !want.contains(p)).cloned().collect();
    (authorize, revoke)
}

/// Flattens EC2's grouped permissions into one [`Permission`] per source.
pub fn permissions_of(ip_permissions: &[IpPermission]) -> Vec<Permission> {
    let mut permissions = Vec::new();
    for p in ip_permissions {
        let with = |source| Permission {
            protocol: p.ip_protocol().unwrap_or("-1").to_owned(),
            from_port: p.from_port(),
            to_port: p.to_port(),
            source,
        };
        permissions.extend(
            p.ip_ranges()
                .iter()
                .filter_map(|r| r.cidr_ip())
                .map(|c| with(Source::Cidr(c.to_owned()))),
        );
        permissions.extend(
            p.ipv6_ranges()
                .iter()
                .filter_map(|r| r.cidr_ipv6())
                .map(|c| with(Source::Ipv6Cidr(c.to_owned()))),
        );
        permissions.extend(
            p.user_id_group_pairs()
                .iter()
                .filter_map(|g| g.group_id())
                .map(|g| with(Source::Group(g.to_owned()))),
        );
        permissions.extend(
            p.prefix_list_ids()
                .iter()
                .filter_map(|l| l.prefix_list_id())
                .map(|l| with(Source::PrefixList(l.to_owned()))),
        );
    }
    permissions.sort();
    permissions
}

/// The EC2 form of one permission, for authorize and revoke calls.
pub fn ip_permission(permission: &Permission, description: Option<&str>) -> IpPermission {
    let builder = IpPermission::builder()
        .ip_protocol(&permission.protocol)
        .set_from_port(permission.from_port)
        .set_to_port(permission.to_port);
    match &permission.source {
        Source::Cidr(cidr) => builder.ip_ranges(
            IpRange::builder()
                .cidr_ip(cidr)
                .set_description(description.map(str::to_owned))
                .build(),
        ),
        Source::Ipv6Cidr(cidr) => {
            builder.ipv6_ranges(aws_sdk_ec2::types::Ipv6Range::builder().cidr_ipv6(cidr).build())
        }
        Source::Group(id) => builder.user_id_group_pairs(
            UserIdGroupPair::builder()
                .group_id(id)
                .set_description(description.map(str::to_owned))
                .build(),
        ),
        Source::PrefixList(id) => builder.prefix_list_ids(
            aws_sdk_ec2::types::PrefixListId::builder()
                .prefix_list_id(id)
                .build(),
        ),
    }
    .build()
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

    #[test]
    fn missing_rules_are_authorized_and_every_other_rule_is_revoked() {
        let desired = vec![
            (tcp(9092, Source::Cidr("10.40.0.0/16".to_owned())), String::new()),
            (tcp(9093, Source::Group("sg-kafka".to_owned())), String::new()),
        ];
        let hand_made = Permission {
            protocol: "-1".to_owned(),
            from_port: None,
            to_port: None,
            source: Source::Cidr("0.0.0.0/0".to_owned()),
        };
        let observed = vec![tcp(9093, Source::Group("sg-kafka".to_owned())), hand_made.clone()];
        let (authorize, revoke) = rule_changes(&desired, &observed);
        assert_eq!(authorize, [desired[0].clone()]);
        assert_eq!(revoke, [hand_made]);
        let (authorize, revoke) = rule_changes(
            &desired,
            &desired.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
        );
        assert!(authorize.is_empty() && revoke.is_empty());
    }

    #[test]
    fn ec2_permissions_flatten_to_one_per_source_and_back() {
        let permission = tcp(9092, Source::Cidr("10.40.0.0/16".to_owned()));
        let group = tcp(9093, Source::Group("sg-1".to_owned()));
        let ec2 = [ip_permission(&permission, Some("x")), ip_permission(&group, None)];
        assert_eq!(permissions_of(&ec2), [permission, group]);
    }
}
