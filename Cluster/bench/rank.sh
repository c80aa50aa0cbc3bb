#!/usr/bin/env bash
# Benchmark of the ranker (`mosaic bench rank`), on one machine:
#   1. serving latency: 1,000 candidates for one user with a 2,000-event history, one core, by the
#      serving fast path (RequestScorer) beside the batch path, for DCN-v2 + MMoE alone, + DIN,
#      + DIN + SIM hard and + DIN + SIM soft (p50/p99);
#   2. training examples/s of the full ranker (DIN + SIM hard) beside the same model in PyTorch
#      CPU (Cluster/bench/rank_peer.py), with 1 thread and then 2 threads on each side.
#
#   Cluster/bench/rank.sh [extra `mosaic bench rank` options, e.g. --requests 500]
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
# PyTorch's MKL/oneDNN uses AVX-512 by itself. MOSAIC_BENCH_KEEP_CORETYPE=1 keeps the caller's setting.
if [ -z "${MOSAIC_BENCH_KEEP_CORETYPE:-}" ] && grep -q avx512f /proc/cpuinfo 2>/dev/null; then
  echo "OPENBLAS_CORETYPE: ${OPENBLAS_CORETYPE:-auto} -> SkylakeX (AVX-512 present)"
  export OPENBLAS_CORETYPE=SkylakeX
fi
swift build -c release --product mosaic
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
OPENBLAS_NUM_THREADS=1 .build/release/mosaic bench rank --train-threads 1 "${peer[@]}" "$@"
echo
OPENBLAS_NUM_THREADS=2 .build/release/mosaic bench rank --train-threads 2 --requests 0 --search "" "${peer[@]}" "$@"
