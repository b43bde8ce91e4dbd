//! Helpers shared by the operator's integration tests.

use std::collections::BTreeMap;

use imagepipeline_operator::aws::AwsClients;
use imagepipeline_operator::engine::OWNER_TAG;

/// The smallest pipeline of the tests: two zones, one Redshift node.
pub const MINIMAL: &str = "
apiVersion: imagepipeline.io/v1alpha1
kind: ImagePipeline
metadata: { name: photos, namespace: media }
spec:
  region: eu-west-1
  tags: { team: media }
  network: { availabilityZones: [eu-west-1a, eu-west-1b] }
  analytics: { nodes: 1 }
";

pub fn tag_map<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> BTreeMap<String, String> {
    pairs.map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

/// Every resource tagged as this pipeline's, by kind, read through the AWS API.
pub async fn owned_resources(aws: &AwsClients, owner: &str) -> Vec<String> {
    let mut found = Vec::new();
    let has_owner = |tags: BTreeMap<String, String>| tags.get(OWNER_TAG).is_some_and(|o| o == owner);
    for bucket in aws.s3.list_buckets().send().await.unwrap().buckets() {
        let name = bucket.name().unwrap();
        if let Ok(tags) = aws.s3.get_bucket_tagging().bucket(name).send().await
            && has_owner(tag_map(tags.tag_set().iter().map(|t| (t.key(), t.value()))))
        {
            found.push(format!("bucket {name}"));
        }
    }
    for table in aws.dynamodb.list_tables().send().await.unwrap().table_names() {
        let arn = aws
            .dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .unwrap()
            .table()
            .unwrap()
            .table_arn()
            .unwrap()
            .to_owned();
        let tags = aws
            .dynamodb
            .list_tags_of_resource()
            .resource_arn(arn)
            .send()
            .await
            .unwrap();
        if has_owner(tag_map(tags.tags().iter().map(|t| (t.key(), t.value())))) {
            found.push(format!("table {table}"));
        }
    }
    for stream in aws
        .firehose
        .list_delivery_streams()
        .send()
        .await
        .unwrap()
        .delivery_stream_names()
    {
        let tags = aws
            .firehose
            .list_tags_for_delivery_stream()
            .delivery_stream_name(stream)
            .send()
            .await
            .unwrap();
        if has_owner(tag_map(
            tags.tags()
                .iter()
                .map(|t| (t.key(), t.value().unwrap_or_default())),
        )) {
            found.push(format!("delivery stream {stream}"));
        }
    }
    for role in aws
        .iam
        .list_roles()
        .path_prefix("/imagepipeline/")
        .send()
        .await
        .unwrap()
        .roles()
    {
        let tags = aws
            .iam
            .list_role_tags()
            .role_name(role.role_name())
            .send()
            .await
            .unwrap();
        if has_owner(tag_map(tags.tags().iter().map(|t| (t.key(), t.value())))) {
            found.push(format!("role {}", role.role_name()));
        }
    }
    for cluster in aws.redshift.describe_clusters().send().await.unwrap().clusters() {
        if has_owner(tag_map(
            cluster
                .tags()
                .iter()
                .map(|t| (t.key().unwrap(), t.value().unwrap())),
        )) {
            found.push(format!("cluster {}", cluster.cluster_identifier().unwrap()));
        }
    }
    for group in aws
        .redshift
        .describe_cluster_subnet_groups()
        .send()
        .await
        .unwrap()
        .cluster_subnet_groups()
    {
        if has_owner(tag_map(
            group
                .tags()
                .iter()
                .map(|t| (t.key().unwrap(), t.value().unwrap())),
        )) {
            found.push(format!(
                "subnet group {}",
                group.cluster_subnet_group_name().unwrap()
            ));
        }
    }
    let owner_filter = || {
        aws_sdk_ec2::types::Filter::builder()
            .name(format!("tag:{OWNER_TAG}"))
            .values(owner)
            .build()
    };
    for vpc in aws
        .ec2
        .describe_vpcs()
        .filters(owner_filter())
        .send()
        .await
        .unwrap()
        .vpcs()
    {
        found.push(format!("vpc {}", vpc.vpc_id().unwrap()));
    }
    for subnet in aws
        .ec2
        .describe_subnets()
        .filters(owner_filter())
        .send()
        .await
        .unwrap()
        .subnets()
    {
        found.push(format!("subnet {}", subnet.subnet_id().unwrap()));
    }
    for group in aws
        .ec2
        .describe_security_groups()
        .filters(owner_filter())
        .send()
        .await
        .unwrap()
        .security_groups()
    {
        found.push(format!(
            "security group {}:{}",
            group.group_name().unwrap(),
            group.group_id().unwrap()
        ));
    }
    for gateway in aws
        .ec2
        .describe_internet_gateways()
        .filters(owner_filter())
        .send()
        .await
        .unwrap()
        .internet_gateways()
    {
        found.push(format!(
            "internet gateway {}",
            gateway.internet_gateway_id().unwrap()
        ));
    }
    for table in aws
        .ec2
        .describe_route_tables()
        .filters(owner_filter())
        .send()
        .await
        .unwrap()
        .route_tables()
    {
        found.push(format!("route table {}", table.route_table_id().unwrap()));
    }
    for peering in aws
        .ec2
        .describe_vpc_peering_connections()
        .filters(owner_filter())
        .send()
        .await
        .unwrap()
        .vpc_peering_connections()
    {
        let state = peering
            .status()
            .and_then(|s| s.code())
            .map(|c| c.as_str().to_owned());
        if state.as_deref() != Some("deleted") {
            found.push(format!(
                "peering {}",
                peering.vpc_peering_connection_id().unwrap()
            ));
        }
    }
    for template in aws
        .ec2
        .describe_launch_templates()
        .filters(owner_filter())
        .send()
        .await
        .unwrap()
        .launch_templates()
    {
        found.push(format!(
            "launch template {}",
            template.launch_template_id().unwrap()
        ));
    }
    for reservation in aws
        .ec2
        .describe_instances()
        .filters(owner_filter())
        .send()
        .await
        .unwrap()
        .reservations()
    {
        for instance in reservation.instances() {
            let state = instance.state().and_then(|s| s.name()).unwrap().as_str();
            if state != "terminated" {
                found.push(format!("instance {}", instance.instance_id().unwrap()));
            }
        }
    }
    for volume in aws
        .ec2
        .describe_volumes()
        .filters(owner_filter())
        .send()
        .await
        .unwrap()
        .volumes()
    {
        found.push(format!("volume {}", volume.volume_id().unwrap()));
    }
    for group in aws
        .autoscaling
        .describe_auto_scaling_groups()
        .send()
        .await
        .unwrap()
        .auto_scaling_groups()
    {
        if has_owner(tag_map(
            group
                .tags()
                .iter()
                .map(|t| (t.key().unwrap(), t.value().unwrap())),
        )) {
            found.push(format!(
                "auto scaling group {}",
                group.auto_scaling_group_name().unwrap()
            ));
        }
    }
    let elb_owned = |arn: String| async move {
        let tags = aws
            .elbv2
            .describe_tags()
            .resource_arns(&arn)
            .send()
            .await
            .unwrap();
        has_owner(tag_map(
            tags.tag_descriptions()
                .iter()
                .flat_map(|d| d.tags())
                .map(|t| (t.key().unwrap(), t.value().unwrap())),
        ))
    };
    for lb in aws
        .elbv2
        .describe_load_balancers()
        .send()
        .await
        .unwrap()
        .load_balancers()
    {
        if elb_owned(lb.load_balancer_arn().unwrap().to_owned()).await {
            found.push(format!("load balancer {}", lb.load_balancer_name().unwrap()));
        }
    }
    for tg in aws
        .elbv2
        .describe_target_groups()
        .send()
        .await
        .unwrap()
        .target_groups()
    {
        if elb_owned(tg.target_group_arn().unwrap().to_owned()).await {
            found.push(format!("target group {}", tg.target_group_name().unwrap()));
        }
    }
    for profile in aws
        .iam
        .list_instance_profiles()
        .path_prefix("/imagepipeline/")
        .send()
        .await
        .unwrap()
        .instance_profiles()
    {
        let name = profile.instance_profile_name();
        if has_owner(tag_map(profile.tags().iter().map(|t| (t.key(), t.value())))) {
            found.push(format!("instance profile {name}"));
        }
    }
    for parameter in aws
        .ssm
        .describe_parameters()
        .parameter_filters(
            aws_sdk_ssm::types::ParameterStringFilter::builder()
                .key("Name")
                .option("BeginsWith")
                .values("/imagepipeline/")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .parameters()
    {
        let name = parameter.name().unwrap();
        let tags = aws
            .ssm
            .list_tags_for_resource()
            .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
            .resource_id(name)
            .send()
            .await
            .unwrap();
        if has_owner(tag_map(tags.tag_list().iter().map(|t| (t.key(), t.value())))) {
            found.push(format!("parameter {name}"));
        }
    }
    found.sort();
    found
}
