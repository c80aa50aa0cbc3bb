#!/usr/bin/env bash
# Benchmark of the Learning library (`mosaic-bench train`), on the 2 cores of one machine:
#   1. Swift 1 rank × 1 BLAS thread, beside PyTorch CPU with 1 thread;
#   2. Swift 1 rank × 2 BLAS threads, beside PyTorch CPU with 2 threads;
#   3. Swift 2 ranks × 1 thread (data parallel) on the same global batch (strong scaling), which
#      prints the full table with 1 and 2 and the scaling ratios, plus the gradient exchange's
#      bandwidth beside raw MPI_Allreduce; rounds alternate between the exchange overlapped with
#      backward (the trainer's default) and the blocking exchange after backward (A/B);
#   4. Swift 2 ranks × 1 thread with the batch per rank (weak scaling, Horovod's convention).
#
#   Cluster/bench/train.sh [extra `mosaic-bench train` options, e.g. --steps 30]
#
# MOSAIC_BIND_TO=core pins each rank to a core (Cluster/mpirun-local.sh; default: not bound, which
# did better beside other busy processes on a shared machine); waiting ranks yield their core
# (mpirun-local.sh sets mpi_yield_when_idle; OMPI_MCA_mpi_yield_when_idle=0 spins). The printed
# header says which: "rank 0 may run on CPUs …" and "waiting ranks yield|spin"; the
# "run-queue wait" line says how long ranks were runnable while another process had their core.
# Creates `.venv-bench` (gitignored) with torch on first use (Cluster/bench/torch-peer-env.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
source Cluster/bench/torch-peer-env.sh  # .venv-bench with torch, $peer, OPENBLAS_CORETYPE
swift build -c release
eps() { sed -n "s/^$1=//p"; }
one=$(OPENBLAS_NUM_THREADS=1 .build/release/mosaic-bench train --threads 1 "${peer[@]}" "$@")
echo "$one"
two=$(OPENBLAS_NUM_THREADS=2 .build/release/mosaic-bench train --threads 2 "${peer[@]}" --baseline-eps "$(echo "$one" | eps SWIFT_EPS)" "$@")
echo "$two"
earlier=(--earlier "Swift, 1 rank|1 × 1|$(echo "$one" | eps SWIFT_EPS)"
         --earlier "Swift, 1 rank|1 × 2|$(echo "$two" | eps SWIFT_EPS)")
if [ "${#peer[@]}" -gt 0 ]; then
  earlier+=(--earlier "PyTorch CPU, 1 process|1 × 1|$(echo "$one" | eps PEER_EPS)"
            --earlier "PyTorch CPU, 1 process|1 × 2|$(echo "$two" | eps PEER_EPS)")
fi
Cluster/mpirun-local.sh -np 2 .build/release/mosaic-bench train --threads 1 --baseline-eps "$(echo "$one" | eps SWIFT_EPS)" \
  --exchange both "${earlier[@]}" "$@"
Cluster/mpirun-local.sh -np 2 .build/release/mosaic-bench train --threads 1 --per-rank-batch --skip-bandwidth \
  --baseline-eps "$(echo "$one" | eps SWIFT_EPS)" "$@"
