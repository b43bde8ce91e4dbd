//! What a pipeline costs a month, from its spec and the price table alone:
//! no AWS call, so `plan` shows it before anything exists and the status
//! carries it for the spec the controller last reconciled.
//!
//! The fixed part (instances, EBS volumes, the load balancer's hours,
//! Redshift nodes) is summed; the usage-priced part (S3, DynamoDB, Firehose)
//! is given as rates with an example volume. Whatever the table has no
//! price for is "unknown" and left out of the sum, which then says it is
//! partial: a price is never guessed from another region or type.

mod prices;
mod render;

use crate::api::v1alpha1::{EstimatedMonthlyCost, ImagePipelineSpec, managed_kafka_defaults};
use crate::components::upload_tier;
use crate::engine::ComponentKind;
use crate::resources::broker_instance;

pub use prices::{HOURS_PER_MONTH, PriceTable, PriceTableError, Priced, Unpriced, aws as aws_prices};
pub use render::plan_text;

/// The EBS type of every volume the operator makes: the upload tier's
/// launch template and the brokers ask for gp3.
const VOLUME_TYPE: &str = "gp3";

/// A rise of the fixed estimate beyond this fraction is announced by an event.
pub const SHARP_RISE: f64 = 0.20;

/// The monthly estimate of one spec in its region.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    pub region: String,
    pub currency: String,
    pub prices_as_of: String,
    /// Where the prices come from: `repository@commit (date)` each.
    pub sources: Vec<String>,
    /// Summed into the total when priced.
    pub fixed: Vec<FixedCost>,
    /// Shown as rates; never in the total.
    pub usage: Vec<UsageRate>,
}

/// One fixed item: what it is and what it costs a month.
#[derive(Clone, Debug, PartialEq)]
pub struct FixedCost {
    pub component: ComponentKind,
    /// For example `3 × m7i.large brokers`.
    pub item: String,
    pub monthly: Result<f64, Unpriced>,
    /// The upload tier's instances when the group is at `maxSize`.
    pub at_max_size: Option<AtMaxSize>,
}

/// The upload tier's instances at the most the group may run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AtMaxSize {
    pub instances: i32,
    pub monthly: f64,
}

/// One usage-priced item: its rate and what an example volume costs.
#[derive(Clone, Debug, PartialEq)]
pub struct UsageRate {
    pub component: ComponentKind,
    /// For example `S3 Standard storage`.
    pub item: &'static str,
    /// What the rate is per, for example `GB-month`.
    pub unit: &'static str,
    pub rate: Result<f64, Unpriced>,
    /// The example volume, in `unit`s.
    pub example: f64,
}

impl Estimate {
    /// The sum of the fixed items that have a price.
    pub fn total(&self) -> f64 {
        // From +0.0: `Sum` of no floats is -0.0, which prints as "-0.00".
        self.fixed
            .iter()
            .filter_map(|c| c.monthly.as_ref().ok())
            .fold(0.0, |total, monthly| total + monthly)
    }

    /// The fixed items left out of the total.
    pub fn unpriced(&self) -> impl Iterator<Item = &FixedCost> {
        self.fixed.iter().filter(|c| c.monthly.is_err())
    }

    /// What the status carries: the fixed part.
    pub fn status(&self) -> EstimatedMonthlyCost {
        let unpriced: Vec<String> = self
            .unpriced()
            .map(|c| format!("{}: {}", c.component, c.item))
            .collect();
        EstimatedMonthlyCost {
            amount: format!("{:.2}", self.total()),
            currency: self.currency.clone(),
            partial: !unpriced.is_empty(),
            unpriced,
            prices_as_of: self.prices_as_of.clone(),
        }
    }
}

