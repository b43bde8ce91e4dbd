//! The controller's Prometheus metrics (prefix `imagepipeline_`): reconciles,
//! failures by error kind, reconcile duration, AWS calls by service, operation
//! and outcome, pipelines by phase, drift corrected by component, and when
//! each managed Kafka broker last reported.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;

use super::Error;
use crate::api::v1alpha1::{ImagePipelineStatus, KafkaBrokerStatus, Phase};
use crate::aws::CallLog;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub service: String,
    pub operation: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub service: String,
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub phase: &'static str,
}

/// One pipeline's phase, for alerts on a pipeline that stays unready.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PipelinePhaseLabels {
    pub pipeline_namespace: String,
    pub pipeline: String,
    pub phase: &'static str,
}

/// A component of a pipeline.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ComponentLabels {
    pub component: &'static str,
}

/// One managed Kafka broker of one pipeline, by its `node.id`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BrokerLabels {
    pub pipeline_namespace: String,
    pub pipeline: String,
    pub broker: String,
}

/// Shared by the reconciles and the `/metrics` handler.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    failures: Family<ErrorLabels, Counter>,
    duration: Histogram,
    aws_calls: Family<CallLabels, Counter>,
    aws_throttled_answers: Family<OperationLabels, Counter>,
    pipelines: Family<PhaseLabels, Gauge>,
    pipeline_phase: Family<PipelinePhaseLabels, Gauge>,
    broker_heartbeat: Family<BrokerLabels, Gauge>,
    drift_corrections: Family<ComponentLabels, Counter>,
    leader: Gauge,
    reconciles_waiting: Gauge,
    reconcile_wait: Histogram,
    /// Every AWS client of the controller records here.
    calls: CallLog,
    /// The last phase of each pipeline (`namespace/name`).
    phases: Mutex<BTreeMap<String, Phase>>,
    /// The Unix time of each broker's last heartbeat (by `node.id`), per
    /// pipeline (`namespace/name`), as the last status listed them.
    heartbeats: Mutex<BTreeMap<String, BTreeMap<u32, i64>>>,
}

pub const PHASES: [Phase; 7] = [
    Phase::Pending,
    Phase::Provisioning,
    Phase::Ready,
    Phase::Degraded,
    Phase::Paused,
    Phase::Deleting,
    Phase::Failed,
];

pub fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Pending => "Pending",
        Phase::Provisioning => "Provisioning",
        Phase::Ready => "Ready",
        Phase::Degraded => "Degraded",
        Phase::Paused => "Paused",
        Phase::Deleting => "Deleting",
        Phase::Failed => "Failed",
    }
}

