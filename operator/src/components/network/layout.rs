//! How the VPCs' address space is split: one subnet per availability zone,
//! carved in order from the start of the VPC's CIDR.

use ipnet::Ipv4Net;

use crate::engine::ComponentError;

/// Each subnet gets this many more prefix bits than its VPC (a /16 VPC gives
/// /20 subnets), leaving room for 16 zones and later subnet tiers.
const SUBNET_EXTRA_PREFIX_BITS: u8 = 4;
/// AWS's smallest subnet.
const SMALLEST_SUBNET_PREFIX: u8 = 28;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredSubnet {
    pub availability_zone: String,
    pub cidr: String,
}

/// One subnet per zone of `vpc_cidr`, the spec field `field` holds.
pub fn subnet_cidrs(
    field: &str,
    vpc_cidr: &str,
    zones: &[String],
) -> Result<Vec<DesiredSubnet>, ComponentError> {
    let vpc: Ipv4Net = vpc_cidr.parse().map_err(|err| {
        ComponentError::terminal(
            "InvalidCidr",
            format!("{field} {vpc_cidr} is not an IPv4 CIDR: {err}"),
        )
    })?;
    let prefix = (vpc.prefix_len() + SUBNET_EXTRA_PREFIX_BITS).min(SMALLEST_SUBNET_PREFIX);
    let cidrs: Vec<String> = vpc
        .subnets(prefix)
        .map(|subnets| subnets.take(zones.len()).map(|s| s.to_string()).collect())
        .unwrap_or_default();
    if cidrs.len() < zones.len() {
        return Err(ComponentError::terminal(
            "CidrTooSmall",
            format!(
                "{field} {vpc_cidr} is too small for {} subnets of /{prefix}: use a larger block (a /16 is usual)",
                zones.len()
            ),
        ));
    }
    Ok(zones
        .iter()
        .zip(cidrs)
        .map(|(zone, cidr)| DesiredSubnet {
            availability_zone: zone.clone(),
            cidr,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(vpc: &str, zones: usize) -> Result<Vec<String>, ComponentError> {
        let zones: Vec<String> = (0..zones)
            .map(|i| format!("eu-west-1{}", (b'a' + i as u8) as char))
            .collect();
        Ok(subnet_cidrs("spec.network.kafkaVpcCidr", vpc, &zones)?
            .into_iter()
            .map(|s| s.cidr)
            .collect())
    }

    #[test]
    fn subnets_are_carved_from_the_start_of_the_vpc() {
        assert_eq!(
            cidrs("10.41.0.0/16", 3).unwrap(),
            ["10.41.0.0/20", "10.41.16.0/20", "10.41.32.0/20"]
        );
        assert_eq!(
            cidrs("10.41.0.0/24", 2).unwrap(),
            ["10.41.0.0/28", "10.41.0.16/28"]
        );
    }

    #[test]
    fn a_cidr_too_small_for_the_zones_is_a_terminal_error_naming_the_field() {
        let err = cidrs("10.41.0.0/27", 3).unwrap_err();
        assert!(
            err.is_terminal()
                && err.message.contains("too small")
                && err.message.contains("spec.network.kafkaVpcCidr"),
            "{err:?}"
        );
    }
}
