#!/usr/bin/env bash
# Benchmark of the IVF index against faiss-cpu, side by side in one run:
#   Cluster/bench/index.sh [extra `mosaic-bench index` options, e.g. --n 200000]
# 1. creates the venv `.venv-bench` in the repository (gitignored) with faiss-cpu, h5py, numpy;
# 2. builds `mosaic` in release;
# 3. runs `mosaic-bench index --peer-python .venv-bench/bin/python`, which generates the seeded
#    data, runs Mosaic's build/search, runs Cluster/bench/index_peer.py on the same HDF5 file
#    and prints both side by side (markdown tables with ratios).
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=.venv-bench
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
fi
"$venv/bin/python" -c "import faiss, h5py, numpy" 2>/dev/null \
  || "$venv/bin/python" -m pip install --quiet faiss-cpu h5py numpy
if [ "${SKIP_BUILD:-0}" != "1" ]; then swift build -c release; fi
echo "host $(hostname), $(date -u), $(nproc) cores"
exec .build/release/mosaic-bench index --peer-python "$venv/bin/python" "$@"