impl Metrics {
    pub fn new(calls: CallLog) -> Arc<Self> {
        let mut registry = Registry::with_prefix("imagepipeline");
        let reconciles = Counter::default();
        let failures = Family::default();
        // 50 ms to ~14 min: a pass that only observes up to one that waits on AWS.
        let duration = Histogram::new(exponential_buckets(0.05, 2.0, 15));
        let aws_calls = Family::default();
        let aws_throttled_answers = Family::default();
        let pipelines = Family::default();
        let pipeline_phase = Family::default();
        let broker_heartbeat = Family::default();
        let drift_corrections = Family::default();
        let leader = Gauge::default();
        let reconciles_waiting = Gauge::default();
        // 1 ms to ~9 min: a free slot up to a long queue behind slow passes.
        let reconcile_wait = Histogram::new(exponential_buckets(0.001, 2.0, 20));
        registry.register("reconciles", "Reconciles started", reconciles.clone());
        registry.register(
            "reconcile_failures",
            "Reconciles that ended in an error, by error kind",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "How long a reconcile took",
            duration.clone(),
        );
        registry.register(
            "aws_calls",
            "AWS API calls, by service, operation and outcome",
            aws_calls.clone(),
        );
        registry.register(
            "aws_throttled_answers",
            "Answers of AWS that the operator is throttled, every attempt counted (also those the SDK retried with success), by service and operation",
            aws_throttled_answers.clone(),
        );
        registry.register("pipelines", "ImagePipelines by phase", pipelines.clone());
        registry.register(
            "pipeline_phase",
            "1 for each ImagePipeline's current phase",
            pipeline_phase.clone(),
        );
        registry.register(
            "kafka_broker_heartbeat_timestamp_seconds",
            "Unix time of the last heartbeat of each managed Kafka broker, as the operator last read it",
            broker_heartbeat.clone(),
        );
        registry.register(
            "drift_corrections",
            "AWS resources put back as the spec says after something outside the operator changed them, by component",
            drift_corrections.clone(),
        );
        registry.register(
            "leader",
            "1 while this instance holds the leader Lease and reconciles",
            leader.clone(),
        );
        registry.register(
            "reconciles_waiting",
            "Reconciles that are due and wait for one of the --concurrency slots",
            reconciles_waiting.clone(),
        );
        registry.register(
            "reconcile_wait_seconds",
            "How long a due reconcile waited for a slot",
            reconcile_wait.clone(),
        );
        Arc::new(Self {
            registry,
            reconciles,
            failures,
            duration,
            aws_calls,
            aws_throttled_answers,
            pipelines,
            pipeline_phase,
            broker_heartbeat,
            drift_corrections,
            leader,
            reconciles_waiting,
            reconcile_wait,
            calls,
            phases: Mutex::default(),
            heartbeats: Mutex::default(),
        })
    }

    pub fn calls(&self) -> &CallLog {
        &self.calls
    }

    /// The metrics of the reconciles waiting for a slot, for
    /// [`super::slots::Slots`].
    pub fn slot_metrics(&self) -> (Gauge, Histogram) {
        (self.reconciles_waiting.clone(), self.reconcile_wait.clone())
    }

    pub fn reconcile_started(&self) {
        self.reconciles.inc();
    }

    /// Records how a reconcile ended: how long it took and, when it
    /// failed, the kind of error. A cleanup still in progress ends in
    /// [`Error::CleanupPending`] but is no failure.
    pub fn reconcile_ended(&self, took: Duration, result: &Result<Action, Error>) {
        self.duration.observe(took.as_secs_f64());
        if let Err(err) = result
            && err.is_failure()
        {
            self.reconcile_failed(err.kind());
        }
    }

    pub fn reconcile_failed(&self, error: &'static str) {
        self.failures.get_or_create(&ErrorLabels { error }).inc();
    }

    /// `count` resources of `component` were put back after drifting.
    pub fn drift_corrected(&self, component: &'static str, count: u64) {
        self.drift_corrections
            .get_or_create(&ComponentLabels { component })
            .inc_by(count);
    }

    pub fn set_phase(&self, pipeline: String, phase: Option<Phase>) {
        let mut phases = self.phases.lock().unwrap_or_else(PoisonError::into_inner);
        match phase {
            Some(phase) => phases.insert(pipeline, phase),
            None => phases.remove(&pipeline),
        };
    }

    /// What the metrics show of `pipeline` (`namespace/name`) after its
    /// status was computed: its phase and its brokers' last heartbeats. A
    /// broker no longer listed, or not heard from yet, has no series.
    pub fn observe_status(&self, pipeline: String, status: &ImagePipelineStatus) {
        self.set_broker_heartbeats(pipeline.clone(), heartbeat_times(&status.kafka_brokers));
        self.set_phase(pipeline, status.phase);
    }

    /// A pipeline whose cleanup finished: none of its series are left.
    pub fn forget_pipeline(&self, pipeline: String) {
        self.set_broker_heartbeats(pipeline.clone(), BTreeMap::new());
        self.set_phase(pipeline, None);
    }

