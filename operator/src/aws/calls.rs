//! A record of every AWS call by service, operation and outcome, kept by an SDK
//! interceptor; tests read it, and the controller exports it as metrics.
//! It can also fail a call on purpose right after AWS accepted it, which is how
//! the tests prove that a crash between two calls leaves nothing duplicated.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_runtime::retries::classifiers::THROTTLING_ERRORS;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// How an AWS call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    Success,
    /// AWS answered 4xx: invalid request, missing resource, denied.
    ClientError,
    /// AWS said the caller is over its rate, still after the SDK's retries:
    /// HTTP 429, or an error code the SDK's retry classifier counts as
    /// throttling.
    Throttled,
    /// AWS answered 5xx.
    ServerError,
    /// No HTTP response at all: connection refused, timeout.
    TransportError,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::ClientError => "client_error",
            Outcome::Throttled => "throttled",
            Outcome::ServerError => "server_error",
            Outcome::TransportError => "transport_error",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallKey {
    pub service: String,
    pub operation: String,
    pub outcome: Outcome,
}

impl CallKey {
    /// Whether the operation can change something in AWS. AWS names its read
    /// operations consistently, so the name decides.
    pub fn is_mutating(&self) -> bool {
        is_mutating_operation(&self.operation)
    }
}

pub fn is_mutating_operation(operation: &str) -> bool {
    const READ_PREFIXES: [&str; 5] = ["Describe", "Get", "List", "Head", "Search"];
    !READ_PREFIXES.iter().any(|prefix| operation.starts_with(prefix))
}

#[derive(Debug, Default)]
struct CallLogState {
    counts: BTreeMap<CallKey, u64>,
    /// Answers that said the caller is throttled, by (service, operation),
    /// each attempt counted: those the SDK retried with success too.
    throttled_answers: BTreeMap<(String, String), u64>,
    successful_mutations: u64,
    /// Fail the call whose successful mutation brings the count to this number.
    fail_after_mutation: Option<u64>,
    injected: Option<String>,
}

/// Shared, cheap to clone; every client of one engine records into the same log.
#[derive(Clone, Debug, Default)]
pub struct CallLog {
    state: Arc<Mutex<CallLogState>>,
    /// Moves when a mutating call starts and when it ends, whatever its
    /// outcome: a read made at one epoch may not show a change made later.
    mutation_epoch: Arc<AtomicU64>,
    last_mutation: Arc<Mutex<Option<Instant>>>,
}

impl CallLog {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut CallLogState) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Every call so far, by service, operation and outcome.
    pub fn counts(&self) -> BTreeMap<CallKey, u64> {
        self.with(|state| state.counts.clone())
    }

    /// Every answer AWS gave as throttled, by (service, operation),
    /// including those of attempts the SDK retried.
    pub fn throttled_answers(&self) -> BTreeMap<(String, String), u64> {
        self.with(|state| state.throttled_answers.clone())
    }

    /// Calls that succeeded and could have changed something.
    pub fn successful_mutations(&self) -> u64 {
        self.with(|state| state.successful_mutations)
    }

    pub fn total(&self) -> u64 {
        self.with(|state| state.counts.values().sum())
    }

    pub fn reset(&self) {
        self.with(|state| {
            state.counts.clear();
            state.throttled_answers.clear();
            state.successful_mutations = 0;
        });
    }

    /// Test hook: after the `n`-th (1-based) successful mutating call from now,
    /// report that call as failed even though AWS carried it out, as a crash
    /// right after the call would.
    pub fn fail_after_mutation(&self, n: u64) {
        self.with(|state| {
            state.fail_after_mutation = Some(state.successful_mutations + n);
            state.injected = None;
        });
    }

    /// The `service:operation` that the hook failed, if it fired.
    pub fn injected_failure(&self) -> Option<String> {
        self.with(|state| state.injected.clone())
    }

    /// Changes whenever a mutating call starts or ends; see
    /// [`super::shared_reads`].
    pub fn mutation_epoch(&self) -> u64 {
        self.mutation_epoch.load(Ordering::SeqCst)
    }

    pub(super) fn note_mutation(&self, operation: &str) {
        if is_mutating_operation(operation) {
            self.mutation_epoch.fetch_add(1, Ordering::SeqCst);
            *self.last_mutation.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        }
    }

    /// How long since a mutating call last started or ended; `None` if none has.
    pub fn since_last_mutation(&self) -> Option<Duration> {
        self.last_mutation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map(|at| at.elapsed())
    }

    pub fn interceptor(&self) -> CallLogInterceptor {
        CallLogInterceptor { log: self.clone() }
    }

    pub(super) fn record(&self, service: &str, operation: &str, outcome: Outcome) -> Result<(), BoxError> {
        // Ended, whatever AWS answered: it may have changed something.
        self.note_mutation(operation);
        self.with(|state| {
            let key = CallKey {
                service: service.to_owned(),
                operation: operation.to_owned(),
                outcome,
            };
            *state.counts.entry(key).or_default() += 1;
            if outcome != Outcome::Success || !is_mutating_operation(operation) {
                return Ok(());
            }
            state.successful_mutations += 1;
            if state.fail_after_mutation == Some(state.successful_mutations) {
                state.fail_after_mutation = None;
                let call = format!("{service}:{operation}");
                state.injected = Some(call.clone());
                return Err(format!("injected failure after {call} succeeded").into());
            }
            Ok(())
        })
    }
}

