#!/usr/bin/env bash
# The kind end-to-end suite: the chart, the three images and one pipeline on a
# real Kubernetes cluster, against an AWS emulator and a Kafka broker that run
# in it. Needs a Docker engine; e2e/kind/README.md says what else.
#
#   e2e/kind/run.sh
#
# EMULATOR          moto (default) or localstack (needs LOCALSTACK_AUTH_TOKEN)
# CLUSTER_NAME      the kind cluster made and deleted (default imagepipeline-e2e)
# KIND_NODE_IMAGE   the node image (default: the one of the kind release)
# KEEP_CLUSTER=1    leave the cluster running afterwards
# SKIP_IMAGE_BUILD=1  load the images already built instead of building them
# ARTIFACTS_DIR     where diagnostics go when a step fails (default: a new temporary folder)
# READY_TIMEOUT     how long the pipeline may take to become Ready (default 15m)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/e2e/kind"
cd "$ROOT"

EMULATOR="${EMULATOR:-moto}"
CLUSTER_NAME="${CLUSTER_NAME:-imagepipeline-e2e}"
KEEP_CLUSTER="${KEEP_CLUSTER:-0}"
SKIP_IMAGE_BUILD="${SKIP_IMAGE_BUILD:-0}"
ARTIFACTS_DIR="${ARTIFACTS_DIR:-$(mktemp -d -t imagepipeline-kind.XXXXXX)}"
READY_TIMEOUT="${READY_TIMEOUT:-15m}"

OPERATOR_NAMESPACE=imagepipeline-system
PIPELINE_NAMESPACE=imagepipeline-e2e
EMULATOR_NAMESPACE=aws-emulator
KAFKA_NAMESPACE=kafka
NAMESPACES=("$OPERATOR_NAMESPACE" "$PIPELINE_NAMESPACE" "$EMULATOR_NAMESPACE" "$KAFKA_NAMESPACE")
RELEASE=imagepipeline-operator
PIPELINE=demo
CHART=charts/imagepipeline-operator
EMULATOR_IMAGE=imagepipeline-e2e/moto:5.2.5-p3
# The images' tags are the chart's appVersion: the defaults of the chart and
# of the operator (for the services' images) then name what was loaded.
VERSION="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$CHART/Chart.yaml")"
declare -A DOCKERFILES=(
  ["ghcr.io/imagepipeline/operator:$VERSION"]=operator/Dockerfile
  ["ghcr.io/imagepipeline/upload-api:$VERSION"]=services/upload-api/Dockerfile
  ["ghcr.io/imagepipeline/stream-bridge:$VERSION"]=services/stream-bridge/Dockerfile
  ["$EMULATOR_IMAGE"]=e2e/kind/emulator/Dockerfile
)

START=$SECONDS
log() { printf '==> [%4d s] %s\n' "$((SECONDS - START))" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || die "$1 is needed: $2"; }
k() { kubectl --context "kind-$CLUSTER_NAME" "$@"; }

check_prerequisites() {
  need docker "https://docs.docker.com/engine/install/"
  docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info): the kind suite needs one"
  need kind "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
  need kubectl "https://kubernetes.io/docs/tasks/tools/"
  need sha256sum "coreutils"
  case "$EMULATOR" in
    moto) need openssl "it makes the emulator's TLS certificate" ;;
    localstack)
      [[ -n "${LOCALSTACK_AUTH_TOKEN:-}" ]] \
        || die "EMULATOR=localstack needs LOCALSTACK_AUTH_TOKEN: the pipeline needs ELBv2 and Auto Scaling, which LocalStack's free edition lacks" ;;
    *) die "EMULATOR must be moto or localstack, not '$EMULATOR'" ;;
  esac
  [[ -n "$VERSION" ]] || die "no appVersion in $CHART/Chart.yaml"
  if kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
    die "a kind cluster named $CLUSTER_NAME exists already: delete it (kind delete cluster --name $CLUSTER_NAME) or set CLUSTER_NAME"
  fi
  # The pinned helm of the offline chart tests, unless one is named.
  HELM="${IMAGEPIPELINE_HELM:-}"
  if [[ -z "$HELM" ]]; then
    scripts/tools.sh install helm
    HELM="$(scripts/tools.sh path helm)"
  fi
}

