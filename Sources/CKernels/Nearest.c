// Nearest-centroid search fused with its argmin: see include/CKernels.h.
//
// x . c_j for 16 (AVX2: 2 x 8 lanes) or 32 (AVX-512: 2 x 16 lanes) centroids at a time is
// accumulated in registers for a tile of rows, then turned into v_j = bias_j + alpha * (x . c_j)
// and folded into a per-lane running minimum (value and index). Nothing (n, k)-sized is written
// to memory, unlike sgemm followed by an argmin pass.

#include "CKernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define MOSAIC_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

#define W 16

long mosaic_packed_size(long k, long d) { return ((k + W - 1) / W) * W * d; }

void mosaic_pack_panels(const float *c, long k, long d, float *out) {
    long np = (k + W - 1) / W;
    for (long p = 0; p < np; p++) {
        float *panel = out + p * d * W;
        for (long t = 0; t < d; t++) {
            for (long l = 0; l < W; l++) {
                long j = p * W + l;
                panel[t * W + l] = j < k ? c[j * d + t] : 0.0f;
            }
        }
    }
}

// A row whose every value was NaN or +inf: centroid 0 and its value.
static void fallback_first(const float *xi, long d, const float *packed, const float *bias, float alpha,
                           int64_t *label, float *value) {
    float acc = 0;
    for (long t = 0; t < d; t++) acc += xi[t] * packed[t * W];
    *label = 0;
    *value = bias[0] + alpha * acc;
}

// Lane minima (value, index; index -1 = never set) to the row minimum, ties to the smaller index.
static void reduce_lanes(const float *vv, const int32_t *ii, int lanes, const float *xi, long d,
                         const float *packed, const float *bias, float alpha, int64_t *label, float *value) {
    float best = INFINITY;
    int32_t bj = -1;
    for (int l = 0; l < lanes; l++) {
        if (ii[l] < 0) continue;
        if (vv[l] < best || (vv[l] == best && ii[l] < bj)) {
            best = vv[l];
            bj = ii[l];
        }
    }
    if (bj < 0) {
        fallback_first(xi, d, packed, bias, alpha, label, value);
    } else {
        *label = bj;
        *value = best;
    }
}

static void argmin_portable(const float *x, long n, long d, long ldx, const float *packed, const float *bias,
                            long k, float alpha, int64_t *labels, float *values) {
    long np = (k + W - 1) / W;
    for (long i = 0; i < n; i++) {
        const float *xi = x + i * ldx;
        float best = INFINITY;
        long bj = -1;
        for (long p = 0; p < np; p++) {
            const float *pk = packed + p * d * W;
            float acc[W];
            for (int l = 0; l < W; l++) acc[l] = 0;
            for (long t = 0; t < d; t++) {
                float xv = xi[t];
                for (int l = 0; l < W; l++) acc[l] += xv * pk[t * W + l];
            }
            for (int l = 0; l < W; l++) {
                float v = bias[p * W + l] + alpha * acc[l];
                if (v < best) {
                    best = v;
                    bj = p * W + l;
                }
            }
        }
        if (bj < 0) {
            fallback_first(xi, d, packed, bias, alpha, &labels[i], &values[i]);
        } else {
            labels[i] = bj;
            values[i] = best;
        }
    }
}

#ifdef MOSAIC_X86

// MARK: - AVX2 + FMA: tiles of R rows x 16 centroids (two 8-lane halves).

#define R2 4

