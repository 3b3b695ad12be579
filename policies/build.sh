#!/usr/bin/env bash
# Compiles the default policy library to the WebAssembly bundle the agent embeds
# (policies/bundle.tar.gz, committed). `build.sh --check` fails if the committed bundle is stale
# with respect to the Rego sources. Needs OPA (path in $OPA, default: opa on PATH).
set -euo pipefail
cd "$(dirname "$0")"
opa=${OPA:-opa}
mapfile -t sources < <(find berth -name '*.rego' ! -name '*_test.rego' | sort)
out=bundle.tar.gz
[ "${1:-}" = "--check" ] && out=$(mktemp) && trap 'rm -f "$out"' EXIT
"$opa" build --target wasm --entrypoint berth/violations --output "$out" "${sources[@]}"
if [ "${1:-}" = "--check" ] && ! cmp -s "$out" bundle.tar.gz; then
  echo "policies/bundle.tar.gz is stale: run 'make policies' and commit it" >&2
  exit 1
fi
