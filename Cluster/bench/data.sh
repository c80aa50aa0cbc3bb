#!/usr/bin/env bash
# Data benchmark: builds the release binary and runs `mosaic-bench data` (generation and import
# on 1 and 2 ranks, 10 M events by default) beside its peers: `wc -l` (raw read throughput of
# the same CSV) and a standard-library Python csv reader (Cluster/bench/data_peer.py, no
# packages needed, so no venv is created). Usage: Cluster/bench/data.sh [--events N] [...]
set -euo pipefail
cd "$(dirname "$0")/../.."
export OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
swift build -c release
exec .build/release/mosaic-bench data --peer-python "$(command -v python3)" "$@"
