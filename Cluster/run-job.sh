#!/usr/bin/env bash
# Runs one stage spec from Jobs/ on this machine:
#   Cluster/run-job.sh Jobs/doctor.job            (its default rank count)
#   RANKS=4 Cluster/run-job.sh Jobs/doctor.job    (override)
# MOSAIC=path/to/mosaic selects the binary (default: .build/release/mosaic).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$#" -ne 1 ] || [ ! -f "$1" ]; then
  echo "usage: Cluster/run-job.sh Jobs/<stage>.job" >&2
  exit 2
fi
override_ranks="${RANKS:-}"
# shellcheck disable=SC1090
source "$1"
ranks="${override_ranks:-$RANKS}"
mosaic="${MOSAIC:-.build/release/mosaic}"
if [ ! -x "$mosaic" ]; then
  echo "run-job: $mosaic is not built; run: swift build -c release --product mosaic" >&2
  exit 1
fi
echo "run-job: stage $NAME on $ranks rank(s): mosaic $COMMAND" >&2
# shellcheck disable=SC2086
exec Cluster/mpirun-local.sh -np "$ranks" "$mosaic" $COMMAND
