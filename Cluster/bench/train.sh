#!/usr/bin/env bash
# Benchmark of the Learning library (`mosaic bench train`), on the 2 cores of one machine:
#   1. Swift 1 rank × 1 BLAS thread, beside PyTorch CPU with 1 thread;
#   2. Swift 1 rank × 2 BLAS threads, beside PyTorch CPU with 2 threads;
#   3. Swift 2 ranks × 1 thread (data parallel) on the same global batch (strong scaling), which
#      prints the full table with 1 and 2 and the scaling ratios, plus the gradient exchange's
#      bandwidth beside raw MPI_Allreduce;
#   4. Swift 2 ranks × 1 thread with the batch per rank (weak scaling, Horovod's convention).
#
#   Cluster/bench/train.sh [extra `mosaic bench train` options, e.g. --steps 30]
#
# Creates `.venv-bench` (gitignored) with torch on first use. torch from PyPI is built against
# CUDA: `pip install --no-deps torch` alone does not import (it looks for libcublasLt), so when
# that fails this installs torch with its dependencies (about 5 GB of CUDA wheels; only the CPU
# is used).
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=.venv-bench
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if ! "$venv/bin/python" -c "import torch, numpy" 2>/dev/null; then
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet --no-deps torch
  "$venv/bin/python" -m pip install --quiet filelock typing-extensions sympy networkx jinja2 fsspec mpmath MarkupSafe numpy
  "$venv/bin/python" -c "import torch" 2>/dev/null || "$venv/bin/python" -m pip install --quiet torch numpy
fi
peer=()
if "$venv/bin/python" -c "import torch, numpy" 2>/dev/null; then peer=(--peer-python "$venv/bin/python")
else echo "torch could not be imported from $venv; running without the peer" >&2; fi

# OpenBLAS 0.3.21 does not know AMD Zen 4 and uses its AVX2 (Haswell) kernels there; on a CPU
# with AVX-512 its SkylakeX kernels are about twice as fast (`mosaic bench gemm` shows it).
# PyTorch's MKL uses AVX-512 by itself. MOSAIC_BENCH_KEEP_CORETYPE=1 keeps the caller's setting.
if [ -z "${MOSAIC_BENCH_KEEP_CORETYPE:-}" ] && grep -q avx512f /proc/cpuinfo 2>/dev/null; then
  echo "OPENBLAS_CORETYPE: ${OPENBLAS_CORETYPE:-auto} -> SkylakeX (AVX-512 present)"
  export OPENBLAS_CORETYPE=SkylakeX
fi
swift build -c release --product mosaic
eps() { sed -n "s/^$1=//p"; }
one=$(OPENBLAS_NUM_THREADS=1 .build/release/mosaic bench train --threads 1 "${peer[@]}" "$@")
echo "$one"
two=$(OPENBLAS_NUM_THREADS=2 .build/release/mosaic bench train --threads 2 "${peer[@]}" --baseline-eps "$(echo "$one" | eps SWIFT_EPS)" "$@")
echo "$two"
earlier=(--earlier "Swift, 1 rank|1 × 1|$(echo "$one" | eps SWIFT_EPS)"
         --earlier "Swift, 1 rank|1 × 2|$(echo "$two" | eps SWIFT_EPS)")
if [ "${#peer[@]}" -gt 0 ]; then
  earlier+=(--earlier "PyTorch CPU, 1 process|1 × 1|$(echo "$one" | eps PEER_EPS)"
            --earlier "PyTorch CPU, 1 process|1 × 2|$(echo "$two" | eps PEER_EPS)")
fi
Cluster/mpirun-local.sh -np 2 .build/release/mosaic bench train --threads 1 --baseline-eps "$(echo "$one" | eps SWIFT_EPS)" \
  "${earlier[@]}" "$@"
Cluster/mpirun-local.sh -np 2 .build/release/mosaic bench train --threads 1 --per-rank-batch --skip-bandwidth \
  --baseline-eps "$(echo "$one" | eps SWIFT_EPS)" "$@"
