#!/usr/bin/env bash
# fuzz-all.sh [DURATION]: run every Fuzz* target of the module for DURATION
# (default 30s) each, one after the other. New crashers land in the
# package's testdata/fuzz/ and then run as ordinary tests.
set -euo pipefail
t=${1:-30s}
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "== $pkg $f"
    go test -run='^$' -fuzz="^$f\$" -fuzztime="$t" "$pkg"
  done
done
