//! Client-side rate limiting: one token bucket per AWS service, and one per
//! API action where the service throttles actions separately (EC2), applied
//! at the HTTP layer so that the SDK's own retries draw from the same buckets.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// A token bucket: `burst` requests at once, refilled at `per_second` (which
/// may be below one: EC2 refills some actions' buckets at 0.3 a second).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RequestRate {
    pub per_second: f64,
    pub burst: u32,
}

impl RequestRate {
    pub(super) const fn new(per_second: f64, burst: u32) -> Self {
        Self { per_second, burst }
    }

    fn quota(self) -> Quota {
        let burst = NonZeroU32::new(self.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let period = Duration::from_secs_f64(1.0 / self.per_second.max(0.001));
        Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(burst)
    }
}

/// Request rates per service, from AWS's published throttling quotas. Where a
/// service throttles read and write calls separately we take the lower rate,
/// so one bucket can never push either class over its quota.
pub mod rates {
    use super::RequestRate;

    /// EC2 throttles each API action with a bucket of its own, 20/s with a
    /// burst of 100 for describes, 5/s with 50 for most changes; every EC2
    /// request also takes a token from its action's bucket
    /// ([`super::super::ec2_rates`]). This bucket keeps all of them together
    /// at the describe rate.
    pub const EC2: RequestRate = RequestRate::new(20.0, 100);
    /// S3 bucket configuration calls. S3 scales per prefix (3,500 writes/s);
    /// configuration APIs are not published separately, so stay far below.
    pub const S3: RequestRate = RequestRate::new(50.0, 50);
    /// DynamoDB control plane: at most 10 concurrent CreateTable/UpdateTable/
    /// DeleteTable, describe calls are cheap; 10/s keeps well inside both.
    pub const DYNAMODB: RequestRate = RequestRate::new(10.0, 10);
    /// Firehose: CreateDeliveryStream, DeleteDeliveryStream, UpdateDestination
    /// and ListDeliveryStreams are limited to 5 transactions per second.
    pub const FIREHOSE: RequestRate = RequestRate::new(5.0, 5);
    /// IAM is a global, eventually consistent service whose control-plane quota
    /// is shared by the whole account; stay at 10/s.
    pub const IAM: RequestRate = RequestRate::new(10.0, 10);
    /// Redshift management API and the Redshift Data API (ExecuteStatement is
    /// limited to 30/s, DescribeStatement to 100/s).
    pub const REDSHIFT: RequestRate = RequestRate::new(10.0, 10);
    pub const REDSHIFT_DATA: RequestRate = RequestRate::new(20.0, 20);
    /// Elastic Load Balancing (v2) API: about 10 requests per second per
    /// account for describe and mutating calls alike.
    pub const ELBV2: RequestRate = RequestRate::new(10.0, 10);
    /// EC2 Auto Scaling API: quotas are not published per action; the
    /// console's own pace of about 10/s stays clear of throttling.
    pub const AUTOSCALING: RequestRate = RequestRate::new(10.0, 10);
    /// SSM Parameter Store: PutParameter is limited to 3 transactions per
    /// second by default (GetParameter to 40); the one bucket keeps to 3.
    pub const SSM: RequestRate = RequestRate::new(3.0, 5);
    /// Glue Data Catalog: AWS publishes no per-action rate for GetDatabase,
    /// GetTable, CreateTable and the like, only that Glue throttles calls
    /// per account and Region (knowledge center, "glue-throttling-rate-
    /// exceeded"). The catalog is shared with whatever else in the account
    /// reads it (Athena, Spectrum queries, crawlers), so stay at 5/s.
    pub const GLUE: RequestRate = RequestRate::new(5.0, 10);
    /// STS GetCallerIdentity: generous quota; one call per reconcile.
    pub const STS: RequestRate = RequestRate::new(50.0, 50);
}

/// The bucket of a request's own action, if its service throttles actions
/// separately (EC2: [`super::ec2_rates::bucket_of`]), from its body.
pub type ActionBucket = fn(&[u8]) -> Option<(String, RequestRate)>;

/// Wraps the SDK's HTTP client so that every request, retries included,
/// first takes a token from its action's bucket, if the service has them,
/// then from the service's.
#[derive(Clone, Debug)]
pub struct RateLimitedHttpClient {
    inner: SharedHttpClient,
    limiter: Arc<DefaultDirectRateLimiter>,
    actions: Option<Arc<ActionLimiters>>,
}

impl RateLimitedHttpClient {
    pub fn new(inner: SharedHttpClient, rate: RequestRate) -> Self {
        Self {
            inner,
            limiter: Arc::new(RateLimiter::direct(rate.quota())),
            actions: None,
        }
    }

