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
HPIAGENT_BENCH=1 go test -count=1 -run 'TestBench' -v -timeout 120m . | grep -v '^=== '
echo "results: $(pwd)/out/"

# --- API and secure-erase benchmarks -------------------------------------
# Both run in the step above with every TestBench*; to run only them:
#   HPIAGENT_BENCH=1 go test -count=1 -run 'TestBench(API|Erase)$' -v -timeout 120m ./bench/
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

# --- Fencing benchmark (issue 5) -----------------------------------------
# Runs in the first step with every TestBench*; to run only it:
#   HPIAGENT_BENCH=1 go test -count=1 -run 'TestBenchFence$' -v -timeout 120m ./bench/
#
#   blade failure -> fence   TestBenchFence  -> out/fence.md
#       5 and 16 agents (cluster + fencing Machine + Coordinator each, mutual
#       TLS on their own 127.x.y.z) in one process on one embedded shelf;
#       a member (follower or leader) is killed without a goodbye; the time to the
#       fence confirmed by read-back is split into detection, decision and
#       execution. False fences are counted over the run and in a soak with
#       5% gossip packet loss. fence_ipmilan (fence-agents) vs hpiagent's
#       executors on the embedded shelf and on ipmi_sim (internal/labshelf).
#       HPIAGENT_BENCH_FENCE_ITER (20 follower failures per size),
#       HPIAGENT_BENCH_FENCE_LEADER_ITER (10 leader failures per size),
#       HPIAGENT_BENCH_FENCE_SIZES ("5,16"), HPIAGENT_BENCH_FENCE_SOAK (60 s),
#       HPIAGENT_BENCH_FENCE_PEER_RUNS (15).

# --- Hot-swap workflow benchmark (issue 6) --------------------------------
# Runs in the first step with every TestBench*; to run only it:
#   HPIAGENT_BENCH=1 go test -count=1 -run 'TestBenchHotSwapWorkflow$' -v -timeout 120m ./bench/
#
#   shelf event -> FRU in M4   TestBenchHotSwapWorkflow -> out/hotswap-workflow.md
#       3, 8 and 16 agents (cluster + hotswap Machine + Member + Coordinator
#       each, mutual TLS on their own 127.x.y.z) in one process; the leader's
#       Coordinator drives the embedded shelf (manual activation) through a
#       shelf.Monitor. Hooks that do nothing (a no-op Hook; ExecHook of
#       /bin/true), and a row with the Coordinator's PollInterval at 10 ms.
#       Reference: the Monitor alone activating on the M2 event. Split into
#       detection, start+hold, member acks and activation.
#       HPIAGENT_BENCH_HOTSWAP_WF_ITER (HPIAGENT_BENCH_RUNS, 30, insertions
#       per row), HPIAGENT_BENCH_HOTSWAP_WF_AGENTS ("3,8,16").
