#!/usr/bin/env bash
# Regenerates go.mod for a Kubernetes version: k8s.io/kubernetes points its staging modules at
# local paths, so each one gets a replace to the published v0.X.Y that matches the release.
# Usage: e2e/kube-harness/gen-gomod.sh v1.37.2   (then commit go.mod and go.sum)
set -euo pipefail
version=${1:?usage: gen-gomod.sh vMAJOR.MINOR.PATCH}
cd "$(dirname "$0")"
staging_version="v0.${version#v1.}"
kube_mod=$(go mod download -json "k8s.io/kubernetes@${version}" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
[ -f "$kube_mod" ] || { echo "gen-gomod: could not download k8s.io/kubernetes@${version}" >&2; exit 1; }
{
  echo "module berth.dev/kube-harness"
  echo
  echo "go $(sed -n 's/^go //p' "$kube_mod")"
  echo
  echo "require k8s.io/kubernetes ${version}"
  echo
  echo "replace ("
  sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/k8s.io/.*#\t\1 => \1 '"${staging_version}"'#p' "$kube_mod"
  echo ")"
  echo
  echo "tool ("
  echo "	k8s.io/kubernetes/cmd/kube-apiserver"
  echo "	k8s.io/kubernetes/cmd/kube-controller-manager"
  echo "	k8s.io/kubernetes/cmd/kubectl"
  echo ")"
} > go.mod
echo "$version" > KUBE_VERSION
go mod tidy
