//! `KafkaReady` follows what the managed brokers report in their heartbeats,
//! not whether their instances run: silent brokers, a failed one, all
//! serving, and one that stops reporting.

use std::path::Path;
use std::time::{Duration, SystemTime};

use imagepipeline_e2e::AwsEmulator;
use imagepipeline_e2e::brokers::{
    heartbeat_time, place_kafka_distribution, running_brokers, write_heartbeat,
};
use imagepipeline_operator::api::v1alpha1::ImagePipeline;
use imagepipeline_operator::engine::resource::NotServing;
use imagepipeline_operator::engine::{ComponentKind, ComponentState, Engine, PassReport, PipelineContext};
use imagepipeline_operator::manifest;
use ingest_core::contract::kafka::heartbeat::{BrokerHeartbeat, BrokerState};
use support::MINIMAL;

mod support;

struct Cluster {
    emulator: AwsEmulator,
    engine: Engine,
    ctx: PipelineContext,
}

impl Cluster {
    async fn new() -> Self {
        let emulator = AwsEmulator::start().await.expect("moto server starts");
        place_kafka_distribution(&emulator.s3().await, imagepipeline_e2e::REGION)
            .await
            .expect("the Kafka archive is placed");
        let pipeline: ImagePipeline = manifest::parse(Path::new("test.yaml"), MINIMAL)
            .expect("a valid manifest")
            .remove(0);
        let (engine, ctx) = support::photos_engine(&emulator, pipeline.spec).await;
        Self {
            emulator,
            engine,
            ctx,
        }
    }

    /// The Kafka component's state once every other component is ready.
    async fn kafka_after_apply(&self) -> (ComponentState, PassReport) {
        let mut report = self.engine.apply(&self.ctx).await;
        for _ in 0..4 {
            let others_ready = report
                .components
                .iter()
                .all(|c| c.kind == ComponentKind::Kafka || c.state == ComponentState::Ready);
            if others_ready {
                break;
            }
            report = self.engine.apply(&self.ctx).await;
        }
        let kafka = report
            .components
            .iter()
            .find(|c| c.kind == ComponentKind::Kafka)
            .expect("a Kafka component");
        (kafka.state.clone(), report)
    }

    /// The running broker instances, by node id.
    async fn instances(&self) -> Vec<(u32, String)> {
        let ec2 = aws_sdk_ec2::Client::new(&self.emulator.sdk_config().await);
        running_brokers(&ec2)
            .await
            .expect("the broker instances")
            .into_iter()
            .map(|broker| (broker.node_id, broker.instance_id))
            .collect()
    }

    /// Writes broker `node`'s heartbeat, `age` old, as its boot script would.
    async fn report(
        &self,
        node: u32,
        instance: &str,
        state: BrokerState,
        error: Option<&str>,
        age: Duration,
    ) {
        let beat = BrokerHeartbeat {
            node_id: node,
            instance_id: instance.to_owned(),
            state,
            error: error.map(str::to_owned),
            kafka_version: "4.1.1".to_owned(),
            quorum_leader: state == BrokerState::Serving,
            under_replicated_partitions: 0,
            data_free_bytes: 99 << 30,
            time: heartbeat_time(SystemTime::now() - age),
        };
        write_heartbeat(&self.emulator.s3().await, &self.ctx.bucket_name(), &beat)
            .await
            .expect("the heartbeat is written");
    }
}

fn not_serving(state: &ComponentState) -> &NotServing {
    match state {
        ComponentState::NotServing(check) => check,
        other => panic!("Kafka is not 'not serving' but {other:?}"),
    }
}

#[tokio::test]
async fn kafka_is_ready_only_while_every_broker_reports_serving() {
    let cluster = Cluster::new().await;

    // Running instances are not enough.
    let (state, report) = cluster.kafka_after_apply().await;
    let instances = cluster.instances().await;
    assert_eq!(instances.len(), 3, "three brokers launched");
    let silent = not_serving(&state);
    assert_eq!(silent.reason, "BrokerSilent");
    for (node, instance) in &instances {
        assert!(
            silent
                .message
                .contains(&format!("broker {node} ({instance}) has not reported yet")),
            "{}",
            silent.message
        );
    }
    let listed: Vec<&str> = report
        .outputs
        .kafka_brokers
        .iter()
        .map(|b| b.state.as_str())
        .collect();
    assert_eq!(listed, ["unknown"; 3]);

    // One broker failed: it is named with what it said.
    let fresh = Duration::from_secs(5);
    for (node, instance) in &instances {
        let (state, error) = match node {
            2 => (BrokerState::Failed, Some("java: command not found")),
            _ => (BrokerState::Serving, None),
        };
        cluster.report(*node, instance, state, error, fresh).await;
    }
    let (state, report) = cluster.kafka_after_apply().await;
    let failed = not_serving(&state);
    assert_eq!(failed.reason, "BrokerFailed");
    assert_eq!(
        failed.message,
        format!("broker 2 ({}): failed: java: command not found", instances[1].1)
    );
    let broker_2 = &report.outputs.kafka_brokers[1];
    assert_eq!(
        (broker_2.state.as_str(), broker_2.error.as_deref()),
        ("failed", Some("java: command not found"))
    );

    // Every broker serves.
    cluster
        .report(2, &instances[1].1, BrokerState::Serving, None, fresh)
        .await;
    let (state, report) = cluster.kafka_after_apply().await;
    assert_eq!(state, ComponentState::Ready);
    assert!(report.is_ready(), "{:#?}", report.components);
    let listed: Vec<(&str, &str)> = report
        .outputs
        .kafka_brokers
        .iter()
        .map(|b| (b.address.as_str(), b.state.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            ("10.41.0.10:9092", "serving"),
            ("10.41.16.10:9092", "serving"),
            ("10.41.0.11:9092", "serving")
        ]
    );

    // Broker 3 stops reporting.
    let stale = Duration::from_secs(5 * 60);
    cluster
        .report(3, &instances[2].1, BrokerState::Serving, None, stale)
        .await;
    let (state, _) = cluster.kafka_after_apply().await;
    let silent = not_serving(&state);
    assert_eq!(silent.reason, "BrokerSilent");
    assert_eq!(
        silent.message,
        format!("broker 3 ({}) has not reported for 5 min", instances[2].1)
    );
}
