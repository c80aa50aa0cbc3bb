#!/usr/bin/env bash
# The main job on a fresh machine: install what is missing, build in release mode, and run it
# on 2 ranks. For now the main job is the node check (`mosaic doctor`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash Cluster/install-deps.sh
swift build -c release --product mosaic
Cluster/run-job.sh Jobs/doctor.job
