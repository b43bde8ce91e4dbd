//! The AWS emulator refuses what AWS refuses: deleting a subnet, a security
//! group, a VPC or a Redshift subnet group that something still stands on.
//! Without that a teardown in the wrong order passes every test and never
//! finishes on AWS (scripts/moto/server.py has the fixes).

use std::fmt::Debug;

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_redshift::types::Tag;
use imagepipeline_e2e::AwsEmulator;

/// A VPC with one subnet and one security group, as the pipeline's Kafka VPC
/// holds the warehouse.
struct Network {
    ec2: aws_sdk_ec2::Client,
    vpc: String,
    subnet: String,
    group: String,
}

impl Network {
    async fn new(emulator: &AwsEmulator) -> Self {
        let ec2 = aws_sdk_ec2::Client::new(&emulator.sdk_config().await);
        let vpc = ec2
            .create_vpc()
            .cidr_block("10.41.0.0/16")
            .send()
            .await
            .expect("CreateVpc");
        let vpc = vpc.vpc().and_then(|v| v.vpc_id()).expect("a VPC id").to_owned();
        let subnet = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block("10.41.0.0/24")
            .availability_zone("eu-west-1a")
            .send()
            .await
            .expect("CreateSubnet");
        let subnet = subnet
            .subnet()
            .and_then(|s| s.subnet_id())
            .expect("a subnet id")
            .to_owned();
        let group = ec2
            .create_security_group()
            .group_name("warehouse")
            .description("warehouse")
            .vpc_id(&vpc)
            .send()
            .await
            .expect("CreateSecurityGroup");
        let group = group.group_id().expect("a group id").to_owned();
        Self {
            ec2,
            vpc,
            subnet,
            group,
        }
    }

    /// The error codes of deleting the subnet, the group and the VPC, in that
    /// order; `None` where the deletion succeeded.
    async fn delete_all(&self) -> [Option<String>; 3] {
        [
            outcome(self.ec2.delete_subnet().subnet_id(&self.subnet).send().await),
            outcome(
                self.ec2
                    .delete_security_group()
                    .group_id(&self.group)
                    .send()
                    .await,
            ),
            outcome(self.ec2.delete_vpc().vpc_id(&self.vpc).send().await),
        ]
    }
}

/// The error code of a call, printing its message; `None` when it succeeded.
fn outcome<T: Debug, E: ProvideErrorMetadata + Debug>(result: Result<T, E>) -> Option<String> {
    let err = result.err()?;
    println!("{}: {}", err.code().unwrap_or("?"), err.message().unwrap_or("?"));
    Some(err.code().unwrap_or("(no code)").to_owned())
}

fn refused(code: &str) -> Option<String> {
    Some(code.to_owned())
}

#[tokio::test]
async fn a_redshift_cluster_holds_its_subnets_security_group_and_subnet_group_until_it_is_deleted() {
    let emulator = AwsEmulator::start().await.expect("moto server starts");
    let network = Network::new(&emulator).await;
    let redshift = aws_sdk_redshift::Client::new(&emulator.sdk_config().await);
    redshift
        .create_cluster_subnet_group()
        .cluster_subnet_group_name("warehouse")
        .description("warehouse")
        .subnet_ids(&network.subnet)
        .send()
        .await
        .expect("CreateClusterSubnetGroup");
    redshift
        .create_cluster()
        .cluster_identifier("warehouse")
        .node_type("ra3.xlplus")
        .cluster_type("single-node")
        .master_username("admin")
        .master_user_password("Passw0rd-of-the-test")
        .cluster_subnet_group_name("warehouse")
        .vpc_security_group_ids(&network.group)
        .tags(Tag::builder().key("team").value("media").build())
        .send()
        .await
        .expect("CreateCluster");

    let dependency = refused("DependencyViolation");
    // The VPC is refused for the group left in it, as on AWS.
    assert_eq!(
        network.delete_all().await,
        [dependency.clone(), dependency.clone(), dependency]
    );
    let subnet_group = redshift
        .delete_cluster_subnet_group()
        .cluster_subnet_group_name("warehouse")
        .send()
        .await;
    assert_eq!(
        outcome(subnet_group),
        refused("InvalidClusterSubnetGroupStateFault")
    );

    redshift
        .delete_cluster()
        .cluster_identifier("warehouse")
        .skip_final_cluster_snapshot(false)
        .final_cluster_snapshot_identifier("warehouse-final")
        .send()
        .await
        .expect("DeleteCluster");
    let snapshots = redshift
        .describe_cluster_snapshots()
        .snapshot_identifier("warehouse-final")
        .send()
        .await
        .expect("the final snapshot is kept");
    let snapshot = &snapshots.snapshots()[0];
    assert_eq!(
        (
            snapshot.snapshot_type(),
            snapshot.manual_snapshot_retention_period()
        ),
        (Some("manual"), Some(-1)),
        "kept until deleted"
    );
    assert_eq!(
        snapshot.tags(),
        [Tag::builder().key("team").value("media").build()],
        "the cluster's tags"
    );

    let subnet_group = redshift
        .delete_cluster_subnet_group()
        .cluster_subnet_group_name("warehouse")
        .send()
        .await;
    assert_eq!(outcome(subnet_group), None);
    assert_eq!(network.delete_all().await, [None, None, None]);
}

