#!/usr/bin/env bash
# Fails if any control-plane process started from BIN_DIR is still running after a grace
# period: the suite must leave nothing behind.
set -euo pipefail
bin=${1:?usage: assert-stopped.sh BIN_DIR}
for _ in $(seq 1 60); do
  left=$(pgrep -af "^$bin/(kube-harness|kube-apiserver|kube-controller-manager)( |$)" || true)
  [ -z "$left" ] && { echo "control plane: no processes left running"; exit 0; }
  sleep 0.5
done
echo "control plane processes still running 30s after the suite:" >&2
echo "$left" >&2
exit 1
