//! The pipeline's security groups and the exact inbound rules each holds.
//!
//! Computing the rules is pure. The network component then authorizes what is
//! missing and revokes everything else, so a rule added by hand (or a port
//! opened "for a minute") is taken away by the next reconcile. Outbound rules
//! keep AWS's default (all traffic out): the instances reach AWS APIs and
//! pull their image through it, and nothing listens on the way out.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::{IpPermission, IpRange, UserIdGroupPair};

/// Which VPC a group lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VpcRole {
    /// Public subnets, the load balancer and the upload instances.
    Api,
    /// Private subnets without an internet gateway: brokers and the warehouse.
    Kafka,
}

impl VpcRole {
    pub fn tag_value(self) -> &'static str {
        match self {
            VpcRole::Api => "api",
            VpcRole::Kafka => "kafka",
        }
    }
}

/// The security groups the network component makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupRole {
    LoadBalancer,
    UploadInstances,
    KafkaBrokers,
}

impl GroupRole {
    /// In deletion order: a group is deleted before any group its rules name.
    pub const ALL: [GroupRole; 3] = [
        GroupRole::UploadInstances,
        GroupRole::LoadBalancer,
        GroupRole::KafkaBrokers,
    ];

    /// Appended to the pipeline's resource name to make the group's name.
    pub fn name_suffix(self) -> &'static str {
        match self {
            GroupRole::LoadBalancer => "lb",
            GroupRole::UploadInstances => "upload",
            GroupRole::KafkaBrokers => "kafka",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            GroupRole::LoadBalancer => "imagepipeline upload load balancer: HTTP(S) from anywhere",
            GroupRole::UploadInstances => "imagepipeline upload instances: 8080 from the load balancer only",
            GroupRole::KafkaBrokers => {
                "imagepipeline Kafka brokers: 9092 from peered VPCs, 9092-9093 between brokers"
            }
        }
    }

    pub fn vpc(self) -> VpcRole {
        match self {
            GroupRole::LoadBalancer | GroupRole::UploadInstances => VpcRole::Api,
            GroupRole::KafkaBrokers => VpcRole::Kafka,
        }
    }
}

pub const UPLOAD_PORT: i32 = 8080;
pub const KAFKA_CLIENT_PORT: i32 = 9092;
pub const KAFKA_CONTROLLER_PORT: i32 = 9093;

/// Where a desired rule lets traffic come from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DesiredSource {
    Cidr(String),
    /// Another of the pipeline's groups (or the group itself).
    Group(GroupRole),
}

/// One inbound TCP port open to one source.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DesiredRule {
    pub port: i32,
    pub source: DesiredSource,
    pub description: String,
}

/// Inputs that decide the rules; all come from the spec except the cluster
/// VPC's CIDRs, which are read from AWS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleInputs {
    pub https: bool,
    pub api_vpc_cidr: String,
    pub cluster_vpc_cidrs: Vec<String>,
}

