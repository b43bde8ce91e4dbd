# shellcheck shell=bash
# Reports this broker's state to the ImagePipeline operator as one JSON object
# at s3://$BUCKET/$HEARTBEAT_KEY (the contract is
# ingest_core::contract::kafka::heartbeat). Run every 30 s by
# imagepipeline-kafka-heartbeat.timer, and once by the boot script when it
# fails; the boot script writes the settings above this text.
set -uo pipefail
# One report at a time, each reading the state once it runs: a failing boot
# script's report is never overwritten by an older one.
exec 9>"$STATE_DIR/heartbeat.lock"
flock 9

state="$(cat "$STATE_DIR/state" 2>/dev/null)" || state=installing
error=""
leader=false
under_replicated=0
if [ "$state" = failed ]; then
  error="$(cat "$STATE_DIR/error" 2>/dev/null)"
elif [ "$state" = starting ]; then
  if systemctl is-active --quiet kafka.service; then
    quorum="$(timeout 30 "$KAFKA_HOME/bin/kafka-metadata-quorum.sh" --bootstrap-server "$BOOTSTRAP_SERVER" describe --status 2>/dev/null)"
    # LeaderId is -1 while the quorum has no leader.
    if [[ "$(awk '$1 == "LeaderId:" { print $2 }' <<<"$quorum")" =~ ^[0-9]+$ ]]; then
      leader=true
      state=serving
      if described="$(timeout 30 "$KAFKA_HOME/bin/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP_SERVER" \
          --describe --under-replicated-partitions 2>/dev/null)"; then
        under_replicated="$(grep -c . <<<"$described")"
      fi
    fi
  elif systemctl is-failed --quiet kafka.service; then
    state=failed
    error="kafka.service failed ($(systemctl show --property=Result --value kafka.service)); see journalctl -u kafka.service"
  fi
fi
free=0
if mountpoint -q "$DATA_DIR"; then
  free="$(df -B1 --output=avail "$DATA_DIR" | awk 'NR == 2 { print $1 }')"
fi
[[ "$free" =~ ^[0-9]+$ ]] || free=0
version="$(cat "$STATE_DIR/kafka-version" 2>/dev/null)" || version="$KAFKA_VERSION"
instance_id="$(ec2-metadata --instance-id 2>/dev/null)"
instance_id="${instance_id#instance-id: }"

# python3 is on every Amazon Linux 2023 (dnf needs it); jq is not.
render_json() {
  python3 - "$@" <<'JSON'
import json, sys
node, instance, state, error, version, leader, under_replicated, free, time = sys.argv[1:]
print(json.dumps({
    "nodeId": int(node), "instanceId": instance, "state": state,
    "error": (error or "no error recorded") if state == "failed" else None,
    "kafkaVersion": version, "quorumLeader": leader == "true",
    "underReplicatedPartitions": int(under_replicated), "dataFreeBytes": int(free), "time": time,
}))
JSON
}
report="$(render_json "$NODE_ID" "$instance_id" "$state" "$error" "$version" "$leader" \
  "$under_replicated" "$free" "$(date -u +%Y-%m-%dT%H:%M:%SZ)")" || exit 1
aws s3 cp --region "$REGION" --only-show-errors --content-type application/json - \
  "s3://$BUCKET/$HEARTBEAT_KEY" <<<"$report"
