//! Whether an instance type is offered in the zones an instance may start in.
//! AWS accepts an Auto Scaling group whose instance type a zone lacks and
//! then fails each launch there, quietly, in the group's activity log; so
//! the type is checked before a launch template or broker asks for it.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{Filter, LocationType};

use crate::aws::AwsClients;
use crate::aws::errors::{Lookup, SpecReference, classify, missing};
use crate::engine::ComponentError;

/// A terminal error naming `field` unless `instance_type` is offered in
/// every one of `zones`.
pub async fn check_offered(
    aws: &AwsClients,
    instance_type: &str,
    zones: &BTreeSet<String>,
    field: &'static str,
) -> Result<(), ComponentError> {
    let key = format!("ec2:offerings:{instance_type}:{zones:?}");
    let offered = aws
        .facts
        .get(&key, || offered_in(aws, instance_type, zones))
        .await?;
    let lacking: Vec<&str> = zones
        .iter()
        .map(String::as_str)
        .filter(|zone| !offered.contains(*zone))
        .collect();
    if lacking.is_empty() {
        return Ok(());
    }
    Err(missing(
        SpecReference::new(Lookup::InstanceType, field, instance_type),
        &format!("not offered in {}", lacking.join(", ")),
    ))
}

/// Which of `zones` offer `instance_type`.
async fn offered_in(
    aws: &AwsClients,
    instance_type: &str,
    zones: &BTreeSet<String>,
) -> Result<BTreeSet<String>, ComponentError> {
    let out = aws
        .ec2
        .describe_instance_type_offerings()
        .location_type(LocationType::AvailabilityZone)
        .filters(
            Filter::builder()
                .name("instance-type")
                .values(instance_type)
                .build(),
        )
        .filters(
            Filter::builder()
                .name("location")
                .set_values(Some(zones.iter().cloned().collect()))
                .build(),
        )
        .send()
        .await
        .map_err(|err| classify(&format!("look up the zones that offer {instance_type}"), err))?;
    Ok(out
        .instance_type_offerings()
        .iter()
        .filter_map(|offering| offering.location())
        .map(str::to_owned)
        .collect())
}
