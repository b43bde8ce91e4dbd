# Node 1 only, after the settings TOPIC, DLQ_TOPIC, PARTITIONS and
# REPLICATION_FACTOR: waits for the quorum, then creates the topic and its
# dead-letter topic. The other brokers boot in parallel, and a topic needs as
# many registered brokers as its replication factor: retry until they are there.
deadline=$(( $(date +%s) + 1800 ))
log "waiting for the controller quorum"
until "$KAFKA_HOME/bin/kafka-metadata-quorum.sh" --bootstrap-server "$BOOTSTRAP_SERVER" describe --status >/dev/null 2>&1; do
  [ "$(date +%s)" -lt "$deadline" ] || fail "the KRaft quorum did not form within 30 minutes; see the other brokers' console logs"
  sleep 10
done
for topic in "$TOPIC" "$DLQ_TOPIC"; do
  until "$KAFKA_HOME/bin/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP_SERVER" --create --if-not-exists \
      --topic "$topic" --partitions "$PARTITIONS" --replication-factor "$REPLICATION_FACTOR"; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "could not create topic $topic within 30 minutes (spec.kafka.replicationFactor $REPLICATION_FACTOR needs that many running brokers)"
    sleep 10
  done
  log "topic $topic exists"
done
