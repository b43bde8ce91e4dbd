//! The objects of every pipeline in the region, one kind at a time, shared
//! by all pipelines through [`crate::aws::shared_reads`]: each EC2 and Auto
//! Scaling list is one `Describe*` filtered by the owner tag's key (every page
//! of it); load balancers and target groups, which cannot be filtered by tag,
//! are every one named as a pipeline's, with their tags read 20 at a time. A
//! resource's `find` picks its own out of the list by the tags and names the
//! per-pipeline filters used.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_autoscaling::types::{AutoScalingGroup, Filter as GroupFilter};
use aws_sdk_elasticloadbalancingv2::types::{LoadBalancer, TargetGroup};

use aws_sdk_ec2::types::{
    Filter, Instance, InternetGateway, LaunchTemplate, LaunchTemplateVersion, RouteTable, SecurityGroup,
    Subnet, Tag, Vpc, VpcEndpoint, VpcPeeringConnection,
};

use crate::aws::AwsClients;
use crate::aws::errors::{classify, code};
use crate::engine::{NAME_PREFIX, OWNER_TAG, Tags};
use crate::error::ComponentError;
use crate::resources::tags::from_sdk;

/// Whether `tags` hold `key` = `value`.
pub fn tagged(tags: &[Tag], key: &str, value: &str) -> bool {
    tags.iter()
        .any(|tag| tag.key() == Some(key) && tag.value() == Some(value))
}

fn any_owner() -> Filter {
    Filter::builder().name("tag-key").values(OWNER_TAG).build()
}

/// `tag:<key>` = `value`, for a narrow read.
pub fn tag_filter(key: &str, value: &str) -> Filter {
    Filter::builder().name(format!("tag:{key}")).values(value).build()
}

/// A filter of `name` = `value`, for a narrow read.
pub fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// One function per kind: its `Describe*`, every page, the items of each;
/// by the owner tag's key when shared, by `narrow` otherwise.
macro_rules! shared_list {
    ($(#[$doc:meta])* $name:ident, $operation:ident, $item:ty, |$page:ident| $items:expr) => {
        $(#[$doc])*
        pub async fn $name(aws: &AwsClients, narrow: Vec<Filter>) -> Result<Arc<Vec<$item>>, ComponentError> {
            let read = |filters: Vec<Filter>| async move {
                let mut pages = aws.ec2.$operation().set_filters(Some(filters)).into_paginator().send();
                let mut items = Vec::new();
                while let Some($page) = pages.next().await {
                    let $page = $page.map_err(|err| {
                        classify(concat!("list the pipelines' objects (", stringify!($operation), ")"), err)
                    })?;
                    items.extend($items);
                }
                Ok(items)
            };
            aws.reads
                .get_or_narrow(
                    concat!("ec2:", stringify!($operation)),
                    || read(vec![any_owner()]),
                    || read(narrow),
                )
                .await
        }
    };
}

shared_list!(vpcs, describe_vpcs, Vpc, |page| page.vpcs().iter().cloned());
shared_list!(subnets, describe_subnets, Subnet, |page| page
    .subnets()
    .iter()
    .cloned());
shared_list!(security_groups, describe_security_groups, SecurityGroup, |page| {
    page.security_groups().iter().cloned()
});
shared_list!(route_tables, describe_route_tables, RouteTable, |page| page
    .route_tables()
    .iter()
    .cloned());
shared_list!(
    internet_gateways,
    describe_internet_gateways,
    InternetGateway,
    |page| page.internet_gateways().iter().cloned()
);
shared_list!(
    /// Terminated ones too, for as long as EC2 lists them.
    instances,
    describe_instances,
    Instance,
    |page| page.reservations().iter().flat_map(|r| r.instances()).cloned()
);
shared_list!(
    peerings,
    describe_vpc_peering_connections,
    VpcPeeringConnection,
    |page| page.vpc_peering_connections().iter().cloned()
);
shared_list!(vpc_endpoints, describe_vpc_endpoints, VpcEndpoint, |page| page
    .vpc_endpoints()
    .iter()
    .cloned());
shared_list!(
    launch_templates,
    describe_launch_templates,
    LaunchTemplate,
    |page| page.launch_templates().iter().cloned()
);

/// The latest version of launch template `id`, picked out of every
/// template's latest version in the region (AWS answers `$Latest` of all
/// templates when none is named), or read by id alone while the operator is
/// changing things or when the list does not have it yet.
pub async fn latest_template_version(
    aws: &AwsClients,
    id: &str,
) -> Result<Option<LaunchTemplateVersion>, ComponentError> {
    let read = |id: Option<String>| async move {
        let mut pages = aws
            .ec2
            .describe_launch_template_versions()
            .set_launch_template_id(id)
            .versions("$Latest")
            .into_paginator()
            .send();
        let mut items = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| classify("read the latest launch template versions", err))?;
            items.extend(page.launch_template_versions().iter().cloned());
        }
        Ok::<_, ComponentError>(items)
    };
    let pick = |versions: &[LaunchTemplateVersion]| {
        versions
            .iter()
            .find(|version| version.launch_template_id() == Some(id))
            .cloned()
    };
    let every = aws
        .reads
        .get_or_narrow(
            "ec2:latest-launch-template-versions",
            || read(None),
            || read(Some(id.to_owned())),
        )
        .await?;
    match pick(&every) {
        Some(version) => Ok(Some(version)),
        None => Ok(pick(&read(Some(id.to_owned())).await?)),
    }
}

