//! Client-side rate limiting: one token bucket per AWS service, applied at the
//! HTTP layer so that the SDK's own retries draw from the same bucket.

use std::num::NonZeroU32;
use std::sync::Arc;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// A token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestRate {
    pub per_second: u32,
    pub burst: u32,
}

impl RequestRate {
    const fn new(per_second: u32, burst: u32) -> Self {
        Self { per_second, burst }
    }

    fn quota(self) -> Quota {
        let per_second = NonZeroU32::new(self.per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(self.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        Quota::per_second(per_second).allow_burst(burst)
    }
}

/// Request rates per service, from AWS's published throttling quotas. Where a
/// service throttles read and write calls separately we take the lower rate,
/// so one bucket can never push either class over its quota.
pub mod rates {
    use super::RequestRate;

    /// EC2 API request throttling: non-mutating actions refill at 20/s into a
    /// bucket of 100; mutating actions refill at 5/s into a bucket of 200.
    /// We use the describe rate with a burst the mutating bucket also allows.
    pub const EC2: RequestRate = RequestRate::new(20, 100);
    /// S3 bucket configuration calls. S3 scales per prefix (3,500 writes/s);
    /// configuration APIs are not published separately, so stay far below.
    pub const S3: RequestRate = RequestRate::new(50, 50);
    /// DynamoDB control plane: at most 10 concurrent CreateTable/UpdateTable/
    /// DeleteTable, describe calls are cheap; 10/s keeps well inside both.
    pub const DYNAMODB: RequestRate = RequestRate::new(10, 10);
    /// Firehose: CreateDeliveryStream, DeleteDeliveryStream, UpdateDestination
    /// and ListDeliveryStreams are limited to 5 transactions per second.
    pub const FIREHOSE: RequestRate = RequestRate::new(5, 5);
    /// IAM is a global, eventually consistent service whose control-plane quota
    /// is shared by the whole account; stay at 10/s.
    pub const IAM: RequestRate = RequestRate::new(10, 10);
    /// Redshift management API and the Redshift Data API (ExecuteStatement is
    /// limited to 30/s, DescribeStatement to 100/s).
    pub const REDSHIFT: RequestRate = RequestRate::new(10, 10);
    pub const REDSHIFT_DATA: RequestRate = RequestRate::new(20, 20);
    /// Elastic Load Balancing (v2) API: about 10 requests per second per
    /// account for describe and mutating calls alike.
    pub const ELBV2: RequestRate = RequestRate::new(10, 10);
    /// EC2 Auto Scaling API: quotas are not published per action; the
    /// console's own pace of about 10/s stays clear of throttling.
    pub const AUTOSCALING: RequestRate = RequestRate::new(10, 10);
    /// SSM Parameter Store: PutParameter is limited to 3 transactions per
    /// second by default (GetParameter to 40); the one bucket keeps to 3.
    pub const SSM: RequestRate = RequestRate::new(3, 5);
    /// Glue Data Catalog: AWS publishes no per-action rate for GetDatabase,
    /// GetTable, CreateTable and the like, only that Glue throttles calls
    /// per account and Region (knowledge center, "glue-throttling-rate-
    /// exceeded"). The catalog is shared with whatever else in the account
    /// reads it (Athena, Spectrum queries, crawlers), so stay at 5/s.
    pub const GLUE: RequestRate = RequestRate::new(5, 10);
    /// STS GetCallerIdentity: generous quota; one call per reconcile.
    pub const STS: RequestRate = RequestRate::new(50, 50);
}

/// Wraps the SDK's HTTP client so that every request, retries included,
/// first takes a token from the service's bucket.
#[derive(Clone, Debug)]
pub struct RateLimitedHttpClient {
    inner: SharedHttpClient,
    limiter: Arc<DefaultDirectRateLimiter>,
}

impl RateLimitedHttpClient {
    pub fn new(inner: SharedHttpClient, rate: RequestRate) -> Self {
        Self {
            inner,
            limiter: Arc::new(RateLimiter::direct(rate.quota())),
        }
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
        })
    }
}

#[derive(Debug)]
struct RateLimitedConnector {
    inner: SharedHttpConnector,
    limiter: Arc<DefaultDirectRateLimiter>,
}

impl HttpConnector for RateLimitedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let inner = self.inner.clone();
        let limiter = self.limiter.clone();
        HttpConnectorFuture::new(async move {
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
        let limiter = RateLimiter::direct(RequestRate::new(1, 5).quota());
        for n in 0..5 {
            assert!(limiter.check().is_ok(), "request {n} is inside the burst");
        }
        assert!(
            limiter.check().is_err(),
            "the sixth request must wait for a refill"
        );
    }
}