#[derive(Debug)]
pub struct CallLogInterceptor {
    log: CallLog,
}

impl Intercept for CallLogInterceptor {
    fn name(&self) -> &'static str {
        "CallLogInterceptor"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(metadata) = cfg.load::<Metadata>() {
            self.log.note_mutation(metadata.name());
        }
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let throttled = context
            .response()
            .is_some_and(|response| is_throttling(response.status().as_u16(), response.body().bytes()));
        if let (true, Some(metadata)) = (throttled, cfg.load::<Metadata>()) {
            let key = (metadata.service().to_owned(), metadata.name().to_owned());
            self.log
                .with(|state| *state.throttled_answers.entry(key).or_default() += 1);
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(metadata) = cfg.load::<Metadata>() else {
            return Ok(());
        };
        let outcome = match (context.output_or_error(), context.response()) {
            (Some(Ok(_)), _) => Outcome::Success,
            (_, Some(response)) if is_throttling(response.status().as_u16(), response.body().bytes()) => {
                Outcome::Throttled
            }
            (_, Some(response)) if response.status().is_server_error() => Outcome::ServerError,
            (_, Some(_)) => Outcome::ClientError,
            (_, None) => Outcome::TransportError,
        };
        self.log.record(metadata.service(), metadata.name(), outcome)
    }
}

/// Whether an error answer says the caller is throttled: HTTP 429, or a
/// throttling code as an XML `<Code>` (EC2, S3, IAM, STS) or as a JSON
/// `__type` or `code` (DynamoDB, Firehose, Glue, Redshift Data).
fn is_throttling(status: u16, body: Option<&[u8]>) -> bool {
    if status == 429 {
        return true;
    }
    let Some(body) = body.and_then(|b| std::str::from_utf8(b).ok()) else {
        return false;
    };
    // The codes the SDK's retry classifier treats as throttling.
    THROTTLING_ERRORS.iter().any(|code| {
        body.contains(&format!("<Code>{code}</Code>"))
            || body.contains(&format!("#{code}\""))
            || body.contains(&format!("\"{code}\""))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_is_told_by_status_or_code_in_xml_or_json() {
        let ec2 = br#"<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors></Response>"#;
        let dynamodb = br#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"slow down"}"#;
        let plain = br#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;
        for (status, body) in [(503, &ec2[..]), (400, &dynamodb[..]), (400, &plain[..])] {
            assert!(
                is_throttling(status, Some(body)),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(is_throttling(429, None));
        let denied =
            br#"<Error><Code>AccessDenied</Code><Message>Throttling is not the problem</Message></Error>"#;
        let missing = br#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException"}"#;
        for (status, body) in [(403, &denied[..]), (400, &missing[..])] {
            assert!(
                !is_throttling(status, Some(body)),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(!is_throttling(500, None));
    }

    #[test]
    fn reads_are_told_apart_from_mutations_by_name() {
        for read in [
            "DescribeVpcs",
            "GetBucketPolicy",
            "ListTagsOfResource",
            "HeadBucket",
        ] {
            assert!(!is_mutating_operation(read), "{read}");
        }
        for write in [
            "CreateBucket",
            "PutBucketLifecycleConfiguration",
            "TagResource",
            "DeleteTable",
        ] {
            assert!(is_mutating_operation(write), "{write}");
        }
    }

    #[test]
    fn the_hook_fails_exactly_the_nth_successful_mutation() {
        let log = CallLog::new();
        log.fail_after_mutation(2);
        assert!(log.record("s3", "CreateBucket", Outcome::Success).is_ok());
        assert!(log.record("s3", "GetBucketPolicy", Outcome::Success).is_ok());
        assert!(log.record("s3", "PutBucketPolicy", Outcome::ClientError).is_ok());
        assert!(log.record("s3", "PutBucketPolicy", Outcome::Success).is_err());
        assert!(log.record("s3", "PutBucketTagging", Outcome::Success).is_ok());
        assert_eq!(log.injected_failure().as_deref(), Some("s3:PutBucketPolicy"));
        assert_eq!(log.successful_mutations(), 3);
        assert_eq!(log.total(), 5);
    }
}
