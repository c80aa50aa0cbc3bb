#!/usr/bin/env bash
# Benchmark of the Learning library: `mosaic bench train` on 1 rank (2 BLAS threads, with the
# PyTorch CPU peer at 2 threads) and on 2 ranks (1 BLAS thread each), which prints the full
# table: examples/s, scaling 2 ranks vs 1, Swift vs PyTorch, fused allreduce vs raw MPI.
#
#   Cluster/bench/train.sh [extra `mosaic bench train` options, e.g. --steps 30]
#
# Creates `.venv-bench` (gitignored) with torch on first use. torch from PyPI is built against
# CUDA: `pip install --no-deps torch` alone does not import (it looks for libcublasLt), so when
# that fails this installs torch with its dependencies (about 5 GB of CUDA wheels; CPU is used).
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=.venv-bench
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet --no-deps torch
  "$venv/bin/pip" install --quiet filelock typing-extensions sympy networkx jinja2 fsspec mpmath MarkupSafe numpy
  "$venv/bin/python" -c "import torch" 2>/dev/null || "$venv/bin/pip" install --quiet torch numpy
fi
peer=()
if "$venv/bin/python" -c "import torch, numpy" 2>/dev/null; then peer=(--peer-python "$venv/bin/python");
else echo "torch could not be imported from $venv; running without the peer" >&2; fi
# OpenBLAS 0.3.21 does not know AMD Zen 4 and falls back to its AVX2 (Haswell) kernels; on a CPU
# with AVX-512 its SkylakeX kernels are about twice as fast (see `mosaic bench gemm`).
if [ -z "${OPENBLAS_CORETYPE:-}" ] && grep -q avx512f /proc/cpuinfo 2>/dev/null; then export OPENBLAS_CORETYPE=SkylakeX; fi
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-auto}"
swift build -c release --product mosaic
out=$(OPENBLAS_NUM_THREADS=2 .build/release/mosaic bench train --threads 2 "${peer[@]}" "$@")
echo "$out"
one=$(echo "$out" | sed -n 's/^SWIFT_EPS=//p')
peer_eps=$(echo "$out" | sed -n 's/^PEER_EPS=//p')
extra=(--one-rank-eps "$one")
[ -n "$peer_eps" ] && extra+=(--peer-eps "$peer_eps")
Cluster/mpirun-local.sh -np 2 .build/release/mosaic bench train --threads 1 "${extra[@]}" "$@"
