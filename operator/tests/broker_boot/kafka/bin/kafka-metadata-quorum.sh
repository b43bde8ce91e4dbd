#!/bin/bash
# The broker boot test's Kafka distribution:
# `--bootstrap-server HOST:PORT describe --status` waits up to 15 s, as Kafka's
# admin client does, for the broker to answer, then reports this single-node
# quorum with node 1 as its leader.
set -euo pipefail
if [ "${1:-}" != --bootstrap-server ] || [ "${3:-}" != describe ] || [ "${4:-}" != --status ]; then
  echo "kafka-metadata-quorum.sh: only --bootstrap-server HOST:PORT describe --status is known" >&2
  exit 2
fi
for _ in $(seq 30); do
  if /usr/libexec/imagepipeline-test/tansu topic list --broker "tcp://$2" >/dev/null 2>&1; then
    printf 'LeaderId:               1\nLeaderEpoch:            1\nCurrentVoters:          [1]\n'
    exit 0
  fi
  sleep 0.5
done
echo "org.apache.kafka.common.errors.TimeoutException: no answer from $2" >&2
exit 1