    /// Also a bucket for each action, as `bucket_of` names and sizes it.
    pub fn with_action_buckets(self, bucket_of: ActionBucket) -> Self {
        Self {
            actions: Some(Arc::new(ActionLimiters {
                bucket_of,
                limiters: Mutex::default(),
            })),
            ..self
        }
    }
}

/// One limiter per action bucket, made when the action is first asked.
struct ActionLimiters {
    bucket_of: ActionBucket,
    limiters: Mutex<HashMap<String, Arc<DefaultDirectRateLimiter>>>,
}

impl std::fmt::Debug for ActionLimiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActionLimiters").finish_non_exhaustive()
    }
}

impl ActionLimiters {
    fn limiter_for(&self, body: &[u8]) -> Option<Arc<DefaultDirectRateLimiter>> {
        let (name, rate) = (self.bucket_of)(body)?;
        let mut limiters = self.limiters.lock().unwrap_or_else(PoisonError::into_inner);
        let limiter = limiters
            .entry(name)
            .or_insert_with(|| Arc::new(RateLimiter::direct(rate.quota())));
        Some(Arc::clone(limiter))
    }
}

impl HttpClient for RateLimitedHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(RateLimitedConnector {
            inner: self.inner.http_connector(settings, components),
            limiter: self.limiter.clone(),
            actions: self.actions.clone(),
        })
    }
}

#[derive(Debug)]
struct RateLimitedConnector {
    inner: SharedHttpConnector,
    limiter: Arc<DefaultDirectRateLimiter>,
    actions: Option<Arc<ActionLimiters>>,
}

impl HttpConnector for RateLimitedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let inner = self.inner.clone();
        let limiter = self.limiter.clone();
        let action = self
            .actions
            .as_ref()
            .and_then(|actions| actions.limiter_for(request.body().bytes().unwrap_or_default()));
        HttpConnectorFuture::new(async move {
            // The action's token first: one may take seconds to come
            // (CreateVpcEndpoint), and the service's would be idle meanwhile.
            if let Some(action) = action {
                action.until_ready().await;
            }
            limiter.until_ready().await;
            inner.call(request).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_and_then_refuses_until_refilled() {
        let limiter = RateLimiter::direct(RequestRate::new(1.0, 5).quota());
        for n in 0..5 {
            assert!(limiter.check().is_ok(), "request {n} is inside the burst");
        }
        assert!(
            limiter.check().is_err(),
            "the sixth request must wait for a refill"
        );
    }

    #[test]
    fn a_bucket_may_refill_slower_than_once_a_second() {
        let quota = RequestRate::new(0.3, 4).quota();
        assert_eq!(quota.burst_size().get(), 4);
        let period = quota.replenish_interval().as_secs_f64();
        assert!((period - 1.0 / 0.3).abs() < 1e-6, "one token every {period} s");
    }

    #[test]
    fn each_action_draws_from_a_bucket_of_its_own() {
        let actions = ActionLimiters {
            bucket_of: super::super::ec2_rates::bucket_of,
            limiters: Mutex::default(),
        };
        let endpoint = || {
            actions
                .limiter_for(b"Action=CreateVpcEndpoint&VpcId=vpc-1")
                .expect("an action")
        };
        for n in 0..4 {
            assert!(endpoint().check().is_ok(), "request {n} is inside the burst of 4");
        }
        assert!(endpoint().check().is_err(), "the fifth waits for a refill");
        let subnet = actions.limiter_for(b"Action=CreateSubnet").expect("an action");
        assert!(subnet.check().is_ok(), "another action's bucket is full");
        assert!(actions.limiter_for(b"Version=2016-11-15").is_none());
    }
}