/// The inbound rules of `role`, and nothing else.
pub fn desired_rules(role: GroupRole, inputs: &RuleInputs) -> Vec<DesiredRule> {
    let rule = |port, source, description: &str| DesiredRule {
        port,
        source,
        description: description.to_owned(),
    };
    match role {
        GroupRole::LoadBalancer => {
            let (port, what) = if inputs.https {
                (443, "HTTPS")
            } else {
                (80, "HTTP")
            };
            vec![rule(
                port,
                DesiredSource::Cidr("0.0.0.0/0".to_owned()),
                &format!("{what} from anywhere"),
            )]
        }
        GroupRole::UploadInstances => vec![rule(
            UPLOAD_PORT,
            DesiredSource::Group(GroupRole::LoadBalancer),
            "upload-api from the load balancer",
        )],
        GroupRole::KafkaBrokers => {
            let mut rules = vec![
                rule(
                    KAFKA_CLIENT_PORT,
                    DesiredSource::Cidr(inputs.api_vpc_cidr.clone()),
                    "Kafka clients in the API VPC (peered)",
                ),
                // Replication between brokers uses the client listener.
                rule(
                    KAFKA_CLIENT_PORT,
                    DesiredSource::Group(GroupRole::KafkaBrokers),
                    "Kafka replication between brokers",
                ),
                rule(
                    KAFKA_CONTROLLER_PORT,
                    DesiredSource::Group(GroupRole::KafkaBrokers),
                    "KRaft controller quorum between brokers",
                ),
            ];
            rules.extend(inputs.cluster_vpc_cidrs.iter().map(|cidr| {
                rule(
                    KAFKA_CLIENT_PORT,
                    DesiredSource::Cidr(cidr.clone()),
                    "Kafka clients in the cluster VPC (peered)",
                )
            }));
            rules.sort();
            rules.dedup_by(|a, b| a.port == b.port && a.source == b.source);
            rules
        }
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

/// The permissions `rules` stand for once group roles are resolved to ids. A
/// rule naming a group that does not exist yet is left out: it is added in a
/// later round, once that group is made.
pub fn resolve(rules: &[DesiredRule], group_ids: &BTreeMap<GroupRole, String>) -> Vec<(Permission, String)> {
    rules
        .iter()
        .filter_map(|rule| {
            let source = match &rule.source {
                DesiredSource::Cidr(cidr) => Source::Cidr(cidr.clone()),
                DesiredSource::Group(role) => Source::Group(group_ids.get(role)?.clone()),
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

    fn inputs(https: bool, cluster: &[&str]) -> RuleInputs {
        RuleInputs {
            https,
            api_vpc_cidr: "10.40.0.0/16".to_owned(),
            cluster_vpc_cidrs: cluster.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    fn ports_and_sources(rules: &[DesiredRule]) -> Vec<(i32, DesiredSource)> {
        rules.iter().map(|r| (r.port, r.source.clone())).collect()
    }

    #[test]
    fn the_load_balancer_takes_http_or_https_from_anywhere_and_nothing_else() {
        let anywhere = DesiredSource::Cidr("0.0.0.0/0".to_owned());
        assert_eq!(
            ports_and_sources(&desired_rules(GroupRole::LoadBalancer, &inputs(false, &[]))),
            [(80, anywhere.clone())]
        );
        assert_eq!(
            ports_and_sources(&desired_rules(GroupRole::LoadBalancer, &inputs(true, &[]))),
            [(443, anywhere)]
        );
    }

    #[test]
    fn upload_instances_take_8080_from_the_load_balancer_group_only() {
        assert_eq!(
            ports_and_sources(&desired_rules(
                GroupRole::UploadInstances,
                &inputs(true, &["10.0.0.0/16"])
            )),
            [(8080, DesiredSource::Group(GroupRole::LoadBalancer))]
        );
    }

    #[test]
    fn brokers_take_9092_from_peered_vpcs_and_talk_to_each_other() {
        let own = DesiredSource::Group(GroupRole::KafkaBrokers);
        let cidr = |c: &str| DesiredSource::Cidr(c.to_owned());
        assert_eq!(
            ports_and_sources(&desired_rules(GroupRole::KafkaBrokers, &inputs(false, &[]))),
            [
                (9092, cidr("10.40.0.0/16")),
                (9092, own.clone()),
                (9093, own.clone())
            ]
        );
        assert_eq!(
            ports_and_sources(&desired_rules(
                GroupRole::KafkaBrokers,
                &inputs(false, &["172.31.0.0/16", "100.64.0.0/16"])
            )),
            [
                (9092, cidr("10.40.0.0/16")),
                (9092, cidr("100.64.0.0/16")),
                (9092, cidr("172.31.0.0/16")),
                (9092, own.clone()),
                (9093, own)
            ]
        );
    }

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
        let rules = desired_rules(GroupRole::UploadInstances, &inputs(false, &[]));
        assert!(resolve(&rules, &BTreeMap::new()).is_empty());
        let ids = BTreeMap::from([(GroupRole::LoadBalancer, "sg-lb".to_owned())]);
        let resolved: Vec<Permission> = resolve(&rules, &ids).into_iter().map(|(p, _)| p).collect();
        assert_eq!(resolved, [tcp(8080, Source::Group("sg-lb".to_owned()))]);
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
