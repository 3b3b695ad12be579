#!/usr/bin/env bash
# Installs what Berth's builds and tests need beyond Rust and Go, pinned and idempotent:
# Debian packages (git with http-backend, OpenSSH server and client for the loopback Git
# servers, util-linux for setpriv) and the opa, kustomize and helm CLIs built from their tagged
# Go modules. Prints the directory holding opa, kustomize and helm. With --bench, conftest too
# (only the benchmark compares against it).
set -euo pipefail

OPA_VERSION=v1.22.3
KUSTOMIZE_VERSION=v5.8.2
# helm.sh/helm/v3 has no replace directive at this version, so `go install` builds it as
# released. Helm's own release build sets its version and the Kubernetes version templates
# see by default (`.Capabilities.KubeVersion`, checked against a chart's `kubeVersion`) with
# -X flags; without them helm claims Kubernetes 1.20. 1.34 is its client-go's (v0.34).
HELM_VERSION=v3.19.5
HELM_KUBE_MINOR=34
CONFTEST_VERSION=v0.71.1
DEBIAN_PACKAGES=(git openssh-server openssh-client util-linux ca-certificates procps time)

cache=${BERTH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/berth}
bin="$cache/tools-opa-$OPA_VERSION-kustomize-$KUSTOMIZE_VERSION-helm-$HELM_VERSION-k8s1.$HELM_KUBE_MINOR"

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "tools: installing Debian packages: ${missing[*]}" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

mkdir -p "$bin"
if [ ! -x "$bin/opa" ]; then
  echo "tools: building opa $OPA_VERSION" >&2
  GOBIN="$bin" CGO_ENABLED=0 go install -trimpath "github.com/open-policy-agent/opa@$OPA_VERSION"
fi
if [ ! -x "$bin/kustomize" ]; then
  echo "tools: building kustomize $KUSTOMIZE_VERSION" >&2
  GOBIN="$bin" CGO_ENABLED=0 go install -trimpath "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
fi
if [ ! -x "$bin/helm" ]; then
  echo "tools: building helm $HELM_VERSION" >&2
  helm_x="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  for pkg in pkg/chartutil pkg/lint/rules; do
    helm_x+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$HELM_KUBE_MINOR"
  done
  GOBIN="$bin" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w $helm_x" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
fi
if [ "${1:-}" = "--bench" ] && [ ! -x "$bin/conftest" ]; then
  echo "tools: building conftest $CONFTEST_VERSION" >&2
  GOBIN="$bin" CGO_ENABLED=0 go install -trimpath "github.com/open-policy-agent/conftest@$CONFTEST_VERSION"
fi
echo "$bin"
