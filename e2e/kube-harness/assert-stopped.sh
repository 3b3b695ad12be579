#!/usr/bin/env bash
# Fails if any control-plane process of test run RUN_ID (kube-harness --run-id RUN_ID and the
# components it started in /tmp/berth-kube-RUN_ID-*) is still running after a grace period:
# the suite must leave nothing behind. Other runs' control planes are not its business.
set -euo pipefail
id=${1:?usage: assert-stopped.sh RUN_ID}
pattern="(--run-id $id( |\$)|berth-kube-$id-)"
for _ in $(seq 1 60); do
  left=$(pgrep -af -- "$pattern" | grep -v -e assert-stopped -e pgrep || true)
  [ -z "$left" ] && { echo "control plane: no processes of this run left running"; exit 0; }
  sleep 0.5
done
echo "control plane processes still running 30s after the suite:" >&2
echo "$left" >&2
exit 1
