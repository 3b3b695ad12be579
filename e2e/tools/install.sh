#!/usr/bin/env bash
# Installs what Berth's builds and tests need beyond Rust and Go, pinned and idempotent:
# Debian packages (git with http-backend, OpenSSH server and client for the loopback Git
# servers, util-linux for setpriv) and the opa, kustomize, helm, sops and age-keygen CLIs built
# from their tagged Go modules, each cached in a directory named after its version. Links them
# into the repository's target/tools/ (where .cargo/config.toml points cargo, so that a plain
# `cargo test` finds them) and prints that directory. With --bench, conftest too (only the
# benchmark compares against it).
set -euo pipefail

OPA_VERSION=v1.22.3
KUSTOMIZE_VERSION=v5.8.2
# helm.sh/helm/v3 has no replace directive at this version, so `go install` builds it as
# released. Helm's own release build sets its version and the Kubernetes version templates
# see by default (`.Capabilities.KubeVersion`, checked against a chart's `kubeVersion`) with
# -X flags; without them helm claims Kubernetes 1.20. 1.34 is its client-go's (v0.34).
HELM_VERSION=v3.19.5
HELM_KUBE_MINOR=34
# sops decrypts tenants' encrypted Secrets; age-keygen makes the keys the tests encrypt for.
SOPS_VERSION=v3.13.3
AGE_VERSION=v1.3.1
CONFTEST_VERSION=v0.71.1
DEBIAN_PACKAGES=(git openssh-server openssh-client util-linux ca-certificates procps time)

cache=${BERTH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/berth}/tools
links="$(cd "$(dirname "$0")/../.." && pwd)/target/tools"

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

# build_tool NAME CACHE-KEY MODULE@VERSION [LDFLAGS]: builds NAME once into $cache/CACHE-KEY and
# links it into $links (a symbolic link: a changed pin relinks, `cargo clean` removes only the
# link).
build_tool() {
  local name=$1 dir="$cache/$2" module=$3 ldflags=${4:-}
  if [ ! -x "$dir/$name" ]; then
    echo "tools: building $name ($2)" >&2
    mkdir -p "$dir"
    GOBIN="$dir" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w $ldflags" "$module"
  fi
  ln -sfn "$dir/$name" "$links/$name"
}

mkdir -p "$links"
build_tool opa "opa-$OPA_VERSION" "github.com/open-policy-agent/opa@$OPA_VERSION"
build_tool kustomize "kustomize-$KUSTOMIZE_VERSION" "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
helm_x="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in pkg/chartutil pkg/lint/rules; do
  helm_x+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$HELM_KUBE_MINOR"
done
build_tool helm "helm-$HELM_VERSION-k8s1.$HELM_KUBE_MINOR" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" "$helm_x"
build_tool sops "sops-$SOPS_VERSION" "github.com/getsops/sops/v3/cmd/sops@$SOPS_VERSION"
build_tool age-keygen "age-$AGE_VERSION" "filippo.io/age/cmd/age-keygen@$AGE_VERSION"
if [ "${1:-}" = "--bench" ]; then
  build_tool conftest "conftest-$CONFTEST_VERSION" "github.com/open-policy-agent/conftest@$CONFTEST_VERSION"
fi
echo "$links"
