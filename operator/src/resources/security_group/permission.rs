//! Inbound rules as EC2 holds them, one per source, and the difference
//! between two sets of them.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{IpPermission, IpRange, UserIdGroupPair};

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
