#!/usr/bin/env bash
# run.sh: the benchmarks of bench/RESULTS.md. Starts its own simulated
# shelves on loopback; results go to bench/out/. HPIAGENT_BENCH_RUNS sets
# the number of timed runs per client (default 30).
set -euo pipefail
cd "$(dirname "$0")"
HPIAGENT_BENCH=1 go test -count=1 -run 'TestBench' -v -timeout 30m . | grep -v '^=== '
echo "results: $(pwd)/out/"
