// Exact top-K of one row of scores (the ranker's soft search): see include/CKernels.h.
//
// Both steps are branch-free in their inner loops, because on random scores every data-dependent
// branch is a coin flip (a misprediction costs ~15 cycles, more than the work per element):
// - the threshold filter compresses the indices of passing lanes (AVX-512 `vpcompressd` in its
//   register form, then a full-width store; the memory form is slow on some cores);
// - the quickselect partitions with a branch-free Lomuto loop.

#include "CKernels.h"

#include <math.h>

#if defined(__x86_64__) || defined(__i386__)
#define MOSAIC_X86 1
#include <immintrin.h>
#endif

static inline uint32_t topk_ordered_bits(float x) {
    union { float f; uint32_t u; } v = {x};
    return (v.u & 0x80000000u) ? ~v.u : (v.u | 0x80000000u);
}

static inline uint64_t topk_key(const float *s, long q) {
    return ((uint64_t)topk_ordered_bits(s[q]) << 32) | (uint64_t)(UINT32_MAX - (uint32_t)q);
}

static long index_portable(const float *s, long from, long n, float t, int32_t *idx, long c) {
    for (long q = from; q < n; q++) {
        idx[c] = (int32_t)q;
        c += s[q] >= t;  // NaN compares false
    }
    return c;
}

#ifdef MOSAIC_X86
__attribute__((target("avx512f"))) static long index_avx512(const float *s, long n, float t, int32_t *idx) {
    __m512 tv = _mm512_set1_ps(t);
    __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512i sixteen = _mm512_set1_epi32(16);
    long c = 0, j = 0;
    for (; j + 16 <= n; j += 16) {
        __mmask16 m = _mm512_cmp_ps_mask(_mm512_loadu_ps(s + j), tv, _CMP_GE_OQ);
        _mm512_storeu_si512((void *)(idx + c), _mm512_maskz_compress_epi32(m, lane));
        c += __builtin_popcount((unsigned)m);
        lane = _mm512_add_epi32(lane, sixteen);
    }
    return index_portable(s, j, n, t, idx, c);
}

__attribute__((target("avx2"))) static long index_avx2(const float *s, long n, float t, int32_t *idx) {
    __m256 tv = _mm256_set1_ps(t);
    long c = 0, j = 0;
    for (; j + 8 <= n; j += 8) {
        unsigned bits = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(s + j), tv, _CMP_GE_OQ));
        // Branch-free: write every lane's index, advance by its bit.
        for (int l = 0; l < 8; l++) {
            idx[c] = (int32_t)(j + l);
            c += (bits >> l) & 1;
        }
    }
    return index_portable(s, j, n, t, idx, c);
}
#endif

long mosaic_select_index_at_least_level(int level, const float *s, long n, float threshold, int32_t *idx) {
    int supported = mosaic_kernel_level_supported();
    if (level > supported) level = supported;
#ifdef MOSAIC_X86
    if (level == MOSAIC_KERNEL_AVX512) return index_avx512(s, n, threshold, idx);
    if (level == MOSAIC_KERNEL_AVX2) return index_avx2(s, n, threshold, idx);
#endif
    return index_portable(s, 0, n, threshold, idx, 0);
}

long mosaic_select_index_at_least(const float *s, long n, float threshold, int32_t *idx) {
    return mosaic_select_index_at_least_level(mosaic_kernel_level(), s, n, threshold, idx);
}

void mosaic_top_keys(uint64_t *keys, long n, long k) {
    long lo = 0, hi = n;  // the k-th largest lies in [lo, hi); [0, lo) are all in the top k
    if (k <= 0 || k >= n) return;
    while (hi - lo > 1) {
        long mid = lo + (hi - lo) / 2;
        // Median of three as the pivot, moved to hi − 1.
        uint64_t a = keys[lo], b = keys[mid], c = keys[hi - 1];
        long p = (a < b) ? ((b < c) ? mid : (a < c ? hi - 1 : lo)) : ((a < c) ? lo : (b < c ? hi - 1 : mid));
        uint64_t pivot = keys[p];
        keys[p] = keys[hi - 1];
        keys[hi - 1] = pivot;
        // Branch-free Lomuto: [lo, s) > pivot, [s, i) ≤ pivot.
        long s = lo;
        for (long i = lo; i < hi - 1; i++) {
            uint64_t x = keys[i];
            long gt = x > pivot;
            keys[i] = keys[s];
            keys[s] = x;
            s += gt;
        }
        keys[hi - 1] = keys[s];
        keys[s] = pivot;  // [lo, s) > pivot = keys[s] ≥ (s, hi)
        if (k <= s) hi = s;
        else if (k == s + 1) return;
        else lo = s + 1;
    }
}

long mosaic_top_k_row(const float *s, long n, long k, float threshold, float step, int attempts, uint64_t *keys,
                      int32_t *idx, int32_t *out) {
    long c;
    int tries = 0;
    for (;;) {
        c = mosaic_select_index_at_least(s, n, threshold, idx);
        if (c >= k || threshold == -INFINITY) break;
        tries++;
        // Too few (or NaN statistics): lower the threshold; after `attempts` tries take every score.
        threshold = (tries < attempts && step > 0 && step < INFINITY && threshold == threshold) ? threshold - step
                                                                                                : -INFINITY;
    }
    if (c < k) {
        // Only possible with NaN scores (they never pass): take every index, NaNs ranked last.
        for (long q = 0; q < n; q++) idx[q] = (int32_t)q;
        c = n;
    }
    for (long q = 0; q < c; q++) {
        float v = s[idx[q]];
        keys[q] = v == v ? topk_key(s, idx[q]) : (uint64_t)(UINT32_MAX - (uint32_t)idx[q]);
    }
    mosaic_top_keys(keys, c, k);
    for (long q = 0; q < k; q++) out[q] = (int32_t)(UINT32_MAX - (uint32_t)keys[q]);
    return c;
}
