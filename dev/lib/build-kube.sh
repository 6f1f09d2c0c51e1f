#!/usr/bin/env bash
# Builds kube-apiserver and etcd from the Go module proxy (no release downloads are reachable here).
# k8s.io/kubernetes replaces its staging modules with ./staging/...; a wrapper module replaces each with its
# published v0.<minor>.<patch> tag instead. Output: .polaris/cache/kube-<ver>/kube-apiserver, etcd-<ver>/etcd.
source "$(dirname "$0")/common.sh"

tidy_and_build_apiserver() {
  go mod tidy -e && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$1" k8s.io/kubernetes/cmd/kube-apiserver
}

build_apiserver() {
  local out="$CACHE/kube-$K8S_VERSION"
  [[ -x "$out/kube-apiserver" ]] && return 0
  local src="$CACHE/kube-$K8S_VERSION-src"
  rm -rf "$src" && mkdir -p "$src" "$out"
  local minor_patch="${K8S_VERSION#*.}"
  local modfile
  modfile=$(retry curl -fsS "${GOPROXY_URL:-https://proxy.golang.org}/k8s.io/kubernetes/@v/v$K8S_VERSION.mod")
  {
    echo "module polaris.dev/kubebuild"
    echo
    echo "go 1.26.0"
    echo
    echo "require k8s.io/kubernetes v$K8S_VERSION"
    echo
    echo "replace ("
    # Only staging modules that k8s.io/kubernetes requires at v0.0.0 need a replacement.
    echo "$modfile" | sed -n '/^require/,/^)/p' | awk '$1 ~ /^k8s.io\// && $2 == "v0.0.0" {print "\t" $1 " => " $1 " v0." "'"$minor_patch"'"}'
    echo ")"
  } > "$src/go.mod"
  cat > "$src/tools.go" <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver/app"
GO
  # Fetches are retried (common.sh): tidy and build together, since `go mod tidy -e` lets a failed fetch pass and
  # the build then fails on it.
  (cd "$src" && retry tidy_and_build_apiserver "$out/kube-apiserver")
}

build_etcd() {
  local out="$CACHE/etcd-$ETCD_VERSION"
  [[ -x "$out/etcd" ]] && return 0
  local src="$CACHE/etcd-$ETCD_VERSION-src"
  rm -rf "$src" && mkdir -p "$src" "$out"
  cat > "$src/go.mod" <<MOD
module polaris.dev/etcdbuild

go 1.26.0

require go.etcd.io/etcd/server/v3 v$ETCD_VERSION
MOD
  cat > "$src/main.go" <<'GO'
// etcd's own main, built from its published server module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (cd "$src" && retry go mod tidy && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$out/etcd" .)
}

case "${1:-all}" in
  etcd) build_etcd ;;
  apiserver) build_apiserver ;;
  all) build_etcd; build_apiserver ;;
esac