__attribute__((target("avx2,fma"), always_inline)) static inline void
tile_avx2(const float *x, long ldx, long d, const float *packed, const float *bias, long np, float alpha,
          const int R, int64_t *labels, float *values) {
    __m256 bestV[R2];
    __m256i bestI[R2];
    for (int r = 0; r < R; r++) {
        bestV[r] = _mm256_set1_ps(INFINITY);
        bestI[r] = _mm256_set1_epi32(-1);
    }
    const __m256 va = _mm256_set1_ps(alpha);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (long p = 0; p < np; p++) {
        const float *pk = packed + p * d * W;
        __m256 a0[R2], a1[R2];
        for (int r = 0; r < R; r++) {
            a0[r] = _mm256_setzero_ps();
            a1[r] = _mm256_setzero_ps();
        }
        for (long t = 0; t < d; t++) {
            __m256 c0 = _mm256_loadu_ps(pk + t * W), c1 = _mm256_loadu_ps(pk + t * W + 8);
            for (int r = 0; r < R; r++) {
                __m256 xv = _mm256_broadcast_ss(x + r * ldx + t);
                a0[r] = _mm256_fmadd_ps(xv, c0, a0[r]);
                a1[r] = _mm256_fmadd_ps(xv, c1, a1[r]);
            }
        }
        __m256 b0 = _mm256_loadu_ps(bias + p * W), b1 = _mm256_loadu_ps(bias + p * W + 8);
        __m256i i0 = _mm256_add_epi32(lane, _mm256_set1_epi32((int)(p * W)));
        __m256i i1 = _mm256_add_epi32(i0, _mm256_set1_epi32(8));
        for (int r = 0; r < R; r++) {
            __m256 v = _mm256_fmadd_ps(a0[r], va, b0);
            __m256 m = _mm256_cmp_ps(v, bestV[r], _CMP_LT_OQ);
            bestV[r] = _mm256_blendv_ps(bestV[r], v, m);
            bestI[r] = _mm256_castps_si256(
                _mm256_blendv_ps(_mm256_castsi256_ps(bestI[r]), _mm256_castsi256_ps(i0), m));
            v = _mm256_fmadd_ps(a1[r], va, b1);
            m = _mm256_cmp_ps(v, bestV[r], _CMP_LT_OQ);
            bestV[r] = _mm256_blendv_ps(bestV[r], v, m);
            bestI[r] = _mm256_castps_si256(
                _mm256_blendv_ps(_mm256_castsi256_ps(bestI[r]), _mm256_castsi256_ps(i1), m));
        }
    }
    for (int r = 0; r < R; r++) {
        float vv[8];
        int32_t ii[8];
        _mm256_storeu_ps(vv, bestV[r]);
        _mm256_storeu_si256((__m256i *)ii, bestI[r]);
        reduce_lanes(vv, ii, 8, x + r * ldx, d, packed, bias, alpha, &labels[r], &values[r]);
    }
}

__attribute__((target("avx2,fma"))) static void
argmin_avx2(const float *x, long n, long d, long ldx, const float *packed, const float *bias, long k, float alpha,
            int64_t *labels, float *values) {
    long np = (k + W - 1) / W;
    long i = 0;
    for (; i + R2 <= n; i += R2)
        tile_avx2(x + i * ldx, ldx, d, packed, bias, np, alpha, R2, labels + i, values + i);
    for (; i < n; i++) tile_avx2(x + i * ldx, ldx, d, packed, bias, np, alpha, 1, labels + i, values + i);
}

// MARK: - AVX-512F: tiles of R rows x 32 centroids (two panels of 16 lanes).

#define R5 8

