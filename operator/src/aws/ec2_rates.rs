//! EC2's request token buckets, one per API action, as AWS documents them
//! ("Request throttling for the Amazon EC2 API", "Request token bucket sizes
//! and refill rates"). Beside EC2's own bucket (which keeps every describe
//! of the operator together under 20 a second), each EC2 request takes a
//! token from its action's bucket, so that no action goes faster than AWS
//! refills it however many pipelines are built at once: 5 a second for most
//! changes, 0.3 a second for `CreateVpcEndpoint`.

use super::calls::is_mutating_operation;
use super::throttle::RequestRate;

/// `Describe*`, `List*`, `Search*` and `Get*` actions.
const NON_MUTATING: RequestRate = RequestRate::new(20.0, 100);
/// The few describes asked without a filter or pagination.
const UNFILTERED_NON_MUTATING: RequestRate = RequestRate::new(10.0, 50);
/// Every other action, resource-intensive ones included (same size, own
/// buckets).
const MUTATING: RequestRate = RequestRate::new(5.0, 50);

/// Describes that draw from the smaller bucket when asked without a filter
/// or pagination.
const UNFILTERED_ACTIONS: [&str; 7] = [
    "DescribeInstances",
    "DescribeInstanceStatus",
    "DescribeNetworkInterfaces",
    "DescribeSecurityGroups",
    "DescribeSnapshots",
    "DescribeSpotInstanceRequests",
    "DescribeVolumes",
];

/// AWS's "uncategorized" actions a pipeline's resources can meet, which have
/// buckets of their own sizes.
const OWN_BUCKETS: [(&str, RequestRate); 24] = [
    ("AssignPrivateIpAddresses", RequestRate::new(5.0, 100)),
    ("AssociateIamInstanceProfile", RequestRate::new(5.0, 100)),
    ("CopyImage", RequestRate::new(1.0, 100)),
    ("CreateLaunchTemplateVersion", RequestRate::new(5.0, 100)),
    ("CreateNatGateway", RequestRate::new(1.0, 10)),
    ("CreateNetworkInterface", RequestRate::new(5.0, 100)),
    ("CreateSnapshot", RequestRate::new(5.0, 100)),
    ("CreateTags", RequestRate::new(10.0, 100)),
    ("CreateVolume", RequestRate::new(5.0, 100)),
    ("CreateVpcEndpoint", RequestRate::new(0.3, 4)),
    ("DeleteNatGateway", RequestRate::new(1.0, 10)),
    ("DeleteNetworkInterface", RequestRate::new(5.0, 100)),
    ("DeleteSnapshot", RequestRate::new(5.0, 100)),
    ("DeleteTags", RequestRate::new(10.0, 100)),
    ("DeleteVolume", RequestRate::new(5.0, 100)),
    ("DeleteVpcEndpoints", RequestRate::new(0.3, 4)),
    ("DeregisterImage", RequestRate::new(5.0, 100)),
    ("DescribeSecurityGroupReferences", RequestRate::new(5.0, 20)),
    ("DescribeStaleSecurityGroups", RequestRate::new(5.0, 20)),
    ("DisassociateIamInstanceProfile", RequestRate::new(5.0, 100)),
    ("ModifyImageAttribute", RequestRate::new(5.0, 100)),
    ("ModifyInstanceMetadataOptions", RequestRate::new(5.0, 100)),
    ("ModifyLaunchTemplate", RequestRate::new(5.0, 100)),
    ("ModifyNetworkInterfaceAttribute", RequestRate::new(5.0, 100)),
];

/// The bucket an EC2 request draws from, by its Query-protocol body
/// (`Action=…&Version=…&…`): a name for the bucket and its rate. None for a
/// body that names no action.
pub fn bucket_of(body: &[u8]) -> Option<(String, RequestRate)> {
    let body = std::str::from_utf8(body).ok()?;
    let mut action = None;
    let mut narrowed = false;
    for pair in body.split('&') {
        let key = pair.split_once('=').map_or(pair, |(key, _)| key);
        match key {
            "Action" => action = pair.split_once('=').map(|(_, value)| value),
            "MaxResults" | "NextToken" => narrowed = true,
            _ if key.starts_with("Filter.") => narrowed = true,
            _ => {}
        }
    }
    let action = action.filter(|a| !a.is_empty())?;
    if let Some((_, rate)) = OWN_BUCKETS.iter().find(|(name, _)| *name == action) {
        return Some((action.to_owned(), *rate));
    }
    let unfiltered = UNFILTERED_ACTIONS.contains(&action) && !narrowed;
    let bucket = match (is_mutating_operation(action), unfiltered) {
        (true, _) => (action.to_owned(), MUTATING),
        (false, true) => (format!("{action} (unfiltered)"), UNFILTERED_NON_MUTATING),
        (false, false) => (action.to_owned(), NON_MUTATING),
    };
    Some(bucket)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(body: &str) -> Option<(String, f64, u32)> {
        bucket_of(body.as_bytes()).map(|(name, rate)| (name, rate.per_second, rate.burst))
    }

    #[test]
    fn each_action_draws_from_the_bucket_aws_gives_it() {
        let cases = [
            (
                "Action=CreateSubnet&Version=2016-11-15&VpcId=vpc-1",
                ("CreateSubnet", 5.0, 50),
            ),
            (
                "Action=CreateVpcEndpoint&Version=2016-11-15",
                ("CreateVpcEndpoint", 0.3, 4),
            ),
            ("Action=CreateTags&ResourceId.1=i-1", ("CreateTags", 10.0, 100)),
            (
                "Action=AuthorizeSecurityGroupIngress&GroupId=sg-1",
                ("AuthorizeSecurityGroupIngress", 5.0, 50),
            ),
            (
                "Action=DescribeSubnets&Version=2016-11-15",
                ("DescribeSubnets", 20.0, 100),
            ),
            (
                "Action=DescribeInstances&Version=2016-11-15",
                ("DescribeInstances (unfiltered)", 10.0, 50),
            ),
            (
                "Action=DescribeInstances&Filter.1.Name=tag%3Aowner&Filter.1.Value.1=x",
                ("DescribeInstances", 20.0, 100),
            ),
            (
                "Action=DescribeSecurityGroups&MaxResults=1000",
                ("DescribeSecurityGroups", 20.0, 100),
            ),
            (
                "Version=2016-11-15&Action=RunInstances",
                ("RunInstances", 5.0, 50),
            ),
        ];
        for (body, (name, per_second, burst)) in cases {
            assert_eq!(rate(body), Some((name.to_owned(), per_second, burst)), "{body}");
        }
    }

    #[test]
    fn a_body_without_an_action_has_no_bucket_of_its_own() {
        assert_eq!(rate(""), None);
        assert_eq!(rate("Version=2016-11-15"), None);
        assert_eq!(rate("Action="), None);
        assert!(bucket_of(&[0xff, 0xfe]).is_none());
    }
}
