#!/usr/bin/env bash
# mosaic-bench graph beside the numpy/scipy.sparse peer (Cluster/bench/graph_peer.py).
# Uses python3 when it has numpy and scipy, otherwise creates .venv-bench and installs them.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=python3
if ! $PY -c "import numpy, scipy" 2>/dev/null; then
  [ -x .venv-bench/bin/python ] || python3 -m venv .venv-bench
  .venv-bench/bin/python -m pip install -q numpy scipy
  PY=.venv-bench/bin/python
fi
swift build -c release
.build/release/mosaic-bench graph --peer-python "$PY" "$@"
