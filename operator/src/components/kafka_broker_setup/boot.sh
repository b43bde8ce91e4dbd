# The broker's first boot, after the settings the operator rendered above:
# report from the start, install Java and Kafka unless the AMI has them,
# prepare the data volume, then configure and start Kafka under systemd.
KAFKA_HOME=/opt/kafka
STATE_DIR=/var/lib/imagepipeline-kafka
HEARTBEAT=/usr/local/bin/imagepipeline-kafka-heartbeat
export LOG_DIR=/var/log/kafka
log() { echo "imagepipeline-kafka: $*"; }
# What the heartbeat reports until Kafka runs: installing, starting or failed.
set_state() { echo "$1" >"$STATE_DIR/state"; }
fail() {
  trap - ERR
  echo "imagepipeline-kafka: FATAL: $*" >&2
  echo "imagepipeline-kafka: FATAL: $*" >/dev/console 2>/dev/null || true
  echo "$*" >"$STATE_DIR/error"
  set_state failed
  # The operator learns why now, not at the timer's next run.
  "$HEARTBEAT" || true
  exit 1
}
trap 'fail "boot script line $LINENO: $BASH_COMMAND exited with status $?"' ERR

mkdir -p "$STATE_DIR" "$LOG_DIR" /etc/kafka "${HEARTBEAT%/*}"
rm -f "$STATE_DIR/error"
set_state installing
# The heartbeat is set up before anything is installed, so that a broker
# stuck installing says so.
{
  echo '#!/bin/bash'
  declare -p NODE_ID REGION BUCKET HEARTBEAT_KEY KAFKA_VERSION BOOTSTRAP_SERVER DATA_DIR KAFKA_HOME STATE_DIR LOG_DIR
  heartbeat_body
} >"$HEARTBEAT"
chmod 755 "$HEARTBEAT"
cat >/etc/systemd/system/imagepipeline-kafka-heartbeat.service <<UNIT
[Unit]
Description=Report this Kafka broker's state to the ImagePipeline operator
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart=$HEARTBEAT
UNIT
cat >/etc/systemd/system/imagepipeline-kafka-heartbeat.timer <<'UNIT'
[Unit]
Description=Report this Kafka broker's state every 30 s

[Timer]
OnActiveSec=0
OnUnitActiveSec=30s
AccuracySec=1s

[Install]
WantedBy=timers.target
UNIT
systemctl daemon-reload
systemctl enable --now imagepipeline-kafka-heartbeat.timer

# The Kafka VPC has no internet: the Amazon Linux repositories and the staged
# Kafka archive are reached through its S3 gateway endpoint.
if ! command -v java >/dev/null; then
  log "installing Java"
  dnf install -y java-21-amazon-corretto-headless \
    || fail "could not install Java: dnf install java-21-amazon-corretto-headless failed"
  command -v java >/dev/null || fail "java is missing after installing java-21-amazon-corretto-headless"
fi
if [ ! -x "$KAFKA_HOME/bin/kafka-server-start.sh" ]; then
  archive="s3://$ARCHIVE_BUCKET/$ARCHIVE_KEY"
  log "installing Kafka $KAFKA_VERSION from $archive"
  download="$(mktemp -d /var/tmp/kafka-download.XXXXXX)"
  aws s3 cp --region "$REGION" --only-show-errors "$archive" "$download/kafka.tgz" \
    || fail "could not download the Kafka archive $archive"
  actual="$(sha512sum "$download/kafka.tgz")"
  actual="${actual%% *}"
  # Verified again here: the bucket is writable by more than the operator.
  [ "$actual" = "$ARCHIVE_SHA512" ] \
    || fail "SHA-512 mismatch: the Kafka archive $archive has $actual, expected $ARCHIVE_SHA512; refusing to install it"
  mkdir -p "$KAFKA_HOME"
  tar -xzf "$download/kafka.tgz" -C "$KAFKA_HOME" --strip-components=1 --no-same-owner
  rm -rf "$download"
  [ -x "$KAFKA_HOME/bin/kafka-server-start.sh" ] || fail "the Kafka archive $archive has no bin/kafka-server-start.sh"
