# Sourced by the launchers (mpirun-local.sh, slurm/stage.sbatch, bench/torch-peer-env.sh).
# avx512_cpu: true when this machine's CPU has AVX-512 F, BW and VL, which OpenBLAS's SkylakeX
# kernels need. OpenBLAS 0.3.21 does not know AMD Zen 4/5 and falls back to its AVX2 (Haswell)
# kernels there, which trained the benchmark ranker 1.6× slower (Cluster/bench/train-results.md).
avx512_cpu() {
  local flags
  flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null) || return 1
  [[ " $flags " == *" avx512f "* && " $flags " == *" avx512bw "* && " $flags " == *" avx512vl "* ]]
}
# Selects the SkylakeX kernels on such a CPU unless OPENBLAS_CORETYPE is already set.
default_openblas_coretype() {
  if [ -z "${OPENBLAS_CORETYPE:-}" ] && avx512_cpu; then export OPENBLAS_CORETYPE=SkylakeX; fi
}