/// The estimate of `spec` at `prices`: what the components would make, with
/// the same defaults they apply.
pub fn estimate(spec: &ImagePipelineSpec, prices: &PriceTable) -> Estimate {
    let region = spec.region.as_str();
    let price = |item| prices.price(region, item);
    let monthly_hours = |count: i32, item| price(item).map(|hour| f64::from(count) * hour * HOURS_PER_MONTH);
    let volumes = |count: i32, gib: i32| {
        price(Priced::EbsGbMonth(VOLUME_TYPE)).map(|gb_month| f64::from(count) * f64::from(gib) * gb_month)
    };
    let mut fixed = Vec::new();

    let upload = &spec.upload_api;
    // Unset, the group starts at minSize and the scaling policy moves it.
    let (instances, why) = match upload.desired_capacity {
        Some(desired) => (desired, "desiredCapacity"),
        None => (upload.min_size, "minSize"),
    };
    let instance_hour = Priced::InstanceHour(&upload.instance_type);
    fixed.push(FixedCost {
        component: ComponentKind::UploadTier,
        item: format!("{instances} × {} instances ({why})", upload.instance_type),
        monthly: monthly_hours(instances, instance_hour),
        at_max_size: monthly_hours(upload.max_size, instance_hour)
            .ok()
            .map(|monthly| AtMaxSize {
                instances: upload.max_size,
                monthly,
            }),
    });
    fixed.push(FixedCost::new(
        ComponentKind::UploadTier,
        format!(
            "{instances} × {} GiB {VOLUME_TYPE} root volumes",
            upload_tier::ROOT_VOLUME_GIB
        ),
        volumes(instances, upload_tier::ROOT_VOLUME_GIB),
    ));
    fixed.push(FixedCost::new(
        ComponentKind::UploadTier,
        format!("application load balancer, {HOURS_PER_MONTH} hours"),
        monthly_hours(1, Priced::LoadBalancerHour),
    ));

    let kafka = &spec.kafka;
    if kafka.bootstrap_servers.is_none() {
        let brokers = kafka.brokers.unwrap_or(managed_kafka_defaults::BROKERS);
        let instance_type = kafka
            .instance_type
            .as_deref()
            .unwrap_or(managed_kafka_defaults::INSTANCE_TYPE);
        let data_gib = kafka.volume_gib.unwrap_or(managed_kafka_defaults::VOLUME_GIB);
        fixed.push(FixedCost::new(
            ComponentKind::Kafka,
            format!("{brokers} × {instance_type} brokers"),
            monthly_hours(brokers, Priced::InstanceHour(instance_type)),
        ));
        fixed.push(FixedCost::new(
            ComponentKind::Kafka,
            format!("{brokers} × {data_gib} GiB {VOLUME_TYPE} data volumes"),
            volumes(brokers, data_gib),
        ));
        fixed.push(FixedCost::new(
            ComponentKind::Kafka,
            format!(
                "{brokers} × {} GiB {VOLUME_TYPE} root volumes",
                broker_instance::ROOT_VOLUME_GIB
            ),
            volumes(brokers, broker_instance::ROOT_VOLUME_GIB),
        ));
    }

    let analytics = &spec.analytics;
    if analytics.enabled {
        fixed.push(FixedCost::new(
            ComponentKind::Analytics,
            format!("{} × {} nodes", analytics.nodes, analytics.node_type),
            monthly_hours(analytics.nodes, Priced::RedshiftNodeHour(&analytics.node_type)),
        ));
    }

    let usage = vec![
        UsageRate {
            component: ComponentKind::Storage,
            item: "S3 Standard storage",
            unit: "GB-month",
            rate: price(Priced::S3StandardGbMonth),
            example: 1000.0,
        },
        UsageRate {
            component: ComponentKind::Metadata,
            item: "DynamoDB on-demand writes (one per image)",
            unit: "million writes",
            rate: price(Priced::DynamoDbMillionWrites),
            example: 10.0,
        },
        UsageRate {
            component: ComponentKind::Delivery,
            item: "Firehose ingestion (image events)",
            unit: "GB ingested",
            rate: price(Priced::FirehoseGbIngested),
            example: 10.0,
        },
    ];

    Estimate {
        region: region.to_owned(),
        currency: prices.currency.clone(),
        prices_as_of: prices.prices_as_of.clone(),
        sources: prices.sources(),
        fixed,
        usage,
    }
}

impl FixedCost {
    fn new(component: ComponentKind, item: String, monthly: Result<f64, Unpriced>) -> Self {
        Self {
            component,
            item,
            monthly,
            at_max_size: None,
        }
    }
}

/// Whether `next` raises the estimate by more than [`SHARP_RISE`] over
/// `previous`. Estimates in different currencies, or from nothing priced,
/// are not compared.
pub fn raised_sharply(previous: &EstimatedMonthlyCost, next: &EstimatedMonthlyCost) -> bool {
    if previous.currency != next.currency {
        return false;
    }
    match (previous.amount.parse::<f64>(), next.amount.parse::<f64>()) {
        (Ok(before), Ok(after)) => before > 0.0 && after > before * (1.0 + SHARP_RISE),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
