#!/usr/bin/env bash
# Builds the Go-made tools (Kubernetes control plane, kubectl, etcd, kwok, helm, an OCI
# registry) from the Go module proxy into a cache outside the repository, keyed by version.
# A tool whose binaries are already in the cache is skipped, so a warm run takes seconds.
#
#   scripts/tools.sh          build what is missing, then print the cache directory
#   scripts/tools.sh --dir    only print the cache directory
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache="${KAITO_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kaito-rs/tools}"
if [[ "${1:-}" == "--dir" ]]; then
  echo "$cache"
  exit 0
fi

# Builds use the machine's Go only. The module and build caches are private to this script
# and live beside the binaries; they take several GB, so they are removed once every tool is
# built (KAITO_TOOLS_KEEP_GO_CACHE=1 keeps them for a later rebuild at another version).
export GOTOOLCHAIN=local
export GOFLAGS="-mod=mod -modcacherw"
export GOMODCACHE="$cache/go/mod"
export GOCACHE="$cache/go/build"
export GOPROXY="${GOPROXY:-https://proxy.golang.org,direct}"
export CGO_ENABLED=0

mkdir -p "$cache/work"
started_all=$SECONDS

say() { printf '[tools %4ds] %s\n' "$((SECONDS - started_all))" "$*" >&2; }

# Runs "$@" while printing a heartbeat every 30 s, so a long cold build shows it is alive.
with_progress() {
  local name=$1
  shift
  local start=$SECONDS
  say "$name: building"
  ( while sleep 30; do say "$name: still building ($((SECONDS - start))s)"; done ) &
  local ticker=$!
  local rc=0
  "$@" || rc=$?
  kill "$ticker" 2>/dev/null || true
  wait "$ticker" 2>/dev/null || true
  if [[ $rc -ne 0 ]]; then
    say "$name: FAILED after $((SECONDS - start))s"
    return $rc
  fi
  say "$name: built in $((SECONDS - start))s"
}

# have DIR BIN...: true when every named binary exists in DIR.
have() {
  local dir=$1
  shift
  for b in "$@"; do [[ -x "$dir/$b" ]] || return 1; done
}

# Installs a module whose go.mod has no replace directives, straight from the proxy.
go_install() {
  local out=$1 pkg=$2 ver=$3 ldflags=${4:-}
  mkdir -p "$out.tmp"
  GOBIN="$out.tmp" go install -trimpath -ldflags "-s -w $ldflags" "$pkg@$ver"
  rm -rf "$out" && mv "$out.tmp" "$out"
}

# Kubernetes replaces its staging modules with local paths, which `go install` refuses.
# A wrapper module requires k8s.io/kubernetes and points each staging module at its
# published v0.N.M release; the list is read from that release's own go.mod.
build_kubernetes() {
  local out=$1 ver=$KUBERNETES_VERSION
  local staging="v0${ver#v1}"
  local work="$cache/work/kubernetes-$ver"
  rm -rf "$work" && mkdir -p "$work"
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$ver" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    echo "module kaito-rs.local/tools/kubernetes"
    echo
    echo "go 1.26.0"
    echo
    echo "godebug default=go1.26"
    echo
    echo "require k8s.io/kubernetes $ver"
    echo
    echo "replace ("
    sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#\t\1 => \1 '"$staging"'#p' "$gomod"
    echo ")"
  } >"$work/go.mod"
  local minor=${ver#v1.}
  minor=${minor%%.*}
  local ld="-X k8s.io/component-base/version.gitVersion=$ver"
  ld+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  ld+=" -X k8s.io/component-base/version.gitTreeState=clean"
  ld+=" -X k8s.io/client-go/pkg/version.gitVersion=$ver"
  ld+=" -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  mkdir -p "$out.tmp"
  (cd "$work" && go build -trimpath -ldflags "-s -w $ld" -o "$out.tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl)
  rm -rf "$out" && mv "$out.tmp" "$out"
}

# etcd's server module replaces its sibling modules with local paths: same wrapper idea.
build_etcd() {
  local out=$1 ver=$ETCD_VERSION
  local work="$cache/work/etcd-$ver"
  rm -rf "$work" && mkdir -p "$work"
  cat >"$work/go.mod" <<EOF
module kaito-rs.local/tools/etcd

go 1.26.0

require go.etcd.io/etcd/server/v3 $ver

replace (
	go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 $ver
	go.etcd.io/etcd/client/pkg/v3 => go.etcd.io/etcd/client/pkg/v3 $ver
	go.etcd.io/etcd/client/v3 => go.etcd.io/etcd/client/v3 $ver
	go.etcd.io/etcd/pkg/v3 => go.etcd.io/etcd/pkg/v3 $ver
)
EOF
  mkdir -p "$out.tmp"
  (cd "$work" && go build -trimpath -ldflags "-s -w" -o "$out.tmp/etcd" go.etcd.io/etcd/server/v3)
  rm -rf "$out" && mv "$out.tmp" "$out"
}

step() {
  local name=$1 dir=$2
  shift 2
  local bins=()
  while [[ $# -gt 0 && "$1" != "--" ]]; do bins+=("$1"); shift; done
  shift
  if have "$dir" "${bins[@]}"; then
    say "$name: cached in $dir"
    return 0
  fi
  with_progress "$name" "$@"
}

k8s_dir="$cache/kubernetes-$KUBERNETES_VERSION"
etcd_dir="$cache/etcd-$ETCD_VERSION"
kwok_dir="$cache/kwok-$KWOK_VERSION"
helm_dir="$cache/helm-$HELM_VERSION"
registry_dir="$cache/distribution-$DISTRIBUTION_VERSION"

step "etcd $ETCD_VERSION" "$etcd_dir" etcd -- build_etcd "$etcd_dir"
step "kwok $KWOK_VERSION" "$kwok_dir" kwok -- \
  go_install "$kwok_dir" sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION" \
  "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
step "helm $HELM_VERSION" "$helm_dir" helm -- \
  go_install "$helm_dir" helm.sh/helm/v4/cmd/helm "$HELM_VERSION" \
  "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION"
step "registry $DISTRIBUTION_VERSION" "$registry_dir" registry -- \
  go_install "$registry_dir" github.com/distribution/distribution/v3/cmd/registry \
  "$DISTRIBUTION_VERSION"
step "kubernetes $KUBERNETES_VERSION" "$k8s_dir" \
  kube-apiserver kube-controller-manager kube-scheduler kubectl -- \
  build_kubernetes "$k8s_dir"

if [[ "${KAITO_TOOLS_KEEP_GO_CACHE:-0}" != 1 && -d "$cache/go" ]]; then
  say "removing the Go module and build caches ($(du -sh "$cache/go" | cut -f1))"
  rm -rf "$cache/go" "$cache/work"
fi
say "all tools ready in $cache"
echo "$cache"
