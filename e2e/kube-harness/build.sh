#!/usr/bin/env bash
# Builds the local control plane: kube-apiserver, kube-controller-manager and kubectl from the
# official k8s.io/kubernetes module (once per Kubernetes version, cached), plus our kube-harness
# launcher (go build's own cache makes an unchanged harness a no-op). Prints the bin directory.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(cat "$here/KUBE_VERSION")
cache=${BERTH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/berth}
bin="$cache/kube-$version-$(go env GOVERSION)"
mkdir -p "$bin"
cd "$here"
if [ ! -f "$bin/.complete" ]; then
  echo "kube-harness: building Kubernetes $version (first time only; many minutes on two cores)" >&2
  minor=${version#v1.}; minor=${minor%%.*}
  pkg=k8s.io/component-base/version
  ldflags="-s -w -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  start=$(date +%s)
  CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kubectl
  echo "kube-harness: Kubernetes $version built in $(( $(date +%s) - start ))s" >&2
  touch "$bin/.complete"
fi
echo "$version" > "$bin/VERSION"
CGO_ENABLED=0 go build -trimpath -o "$bin/kube-harness" ./cmd/kube-harness
echo "$bin"
