//! How long to wait before trying AWS again: exponential from 100 ms to
//! 30 s with jitter, without end. A long outage stalls the bridge (and its
//! commits) rather than dropping records.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

const MAX_DELAY: Duration = Duration::from_secs(30);

/// The delays of one retry loop.
pub fn delays() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(MAX_DELAY)
        .with_jitter()
        .without_max_times()
        .build()
}
