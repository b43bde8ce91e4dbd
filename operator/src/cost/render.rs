//! The estimate as `plan` prints it, after the changes.

use std::fmt::Write as _;

use super::{Estimate, HOURS_PER_MONTH};

/// Width of the item column, so that the amounts line up.
const ITEM_WIDTH: usize = 46;

/// The cost lines of `plan`: each fixed item, the total of the priced ones,
/// then the usage-priced rates with an example volume.
pub fn plan_text(estimate: &Estimate) -> String {
    let currency = &estimate.currency;
    let mut text = format!(
        "Estimated monthly cost in {} ({currency}, on-demand list prices as of {}, {HOURS_PER_MONTH} hours a month):\n",
        estimate.region, estimate.prices_as_of
    );
    for cost in &estimate.fixed {
        let amount = match &cost.monthly {
            Ok(monthly) => format!("{currency} {monthly:.2}"),
            Err(unpriced) => format!("unknown: {unpriced}"),
        };
        let at_max = cost
            .at_max_size
            .map(|max| format!("  ({} at maxSize: {currency} {:.2})", max.instances, max.monthly))
            .unwrap_or_default();
        let _ = writeln!(
            text,
            "  {:<10} {:<ITEM_WIDTH$} {amount}{at_max}",
            cost.component.name(),
            cost.item
        );
    }
    let unpriced = estimate.unpriced().count();
    let partial = match unpriced {
        0 => String::new(),
        1 => ", partial: 1 item is unknown and not counted".to_owned(),
        n => format!(", partial: {n} items are unknown and not counted"),
    };
    let _ = writeln!(
        text,
        "  {:<10} {:<ITEM_WIDTH$} {currency} {:.2}{partial}",
        "Total",
        "fixed part",
        estimate.total()
    );
    let _ = writeln!(text, "Usage-priced, not in the total:");
    for usage in &estimate.usage {
        let amount = match &usage.rate {
            Ok(rate) => format!(
                "{currency} {rate} per {unit} ({example} {unit}: {currency} {:.2})",
                rate * usage.example,
                unit = usage.unit,
                example = usage.example,
            ),
            Err(unpriced) => format!("unknown: {unpriced}"),
        };
        let _ = writeln!(
            text,
            "  {:<10} {:<ITEM_WIDTH$} {amount}",
            usage.component.name(),
            usage.item
        );
    }
    let _ = writeln!(
        text,
        "Prices from operator/pricing/aws.yaml, which cites {}.",
        estimate.sources.join(", ")
    );
    text
}