#[tokio::test]
async fn a_network_interface_holds_its_subnet_and_security_group_until_it_is_deleted() {
    let emulator = AwsEmulator::start().await.expect("moto server starts");
    let network = Network::new(&emulator).await;
    let interface = network
        .ec2
        .create_network_interface()
        .subnet_id(&network.subnet)
        .groups(&network.group)
        .send()
        .await
        .expect("CreateNetworkInterface");
    let interface = interface
        .network_interface()
        .and_then(|i| i.network_interface_id())
        .expect("an interface id")
        .to_owned();

    let dependency = refused("DependencyViolation");
    assert_eq!(
        network.delete_all().await,
        [dependency.clone(), dependency.clone(), dependency]
    );

    network
        .ec2
        .delete_network_interface()
        .network_interface_id(&interface)
        .send()
        .await
        .expect("DeleteNetworkInterface");
    assert_eq!(network.delete_all().await, [None, None, None]);
}

/// The CPU target of the policy named `cpu` of `group`, if there is one.
async fn cpu_target(autoscaling: &aws_sdk_autoscaling::Client, group: &str) -> Option<f64> {
    autoscaling
        .describe_policies()
        .auto_scaling_group_name(group)
        .policy_names("cpu")
        .send()
        .await
        .expect("DescribePolicies")
        .scaling_policies()
        .iter()
        .find_map(|p| p.target_tracking_configuration().and_then(|c| c.target_value()))
}

#[tokio::test]
async fn scaling_policies_are_named_within_their_group_and_go_with_it() {
    use aws_sdk_autoscaling::types::{
        LaunchTemplateSpecification, MetricType, PredefinedMetricSpecification, TargetTrackingConfiguration,
    };
    let emulator = AwsEmulator::start().await.expect("moto server starts");
    let config = emulator.sdk_config().await;
    let network = Network::new(&emulator).await;
    network
        .ec2
        .create_launch_template()
        .launch_template_name("upload")
        .launch_template_data(
            aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                .image_id("ami-12c6146b")
                .instance_type(aws_sdk_ec2::types::InstanceType::T3Small)
                .build(),
        )
        .send()
        .await
        .expect("CreateLaunchTemplate");
    let autoscaling = aws_sdk_autoscaling::Client::new(&config);
    for (group, target) in [("first", 50.0), ("second", 60.0)] {
        autoscaling
            .create_auto_scaling_group()
            .auto_scaling_group_name(group)
            .launch_template(
                LaunchTemplateSpecification::builder()
                    .launch_template_name("upload")
                    .build(),
            )
            .min_size(0)
            .max_size(1)
            .desired_capacity(0)
            .vpc_zone_identifier(&network.subnet)
            .send()
            .await
            .expect("CreateAutoScalingGroup");
        autoscaling
            .put_scaling_policy()
            .auto_scaling_group_name(group)
            .policy_name("cpu")
            .policy_type("TargetTrackingScaling")
            .target_tracking_configuration(
                TargetTrackingConfiguration::builder()
                    .predefined_metric_specification(
                        PredefinedMetricSpecification::builder()
                            .predefined_metric_type(MetricType::AsgAverageCpuUtilization)
                            .build(),
                    )
                    .target_value(target)
                    .build(),
            )
            .send()
            .await
            .expect("PutScalingPolicy");
    }
    assert_eq!(
        cpu_target(&autoscaling, "first").await,
        Some(50.0),
        "each group keeps its own"
    );
    assert_eq!(cpu_target(&autoscaling, "second").await, Some(60.0));

    autoscaling
        .delete_auto_scaling_group()
        .auto_scaling_group_name("first")
        .force_delete(true)
        .send()
        .await
        .expect("DeleteAutoScalingGroup");
    assert_eq!(
        cpu_target(&autoscaling, "first").await,
        None,
        "gone with its group"
    );
    assert_eq!(cpu_target(&autoscaling, "second").await, Some(60.0));
}
