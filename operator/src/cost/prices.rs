//! The price table: AWS on-demand list prices per region, read from
//! `operator/pricing/aws.yaml`, which names the public source of each figure.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::LazyLock;

use serde::Deserialize;

/// Hours in a month as AWS's own pricing pages and calculator count them
/// (8,760 a year over 12).
pub const HOURS_PER_MONTH: f64 = 730.0;

const AWS_TABLE: &str = include_str!("../../pricing/aws.yaml");

static AWS: LazyLock<PriceTable> = LazyLock::new(|| {
    PriceTable::parse(AWS_TABLE).expect("pricing/aws.yaml is a valid price table (a unit test parses it)")
});

/// The table built into the operator.
pub fn aws() -> &'static PriceTable {
    &AWS
}

#[derive(Debug, thiserror::Error)]
#[error("the price table is not valid: {0}")]
pub struct PriceTableError(#[from] Box<serde_saphyr::Error>);

/// Prices per region, in one currency, as of one date.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PriceTable {
    pub currency: String,
    /// `YYYY-MM-DD`: no figure in the table is older.
    pub prices_as_of: String,
    /// Where the figures come from, by the names the regions' comments use.
    sources: BTreeMap<String, Source>,
    regions: BTreeMap<String, RegionPrices>,
}

/// A public repository a figure was copied from, at one commit.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Source {
    repository: String,
    /// The file, or a glob of files, in `repository`. Read by people.
    #[allow(dead_code)]
    path: String,
    commit: String,
    date: String,
}

/// What one region's prices are known for; anything absent is unknown.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RegionPrices {
    #[serde(default)]
    instance_hour: BTreeMap<String, f64>,
    #[serde(default)]
    ebs_gb_month: BTreeMap<String, f64>,
    application_load_balancer_hour: Option<f64>,
    #[serde(default)]
    redshift_node_hour: BTreeMap<String, f64>,
    s3_standard_gb_month: Option<f64>,
    dynamodb_million_writes: Option<f64>,
    firehose_gb_ingested: Option<f64>,
}

/// One thing the table prices, with the unit its price is per.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priced<'a> {
    /// An EC2 instance type, per hour.
    InstanceHour(&'a str),
    /// An EBS volume type, per GB-month.
    EbsGbMonth(&'a str),
    /// An application load balancer, per hour (capacity units aside).
    LoadBalancerHour,
    /// A Redshift node type, per node-hour.
    RedshiftNodeHour(&'a str),
    /// S3 Standard storage, per GB-month.
    S3StandardGbMonth,
    /// DynamoDB on-demand writes, per million write request units.
    DynamoDbMillionWrites,
    /// Firehose Direct PUT ingestion, per GB.
    FirehoseGbIngested,
}

impl fmt::Display for Priced<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Priced::InstanceHour(kind) => write!(f, "instance type {kind}"),
            Priced::EbsGbMonth(kind) => write!(f, "EBS volume type {kind}"),
            Priced::LoadBalancerHour => f.write_str("the application load balancer"),
            Priced::RedshiftNodeHour(kind) => write!(f, "Redshift node type {kind}"),
            Priced::S3StandardGbMonth => f.write_str("S3 Standard storage"),
            Priced::DynamoDbMillionWrites => f.write_str("DynamoDB on-demand writes"),
            Priced::FirehoseGbIngested => f.write_str("Firehose ingestion"),
        }
    }
}

/// Why something has no price: the table does not have it for the region.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{item} has no price for {region} in the operator's price table")]
pub struct Unpriced {
    pub item: String,
    pub region: String,
}

impl PriceTable {
    pub fn parse(yaml: &str) -> Result<Self, PriceTableError> {
        serde_saphyr::from_str(yaml).map_err(|err| PriceTableError(Box::new(err)))
    }

    /// Each source as `repository@commit (date)`, the commit shortened.
    pub fn sources(&self) -> Vec<String> {
        self.sources
            .values()
            .map(|s| {
                format!(
                    "{}@{} ({})",
                    s.repository,
                    &s.commit[..s.commit.len().min(8)],
                    s.date
                )
            })
            .collect()
    }

    /// The price of `item` in `region`, in the table's currency per the
    /// item's unit; never a neighbouring region's or type's.
    pub fn price(&self, region: &str, item: Priced<'_>) -> Result<f64, Unpriced> {
        let prices = self.regions.get(region);
        let found = prices.and_then(|p| match item {
            Priced::InstanceHour(kind) => p.instance_hour.get(kind).copied(),
            Priced::EbsGbMonth(kind) => p.ebs_gb_month.get(kind).copied(),
            Priced::LoadBalancerHour => p.application_load_balancer_hour,
            Priced::RedshiftNodeHour(kind) => p.redshift_node_hour.get(kind).copied(),
            Priced::S3StandardGbMonth => p.s3_standard_gb_month,
            Priced::DynamoDbMillionWrites => p.dynamodb_million_writes,
            Priced::FirehoseGbIngested => p.firehose_gb_ingested,
        });
        found.ok_or_else(|| Unpriced {
            item: item.to_string(),
            region: region.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_table_parses_and_every_price_is_positive() {
        let table = PriceTable::parse(AWS_TABLE).expect("pricing/aws.yaml parses");
        assert_eq!(table.currency, "USD");
        assert!(!table.sources.is_empty());
        for (region, prices) in &table.regions {
            let maps = [
                &prices.instance_hour,
                &prices.ebs_gb_month,
                &prices.redshift_node_hour,
            ];
            let singles = [
                prices.application_load_balancer_hour,
                prices.s3_standard_gb_month,
                prices.dynamodb_million_writes,
                prices.firehose_gb_ingested,
            ];
            let all = maps
                .iter()
                .flat_map(|m| m.values().copied())
                .chain(singles.into_iter().flatten());
            for price in all {
                assert!(price > 0.0 && price.is_finite(), "{region}: {price}");
            }
        }
    }

    #[test]
    fn a_region_or_type_the_table_lacks_is_unpriced_not_borrowed() {
        let table = aws();
        assert_eq!(
            table.price("us-east-1", Priced::InstanceHour("t3.small")),
            Ok(0.0208)
        );
        let missing_type = table
            .price("us-east-1", Priced::InstanceHour("x99.huge"))
            .unwrap_err();
        assert_eq!(
            missing_type.to_string(),
            "instance type x99.huge has no price for us-east-1 in the operator's price table"
        );
        // sa-east-1 is a region the CRD allows that the table has no figures for.
        assert!(
            table
                .price("sa-east-1", Priced::InstanceHour("t3.small"))
                .is_err()
        );
        assert_eq!(
            table
                .price("eu-west-1", Priced::InstanceHour("t3.small"))
                .unwrap(),
            0.0228
        );
        assert!(table.price("xx-nowhere-9", Priced::LoadBalancerHour).is_err());
    }

    #[test]
    fn a_table_with_an_unknown_field_is_refused() {
        let yaml = "currency: USD\npricesAsOf: '2024-07-01'\nsources: {}\nregions:\n  us-east-1:\n    instanceHours: {}\n";
        assert!(PriceTable::parse(yaml).is_err());
    }
}