__attribute__((target("avx512f"), always_inline)) static inline void
tile_avx512(const float *x, long ldx, long d, const float *packed, const float *bias, long np, float alpha,
            const int R, int64_t *labels, float *values) {
    __m512 bestV[R5];
    __m512i bestI[R5];
    for (int r = 0; r < R; r++) {
        bestV[r] = _mm512_set1_ps(INFINITY);
        bestI[r] = _mm512_set1_epi32(-1);
    }
    const __m512 va = _mm512_set1_ps(alpha);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    long p = 0;
    for (; p + 2 <= np; p += 2) {
        const float *p0 = packed + p * d * W, *p1 = p0 + d * W;
        __m512 a0[R5], a1[R5];
        for (int r = 0; r < R; r++) {
            a0[r] = _mm512_setzero_ps();
            a1[r] = _mm512_setzero_ps();
        }
        for (long t = 0; t < d; t++) {
            __m512 c0 = _mm512_loadu_ps(p0 + t * W), c1 = _mm512_loadu_ps(p1 + t * W);
            for (int r = 0; r < R; r++) {
                __m512 xv = _mm512_set1_ps(x[r * ldx + t]);
                a0[r] = _mm512_fmadd_ps(xv, c0, a0[r]);
                a1[r] = _mm512_fmadd_ps(xv, c1, a1[r]);
            }
        }
        __m512 b0 = _mm512_loadu_ps(bias + p * W), b1 = _mm512_loadu_ps(bias + p * W + W);
        __m512i i0 = _mm512_add_epi32(lane, _mm512_set1_epi32((int)(p * W)));
        __m512i i1 = _mm512_add_epi32(i0, _mm512_set1_epi32(W));
        for (int r = 0; r < R; r++) {
            __m512 v = _mm512_fmadd_ps(a0[r], va, b0);
            __mmask16 m = _mm512_cmp_ps_mask(v, bestV[r], _CMP_LT_OQ);
            bestV[r] = _mm512_mask_mov_ps(bestV[r], m, v);
            bestI[r] = _mm512_mask_mov_epi32(bestI[r], m, i0);
            v = _mm512_fmadd_ps(a1[r], va, b1);
            m = _mm512_cmp_ps_mask(v, bestV[r], _CMP_LT_OQ);
            bestV[r] = _mm512_mask_mov_ps(bestV[r], m, v);
            bestI[r] = _mm512_mask_mov_epi32(bestI[r], m, i1);
        }
    }
    if (p < np) {  // an odd last panel
        const float *p0 = packed + p * d * W;
        __m512 a0[R5];
        for (int r = 0; r < R; r++) a0[r] = _mm512_setzero_ps();
        for (long t = 0; t < d; t++) {
            __m512 c0 = _mm512_loadu_ps(p0 + t * W);
            for (int r = 0; r < R; r++) a0[r] = _mm512_fmadd_ps(_mm512_set1_ps(x[r * ldx + t]), c0, a0[r]);
        }
        __m512 b0 = _mm512_loadu_ps(bias + p * W);
        __m512i i0 = _mm512_add_epi32(lane, _mm512_set1_epi32((int)(p * W)));
        for (int r = 0; r < R; r++) {
            __m512 v = _mm512_fmadd_ps(a0[r], va, b0);
            __mmask16 m = _mm512_cmp_ps_mask(v, bestV[r], _CMP_LT_OQ);
            bestV[r] = _mm512_mask_mov_ps(bestV[r], m, v);
            bestI[r] = _mm512_mask_mov_epi32(bestI[r], m, i0);
        }
    }
    for (int r = 0; r < R; r++) {
        float vv[16];
        int32_t ii[16];
        _mm512_storeu_ps(vv, bestV[r]);
        _mm512_storeu_si512(ii, bestI[r]);
        reduce_lanes(vv, ii, 16, x + r * ldx, d, packed, bias, alpha, &labels[r], &values[r]);
    }
}

__attribute__((target("avx512f"))) static void
argmin_avx512(const float *x, long n, long d, long ldx, const float *packed, const float *bias, long k,
              float alpha, int64_t *labels, float *values) {
    long np = (k + W - 1) / W;
    long i = 0;
    for (; i + R5 <= n; i += R5)
        tile_avx512(x + i * ldx, ldx, d, packed, bias, np, alpha, R5, labels + i, values + i);
    for (; i < n; i++) tile_avx512(x + i * ldx, ldx, d, packed, bias, np, alpha, 1, labels + i, values + i);
}

// MARK: - AVX-512F, small d (<= 8, PQ sub-vectors): rows against all centroids.
//
// With few dimensions the tile kernel is dominated by its per-panel compare-and-blend and by
// the scalar reduction of its lanes. Here R rows at a time keep their x values broadcast in
// registers (d is a compile-time constant per case), keep a per-lane (value, index) minimum,
// and reduce the lanes without branches: the minimum value, then the smallest index among the
// lanes holding it. v is computed exactly as in the other kernels, so labels and values agree.

#define RS 4

