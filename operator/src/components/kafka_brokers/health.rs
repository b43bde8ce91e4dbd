//! Whether the managed brokers serve, from their heartbeats
//! (`ingest_core::contract::kafka::heartbeat`): `KafkaReady` is True only
//! when every broker's heartbeat is fresh, comes from the instance that runs
//! the broker now, says `serving` and sees a quorum leader.

use std::collections::BTreeMap;
use std::time::Duration;

use ingest_core::contract::kafka::heartbeat::{self, BrokerHeartbeat, BrokerState, FRESH_FOR_SECONDS};
use k8s_openapi::jiff::Timestamp;

use crate::api::v1alpha1::KafkaBrokerStatus;
use crate::aws::errors::{classify, code};
use crate::engine::resource::NotServing;
use crate::error::ComponentError;

/// A broker the spec asks for, and the instance running it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedBroker {
    pub node_id: u32,
    /// `None` until its instance is launched.
    pub instance_id: Option<String>,
    /// `host:port`.
    pub address: String,
}

/// What one broker's heartbeat says, worst first (the condition's reason is
/// that of the worst broker).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    Failed(String),
    Silent(String),
    NoLeader(String),
    Starting(String),
    Serving,
}

impl Verdict {
    fn reason(&self) -> &'static str {
        match self {
            Verdict::Failed(_) => "BrokerFailed",
            Verdict::Silent(_) => "BrokerSilent",
            Verdict::NoLeader(_) => "NoQuorumLeader",
            Verdict::Starting(_) => "BrokerStarting",
            Verdict::Serving => "Serving",
        }
    }

    fn message(&self) -> Option<&str> {
        match self {
            Verdict::Failed(m) | Verdict::Silent(m) | Verdict::NoLeader(m) | Verdict::Starting(m) => Some(m),
            Verdict::Serving => None,
        }
    }
}

/// The last heartbeat of each of `node_ids` in `bucket`, for those that
/// wrote one. A heartbeat that is not the contract's JSON counts as none
/// (and is logged): the broker then shows as not reporting.
pub async fn read_heartbeats(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    node_ids: &[u32],
) -> Result<BTreeMap<u32, BrokerHeartbeat>, ComponentError> {
    let mut heartbeats = BTreeMap::new();
    for &node_id in node_ids {
        let key = heartbeat::key(node_id);
        let object = match s3.get_object().bucket(bucket).key(&key).send().await {
            Ok(object) => object,
            Err(err) if code(&err) == Some("NoSuchKey") => continue,
            Err(err) => {
                return Err(classify(
                    &format!("reading the heartbeat s3://{bucket}/{key}"),
                    err,
                ));
            }
        };
        let body = object.body.collect().await.map_err(|err| {
            ComponentError::retryable(
                "HeartbeatUnreadable",
                format!("reading s3://{bucket}/{key}: {err}"),
            )
        })?;
        match serde_json::from_slice::<BrokerHeartbeat>(&body.into_bytes()) {
            Ok(beat) => {
                heartbeats.insert(node_id, beat);
            }
            Err(err) => {
                tracing::warn!(%bucket, %key, error = %err, "ignoring a heartbeat that is not the contract's JSON")
            }
        }
    }
    Ok(heartbeats)
}

/// Pure: the brokers' status entries, and why they do not serve (`None`
/// when every one does): the condition's reason and message.
pub fn assess(
    brokers: &[ExpectedBroker],
    heartbeats: &BTreeMap<u32, BrokerHeartbeat>,
    now: Timestamp,
) -> (Vec<KafkaBrokerStatus>, Option<NotServing>) {
    let mut statuses = Vec::with_capacity(brokers.len());
    let mut verdicts = Vec::with_capacity(brokers.len());
    for broker in brokers {
        // A heartbeat of an instance that no longer runs the broker (it was
        // replaced) says nothing about the one that does.
        let heartbeat = heartbeats
            .get(&broker.node_id)
            .filter(|beat| broker.instance_id.as_deref() == Some(beat.instance_id.as_str()));
        let (state, verdict) = judge(broker, heartbeat, now);
        statuses.push(KafkaBrokerStatus {
            node_id: broker.node_id,
            instance_id: broker.instance_id.clone(),
            address: broker.address.clone(),
            state,
            last_heartbeat: heartbeat.map(|beat| beat.time.clone()),
            error: heartbeat.and_then(|beat| beat.error.clone()),
        });
        verdicts.push(verdict);
    }
    let worst = verdicts.iter().min().filter(|v| **v != Verdict::Serving);
    let not_serving = worst.map(|worst| NotServing {
        reason: worst.reason().to_owned(),
        message: verdicts
            .iter()
            .filter_map(Verdict::message)
            .collect::<Vec<_>>()
            .join("; "),
    });
    (statuses, not_serving)
}

