#!/usr/bin/env bash
# run.sh: the benchmarks of bench/RESULTS.md. Starts its own simulated
# shelves on loopback; results go to bench/out/. HPIAGENT_BENCH_RUNS sets
# the number of timed runs per client (default 30).
#
#   sensor sweep          TestBenchSensorSweep      -> out/sensor-sweep.md
#   discovery vs openhpid TestBenchDiscovery        -> out/discovery.md, out/openhpid-hpitree.txt
#   hot-swap latency      TestBenchHotSwapLatency   -> out/hotswap-latency.md
#                         (HPIAGENT_BENCH_HOTSWAP_ITER changes per row, default RUNS*4/3)
#
#   API (issue 4) and secure erase (issue 6): see the section at the end.
set -euo pipefail
cd "$(dirname "$0")"
HPIAGENT_BENCH=1 go test -count=1 -run 'TestBench' -v -timeout 60m . | grep -v '^=== '
echo "results: $(pwd)/out/"

# --- API and secure-erase benchmarks -------------------------------------
# Both run in the step above with every TestBench*; to run only them:
#   HPIAGENT_BENCH=1 go test -count=1 -run 'TestBench(API|Erase)$' -v -timeout 60m ./bench/
#
#   API reads over mTLS      TestBenchAPI    -> out/api.md
#       load generator bench/cmd/apiload (its own process) against
#       bench/cmd/apiserve (API, 1,000 synthetic sensors, and net/http
#       baselines) and against `hpiagent run` on the `hpiagent demo` shelf
#       and on a 1,000-sensor shelf (bench/cmd/simshelf);
#       VmRSS/VmHWM of the servers. HPIAGENT_BENCH_API_RUNS (3),
#       HPIAGENT_BENCH_API_SECONDS (5), HPIAGENT_BENCH_API_CONNS ("1,8"),
#       HPIAGENT_BENCH_API_SENSORS (1000).
#   overwrite wipe vs dd     TestBenchErase  -> out/erase.md
#       needs root (losetup; skipped otherwise) and the size free in
#       HPIAGENT_BENCH_ERASE_DIR (/var/tmp) and in /dev/shm.
#       HPIAGENT_BENCH_ERASE_RUNS (9), HPIAGENT_BENCH_ERASE_MIB (256).
