#!/usr/bin/env bash
# `make demo` for now: the example pipeline planned, applied and destroyed in
# emulated AWS (moto server on a free loopback port), stopped on exit or Ctrl-C.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
BIN="${CARGO_TARGET_DIR:?}/debug/imagepipeline"
MOTO="$(bash "$HERE/tools.sh" path moto)"
# The emulator serves TLS only, with a certificate from its own local CA.
MOTO_CA="$(bash "$HERE/tools.sh" path moto-ca)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
LOG="$(mktemp -t imagepipeline-moto.XXXXXX.log)"

"$MOTO" -H 127.0.0.1 -p "$PORT" >"$LOG" 2>&1 &
MOTO_PID=$!
trap 'kill "$MOTO_PID" 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 100); do
  curl -fs --cacert "$MOTO_CA" "https://127.0.0.1:$PORT/moto-api/" >/dev/null 2>&1 && break
  sleep 0.1
done

export AWS_ENDPOINT_URL="https://127.0.0.1:$PORT" AWS_REGION=eu-west-1 SSL_CERT_FILE="$MOTO_CA"
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_EC2_METADATA_DISABLED=true
echo "==> emulated AWS (moto server) at $AWS_ENDPOINT_URL"
echo "==> imagepipeline plan -f examples/imagepipeline.yaml"
"$BIN" plan -f examples/imagepipeline.yaml
echo "==> imagepipeline apply -f examples/imagepipeline.yaml"
"$BIN" apply -f examples/imagepipeline.yaml
echo "==> imagepipeline destroy -f examples/imagepipeline.yaml"
"$BIN" destroy -f examples/imagepipeline.yaml
echo
echo "Not built yet: running upload-api and stream-bridge, and sending images"
echo "through them (issues 5-9). In the emulator the instances never boot."
