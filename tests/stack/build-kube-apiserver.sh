#!/usr/bin/env bash
# Builds a real kube-apiserver from the Go module proxy and caches it outside the repository.
# Usage: build-kube-apiserver.sh [VERSION]   (prints the binary's path; a cached binary is reused)
set -euo pipefail

version="${1:-${KUBE_VERSION:-v1.34.4}}"
cache="${INFRA_OPERATOR_CACHE:-$HOME/.cache/infra-operator}"
bin="$cache/bin/kube-apiserver-$version"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
command -v go >/dev/null || { echo "go is required to build kube-apiserver" >&2; exit 1; }

work="$cache/build/kube-apiserver-$version"
mkdir -p "$work" "$cache/bin"
cd "$work"

# Every k8s.io staging module the kubernetes module replaces with ./staging must be pinned to the
# matching v0.x release, or `go build` cannot resolve it.
staging_version="v0.${version#v1.}"
GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$version" >/dev/null
kmod="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$version.mod"

{
  echo "module infra-operator.local/kube-apiserver"
  echo
  echo "go 1.24"
  echo
  echo "require k8s.io/kubernetes $version"
  echo
  grep -E '=> \./staging/' "$kmod" | awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}'
} > go.mod

cat > main.go <<'GO'
// Command kube-apiserver: the upstream API server, built from the module proxy for local tests.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
GO

GOFLAGS=-mod=mod go mod tidy >&2
commit="infra-operator-build"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags="$ldflags -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(echo "$version" | cut -d. -f2)"
  ldflags="$ldflags -X $pkg.gitCommit=$commit -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$bin.tmp" . >&2
mv "$bin.tmp" "$bin"
echo "$bin"