__attribute__((target("avx512f"), always_inline)) static inline void
small_rows_avx512(const float *x, long ldx, const int D, const float *packed, const float *bias, long np,
                  float alpha, const int R, int64_t *labels, float *values) {
    __m512 xb[RS][8];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < D; t++) xb[r][t] = _mm512_set1_ps(x[r * ldx + t]);
    __m512 bestV[RS];
    __m512i bestI[RS];
    for (int r = 0; r < R; r++) {
        bestV[r] = _mm512_set1_ps(INFINITY);
        bestI[r] = _mm512_set1_epi32(-1);
    }
    const __m512 va = _mm512_set1_ps(alpha);
    __m512i idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i step = _mm512_set1_epi32(W);
    for (long p = 0; p < np; p++) {
        const float *pk = packed + p * D * W;
        __m512 acc[RS];
        for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
        for (int t = 0; t < D; t++) {
            __m512 c = _mm512_loadu_ps(pk + t * W);
            for (int r = 0; r < R; r++) acc[r] = _mm512_fmadd_ps(xb[r][t], c, acc[r]);
        }
        __m512 b = _mm512_loadu_ps(bias + p * W);
        for (int r = 0; r < R; r++) {
            __m512 v = _mm512_fmadd_ps(acc[r], va, b);
            __mmask16 m = _mm512_cmp_ps_mask(v, bestV[r], _CMP_LT_OQ);
            bestV[r] = _mm512_mask_mov_ps(bestV[r], m, v);
            bestI[r] = _mm512_mask_mov_epi32(bestI[r], m, idx);
        }
        idx = _mm512_add_epi32(idx, step);
    }
    for (int r = 0; r < R; r++) {
        float best = _mm512_reduce_min_ps(bestV[r]);
        if (!(best < INFINITY)) {
            fallback_first(x + r * ldx, D, packed, bias, alpha, &labels[r], &values[r]);
            continue;
        }
        __mmask16 at = _mm512_cmp_ps_mask(bestV[r], _mm512_set1_ps(best), _CMP_EQ_OQ);
        labels[r] = _mm512_mask_reduce_min_epi32(at, bestI[r]);
        values[r] = best;
    }
}

#define SMALL_CASE(D)                                                                                        \
    case D:                                                                                                  \
        for (; i + RS <= n; i += RS)                                                                         \
            small_rows_avx512(x + i * ldx, ldx, D, packed, bias, np, alpha, RS, labels + i, values + i);      \
        for (; i < n; i++)                                                                                   \
            small_rows_avx512(x + i * ldx, ldx, D, packed, bias, np, alpha, 1, labels + i, values + i);       \
        break;

__attribute__((target("avx512f"))) static int
argmin_small_avx512(const float *x, long n, long d, long ldx, const float *packed, const float *bias, long k,
                    float alpha, int64_t *labels, float *values) {
    long np = (k + W - 1) / W;
    long i = 0;
    switch (d) {
        SMALL_CASE(1)
        SMALL_CASE(2)
        SMALL_CASE(3)
        SMALL_CASE(4)
        SMALL_CASE(5)
        SMALL_CASE(6)
        SMALL_CASE(7)
        SMALL_CASE(8)
        default:
            return 0;
    }
    return 1;
}

// MARK: - Distances from one vector to contiguous rows (IVF-Flat list scans).

__attribute__((target("avx512f"), always_inline)) static inline __m512
row_acc_avx512(const int L2, const float *q, const float *xj, long full, __mmask16 tail, __m512 a) {
    for (long c = 0; c < full; c++) {
        __m512 qv = _mm512_loadu_ps(q + c * 16), v = _mm512_loadu_ps(xj + c * 16);
        if (L2) {
            v = _mm512_sub_ps(v, qv);
            a = _mm512_fmadd_ps(v, v, a);
        } else {
            a = _mm512_fmadd_ps(v, qv, a);
        }
    }
    if (tail) {
        __m512 qv = _mm512_maskz_loadu_ps(tail, q + full * 16), v = _mm512_maskz_loadu_ps(tail, xj + full * 16);
        if (L2) {
            v = _mm512_sub_ps(v, qv);
            a = _mm512_fmadd_ps(v, v, a);
        } else {
            a = _mm512_fmadd_ps(v, qv, a);
        }
    }
    return a;
}

