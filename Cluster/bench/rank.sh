#!/usr/bin/env bash
# Benchmark of the ranker (`mosaic-bench rank`), on one machine:
#   1. serving latency: 1,000 candidates for one user with a 2,000-event history, one core, by the
#      serving fast path (RequestScorer) beside the batch path, for DCN-v2 + MMoE alone, + DIN,
#      + DIN + SIM hard and + DIN + SIM soft (p50/p99);
#   2. training examples/s of the full ranker (DIN + SIM hard) beside the same model in PyTorch
#      CPU (Cluster/bench/rank_peer.py), with 1 thread and then 2 threads on each side.
#
#   Cluster/bench/rank.sh [extra `mosaic-bench rank` options, e.g. --requests 500]
#
# Creates `.venv-bench` (gitignored) with torch on first use (Cluster/bench/torch-peer-env.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
source Cluster/bench/torch-peer-env.sh  # .venv-bench with torch, $peer, OPENBLAS_CORETYPE
swift build -c release
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
OPENBLAS_NUM_THREADS=1 .build/release/mosaic-bench rank --train-threads 1 "${peer[@]}" "$@"
echo
OPENBLAS_NUM_THREADS=2 .build/release/mosaic-bench rank --train-threads 2 --requests 0 --search "" "${peer[@]}" "$@"
