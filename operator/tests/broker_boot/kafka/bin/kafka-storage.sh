#!/bin/bash
# The broker boot test's Kafka distribution:
# `format --cluster-id ID --config FILE [--ignore-formatted]` writes
# meta.properties into log.dirs once, as Kafka's does.
set -euo pipefail
[ "${1:-}" = format ] || { echo "kafka-storage.sh: only format is known" >&2; exit 2; }
shift
ignore_formatted=false
while [ $# -gt 0 ]; do
  case "$1" in
    --cluster-id) cluster_id="$2"; shift 2 ;;
    --config) config="$2"; shift 2 ;;
    --ignore-formatted) ignore_formatted=true; shift ;;
    *) echo "kafka-storage.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
log_dir="$(sed -n 's/^log.dirs=//p' "$config")"
node_id="$(sed -n 's/^node.id=//p' "$config")"
if [ -f "$log_dir/meta.properties" ]; then
  echo "All of the log directories are already formatted."
  "$ignore_formatted" || exit 1
  exit 0
fi
printf 'version=1\ncluster.id=%s\nnode.id=%s\n' "$cluster_id" "$node_id" >"$log_dir/meta.properties"
echo "Formatting $log_dir with metadata.version for cluster $cluster_id"