__attribute__((target("avx512f"), always_inline)) static inline void
rows_avx512_impl(const int L2, const float *q, const float *x, long n, long d, float *out) {
    const long full = d / 16;
    const __mmask16 tail = (__mmask16)((1u << (d % 16)) - 1);
    for (long j = 0; j < n; j++) {
        __m512 a = row_acc_avx512(L2, q, x + j * d, full, tail, _mm512_setzero_ps());
        float sum = _mm512_reduce_add_ps(a);
        out[j] = L2 ? sum : -sum;
    }
}

__attribute__((target("avx512f"))) static void rows_avx512(int l2, const float *q, const float *x, long n, long d,
                                                           float *out) {
    if (l2)
        rows_avx512_impl(1, q, x, n, d, out);
    else
        rows_avx512_impl(0, q, x, n, d, out);
}

__attribute__((target("avx2,fma"), always_inline)) static inline void
rows_avx2_impl(const int L2, const float *q, const float *x, long n, long d, float *out) {
    const long full = d / 8;
    for (long j = 0; j < n; j++) {
        const float *xj = x + j * d;
        __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps();
        long c = 0;
        for (; c + 2 <= full; c += 2) {
            __m256 q0 = _mm256_loadu_ps(q + c * 8), q1 = _mm256_loadu_ps(q + c * 8 + 8);
            __m256 v0 = _mm256_loadu_ps(xj + c * 8), v1 = _mm256_loadu_ps(xj + c * 8 + 8);
            if (L2) {
                v0 = _mm256_sub_ps(v0, q0);
                v1 = _mm256_sub_ps(v1, q1);
                a = _mm256_fmadd_ps(v0, v0, a);
                b = _mm256_fmadd_ps(v1, v1, b);
            } else {
                a = _mm256_fmadd_ps(v0, q0, a);
                b = _mm256_fmadd_ps(v1, q1, b);
            }
        }
        for (; c < full; c++) {
            __m256 q0 = _mm256_loadu_ps(q + c * 8), v0 = _mm256_loadu_ps(xj + c * 8);
            if (L2) {
                v0 = _mm256_sub_ps(v0, q0);
                a = _mm256_fmadd_ps(v0, v0, a);
            } else {
                a = _mm256_fmadd_ps(v0, q0, a);
            }
        }
        a = _mm256_add_ps(a, b);
        __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
        h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        h = _mm_add_ss(h, _mm_movehdup_ps(h));
        float sum = _mm_cvtss_f32(h);
        for (long t = full * 8; t < d; t++) sum += L2 ? (xj[t] - q[t]) * (xj[t] - q[t]) : xj[t] * q[t];
        out[j] = L2 ? sum : -sum;
    }
}

__attribute__((target("avx2,fma"))) static void rows_avx2(int l2, const float *q, const float *x, long n, long d,
                                                          float *out) {
    if (l2)
        rows_avx2_impl(1, q, x, n, d, out);
    else
        rows_avx2_impl(0, q, x, n, d, out);
}

static int detect_level(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return MOSAIC_KERNEL_PORTABLE;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1;
    if (!osxsave || !avx) return MOSAIC_KERNEL_PORTABLE;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    unsigned long long xcr0 = ((unsigned long long)hi << 32) | lo;
    if ((xcr0 & 0x6) != 0x6) return MOSAIC_KERNEL_PORTABLE;  // XMM and YMM state
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return MOSAIC_KERNEL_PORTABLE;
    int avx2 = (b >> 5) & 1, avx512f = (b >> 16) & 1;
    if (!avx2 || !fma) return MOSAIC_KERNEL_PORTABLE;
    if (avx512f && (xcr0 & 0xE6) == 0xE6) return MOSAIC_KERNEL_AVX512;  // + opmask, ZMM state
    return MOSAIC_KERNEL_AVX2;
}