fn judge(broker: &ExpectedBroker, heartbeat: Option<&BrokerHeartbeat>, now: Timestamp) -> (String, Verdict) {
    let name = match &broker.instance_id {
        Some(instance) => format!("broker {} ({instance})", broker.node_id),
        None => format!("broker {}", broker.node_id),
    };
    let Some(beat) = heartbeat else {
        let message = match broker.instance_id {
            Some(_) => format!("{name} has not reported yet"),
            None => format!("{name} is not launched yet"),
        };
        return ("unknown".to_owned(), Verdict::Silent(message));
    };
    let age = match beat.time.parse::<Timestamp>() {
        Ok(written) => now.duration_since(written).unsigned_abs(),
        Err(_) => {
            let message = format!("{name} wrote a heartbeat with an unreadable time {:?}", beat.time);
            return ("silent".to_owned(), Verdict::Silent(message));
        }
    };
    if age > Duration::from_secs(FRESH_FOR_SECONDS) {
        let message = format!("{name} has not reported for {}", minutes(age));
        return ("silent".to_owned(), Verdict::Silent(message));
    }
    let state = beat.state.as_str().to_owned();
    let verdict = match beat.state {
        BrokerState::Failed => {
            let error = beat.error.as_deref().unwrap_or("no error reported");
            Verdict::Failed(format!("{name}: failed: {error}"))
        }
        BrokerState::Installing | BrokerState::Starting => Verdict::Starting(format!("{name}: {state}")),
        BrokerState::Serving if !beat.quorum_leader => {
            Verdict::NoLeader(format!("{name}: serving, but the KRaft quorum has no leader"))
        }
        BrokerState::Serving => Verdict::Serving,
    };
    (state, verdict)
}

