#!/usr/bin/env bash
# Builds vegeta, the HTTP load generator the admission_floor benchmark drives, from the Go module
# proxy and caches it outside the repository.
# Usage: build-vegeta.sh [VERSION]   (prints the binary's path; a cached binary is reused)
set -euo pipefail

version="${1:-${VEGETA_VERSION:-v12.13.0}}"
cache="${INFRA_OPERATOR_CACHE:-$HOME/.cache/infra-operator}"
bin="$cache/bin/vegeta-$version"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
command -v go >/dev/null || { echo "go is required to build vegeta" >&2; exit 1; }

work="$cache/build/vegeta-$version"
mkdir -p "$work" "$cache/bin"
ldflags="-s -w -X main.Version=$version -X main.Commit=infra-operator-build -X main.Date=1970-01-01T00:00:00Z"
CGO_ENABLED=0 GOBIN="$work" GOFLAGS=-mod=mod go install -trimpath -ldflags "$ldflags" \
  "github.com/tsenart/vegeta/v12@$version" >&2
mv "$work/vegeta" "$bin.tmp"
mv "$bin.tmp" "$bin"
echo "$bin"