#else
static int detect_level(void) { return MOSAIC_KERNEL_PORTABLE; }
#endif

static int supported_level = -1, chosen_level = -1;

int mosaic_kernel_level_supported(void) {
    int s = __atomic_load_n(&supported_level, __ATOMIC_RELAXED);
    if (s < 0) {
        s = detect_level();
        __atomic_store_n(&supported_level, s, __ATOMIC_RELAXED);
    }
    return s;
}

int mosaic_kernel_level(void) {
    int level = __atomic_load_n(&chosen_level, __ATOMIC_RELAXED);
    if (level < 0) {
        level = mosaic_kernel_level_supported();
        const char *env = getenv("MOSAIC_KERNELS");
        if (env != NULL) {
            int cap = strcmp(env, "portable") == 0 ? MOSAIC_KERNEL_PORTABLE
                      : strcmp(env, "avx2") == 0   ? MOSAIC_KERNEL_AVX2
                                                   : MOSAIC_KERNEL_AVX512;
            if (cap < level) level = cap;
        }
        __atomic_store_n(&chosen_level, level, __ATOMIC_RELAXED);
    }
    return level;
}

int mosaic_argmin_packed_level(int level, const float *x, long n, long d, long ldx, const float *packed,
                               const float *bias, long k, float alpha, int64_t *labels, float *values) {
    int supported = mosaic_kernel_level_supported();
    if (level > supported) level = supported;
    if (n <= 0 || k <= 0) return level;
#ifdef MOSAIC_X86
    if (level == MOSAIC_KERNEL_AVX512) {
        if (d <= 8 && argmin_small_avx512(x, n, d, ldx, packed, bias, k, alpha, labels, values)) return level;
        argmin_avx512(x, n, d, ldx, packed, bias, k, alpha, labels, values);
        return level;
    }
    if (level == MOSAIC_KERNEL_AVX2) {
        argmin_avx2(x, n, d, ldx, packed, bias, k, alpha, labels, values);
        return level;
    }
#endif
    argmin_portable(x, n, d, ldx, packed, bias, k, alpha, labels, values);
    return MOSAIC_KERNEL_PORTABLE;
}

void mosaic_argmin_packed(const float *x, long n, long d, long ldx, const float *packed, const float *bias,
                          long k, float alpha, int64_t *labels, float *values) {
    mosaic_argmin_packed_level(mosaic_kernel_level(), x, n, d, ldx, packed, bias, k, alpha, labels, values);
}

static void rows_portable(int l2, const float *q, const float *x, long n, long d, float *out) {
    for (long j = 0; j < n; j++) {
        const float *xj = x + j * d;
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        long t = 0;
        for (; t + 8 <= d; t += 8)
            for (int l = 0; l < 8; l++) acc[l] += l2 ? (xj[t + l] - q[t + l]) * (xj[t + l] - q[t + l]) : xj[t + l] * q[t + l];
        float sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        for (; t < d; t++) sum += l2 ? (xj[t] - q[t]) * (xj[t] - q[t]) : xj[t] * q[t];
        out[j] = l2 ? sum : -sum;
    }
}

int mosaic_distances_to_rows_level(int level, int l2, const float *q, const float *x, long n, long d, float *out) {
    int supported = mosaic_kernel_level_supported();
    if (level > supported) level = supported;
    if (n <= 0) return level;
#ifdef MOSAIC_X86
    if (level == MOSAIC_KERNEL_AVX512) {
        rows_avx512(l2, q, x, n, d, out);
        return level;
    }
    if (level == MOSAIC_KERNEL_AVX2) {
        rows_avx2(l2, q, x, n, d, out);
        return level;
    }
#endif
    rows_portable(l2, q, x, n, d, out);
    return MOSAIC_KERNEL_PORTABLE;
}

void mosaic_distances_to_rows(int l2, const float *q, const float *x, long n, long d, float *out) {
    mosaic_distances_to_rows_level(mosaic_kernel_level(), l2, q, x, n, d, out);
}
