//! Per-key limits: a token bucket of requests and one of bytes for each key
//! name, refilled continuously, holding at most one second's worth.
//!
//! The bytes of an upload are known only once they have arrived, so the
//! byte bucket may go into debt: an upload is admitted while the bucket is
//! not in debt and charged what it sent; the key then waits until the debt
//! is repaid. (A GCRA limiter such as `governor` needs the cost up front and
//! refuses any cost above its burst, so a single large image could never
//! pass.) Keys are the names of the keys file, so the map stays small.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What `--key-requests-per-second` and `--key-bytes-per-second` allow each
/// key; `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct KeyLimitSettings {
    pub requests_per_second: Option<f64>,
    pub bytes_per_second: Option<f64>,
}

/// Which bucket refused, for the error and the metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    Requests,
    Bytes,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Requests => "requests",
            Limit::Bytes => "bytes",
        }
    }
}

/// A refusal: which limit, and when to try again.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Refusal {
    pub limit: Limit,
    pub retry_after: Duration,
}

/// Tokens refilled at `rate` a second up to one second's worth.
#[derive(Clone, Copy, Debug)]
struct TokenBucket {
    rate: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    fn full(rate: f64, now: Instant) -> Self {
        Self {
            rate,
            tokens: rate.max(1.0),
            updated: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate.max(1.0));
        self.updated = now;
    }

    /// Takes one token, or says how long until there is one.
    fn take_one(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }

    /// Whether the bucket is out of debt, or how long until it is.
    fn out_of_debt(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens > 0.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64(-self.tokens / self.rate).max(Duration::from_millis(1)))
        }
    }

    fn charge(&mut self, cost: f64, now: Instant) {
        self.refill(now);
        self.tokens -= cost;
    }
}

#[derive(Debug, Default)]
struct KeyBuckets {
    requests: Option<TokenBucket>,
    bytes: Option<TokenBucket>,
}

/// Every key's buckets.
#[derive(Debug, Default)]
pub struct KeyLimits {
    settings: KeyLimitSettings,
    buckets: Mutex<HashMap<String, KeyBuckets>>,
}

impl KeyLimits {
    pub fn new(settings: KeyLimitSettings) -> Self {
        Self {
            settings,
            buckets: Mutex::default(),
        }
    }

    /// Admits one request of `key`: a request token, and for an upload a
    /// byte bucket out of debt.
    pub fn admit(&self, key: &str, upload: bool, now: Instant) -> Result<(), Refusal> {
        let settings = self.settings;
        if settings.requests_per_second.is_none() && settings.bytes_per_second.is_none() {
            return Ok(());
        }
        let mut all = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let buckets = all.entry(key.to_owned()).or_insert_with(|| KeyBuckets {
            requests: settings
                .requests_per_second
                .map(|rate| TokenBucket::full(rate, now)),
            bytes: settings.bytes_per_second.map(|rate| TokenBucket::full(rate, now)),
        });
        if upload && let Some(bytes) = &mut buckets.bytes {
            bytes.out_of_debt(now).map_err(|retry_after| Refusal {
                limit: Limit::Bytes,
                retry_after,
            })?;
        }
        if let Some(requests) = &mut buckets.requests {
            requests.take_one(now).map_err(|retry_after| Refusal {
                limit: Limit::Requests,
                retry_after,
            })?;
        }
        Ok(())
    }

    /// Charges `key` the bytes an upload sent.
    pub fn charge_bytes(&self, key: &str, bytes: u64, now: Instant) {
        let mut all = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(bucket) = all.get_mut(key).and_then(|b| b.bytes.as_mut()) {
            bucket.charge(bytes as f64, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(requests: Option<f64>, bytes: Option<f64>) -> KeyLimits {
        KeyLimits::new(KeyLimitSettings {
            requests_per_second: requests,
            bytes_per_second: bytes,
        })
    }

    #[test]
    fn requests_beyond_a_second_s_worth_wait_for_the_refill_per_key() {
        let l = limits(Some(5.0), None);
        let t0 = Instant::now();
        for _ in 0..5 {
            assert_eq!(l.admit("app", false, t0), Ok(()));
        }
        let refused = l.admit("app", false, t0).unwrap_err();
        assert_eq!(refused.limit, Limit::Requests);
        assert_eq!(refused.retry_after, Duration::from_millis(200));
        assert_eq!(l.admit("other", false, t0), Ok(()), "each key has its own bucket");
        assert_eq!(l.admit("app", false, t0 + Duration::from_millis(200)), Ok(()));
        // A long pause refills one second's worth, not more.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..5 {
            assert_eq!(l.admit("app", false, later), Ok(()));
        }
        assert!(l.admit("app", false, later).is_err());
    }

    #[test]
    fn an_upload_larger_than_the_byte_rate_passes_then_the_key_waits_out_its_debt() {
        let l = limits(None, Some(1000.0));
        let t0 = Instant::now();
        assert_eq!(l.admit("app", true, t0), Ok(()));
        l.charge_bytes("app", 3000, t0);
        let refused = l.admit("app", true, t0).unwrap_err();
        assert_eq!(refused.limit, Limit::Bytes);
        assert_eq!(refused.retry_after, Duration::from_secs(2));
        assert_eq!(l.admit("app", false, t0), Ok(()), "reads are not charged bytes");
        assert!(l.admit("app", true, t0 + Duration::from_millis(1999)).is_err());
        assert_eq!(l.admit("app", true, t0 + Duration::from_millis(2001)), Ok(()));
    }

    #[test]
    fn without_settings_nothing_is_tracked() {
        let l = limits(None, None);
        let t0 = Instant::now();
        for _ in 0..10_000 {
            assert_eq!(l.admit("app", true, t0), Ok(()));
        }
        l.charge_bytes("app", u64::MAX, t0);
        assert!(l.buckets.lock().unwrap().is_empty());
    }
}
