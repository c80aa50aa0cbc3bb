#!/usr/bin/env bash
# Submits one stage spec from Jobs/ to Slurm and prints its job id:
#   Cluster/slurm/submit.sh Jobs/doctor.job
#   Cluster/slurm/submit.sh --after 123 Jobs/<next>.job     (starts only if job 123 succeeded)
# RANKS=N overrides the spec's rank count. Run from the repository root on a login node.
set -euo pipefail
cd "$(dirname "$0")/../.."
after=""
if [ "${1:-}" = "--after" ]; then after="$2"; shift 2; fi
if [ "$#" -ne 1 ] || [ ! -f "$1" ]; then
  echo "usage: Cluster/slurm/submit.sh [--after JOBID] Jobs/<stage>.job" >&2
  exit 2
fi
command -v sbatch >/dev/null || { echo "submit: sbatch not found (no Slurm here; Cluster/slurm/local-cluster.sh up starts one)" >&2; exit 1; }
override_ranks="${RANKS:-}"
# shellcheck disable=SC1090
source "$1"
args=(--parsable --job-name="mosaic-$NAME" --ntasks="${override_ranks:-$RANKS}" --time="$TIME"
      --export=ALL,MOSAIC_STAGE_SPEC="$1")
if [ -n "$after" ]; then args+=(--dependency="afterok:$after" --kill-on-invalid-dep=yes); fi
sbatch "${args[@]}" Cluster/slurm/stage.sbatch
