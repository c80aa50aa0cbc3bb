#!/usr/bin/env bash
# Runs an MPI program on this machine with the settings a single node needs:
#   Cluster/mpirun-local.sh -np 4 .build/release/mosaic doctor
# - as root, mpirun refuses to start without --allow-run-as-root;
# - more ranks than cores needs --oversubscribe;
# - several ranks on one node must not each start a BLAS thread per core
#   (OPENBLAS_NUM_THREADS=1 unless the caller set it).
set -euo pipefail
if [ "$#" -lt 1 ] || [ "$1" = "--help" ] || [ "$1" = "-h" ]; then
  echo "usage: Cluster/mpirun-local.sh [-np N] PROGRAM [ARGS...]   (default N = 2)"
  exit 0
fi
np=2
if [ "$1" = "-np" ] || [ "$1" = "-n" ]; then np="$2"; shift 2; fi
extra=(--oversubscribe --bind-to none)
if [ "$(id -u)" = "0" ]; then extra+=(--allow-run-as-root); fi
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
exec mpirun -np "$np" "${extra[@]}" -x OPENBLAS_NUM_THREADS "$@"
