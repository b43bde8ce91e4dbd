#!/bin/bash
# The broker boot test's Kafka distribution:
#   --bootstrap-server HOST:PORT --create [--if-not-exists] --topic T --partitions P [--replication-factor R]
#   --bootstrap-server HOST:PORT --describe --under-replicated-partitions
# tansu keeps one copy of each partition, so none is ever under-replicated.
set -euo pipefail
tansu=/usr/libexec/imagepipeline-test/tansu
action="" if_not_exists=false
while [ $# -gt 0 ]; do
  case "$1" in
    --bootstrap-server) server="$2"; shift 2 ;;
    --topic) topic="$2"; shift 2 ;;
    --partitions) partitions="$2"; shift 2 ;;
    --replication-factor) shift 2 ;;
    --create | --describe) action="$1"; shift ;;
    --if-not-exists) if_not_exists=true; shift ;;
    --under-replicated-partitions) shift ;;
    *) echo "kafka-topics.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
topics="$("$tansu" topic list --broker "tcp://$server")"
case "$action" in
  --describe) ;;
  --create)
    if grep -q "\"name\":\"$topic\"" <<<"$topics"; then
      "$if_not_exists" && exit 0
      echo "Topic '$topic' already exists." >&2
      exit 1
    fi
    "$tansu" topic create --broker "tcp://$server" --partitions "$partitions" "$topic"
    echo "Created topic $topic."
    ;;
  *) echo "kafka-topics.sh: --create or --describe is needed" >&2; exit 2 ;;
esac