/// The Auto Scaling groups of every pipeline; narrow: the one named `name`.
pub async fn auto_scaling_groups(
    aws: &AwsClients,
    name: &str,
) -> Result<Arc<Vec<AutoScalingGroup>>, ComponentError> {
    let read = |narrow: bool| async move {
        let mut request = aws.autoscaling.describe_auto_scaling_groups();
        request = if narrow {
            request.auto_scaling_group_names(name)
        } else {
            request.filters(GroupFilter::builder().name("tag-key").values(OWNER_TAG).build())
        };
        let mut pages = request.into_paginator().send();
        let mut groups = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| classify("list the pipelines' Auto Scaling groups", err))?;
            groups.extend(page.auto_scaling_groups().iter().cloned());
        }
        Ok(groups)
    };
    aws.reads
        .get_or_narrow(
            "autoscaling:DescribeAutoScalingGroups",
            || read(false),
            || read(true),
        )
        .await
}

/// Every load balancer named as a pipeline's, with its tags; narrow: the one
/// named `name`.
pub async fn load_balancers(
    aws: &AwsClients,
    name: &str,
) -> Result<Arc<Vec<(LoadBalancer, Tags)>>, ComponentError> {
    let read = |narrow: bool| async move {
        let mut request = aws.elbv2.describe_load_balancers();
        if narrow {
            request = request.names(name);
        }
        let mut pages = request.into_paginator().send();
        let mut balancers = Vec::new();
        while let Some(page) = pages.next().await {
            let page = match page {
                Err(err) if code(&err) == Some("LoadBalancerNotFound") => break,
                page => page.map_err(|err| classify("list the load balancers", err))?,
            };
            balancers.extend(
                page.load_balancers()
                    .iter()
                    .filter(|lb| {
                        lb.load_balancer_name()
                            .is_some_and(|n| n.starts_with(NAME_PREFIX))
                    })
                    .cloned(),
            );
        }
        with_tags(aws, balancers, |lb| lb.load_balancer_arn()).await
    };
    aws.reads
        .get_or_narrow("elbv2:DescribeLoadBalancers", || read(false), || read(true))
        .await
}

/// Every target group named as a pipeline's, with its tags; narrow: the one
/// named `name`.
pub async fn target_groups(
    aws: &AwsClients,
    name: &str,
) -> Result<Arc<Vec<(TargetGroup, Tags)>>, ComponentError> {
    let read = |narrow: bool| async move {
        let mut request = aws.elbv2.describe_target_groups();
        if narrow {
            request = request.names(name);
        }
        let mut pages = request.into_paginator().send();
        let mut groups = Vec::new();
        while let Some(page) = pages.next().await {
            let page = match page {
                Err(err) if code(&err) == Some("TargetGroupNotFound") => break,
                page => page.map_err(|err| classify("list the target groups", err))?,
            };
            groups.extend(
                page.target_groups()
                    .iter()
                    .filter(|g| g.target_group_name().is_some_and(|n| n.starts_with(NAME_PREFIX)))
                    .cloned(),
            );
        }
        with_tags(aws, groups, |g| g.target_group_arn()).await
    };
    aws.reads
        .get_or_narrow("elbv2:DescribeTargetGroups", || read(false), || read(true))
        .await
}

/// `items` with their ELB tags, read with as few `DescribeTags` as it takes
/// (at most 20 ARNs each).
async fn with_tags<T>(
    aws: &AwsClients,
    items: Vec<T>,
    arn: impl Fn(&T) -> Option<&str>,
) -> Result<Vec<(T, Tags)>, ComponentError> {
    const ARNS_PER_CALL: usize = 20;
    let arns: Vec<String> = items
        .iter()
        .filter_map(|item| arn(item).map(str::to_owned))
        .collect();
    let mut tags: HashMap<String, Tags> = HashMap::new();
    for chunk in arns.chunks(ARNS_PER_CALL) {
        let out = aws
            .elbv2
            .describe_tags()
            .set_resource_arns(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|err| classify("read the tags of the load balancers and target groups", err))?;
        for description in out.tag_descriptions() {
            if let Some(arn) = description.resource_arn() {
                tags.insert(arn.to_owned(), from_sdk(description.tags()));
            }
        }
    }
    Ok(items
        .into_iter()
        .map(|item| {
            let tags = arn(&item)
                .and_then(|arn| tags.get(arn))
                .cloned()
                .unwrap_or_default();
            (item, tags)
        })
        .collect())
}
