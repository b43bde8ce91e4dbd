//! What the emulator holds that is tagged as one pipeline's, read through the
//! AWS APIs as a user auditing an account would: the proof that a destroy
//! left nothing behind and that a crash made no duplicates.

use std::collections::BTreeMap;

use aws_config::SdkConfig;

use crate::{AwsEmulator, HarnessError};

/// The tag every AWS resource of a pipeline carries (DESIGN.md): its value is
/// `<namespace>/<name>`.
pub const OWNER_TAG: &str = "imagepipeline.io/owner";

/// The operator keeps IAM roles, instance profiles and SSM parameters under
/// this path, where listing them is cheap.
const IAM_AND_SSM_PATH: &str = "/imagepipeline/";

type Tags = BTreeMap<String, String>;

fn tags<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Tags {
    pairs.map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

impl AwsEmulator {
    /// Every resource tagged `imagepipeline.io/owner=<owner>`, as
    /// `"<kind> <name or id>"`, sorted. Terminated instances and deleted
    /// peerings, which AWS still lists for a while, are not counted.
    pub async fn resources_owned_by(&self, owner: &str) -> Result<Vec<String>, HarnessError> {
        let config = self.sdk_config().await;
        let mut found = Vec::new();
        let owned = |tags: Tags| tags.get(OWNER_TAG).is_some_and(|o| o == owner);
        storage_and_streams(self, &config, &owned, &mut found).await?;
        iam_and_ssm(&config, &owned, &mut found).await?;
        redshift(&config, &owned, &mut found).await?;
        glue(&config, &owned, &mut found).await?;
        ec2(&config, owner, &mut found).await?;
        scaling_and_load_balancing(&config, &owned, &mut found).await?;
        found.sort();
        Ok(found)
    }
}

async fn storage_and_streams(
    emulator: &AwsEmulator,
    config: &SdkConfig,
    owned: &impl Fn(Tags) -> bool,
    found: &mut Vec<String>,
) -> Result<(), HarnessError> {
    let s3 = emulator.s3().await;
    let buckets = s3
        .list_buckets()
        .send()
        .await
        .map_err(HarnessError::aws("ListBuckets"))?;
    for name in buckets.buckets().iter().filter_map(|b| b.name()) {
        // A bucket without tags answers NoSuchTagSet: not ours.
        if let Ok(set) = s3.get_bucket_tagging().bucket(name).send().await
            && owned(tags(set.tag_set().iter().map(|t| (t.key(), t.value()))))
        {
            found.push(format!("bucket {name}"));
        }
    }

    let dynamodb = aws_sdk_dynamodb::Client::new(config);
    let tables = dynamodb
        .list_tables()
        .send()
        .await
        .map_err(HarnessError::aws("ListTables"))?;
    for table in tables.table_names() {
        let described = dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(HarnessError::aws("DescribeTable"))?;
        let Some(arn) = described.table().and_then(|t| t.table_arn()) else {
            continue;
        };
        let listed = dynamodb
            .list_tags_of_resource()
            .resource_arn(arn)
            .send()
            .await
            .map_err(HarnessError::aws("ListTagsOfResource"))?;
        if owned(tags(listed.tags().iter().map(|t| (t.key(), t.value())))) {
            found.push(format!("table {table}"));
        }
    }

    let firehose = aws_sdk_firehose::Client::new(config);
    // A page holds 10 names unless asked for more, on AWS and the emulator.
    let mut streams = Vec::new();
    loop {
        let page = firehose
            .list_delivery_streams()
            .set_exclusive_start_delivery_stream_name(streams.last().cloned())
            .send()
            .await
            .map_err(HarnessError::aws("ListDeliveryStreams"))?;
        streams.extend(page.delivery_stream_names().iter().cloned());
        if !page.has_more_delivery_streams() || page.delivery_stream_names().is_empty() {
            break;
        }
    }
    for stream in &streams {
        let listed = firehose
            .list_tags_for_delivery_stream()
            .delivery_stream_name(stream)
            .send()
            .await
            .map_err(HarnessError::aws("ListTagsForDeliveryStream"))?;
        if owned(tags(
            listed
                .tags()
                .iter()
                .map(|t| (t.key(), t.value().unwrap_or_default())),
        )) {
            found.push(format!("delivery stream {stream}"));
        }
    }
    Ok(())
}

async fn iam_and_ssm(
    config: &SdkConfig,
    owned: &impl Fn(Tags) -> bool,
    found: &mut Vec<String>,
) -> Result<(), HarnessError> {
    let iam = aws_sdk_iam::Client::new(config);
    let roles = iam
        .list_roles()
        .path_prefix(IAM_AND_SSM_PATH)
        .send()
        .await
        .map_err(HarnessError::aws("ListRoles"))?;
    for role in roles.roles() {
        let listed = iam
            .list_role_tags()
            .role_name(role.role_name())
            .send()
            .await
            .map_err(HarnessError::aws("ListRoleTags"))?;
        if owned(tags(listed.tags().iter().map(|t| (t.key(), t.value())))) {
            found.push(format!("role {}", role.role_name()));
        }
    }
    let profiles = iam
        .list_instance_profiles()
        .path_prefix(IAM_AND_SSM_PATH)
        .send()
        .await
        .map_err(HarnessError::aws("ListInstanceProfiles"))?;
    for profile in profiles.instance_profiles() {
        if owned(tags(profile.tags().iter().map(|t| (t.key(), t.value())))) {
            found.push(format!("instance profile {}", profile.instance_profile_name()));
        }
    }

    let ssm = aws_sdk_ssm::Client::new(config);
    let under_path = aws_sdk_ssm::types::ParameterStringFilter::builder()
        .key("Name")
        .option("BeginsWith")
        .values(IAM_AND_SSM_PATH)
        .build()
        .map_err(HarnessError::aws("DescribeParameters"))?;
    let parameters = ssm
        .describe_parameters()
        .parameter_filters(under_path)
        .send()
        .await
        .map_err(HarnessError::aws("DescribeParameters"))?;
    for name in parameters.parameters().iter().filter_map(|p| p.name()) {
        let listed = ssm
            .list_tags_for_resource()
            .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
            .resource_id(name)
            .send()
            .await
            .map_err(HarnessError::aws("ListTagsForResource"))?;
        if owned(tags(listed.tag_list().iter().map(|t| (t.key(), t.value())))) {
            found.push(format!("parameter {name}"));
        }
    }
    Ok(())
}

async fn redshift(
    config: &SdkConfig,
    owned: &impl Fn(Tags) -> bool,
    found: &mut Vec<String>,
) -> Result<(), HarnessError> {
    let redshift = aws_sdk_redshift::Client::new(config);
    let redshift_tags = |list: &[aws_sdk_redshift::types::Tag]| {
        tags(list.iter().filter_map(|t| Some((t.key()?, t.value()?))))
    };
    let clusters = redshift
        .describe_clusters()
        .send()
        .await
        .map_err(HarnessError::aws("DescribeClusters"))?;
    for cluster in clusters.clusters() {
        if owned(redshift_tags(cluster.tags())) {
            found.push(format!(
                "cluster {}",
                cluster.cluster_identifier().unwrap_or_default()
            ));
        }
    }
    let groups = redshift
        .describe_cluster_subnet_groups()
        .send()
        .await
        .map_err(HarnessError::aws("DescribeClusterSubnetGroups"))?;
    for group in groups.cluster_subnet_groups() {
        if owned(redshift_tags(group.tags())) {
            found.push(format!(
                "subnet group {}",
                group.cluster_subnet_group_name().unwrap_or_default()
            ));
        }
    }
    // What a retained warehouse leaves: snapshots outlive their cluster.
    let snapshots = redshift
        .describe_cluster_snapshots()
        .send()
        .await
        .map_err(HarnessError::aws("DescribeClusterSnapshots"))?;
    for snapshot in snapshots.snapshots() {
        if owned(redshift_tags(snapshot.tags())) {
            found.push(format!(
                "snapshot {}",
                snapshot.snapshot_identifier().unwrap_or_default()
            ));
        }
    }
    Ok(())
}

/// Glue databases carry the owner tag; tables cannot be tagged and are the
/// pipeline's when their database is.
async fn glue(
    config: &SdkConfig,
    owned: &impl Fn(Tags) -> bool,
    found: &mut Vec<String>,
) -> Result<(), HarnessError> {
    let glue = aws_sdk_glue::Client::new(config);
    let region = config.region().map(|r| r.to_string()).unwrap_or_default();
    let databases = glue
        .get_databases()
        .send()
        .await
        .map_err(HarnessError::aws("GetDatabases"))?;
    for database in databases.database_list() {
        let name = database.name();
        let account = database.catalog_id().unwrap_or_default();
        let listed = glue
            .get_tags()
            .resource_arn(format!("arn:aws:glue:{region}:{account}:database/{name}"))
            .send()
            .await
            .map_err(HarnessError::aws("GetTags"))?;
        if !owned(listed.tags.unwrap_or_default().into_iter().collect()) {
            continue;
        }
        found.push(format!("glue database {name}"));
        let tables = glue
            .get_tables()
            .database_name(name)
            .send()
            .await
            .map_err(HarnessError::aws("GetTables"))?;
        for table in tables.table_list() {
            found.push(format!("glue table {name}.{}", table.name()));
        }
    }
    Ok(())
}

/// EC2 filters by tag on the server side.
async fn ec2(config: &SdkConfig, owner: &str, found: &mut Vec<String>) -> Result<(), HarnessError> {
    let ec2 = aws_sdk_ec2::Client::new(config);
    let by_owner = || {
        aws_sdk_ec2::types::Filter::builder()
            .name(format!("tag:{OWNER_TAG}"))
            .values(owner)
            .build()
    };
    let vpcs = ec2.describe_vpcs().filters(by_owner()).send().await;
    for vpc in vpcs.map_err(HarnessError::aws("DescribeVpcs"))?.vpcs() {
        found.push(format!("vpc {}", vpc.vpc_id().unwrap_or_default()));
    }
    let subnets = ec2.describe_subnets().filters(by_owner()).send().await;
    for subnet in subnets.map_err(HarnessError::aws("DescribeSubnets"))?.subnets() {
        found.push(format!("subnet {}", subnet.subnet_id().unwrap_or_default()));
    }
    let groups = ec2.describe_security_groups().filters(by_owner()).send().await;
    for group in groups
        .map_err(HarnessError::aws("DescribeSecurityGroups"))?
        .security_groups()
    {
        found.push(format!(
            "security group {}:{}",
            group.group_name().unwrap_or_default(),
            group.group_id().unwrap_or_default()
        ));
    }
    let gateways = ec2.describe_internet_gateways().filters(by_owner()).send().await;
    for gateway in gateways
        .map_err(HarnessError::aws("DescribeInternetGateways"))?
        .internet_gateways()
    {
        found.push(format!(
            "internet gateway {}",
            gateway.internet_gateway_id().unwrap_or_default()
        ));
    }
    let tables = ec2.describe_route_tables().filters(by_owner()).send().await;
    for table in tables
        .map_err(HarnessError::aws("DescribeRouteTables"))?
        .route_tables()
    {
        found.push(format!(
            "route table {}",
            table.route_table_id().unwrap_or_default()
        ));
    }
    let peerings = ec2
        .describe_vpc_peering_connections()
        .filters(by_owner())
        .send()
        .await;
    for peering in peerings
        .map_err(HarnessError::aws("DescribeVpcPeeringConnections"))?
        .vpc_peering_connections()
    {
        let state = peering.status().and_then(|s| s.code()).map(|c| c.as_str());
        if state != Some("deleted") {
            found.push(format!(
                "peering {}",
                peering.vpc_peering_connection_id().unwrap_or_default()
            ));
        }
    }
    let endpoints = ec2.describe_vpc_endpoints().filters(by_owner()).send().await;
    for endpoint in endpoints
        .map_err(HarnessError::aws("DescribeVpcEndpoints"))?
        .vpc_endpoints()
    {
        let state = endpoint.state().map(|s| s.as_str().to_lowercase());
        if state.as_deref() != Some("deleted") {
            found.push(format!(
                "vpc endpoint {}",
                endpoint.vpc_endpoint_id().unwrap_or_default()
            ));
        }
    }
    let templates = ec2.describe_launch_templates().filters(by_owner()).send().await;
    for template in templates
        .map_err(HarnessError::aws("DescribeLaunchTemplates"))?
        .launch_templates()
    {
        found.push(format!(
            "launch template {}",
            template.launch_template_id().unwrap_or_default()
        ));
    }
    let reservations = ec2.describe_instances().filters(by_owner()).send().await;
    for instance in reservations
        .map_err(HarnessError::aws("DescribeInstances"))?
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
    {
        let state = instance.state().and_then(|s| s.name()).map(|n| n.as_str());
        if state != Some("terminated") {
            found.push(format!("instance {}", instance.instance_id().unwrap_or_default()));
        }
    }
    let volumes = ec2.describe_volumes().filters(by_owner()).send().await;
    for volume in volumes.map_err(HarnessError::aws("DescribeVolumes"))?.volumes() {
        found.push(format!("volume {}", volume.volume_id().unwrap_or_default()));
    }
    Ok(())
}

async fn scaling_and_load_balancing(
    config: &SdkConfig,
    owned: &impl Fn(Tags) -> bool,
    found: &mut Vec<String>,
) -> Result<(), HarnessError> {
    let autoscaling = aws_sdk_autoscaling::Client::new(config);
    let groups = autoscaling
        .describe_auto_scaling_groups()
        .send()
        .await
        .map_err(HarnessError::aws("DescribeAutoScalingGroups"))?;
    for group in groups.auto_scaling_groups() {
        if owned(tags(
            group.tags().iter().filter_map(|t| Some((t.key()?, t.value()?))),
        )) {
            found.push(format!(
                "auto scaling group {}",
                group.auto_scaling_group_name().unwrap_or_default()
            ));
        }
    }

    let elbv2 = aws_sdk_elasticloadbalancingv2::Client::new(config);
    let elb_owned = async |arn: &str| -> Result<bool, HarnessError> {
        let described = elbv2
            .describe_tags()
            .resource_arns(arn)
            .send()
            .await
            .map_err(HarnessError::aws("DescribeTags"))?;
        Ok(owned(tags(
            described
                .tag_descriptions()
                .iter()
                .flat_map(|d| d.tags())
                .filter_map(|t| Some((t.key()?, t.value()?))),
        )))
    };
    let balancers = elbv2
        .describe_load_balancers()
        .send()
        .await
        .map_err(HarnessError::aws("DescribeLoadBalancers"))?;
    for balancer in balancers.load_balancers() {
        if elb_owned(balancer.load_balancer_arn().unwrap_or_default()).await? {
            found.push(format!(
                "load balancer {}",
                balancer.load_balancer_name().unwrap_or_default()
            ));
        }
    }
    let target_groups = elbv2
        .describe_target_groups()
        .send()
        .await
        .map_err(HarnessError::aws("DescribeTargetGroups"))?;
    for group in target_groups.target_groups() {
        if elb_owned(group.target_group_arn().unwrap_or_default()).await? {
            found.push(format!(
                "target group {}",
                group.target_group_name().unwrap_or_default()
            ));
        }
    }
    Ok(())
}
