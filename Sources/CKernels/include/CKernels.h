#ifndef MOSAIC_CKERNELS_H
#define MOSAIC_CKERNELS_H

// SIMD kernels, used by:
//   Index    — nearest-centroid search fused with its argmin, distances to rows, threshold selects;
//   Ranking  — top-k selection of a score row (SIM soft search), attention over the selected
//              events and row softmax (the serving fast path);
//   Graph    — the walker's prefetch of node-table lines.
// No Swift module sits below it; it depends on nothing but libc.
//
// Each kernel has a portable C version and AVX2+FMA / AVX-512 versions compiled per function
// with `__attribute__((target(...)))`; the best level the CPU (and OS) supports is chosen at
// run time, so the package needs no special compiler flags.
//
// Glossary: n = rows of x, d = dimension, k = centroids, W = 16 centroids per packed panel.

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Kernel levels: 0 portable C, 1 AVX2 + FMA, 2 AVX-512F.
#define MOSAIC_KERNEL_PORTABLE 0
#define MOSAIC_KERNEL_AVX2 1
#define MOSAIC_KERNEL_AVX512 2

/// The best level this CPU and OS support (cpuid + xgetbv), capped by the environment variable
/// MOSAIC_KERNELS=portable|avx2|avx512 when set. Computed once.
int mosaic_kernel_level(void);

/// The highest level the hardware supports, ignoring MOSAIC_KERNELS.
int mosaic_kernel_level_supported(void);

/// Floats needed by `mosaic_pack_panels` for k centroids of dimension d: ceil(k / 16) * 16 * d.
long mosaic_packed_size(long k, long d);

/// Packs centroids c, (k, d) row-major, into panels of 16 centroids: panel p is (d, 16)
/// row-major (element t of centroid 16p + l at out[(p * d + t) * 16 + l]); missing centroids
/// of the last panel are zeros. `out` holds `mosaic_packed_size(k, d)` floats.
void mosaic_pack_panels(const float *c, long k, long d, float *out);

/// For each of n rows x_i (dimension d, leading dimension ldx), the centroid j < k that
/// minimises v_j = bias[j] + alpha * (x_i . c_j), with `packed` from `mosaic_pack_panels` and
/// `bias` of ceil(k / 16) * 16 entries (use +INFINITY for the padding entries).
/// L2: bias = squared centroid norms, alpha = -2 (v + |x|^2 is the squared distance);
/// inner product: bias = 0, alpha = -1.
///
/// Writes labels[i] = j and values[i] = v_j. Ties go to the smaller j. NaN values are never
/// chosen; a row whose every v_j is NaN or +inf gets j = 0 (and v_0).
/// x . c_j is summed over t = 0 ..< d in order with fused multiply-adds at the AVX2 and
/// AVX-512 levels (which therefore agree bit for bit); the portable level uses a separate
/// multiply and add.
void mosaic_argmin_packed(const float *x, long n, long d, long ldx, const float *packed, const float *bias,
                          long k, float alpha, int64_t *labels, float *values);

/// `mosaic_argmin_packed` at an explicit level (capped at what the hardware supports); for
/// tests. Returns the level used.
int mosaic_argmin_packed_level(int level, const float *x, long n, long d, long ldx, const float *packed,
                               const float *bias, long k, float alpha, int64_t *labels, float *values);

/// Distances from one vector q (dimension d) to n contiguous rows x (n, d): out[j] = |q - x_j|^2
/// (l2 != 0) or -(q . x_j) (l2 == 0). Summation order depends on the level (results agree to
/// float rounding, not bit for bit, across levels).
void mosaic_distances_to_rows(int l2, const float *q, const float *x, long n, long d, float *out);

/// `mosaic_distances_to_rows` at an explicit level (capped at what the hardware supports); for
/// tests. Returns the level used.
int mosaic_distances_to_rows_level(int level, int l2, const float *q, const float *x, long n, long d, float *out);

/// Threshold filter for exact top-K, indices only: writes, in index order, every q < n with
/// s[q] ≥ threshold (NaN never passes) to idx and returns their number. Branch-free (AVX-512
/// compress, AVX2/portable conditional advance). `idx` must hold n + 16 values.
long mosaic_select_index_at_least(const float *s, long n, float threshold, int32_t *idx);

/// `mosaic_select_index_at_least` at a given level (capped at what the CPU supports; for tests).
long mosaic_select_index_at_least_level(int level, const float *s, long n, float threshold, int32_t *idx);

/// Rearranges n distinct keys so that keys[0 ..< k] are the k largest (in no particular order):
/// quickselect with a median-of-three pivot and a branch-free partition. No-op when k ≥ n.
void mosaic_top_keys(uint64_t *keys, long n, long k);

/// Exact top-k (k ≤ n) of the row s (n scores): larger score first, ties to the smaller index
/// (`TopKHeap`'s rule). Survivors of `threshold` are taken (lowered by `step` up to `attempts`
/// times until there are ≥ k, then −∞: exact for any threshold, only slower), keyed by
/// (ordered score bits, UINT32_MAX − index) and quickselected; writes their indices to
/// out[0 ..< k] (any order). NaN scores never pass a threshold and rank below every number.
/// `keys` holds n values, `idx` n + 16. Returns the number of survivors of the last threshold.
long mosaic_top_k_row(const float *s, long n, long k, float threshold, float step, int attempts, uint64_t *keys,
                      int32_t *idx, int32_t *out);

/// Multi-head target attention of n queries, each over its own selected events (the ESU):
/// for row i and head h (width e), with events j_s = idx[i·k + s], s < count[i]:
///   a_s = softmax_s(scale · q[i, h] · keys[j_s, h]),  context[i, h] = Σ_s a_s · values[j_s, h],
/// where x[r, h] means the e floats at x + r·ld + h·e (q: ldq; keys and values: ldkv). Writes
/// context rows (heads·e floats each, leading dimension ldc; zero when count[i] = 0).
/// `weights` holds k + 16 floats of scratch. Summation order differs between levels (results
/// agree to float rounding).
void mosaic_attend_selected(const float *q, long ldq, const float *keys, const float *values, long ldkv,
                            const int32_t *idx, const int32_t *count, long n, long k, long heads, long e, float scale,
                            float *context, long ldc, float *weights);

/// `mosaic_attend_selected` at a given level (capped at what the CPU supports; AVX2 runs the
/// portable code). Returns the level used.
int mosaic_attend_selected_level(int level, const float *q, long ldq, const float *keys, const float *values,
                                 long ldkv, const int32_t *idx, const int32_t *count, long n, long k, long heads,
                                 long e, float scale, float *context, long ldc, float *weights);

/// Softmax of each of `rows` rows of `cols` values (leading dimension ld), in place, max
/// subtracted: z ← exp(z − max) / Σ exp(z − max). The AVX-512 level uses a 16-lane polynomial
/// exp (about 1 ulp), the portable level expf.
void mosaic_softmax_rows(float *z, long rows, long cols, long ld);

/// `mosaic_softmax_rows` at a given level (capped at what the CPU supports). Returns the level used.
int mosaic_softmax_rows_level(int level, float *z, long rows, long cols, long ld);

/// A software prefetch of the cache line at p into all cache levels (for gathers of table rows
/// at indices known ahead; Swift has no prefetch of its own). Inlined into the caller.
static inline void mosaic_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

#ifdef __cplusplus
}
#endif

#endif
