#!/usr/bin/env bash
# Installs what Berth's builds and tests need beyond Rust and Go, pinned and idempotent:
# Debian packages (git with http-backend, OpenSSH server and client for the loopback Git
# servers, util-linux for setpriv) and the opa and kustomize CLIs built from their tagged Go
# modules. Prints the directory holding opa and kustomize. With --bench, conftest too (only the
# benchmark compares against it).
set -euo pipefail

OPA_VERSION=v1.22.3
KUSTOMIZE_VERSION=v5.8.2
CONFTEST_VERSION=v0.71.1
DEBIAN_PACKAGES=(git openssh-server openssh-client util-linux ca-certificates procps time)

cache=${BERTH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/berth}
bin="$cache/tools-opa-$OPA_VERSION-kustomize-$KUSTOMIZE_VERSION"

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
if [ "${1:-}" = "--bench" ] && [ ! -x "$bin/conftest" ]; then
  echo "tools: building conftest $CONFTEST_VERSION" >&2
  GOBIN="$bin" CGO_ENABLED=0 go install -trimpath "github.com/open-policy-agent/conftest@$CONFTEST_VERSION"
fi
echo "$bin"
