#!/usr/bin/env bash
# The test command: builds once, then runs every unit test and the multi-rank tests (which
# launch mpirun -np 1, 2 and 4 on the built `mosaic`). Long benchmarks are not run here.
# Tests that need ../shared/data skip, saying so, when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
# As root, mpirun needs these (the tests also pass --allow-run-as-root).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
swift build --build-tests
swift test --skip-build "$@"
