//! The AWS side of the engine: one client per service, each rate limited and
//! recorded, all built from the SDK's standard configuration (`AWS_REGION`,
//! `AWS_ENDPOINT_URL`, the credentials chain) and nothing project-specific.

pub mod calls;
pub mod ec2_rates;
pub mod errors;
pub mod shared_reads;
pub mod throttle;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

pub use calls::CallLog;
pub use shared_reads::SharedReads;
use throttle::{RateLimitedHttpClient, RequestRate, rates};

/// The clients the engine uses, sharing one call log.
#[derive(Clone, Debug)]
pub struct AwsClients {
    pub s3: aws_sdk_s3::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub firehose: aws_sdk_firehose::Client,
    pub iam: aws_sdk_iam::Client,
    pub redshift: aws_sdk_redshift::Client,
    pub redshift_data: aws_sdk_redshiftdata::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub glue: aws_sdk_glue::Client,
    pub sts: aws_sdk_sts::Client,
    pub calls: CallLog,
    /// Reads that serve every pipeline of the region at once.
    pub reads: SharedReads,
    /// Reads of what no call of the operator changes (AMIs, instance type
    /// offerings), shared by every pipeline of the region for a while.
    pub facts: SharedReads,
}

#[derive(Debug, thiserror::Error)]
pub enum AwsConfigError {
    #[error(
        "no AWS region is configured: set AWS_REGION (or a profile's region) to the pipeline's spec.region"
    )]
    NoRegion,
}

impl AwsClients {
    /// Loads the standard SDK configuration for `region`: the pipeline's region
    /// wins over `AWS_REGION`, because that is where its resources live.
    pub async fn from_environment(region: &str, calls: CallLog) -> Result<Self, AwsConfigError> {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_owned()))
            .load()
            .await;
        Self::from_sdk_config(&config, calls)
    }

    pub fn from_sdk_config(config: &SdkConfig, calls: CallLog) -> Result<Self, AwsConfigError> {
        config.region().ok_or(AwsConfigError::NoRegion)?;
        // The SDK picks its HTTPS client when a service client is built; the
        // rate limiter wraps a client, so pick the same one here.
        let http = config.http_client().unwrap_or_else(|| {
            aws_smithy_http_client::Builder::new()
                .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
                .build_https()
        });
        let limited = |rate: RequestRate| RateLimitedHttpClient::new(http.clone(), rate);
        // Emulators serve every bucket from one host, so S3 must use path-style
        // addressing whenever the endpoint is overridden.
        let path_style = config.endpoint_url().is_some();

        macro_rules! client {
            ($sdk:ident, $rate:expr) => {
                $sdk::Client::from_conf(
                    $sdk::config::Builder::from(config)
                        .http_client(limited($rate))
                        .interceptor(calls.interceptor())
                        .build(),
                )
            };
        }

        Ok(Self {
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(config)
                    .http_client(limited(rates::S3))
                    .interceptor(calls.interceptor())
                    .force_path_style(path_style)
                    .build(),
            ),
            dynamodb: client!(aws_sdk_dynamodb, rates::DYNAMODB),
            firehose: client!(aws_sdk_firehose, rates::FIREHOSE),
            iam: client!(aws_sdk_iam, rates::IAM),
            redshift: client!(aws_sdk_redshift, rates::REDSHIFT),
            redshift_data: client!(aws_sdk_redshiftdata, rates::REDSHIFT_DATA),
            ec2: aws_sdk_ec2::Client::from_conf(
                aws_sdk_ec2::config::Builder::from(config)
                    .http_client(limited(rates::EC2).with_action_buckets(ec2_rates::bucket_of))
                    .interceptor(calls.interceptor())
                    .build(),
            ),
            elbv2: client!(aws_sdk_elasticloadbalancingv2, rates::ELBV2),
            autoscaling: client!(aws_sdk_autoscaling, rates::AUTOSCALING),
            ssm: client!(aws_sdk_ssm, rates::SSM),
            glue: client!(aws_sdk_glue, rates::GLUE),
            sts: client!(aws_sdk_sts, rates::STS),
            reads: SharedReads::new(calls.clone(), shared_reads::MAX_AGE),
            facts: SharedReads::of_facts(shared_reads::FACTS_MAX_AGE),
            calls,
        })
    }
}
