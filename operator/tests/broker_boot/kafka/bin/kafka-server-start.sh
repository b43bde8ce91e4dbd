#!/bin/bash
# The broker boot test's Kafka distribution: starts tansu, the test's
# Kafka-protocol broker, in place of Kafka's JVM, with the listener and
# log.dirs of the server.properties it is given.
set -euo pipefail
config="$1"
setting() { sed -n "s/^$1=//p" "$config"; }
# Kafka's start script runs java; without one it fails, and so does this.
java -version
listener="$(setting listeners)"
listener="${listener%%,*}"
advertised="$(setting advertised.listeners)"
cd "$(setting log.dirs)"
exec /usr/libexec/imagepipeline-test/tansu broker \
  --listener-url "tcp://${listener#PLAINTEXT://}" \
  --advertised-listener-url "tcp://${advertised#PLAINTEXT://}" \
  --storage-engine sqlite://tansu.db