/// `4 min`, or `90 s` under two minutes.
fn minutes(age: Duration) -> String {
    match age.as_secs() {
        seconds if seconds < 120 => format!("{seconds} s"),
        seconds => format!("{} min", seconds / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-12-02T12:00:00Z";

    fn broker(node_id: u32) -> ExpectedBroker {
        ExpectedBroker {
            node_id,
            instance_id: Some(format!("i-{node_id}")),
            address: format!("10.41.0.{}:9092", 9 + node_id),
        }
    }

    fn beat(node_id: u32, state: BrokerState, written: &str) -> BrokerHeartbeat {
        BrokerHeartbeat {
            node_id,
            instance_id: format!("i-{node_id}"),
            state,
            error: (state == BrokerState::Failed).then(|| "java: command not found".to_owned()),
            kafka_version: "4.1.1".to_owned(),
            quorum_leader: state == BrokerState::Serving,
            under_replicated_partitions: 0,
            data_free_bytes: 1 << 30,
            time: written.to_owned(),
        }
    }

    fn run(beats: Vec<BrokerHeartbeat>) -> (Vec<KafkaBrokerStatus>, Option<NotServing>) {
        let brokers = [broker(1), broker(2), broker(3)];
        let beats = beats.into_iter().map(|b| (b.node_id, b)).collect();
        assess(&brokers, &beats, NOW.parse().unwrap())
    }

    #[test]
    fn every_broker_fresh_and_serving_is_ready_and_listed() {
        let (statuses, not_serving) = run((1..=3)
            .map(|n| beat(n, BrokerState::Serving, "2026-12-02T11:59:31Z"))
            .collect());
        assert_eq!(not_serving, None);
        let states: Vec<&str> = statuses.iter().map(|s| s.state.as_str()).collect();
        assert_eq!(states, ["serving"; 3]);
        assert_eq!(statuses[1].address, "10.41.0.11:9092");
        assert_eq!(
            statuses[1].last_heartbeat.as_deref(),
            Some("2026-12-02T11:59:31Z")
        );
    }

    #[test]
    fn a_failed_broker_is_named_with_what_it_said_before_a_silent_one() {
        let (statuses, not_serving) = run(vec![
            beat(1, BrokerState::Serving, "2026-12-02T11:59:50Z"),
            beat(2, BrokerState::Failed, "2026-12-02T11:59:50Z"),
            beat(3, BrokerState::Serving, "2026-12-02T11:56:00Z"),
        ]);
        let not_serving = not_serving.unwrap();
        assert_eq!(not_serving.reason, "BrokerFailed");
        assert_eq!(
            not_serving.message,
            "broker 2 (i-2): failed: java: command not found; broker 3 (i-3) has not reported for 4 min"
        );
        assert_eq!(statuses[1].error.as_deref(), Some("java: command not found"));
        assert_eq!(statuses[2].state, "silent");
    }

    #[test]
    fn silence_starting_and_a_missing_leader_each_have_their_reason() {
        let (_, silent) = run(vec![
            beat(1, BrokerState::Serving, "2026-12-02T11:59:50Z"),
            beat(2, BrokerState::Starting, "2026-12-02T11:59:50Z"),
        ]);
        let silent = silent.unwrap();
        assert_eq!(silent.reason, "BrokerSilent");
        assert_eq!(
            silent.message,
            "broker 2 (i-2): starting; broker 3 (i-3) has not reported yet"
        );

        let mut leaderless = beat(3, BrokerState::Serving, "2026-12-02T11:59:50Z");
        leaderless.quorum_leader = false;
        let (_, no_leader) = run(vec![
            beat(1, BrokerState::Installing, "2026-12-02T11:59:50Z"),
            beat(2, BrokerState::Serving, "2026-12-02T11:59:50Z"),
            leaderless,
        ]);
        assert_eq!(no_leader.unwrap().reason, "NoQuorumLeader");

        let (_, starting) = run((1..=3)
            .map(|n| beat(n, BrokerState::Installing, "2026-12-02T11:59:50Z"))
            .collect());
        assert_eq!(starting.unwrap().reason, "BrokerStarting");
    }

    #[test]
    fn a_heartbeat_of_a_replaced_instance_or_an_unreadable_time_does_not_count() {
        let mut replaced = beat(1, BrokerState::Serving, "2026-12-02T11:59:50Z");
        replaced.instance_id = "i-old".to_owned();
        let mut garbled = beat(2, BrokerState::Serving, "yesterday");
        garbled.quorum_leader = true;
        let (statuses, not_serving) = run(vec![
            replaced,
            garbled,
            beat(3, BrokerState::Serving, "2026-12-02T11:59:50Z"),
        ]);
        assert_eq!(statuses[0].state, "unknown");
        assert_eq!(statuses[0].last_heartbeat, None);
        assert_eq!(statuses[1].state, "silent");
        let not_serving = not_serving.unwrap();
        assert_eq!(not_serving.reason, "BrokerSilent");
        assert!(
            not_serving
                .message
                .starts_with("broker 1 (i-1) has not reported yet; broker 2 (i-2) wrote")
        );
    }

    #[test]
    fn heartbeat_json_of_the_contract_round_trips() {
        let json = r#"{"nodeId":2,"instanceId":"i-2","state":"failed","error":"java: command not found",
            "kafkaVersion":"4.1.1","quorumLeader":false,"underReplicatedPartitions":0,
            "dataFreeBytes":1073741824,"time":"2026-12-02T11:59:50Z"}"#;
        let parsed: BrokerHeartbeat = serde_json::from_str(json).unwrap();
        assert_eq!(parsed, beat(2, BrokerState::Failed, "2026-12-02T11:59:50Z"));
    }
}
