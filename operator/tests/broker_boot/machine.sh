#!/bin/bash
# PID 1 of one broker "instance" of the broker boot test (operator/tests/broker_boot.rs),
# run as `unshare --mount --propagation private --pid --fork --kill-child --mount-proc`:
# every mount below and every process the boot starts stays inside, and all of
# them end when this script does.
#
#   machine.sh SANDBOX DATA_DISK TANSU
#
# SANDBOX/layers/<dir>/{upper,work} is an overlay layer for each directory the
# boot may write: the host's directory is the read-only lower layer, so the
# host never changes, and the test has put the machine image's own files (the
# stand-ins, the user data) in the upper layers. DATA_DISK is the loop device
# that plays the EBS data volume; TANSU the test's Kafka-protocol broker, which
# the test's Kafka distribution starts. The boot's output goes to
# SANDBOX/console.log and its exit status to SANDBOX/boot.exit; the machine
# then runs until its standard input closes.
set -euo pipefail
sandbox="$1" data_disk="$2" tansu="$3"

for dir in etc opt usr var tmp dev; do
  mount -t overlay overlay \
    -o "lowerdir=/$dir,upperdir=$sandbox/layers/$dir/upper,workdir=$sandbox/layers/$dir/work" "/$dir"
done
mount -t tmpfs tmpfs /run
mount --bind "$tansu" /usr/libexec/imagepipeline-test/tansu
# What udev names the EBS volume mapped as /dev/sdf on an Amazon Linux instance.
ln -s "$data_disk" /dev/sdf
# Writes to the console land in the sandbox, not on the host's console.
rm -f /dev/console

# cloud-init's PATH. A stock image has no Java: the host's is hidden (removed
# in the overlay only).
machine_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
if [ ! -e /usr/share/imagepipeline-test/image-has-java ]; then
  while java="$(PATH="$machine_path" command -v java)"; do rm -f "$java"; done
fi

# cloud-init runs the user data as root with a plain environment. The AWS_*
# variables stand for what EC2 gives every process: the instance role's
# credentials (from the metadata service) and the S3 endpoint's address (DNS).
mapfile -t aws_environment < <(env | grep '^AWS_' || true)
status=0
env -i PATH="$machine_path" HOME=/root LANG=C.UTF-8 "${aws_environment[@]}" \
  /var/lib/cloud/instance/scripts/part-001 </dev/null >"$sandbox/console.log" 2>&1 || status=$?
echo "$status" >"$sandbox/boot.exit"

# The instance keeps running (Kafka, the heartbeat timer) until the test closes stdin.
cat >/dev/null