fi
# The version that runs, which a custom AMI decides.
jars=("$KAFKA_HOME"/libs/kafka-clients-*.jar)
if [ -e "${jars[0]}" ]; then
  version="${jars[0]##*/kafka-clients-}"
  echo "${version%.jar}" >"$STATE_DIR/kafka-version"
fi

# Nitro instances show EBS volumes as NVMe disks and Xen ones as /dev/xvdX;
# the mapped name survives only in udev symlinks and the NVMe controller data.
find_data_device() {
  local wanted="${DATA_DEVICE#/dev/}" candidate disk model root_source root_disk
  local others=()
  for candidate in "/dev/$wanted" "/dev/xvd${wanted#sd}"; do
    if [ -b "$candidate" ]; then readlink -f "$candidate"; return 0; fi
  done
  root_source="$(findmnt -nvo SOURCE /)"
  root_disk="$(lsblk -npo PKNAME "$root_source" | head -n 1)"
  root_disk="${root_disk:-$root_source}"
  while read -r disk model; do
    [ "$disk" != "$root_disk" ] || continue
    # Instance-store disks are NVMe too; only EBS can be the data volume.
    case "$model" in *"Elastic Block Store"*) ;; *) continue ;; esac
    candidate="$(ebsnvme-id -b "$disk" 2>/dev/null || true)"
    candidate="${candidate#/dev/}"
    if [ "$candidate" = "$wanted" ] || [ "$candidate" = "xvd${wanted#sd}" ]; then echo "$disk"; return 0; fi
    others+=("$disk")
  done < <(lsblk -dnpo NAME,MODEL)
  if [ "${#others[@]}" -eq 1 ]; then echo "${others[0]}"; return 0; fi
  return 1
}
device=""
for _ in $(seq 60); do
  device="$(find_data_device)" && break
  device=""
  sleep 5
done
[ -n "$device" ] || fail "the data volume $DATA_DEVICE did not appear within 5 minutes"
udevadm settle || true
if [ -z "$(blkid -o value -s TYPE "$device" || true)" ]; then
  log "formatting the new data volume $device"
  # XFS: no lost+found directory, which Kafka would take for a broken partition.
  mkfs.xfs -q "$device"
fi
fs_type="$(blkid -o value -s TYPE "$device")"
fs_uuid="$(blkid -o value -s UUID "$device")"
mkdir -p "$DATA_DIR"
grep -q "^UUID=$fs_uuid " /etc/fstab \
  || echo "UUID=$fs_uuid $DATA_DIR $fs_type defaults,noatime,nofail 0 2" >>/etc/fstab
mountpoint -q "$DATA_DIR" || mount "$DATA_DIR"
id kafka >/dev/null 2>&1 || useradd --system --no-create-home --home-dir "$DATA_DIR" --shell /sbin/nologin kafka

server_properties >"$CONFIG_FILE"
"$KAFKA_HOME/bin/kafka-storage.sh" format --cluster-id "$CLUSTER_ID" --config "$CONFIG_FILE" --ignore-formatted
chown -R kafka:kafka "$DATA_DIR" "$LOG_DIR"
# Large records need more than Kafka's default 1 GiB heap; the rest of the
# memory is page cache, which Kafka relies on more than on heap.
heap_mib=$(( $(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo) / 4 ))
heap_mib=$(( heap_mib < 1024 ? 1024 : (heap_mib > 6144 ? 6144 : heap_mib) ))
cat >/etc/systemd/system/kafka.service <<UNIT
[Unit]
Description=Apache Kafka (KRaft broker and controller)
Wants=network-online.target
After=network-online.target
RequiresMountsFor=$DATA_DIR

[Service]
User=kafka
Group=kafka
Environment="LOG_DIR=$LOG_DIR"
Environment="KAFKA_HEAP_OPTS=-Xms${heap_mib}m -Xmx${heap_mib}m"
ExecStart="$KAFKA_HOME/bin/kafka-server-start.sh" "$CONFIG_FILE"
Restart=on-failure
RestartSec=10
LimitNOFILE=100000
TimeoutStopSec=300

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now kafka.service
set_state starting
