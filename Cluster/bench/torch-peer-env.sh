# Sourced by the benchmarks whose peer is PyTorch CPU (train.sh, rank.sh), from the repository
# root. Creates `.venv-bench` (gitignored) with torch on first use and sets `peer` to the
# `--peer-python` arguments (empty when torch cannot be imported). torch from PyPI is built
# against CUDA: `pip install --no-deps torch` alone does not import (it looks for libcublasLt),
# so when that fails this installs torch with its dependencies (about 5 GB of CUDA wheels; only
# the CPU is used).
#
# Also selects OpenBLAS's AVX-512 kernels where the CPU has them: OpenBLAS 0.3.21 does not know
# AMD Zen 4/5 and uses its AVX2 (Haswell) kernels there; its SkylakeX kernels are about twice as
# fast (`mosaic-bench gemm` shows it), and PyTorch's MKL uses AVX-512 by itself.
# MOSAIC_BENCH_KEEP_CORETYPE=1 keeps the caller's setting.
venv=.venv-bench
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if ! "$venv/bin/python" -c "import torch, numpy" 2>/dev/null; then
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet --no-deps torch
  "$venv/bin/python" -m pip install --quiet filelock typing-extensions sympy networkx jinja2 fsspec mpmath MarkupSafe numpy
  "$venv/bin/python" -c "import torch" 2>/dev/null || "$venv/bin/python" -m pip install --quiet torch numpy
fi
peer=()
if "$venv/bin/python" -c "import torch, numpy" 2>/dev/null; then peer=(--peer-python "$venv/bin/python")
else echo "torch could not be imported from $venv; running without the peer" >&2; fi

source Cluster/openblas-coretype.sh
if [ -z "${MOSAIC_BENCH_KEEP_CORETYPE:-}" ] && avx512_cpu; then
  echo "OPENBLAS_CORETYPE: ${OPENBLAS_CORETYPE:-auto} -> SkylakeX (AVX-512 present)"
  export OPENBLAS_CORETYPE=SkylakeX
fi