CLUSTER_CREATED=0
WORK="$(mktemp -d)"
finish() {
  local status=$?
  set +e
  if [[ $status -ne 0 && $CLUSTER_CREATED -eq 1 ]]; then
    log "failed (exit $status): diagnostics in $ARTIFACTS_DIR"
    "$HERE/diagnostics.sh" "kind-$CLUSTER_NAME" "$ARTIFACTS_DIR" "${NAMESPACES[@]}"
    kind export logs "$ARTIFACTS_DIR/kind" --name "$CLUSTER_NAME" >/dev/null 2>&1
  fi
  if [[ $CLUSTER_CREATED -eq 1 ]]; then
    if [[ "$KEEP_CLUSTER" == 1 ]]; then
      log "keeping the cluster: kubectl --context kind-$CLUSTER_NAME …; kind delete cluster --name $CLUSTER_NAME"
    else
      log "deleting the cluster $CLUSTER_NAME"
      kind delete cluster --name "$CLUSTER_NAME" >/dev/null 2>&1
    fi
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap finish EXIT

build_images() {
  local image
  for image in "${!DOCKERFILES[@]}"; do
    if [[ "$SKIP_IMAGE_BUILD" == 1 ]]; then
      docker image inspect "$image" >/dev/null 2>&1 || die "SKIP_IMAGE_BUILD=1, but there is no image $image"
      continue
    fi
    log "building $image from ${DOCKERFILES[$image]}"
    docker build --quiet -f "${DOCKERFILES[$image]}" -t "$image" . >/dev/null
  done
}

create_cluster() {
  log "creating the kind cluster $CLUSTER_NAME"
  local args=(create cluster --name "$CLUSTER_NAME" --wait 3m)
  if [[ -n "${KIND_NODE_IMAGE:-}" ]]; then
    args+=(--image "$KIND_NODE_IMAGE")
  fi
  CLUSTER_CREATED=1
  kind "${args[@]}"
  k version
  local image
  for image in "${!DOCKERFILES[@]}"; do
    log "loading $image into the cluster"
    kind load docker-image "$image" --name "$CLUSTER_NAME" >/dev/null
  done
  k apply -f "$HERE/manifests/namespaces.yaml"
}

# A CA made for this run only, and a certificate it signs for the emulator's
# in-cluster name.
make_emulator_certificate() {
  local name="moto.$EMULATOR_NAMESPACE.svc"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=imagepipeline kind suite emulator CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$WORK/ca.key" -out "$WORK/ca.crt" 2>/dev/null
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/CN=$name" -keyout "$WORK/tls.key" -out "$WORK/tls.csr" 2>/dev/null
  printf '%s\n' "subjectAltName=DNS:$name,DNS:$name.cluster.local,DNS:localhost" \
    "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth" >"$WORK/tls.ext"
  openssl x509 -req -in "$WORK/tls.csr" -CA "$WORK/ca.crt" -CAkey "$WORK/ca.key" \
    -set_serial "0x$(openssl rand -hex 8)" -days 2 -extfile "$WORK/tls.ext" -out "$WORK/tls.crt" 2>/dev/null
}

start_emulator() {
  log "starting the AWS emulator: $EMULATOR"
  local ns
  # Dummy keys: emulators accept any, and the SDKs need some to sign with.
  for ns in "$OPERATOR_NAMESPACE" "$PIPELINE_NAMESPACE" "$EMULATOR_NAMESPACE"; do
    k create secret generic aws-emulator-credentials -n "$ns" \
      --from-literal=AWS_ACCESS_KEY_ID=testing --from-literal=AWS_SECRET_ACCESS_KEY=testing
  done
  if [[ "$EMULATOR" == moto ]]; then
    make_emulator_certificate
    k create secret tls moto-tls -n "$EMULATOR_NAMESPACE" --cert "$WORK/tls.crt" --key "$WORK/tls.key"
    for ns in "$OPERATOR_NAMESPACE" "$PIPELINE_NAMESPACE" "$EMULATOR_NAMESPACE"; do
      k create configmap aws-emulator-ca -n "$ns" --from-file=ca.crt="$WORK/ca.crt"
    done
  else
    k create secret generic localstack-auth -n "$EMULATOR_NAMESPACE" --from-literal=token="$LOCALSTACK_AUTH_TOKEN"
  fi
  k apply -f "$HERE/manifests/$EMULATOR.yaml" -f "$HERE/manifests/aws-check.yaml"
  ENDPOINT="$(sed -n 's/^ *endpointUrl: *//p' "$HERE/$EMULATOR.values.yaml")"
  [[ -n "$ENDPOINT" ]] || die "no aws.endpointUrl in $HERE/$EMULATOR.values.yaml"
}

start_kafka() {
  log "starting the Kafka broker"
  k apply -f "$HERE/manifests/kafka.yaml"
}

wait_for_backends() {
  k rollout status -n "$EMULATOR_NAMESPACE" "deployment/$EMULATOR" --timeout=5m
  k rollout status -n "$EMULATOR_NAMESPACE" deployment/aws-check --timeout=2m
  k rollout status -n "$KAFKA_NAMESPACE" deployment/kafka --timeout=5m
  # An existing cluster's topics are its owner's: the operator makes none.
  local topic
  for topic in images images.dlq; do
    k exec -n "$KAFKA_NAMESPACE" deployment/kafka -- /opt/kafka/bin/kafka-topics.sh \
      --bootstrap-server localhost:9092 --create --if-not-exists --topic "$topic" \
      --partitions 3 --replication-factor 1
  done
}

# check.py in the aws-check pod, against the emulator.
aws_check() {
  local env=(AWS_ENDPOINT_URL="$ENDPOINT")
  if [[ "$EMULATOR" == moto ]]; then
    env+=(AWS_CA_BUNDLE=/etc/aws-emulator-ca/ca.crt)
  fi
  k exec -i -n "$EMULATOR_NAMESPACE" deployment/aws-check -- \
    env "${env[@]}" /opt/moto/current/venv/bin/python - "$@" <"$HERE/check.py"
}

install_chart() {
  log "installing the chart"
  "$HELM" install "$RELEASE" "$CHART" --kube-context "kind-$CLUSTER_NAME" \
    --namespace "$OPERATOR_NAMESPACE" -f "$HERE/values.yaml" -f "$HERE/$EMULATOR.values.yaml" \
    --wait --timeout 5m
  k rollout status -n "$OPERATOR_NAMESPACE" "deployment/$RELEASE" --timeout=2m
  local holder
  holder="$(k get lease -n "$OPERATOR_NAMESPACE" "$RELEASE" -o jsonpath='{.spec.holderIdentity}')"
  [[ -n "$holder" ]] || die "no replica holds the leader Lease $OPERATOR_NAMESPACE/$RELEASE"
  k get pod -n "$OPERATOR_NAMESPACE" "$holder" >/dev/null || die "the Lease holder $holder is no pod of the release"
  log "leader: $holder"
}

create_pipeline() {
  log "applying the ImagePipeline $PIPELINE_NAMESPACE/$PIPELINE; waiting up to $READY_TIMEOUT for Ready"
  k apply -f "$HERE/manifests/pipeline.yaml"
  k wait -n "$PIPELINE_NAMESPACE" "imagepipeline/$PIPELINE" --for=condition=Ready --timeout="$READY_TIMEOUT"
  k get -n "$PIPELINE_NAMESPACE" imagepipeline "$PIPELINE"
}

send_images() {
  log "uploading one image through the upload Service and producing one to Kafka"
  local ns
  for ns in "$PIPELINE_NAMESPACE" "$KAFKA_NAMESPACE"; do
    k create configmap e2e-images -n "$ns" \
      --from-file="$HERE/images/upload.png" --from-file="$HERE/images/stream.png"
  done
  k apply -f "$HERE/manifests/clients.yaml"
  k wait -n "$PIPELINE_NAMESPACE" job/upload-image --for=condition=complete --timeout=3m
  k wait -n "$KAFKA_NAMESPACE" job/produce-image --for=condition=complete --timeout=3m
  local response status
  response="$(k logs -n "$PIPELINE_NAMESPACE" job/upload-image)"
  status="$(tail -n 1 <<<"$response")"
  [[ "$status" == 201 ]] || die "the upload answered $status, not 201 Created: $response"
  log "upload: 201 $(head -n 1 <<<"$response")"
}

check_stored() {
  log "checking S3, DynamoDB and the Firehose events in the emulator"
  local bucket table
  bucket="$(k get -n "$PIPELINE_NAMESPACE" imagepipeline "$PIPELINE" -o jsonpath='{.status.endpoints.bucket}')"
  table="$(k get -n "$PIPELINE_NAMESPACE" imagepipeline "$PIPELINE" -o jsonpath='{.status.endpoints.table}')"
  [[ -n "$bucket" && -n "$table" ]] || die "the pipeline's status names no bucket or table"
  aws_check stored --bucket "$bucket" --table "$table" --timeout 180 \
    --api-sha256 "$(sha256sum "$HERE/images/upload.png" | cut -d' ' -f1)" \
    --stream-sha256 "$(sha256sum "$HERE/images/stream.png" | cut -d' ' -f1)"
}

delete_pipeline() {
  log "deleting the ImagePipeline; waiting for its cleanup"
  k delete -n "$PIPELINE_NAMESPACE" imagepipeline "$PIPELINE" --wait=false
  k wait -n "$PIPELINE_NAMESPACE" "imagepipeline/$PIPELINE" --for=delete --timeout=10m
  # The services are the pipeline's: Kubernetes collects them.
  k wait -n "$PIPELINE_NAMESPACE" "deployment/$PIPELINE-upload-api" "deployment/$PIPELINE-stream-bridge" \
    "configmap/$PIPELINE-endpoints" --for=delete --timeout=2m
  aws_check leftovers --owner "$PIPELINE_NAMESPACE/$PIPELINE"
}

check_prerequisites
build_images
create_cluster
start_emulator
start_kafka
wait_for_backends
install_chart
create_pipeline
send_images
check_stored
delete_pipeline
log "passed: chart, images and pipeline on kind with $EMULATOR"
