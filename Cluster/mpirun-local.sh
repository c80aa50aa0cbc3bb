#!/usr/bin/env bash
# Runs an MPI program on this machine with the settings a single node needs:
#   Cluster/mpirun-local.sh -np 4 .build/release/mosaic doctor
# - as root, mpirun refuses to start without --allow-run-as-root;
# - more ranks than cores needs --oversubscribe;
# - several ranks on one node must not each start a BLAS thread per core
#   (OPENBLAS_NUM_THREADS=1 unless the caller set it).
# - ranks float over the cores (--bind-to none) unless MOSAIC_BIND_TO says otherwise, e.g.
#   MOSAIC_BIND_TO=core pins each rank to a core (benchmarks on a dedicated machine; with more
#   ranks than cores the binding is allowed to overload them).
# - a rank waiting for a message yields its core (mpi_yield_when_idle, which OpenMPI itself turns
#   on only when there are more ranks than cores): when other processes share the cores, a rank
#   spinning in MPI_Wait keeps a core that they then take from the rank it waits for (2 ranks beside
#   one busy process trained about 20 % faster, Cluster/bench/train-results.md).
#   OMPI_MCA_mpi_yield_when_idle=0 turns it off.
# - on a CPU with AVX-512 (F, BW, VL), OpenBLAS's SkylakeX kernels unless OPENBLAS_CORETYPE is set
#   (Cluster/openblas-coretype.sh).
set -euo pipefail
if [ "$#" -lt 1 ] || [ "$1" = "--help" ] || [ "$1" = "-h" ]; then
  echo "usage: Cluster/mpirun-local.sh [-np N] PROGRAM [ARGS...]   (default N = 2)"
  exit 0
fi
np=2
if [ "$1" = "-np" ] || [ "$1" = "-n" ]; then np="$2"; shift 2; fi
bind="${MOSAIC_BIND_TO:-none}"
if [ "$bind" != "none" ] && [ "$np" -gt "$(nproc)" ]; then bind="$bind:overload-allowed"; fi
extra=(--oversubscribe --bind-to "$bind")
if [ "$(id -u)" = "0" ]; then extra+=(--allow-run-as-root); fi
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
export OMPI_MCA_mpi_yield_when_idle="${OMPI_MCA_mpi_yield_when_idle:-1}"
# shellcheck source=openblas-coretype.sh
source "$(dirname "$0")/openblas-coretype.sh"
default_openblas_coretype
if [ -n "${OPENBLAS_CORETYPE:-}" ]; then extra+=(-x OPENBLAS_CORETYPE); fi
exec mpirun -np "$np" "${extra[@]}" -x OPENBLAS_NUM_THREADS "$@"
