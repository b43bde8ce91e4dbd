#!/usr/bin/env bash
# What explains a failed kind run, written to a folder and summed up on
# stdout: the ImagePipelines with their status, events, every object, pod
# descriptions and logs (also of the previous container) per namespace.
#
#   e2e/kind/diagnostics.sh KUBE_CONTEXT FOLDER NAMESPACE...
#
# The first namespace is the operator's: the summary ends with its logs.
# run.sh calls it when a step fails; run it by hand on a cluster kept with
# KEEP_CLUSTER=1.
set -uo pipefail

context="${1:?usage: $0 KUBE_CONTEXT FOLDER NAMESPACE...}"
out="${2:?usage: $0 KUBE_CONTEXT FOLDER NAMESPACE...}"
shift 2
operator_namespace="${1:?usage: $0 KUBE_CONTEXT FOLDER NAMESPACE...}"
mkdir -p "$out"
k() { kubectl --context "$context" "$@"; }

k get imagepipelines -A -o yaml >"$out/imagepipelines.yaml" 2>&1
k get events -A --sort-by=.lastTimestamp >"$out/events.txt" 2>&1
k get all,configmaps,serviceaccounts,poddisruptionbudgets,leases,jobs -A -o wide >"$out/objects.txt" 2>&1
for namespace in "$@"; do
  k describe pods -n "$namespace" >"$out/pods-$namespace.txt" 2>&1
  while read -r pod; do
    name="${pod#pod/}"
    k logs -n "$namespace" "$pod" --all-containers --prefix --timestamps >"$out/logs-$namespace-$name.txt" 2>&1
    k logs -n "$namespace" "$pod" --all-containers --prefix --timestamps --previous \
      >"$out/logs-$namespace-$name.previous.txt" 2>/dev/null || rm -f "$out/logs-$namespace-$name.previous.txt"
  done < <(k get pods -n "$namespace" -o name 2>/dev/null)
done

section() { printf '\n----- %s\n' "$1"; }
section "ImagePipelines"
cat "$out/imagepipelines.yaml"
section "events, the last 40"
tail -n 40 "$out/events.txt"
for log in "$out/logs-$operator_namespace"-*.txt; do
  [[ -f "$log" ]] || continue
  section "$(basename "$log"), the last 60 lines"
  tail -n 60 "$log"
done
section "everything is in $out"
