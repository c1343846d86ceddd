#!/usr/bin/env bash
# Builds a real Kubernetes component (kube-apiserver or kube-controller-manager) from the Go module
# proxy and caches it outside the repository. Both come from one wrapper module per version.
# Usage: build-kube.sh COMPONENT [VERSION]   (prints the binary's path; a cached binary is reused)
set -euo pipefail

component="${1:?usage: build-kube.sh kube-apiserver|kube-controller-manager [VERSION]}"
version="${2:-${KUBE_VERSION:-v1.34.4}}"
case "$component" in
  kube-apiserver) command_pkg="k8s.io/kubernetes/cmd/kube-apiserver/app"; new_command="app.NewAPIServerCommand()" ;;
  kube-controller-manager) command_pkg="k8s.io/kubernetes/cmd/kube-controller-manager/app"; new_command="app.NewControllerManagerCommand()" ;;
  *) echo "unknown component $component" >&2; exit 2 ;;
esac
cache="${INFRA_OPERATOR_CACHE:-$HOME/.cache/infra-operator}"
bin="$cache/bin/$component-$version"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
command -v go >/dev/null || { echo "go is required to build $component" >&2; exit 1; }

work="$cache/build/$component-$version"
mkdir -p "$work" "$cache/bin"
cd "$work"

# Every k8s.io staging module the kubernetes module replaces with ./staging must be pinned to the
# matching v0.x release, or `go build` cannot resolve it.
staging_version="v0.${version#v1.}"
GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$version" >/dev/null
kmod="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$version.mod"

{
  echo "module infra-operator.local/$component"
  echo
  echo "go 1.24"
  echo
  echo "require k8s.io/kubernetes $version"
  echo
  grep -E '=> \./staging/' "$kmod" | awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}'
} > go.mod

cat > main.go <<GO
// Command $component: the upstream component, built from the module proxy for local tests.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"$command_pkg"
)

func main() {
	os.Exit(cli.Run($new_command))
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
