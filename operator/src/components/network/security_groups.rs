//! The pipeline's security groups and the exact inbound rules each holds.
//!
//! Computing the rules is pure. The network component then authorizes what is
//! missing and revokes everything else, so a rule added by hand (or a port
//! opened "for a minute") is taken away by the next reconcile. Outbound rules
//! keep AWS's default (all traffic out): the instances reach AWS APIs and
//! pull their image through it, and nothing listens on the way out.

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
}
