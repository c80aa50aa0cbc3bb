#!/usr/bin/env bash
# Benchmark of the Learning library: `mosaic bench train` on 1 and 2 ranks, beside the same
# DCN-v2 + MMoE architecture in PyTorch CPU (Cluster/bench/train_peer.py) with the same thread
# count. Creates `.venv-bench` (gitignored) with torch on first use.
#
#   Cluster/bench/train.sh [extra `mosaic bench train` options, e.g. --steps 30]
#
# torch from PyPI depends on multi-GB CUDA wheels; this installs the torch wheel with
# --no-deps plus its small pure-python dependencies, which is enough for CPU use.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=.venv-bench
if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv"; fi
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet --no-deps torch
  "$venv/bin/pip" install --quiet filelock typing-extensions sympy networkx jinja2 fsspec mpmath MarkupSafe numpy
fi
"$venv/bin/python" -c "import torch; print('peer: torch', torch.__version__, 'threads', torch.get_num_threads())" || {
  echo "torch could not be imported from $venv; running without the peer" >&2; peer=(); }
peer=(--peer-python "$venv/bin/python")
swift build -c release --product mosaic
# 1 rank with 2 BLAS threads vs 2 ranks with 1 thread each: the same 2 cores either way.
OPENBLAS_NUM_THREADS=2 .build/release/mosaic bench train --ranks-label 1 --threads 2 "${peer[@]}" "$@"
Cluster/mpirun-local.sh -np 2 .build/release/mosaic bench train --ranks-label 2 --threads 1 "${peer[@]}" "$@"
