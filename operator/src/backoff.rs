//! Retry pacing: exponential with full jitter, so that many pipelines
//! retrying at once spread out instead of hitting AWS together.

use std::time::Duration;

use rand::Rng;

/// The delay before each next try: doubling up to a ceiling, each drawn
/// between half of it and all of it.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        Self { next: first, max }
    }

    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.next;
        self.next = (self.next * 2).min(self.max);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX).max(1);
        Duration::from_millis(rand::rng().random_range(millis / 2..=millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_ceiling_and_jitters_below_it() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let delays: Vec<Duration> = (0..6).map(|_| backoff.next_delay()).collect();
        for (delay, ceiling) in delays.iter().zip([100, 200, 400, 800, 800, 800]) {
            assert!(*delay <= Duration::from_millis(ceiling) && *delay >= Duration::from_millis(ceiling / 2));
        }
    }
}
