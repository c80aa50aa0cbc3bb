#!/usr/bin/env bash
# Installs what Mosaic needs on a Debian machine, skipping what is already there:
#   OpenMPI (libopenmpi-dev, openmpi-bin), OpenBLAS (libopenblas-dev), HDF5 (libhdf5-dev),
#   pkg-config, and h5py for the system Python (python3-h5py, used by the interop test).
# Uses sudo when not root. Swift itself (6.x) must already be on the PATH.
set -euo pipefail
packages=(libopenmpi-dev openmpi-bin libopenblas-dev libhdf5-dev pkg-config python3-h5py)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all packages present (${packages[*]})"
else
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v swift >/dev/null 2>&1; then
  echo "install-deps: swift is not on the PATH; install Swift 6 (https://www.swift.org/install) and retry" >&2
  exit 1
fi
for pc in ompi-c hdf5 openblas; do
  pkg-config --exists "$pc" || { echo "install-deps: pkg-config cannot find '$pc' after install" >&2; exit 1; }
done