    fn set_broker_heartbeats(&self, pipeline: String, times: BTreeMap<u32, i64>) {
        let mut heartbeats = self.heartbeats.lock().unwrap_or_else(PoisonError::into_inner);
        if times.is_empty() {
            heartbeats.remove(&pipeline);
        } else {
            heartbeats.insert(pipeline, times);
        }
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// The text exposition, with the AWS call counts and phases brought up
    /// to date first.
    pub fn encode(&self) -> String {
        for (key, count) in self.calls.counts() {
            let counter = self.aws_calls.get_or_create(&CallLabels {
                service: key.service,
                operation: key.operation,
                outcome: key.outcome.as_str(),
            });
            counter.inc_by(count.saturating_sub(counter.get()));
        }
        for ((service, operation), count) in self.calls.throttled_answers() {
            let counter = self
                .aws_throttled_answers
                .get_or_create(&OperationLabels { service, operation });
            counter.inc_by(count.saturating_sub(counter.get()));
        }
        let phases = self.phases.lock().unwrap_or_else(PoisonError::into_inner);
        for phase in PHASES {
            let count = phases.values().filter(|p| **p == phase).count();
            self.pipelines
                .get_or_create(&PhaseLabels {
                    phase: phase_name(phase),
                })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        self.pipeline_phase.clear();
        for (key, phase) in phases.iter() {
            let (namespace, name) = split_key(key);
            self.pipeline_phase
                .get_or_create(&PipelinePhaseLabels {
                    pipeline_namespace: namespace.to_owned(),
                    pipeline: name.to_owned(),
                    phase: phase_name(*phase),
                })
                .set(1);
        }
        drop(phases);
        self.broker_heartbeat.clear();
        let heartbeats = self.heartbeats.lock().unwrap_or_else(PoisonError::into_inner);
        for (key, brokers) in heartbeats.iter() {
            let (namespace, name) = split_key(key);
            for (node_id, time) in brokers {
                self.broker_heartbeat
                    .get_or_create(&BrokerLabels {
                        pipeline_namespace: namespace.to_owned(),
                        pipeline: name.to_owned(),
                        broker: node_id.to_string(),
                    })
                    .set(*time);
            }
        }
        drop(heartbeats);
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// `namespace/name` as its two parts.
fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

/// Pure: the Unix time of each listed broker's last heartbeat, for those
/// that have one the operator could read the time of (the status keeps it
/// as the broker wrote it, RFC 3339).
pub fn heartbeat_times(brokers: &[KafkaBrokerStatus]) -> BTreeMap<u32, i64> {
    brokers
        .iter()
        .filter_map(|broker| {
            let written: Timestamp = broker.last_heartbeat.as_deref()?.parse().ok()?;
            Some((broker.node_id, written.as_second()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_shows_aws_calls_pipelines_by_phase_and_failures_by_kind() {
        let metrics = Metrics::new(CallLog::new());
        metrics.reconcile_started();
        metrics.reconcile_failed("secret");
        metrics.drift_corrected("Storage", 2);
        metrics.set_phase("media/photos".into(), Some(Phase::Ready));
        metrics.set_phase("media/thumbs".into(), Some(Phase::Ready));
        metrics.set_phase("media/old".into(), Some(Phase::Deleting));
        metrics.set_phase("media/old".into(), None);
        let text = metrics.encode();
        assert!(
            !text.contains("pipeline=\"old\""),
            "a deleted pipeline has no phase:\n{text}"
        );
        for line in [
            "imagepipeline_reconciles_total 1",
            "imagepipeline_reconcile_failures_total{error=\"secret\"} 1",
            "imagepipeline_drift_corrections_total{component=\"Storage\"} 2",
            "imagepipeline_pipelines{phase=\"Ready\"} 2",
            "imagepipeline_pipelines{phase=\"Deleting\"} 0",
            "imagepipeline_pipeline_phase{pipeline_namespace=\"media\",pipeline=\"photos\",phase=\"Ready\"} 1",
            "imagepipeline_leader 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
    }

    fn broker(node_id: u32, last_heartbeat: Option<&str>) -> KafkaBrokerStatus {
        KafkaBrokerStatus {
            node_id,
            instance_id: Some(format!("i-{node_id}")),
            address: format!("10.41.0.{node_id}:9092"),
            state: "serving".into(),
            last_heartbeat: last_heartbeat.map(str::to_owned),
            error: None,
        }
    }

    fn with_brokers(brokers: Vec<KafkaBrokerStatus>) -> ImagePipelineStatus {
        ImagePipelineStatus {
            phase: Some(Phase::Ready),
            kafka_brokers: brokers,
            ..ImagePipelineStatus::default()
        }
    }

    /// The heartbeat series, sorted (a family writes them in hash order).
    fn heartbeat_lines(text: &str) -> Vec<&str> {
        let mut lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("imagepipeline_kafka_broker_heartbeat_timestamp_seconds{"))
            .collect();
        lines.sort_unstable();
        lines
    }

    #[test]
    fn each_broker_s_last_heartbeat_is_a_unix_time_until_the_broker_or_the_pipeline_goes() {
        let metrics = Metrics::new(CallLog::new());
        metrics.observe_status(
            "media/photos".into(),
            &with_brokers(vec![
                broker(1, Some("2026-12-02T11:59:50Z")),
                broker(2, Some("2026-12-02T11:58:00Z")),
                // Not heard from yet, or a time the broker garbled: no series.
                broker(3, None),
                broker(4, Some("yesterday")),
            ]),
        );
        metrics.observe_status(
            "media/thumbs".into(),
            &with_brokers(vec![broker(1, Some("2026-12-02T12:00:00Z"))]),
        );
        assert_eq!(
            heartbeat_lines(&metrics.encode()),
            [
                r#"imagepipeline_kafka_broker_heartbeat_timestamp_seconds{pipeline_namespace="media",pipeline="photos",broker="1"} 1796212790"#,
                r#"imagepipeline_kafka_broker_heartbeat_timestamp_seconds{pipeline_namespace="media",pipeline="photos",broker="2"} 1796212680"#,
                r#"imagepipeline_kafka_broker_heartbeat_timestamp_seconds{pipeline_namespace="media",pipeline="thumbs",broker="1"} 1796212800"#,
            ]
        );

        // Broker 2 is no longer listed (the pipeline went down to one broker,
        // or to an existing cluster), and thumbs is gone.
        metrics.observe_status(
            "media/photos".into(),
            &with_brokers(vec![broker(1, Some("2026-12-02T12:00:20Z"))]),
        );
        metrics.forget_pipeline("media/thumbs".into());
        let text = metrics.encode();
        assert_eq!(
            heartbeat_lines(&text),
            [
                r#"imagepipeline_kafka_broker_heartbeat_timestamp_seconds{pipeline_namespace="media",pipeline="photos",broker="1"} 1796212820"#
            ]
        );
        assert!(!text.contains(r#"pipeline="thumbs""#), "{text}");

        metrics.observe_status("media/photos".into(), &with_brokers(vec![]));
        assert_eq!(heartbeat_lines(&metrics.encode()), Vec::<&str>::new());
    }

    #[test]
    fn a_cleanup_in_progress_is_not_a_failed_reconcile() {
        let metrics = Metrics::new(CallLog::new());
        let took = Duration::from_millis(20);
        let pending = Err(Error::CleanupPending {
            message: "removing Storage".into(),
            next: crate::controller::reconcile::NextPass::Backoff,
        });
        metrics.reconcile_ended(took, &pending);
        metrics.reconcile_ended(took, &Ok(Action::await_change()));
        let failures = |text: &str| {
            text.lines()
                .filter(|l| l.starts_with("imagepipeline_reconcile_failures_total"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let text = metrics.encode();
        assert_eq!(failures(&text), Vec::<String>::new(), "{text}");
        assert!(
            text.lines()
                .any(|l| l == "imagepipeline_reconcile_duration_seconds_count 2"),
            "both reconciles are timed:\n{text}"
        );

        metrics.reconcile_ended(took, &Err(Error::Finalizer("conflict".into())));
        assert_eq!(
            failures(&metrics.encode()),
            ["imagepipeline_reconcile_failures_total{error=\"finalizer\"} 1"]
        );
    }
}
