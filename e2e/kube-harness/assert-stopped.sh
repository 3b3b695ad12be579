#!/usr/bin/env bash
# Fails if any process of test run RUN_ID is still running after a grace period: the control
# plane (kube-harness --run-id RUN_ID and the components it started in /tmp/berth-kube-RUN_ID-*)
# and, if BIN_DIR is given, Berth's own binaries from BIN_DIR (agents, operators). The suite
# must leave nothing behind; other runs' control planes are not its business.
set -euo pipefail
id=${1:?usage: assert-stopped.sh RUN_ID [BIN_DIR]}
pattern="(--run-id $id( |\$)|berth-kube-$id-)"
[ -n "${2:-}" ] && pattern="$pattern|^$2/berth-(agent|operator) "
for _ in $(seq 1 60); do
  left=$(pgrep -af -- "$pattern" | grep -v -e assert-stopped -e pgrep || true)
  [ -z "$left" ] && { echo "no processes of this run left running"; exit 0; }
  sleep 0.5
done
echo "processes still running 30s after the suite:" >&2
echo "$left" >&2
exit 1
