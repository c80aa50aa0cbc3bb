#!/usr/bin/env bash
# The main job on a fresh machine: install what is missing, build in release mode, then on
# 2 ranks: check the node, generate the embedded default synthetic world, precompute and publish
# every user's feed, and show one user's feed.
#   Cluster/quickstart.sh            (RANKS=N and USERS=N change the defaults; OUT the folder)
set -euo pipefail
cd "$(dirname "$0")/.."
ranks="${RANKS:-2}"
users="${USERS:-2000}"
out="${OUT:-out/quickstart}"
bash Cluster/install-deps.sh
swift build -c release
RANKS="$ranks" Cluster/run-job.sh Jobs/doctor.job
rm -rf "$out/world"
Cluster/mpirun-local.sh -np "$ranks" .build/release/mosaic generate --users "$users" --out "$out/world"
rm -rf "$out/feeds"
Cluster/mpirun-local.sh -np "$ranks" .build/release/mosaic feed precompute --world "$out/world" --out "$out/feeds"
Cluster/mpirun-local.sh -np "$ranks" .build/release/mosaic feed preview --world "$out/world"
