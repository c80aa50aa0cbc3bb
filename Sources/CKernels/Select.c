// Threshold selection for exact top-K: see include/CKernels.h.
//
// One compare per 8 (AVX2) or 16 (AVX-512) scores gives a bit mask (movemask / opmask); only
// the set bits are visited. Swift's SIMD types compile to SSE2 on a generic x86-64 target, where
// building that mask takes a chain of shuffles — the reason this lives in C.

#include "CKernels.h"

#if defined(__x86_64__) || defined(__i386__)
#define MOSAIC_X86 1
#include <immintrin.h>
#endif

/// A float's bits mapped so that unsigned order is float order (NaN above +inf).
static inline uint32_t ordered_bits(float x) {
    union { float f; uint32_t u; } v = {x};
    return (v.u & 0x80000000u) ? ~v.u : (v.u | 0x80000000u);
}

static inline uint64_t make_key(const float *s, long q) {
    return ((uint64_t)ordered_bits(s[q]) << 32) | (uint64_t)(UINT32_MAX - (uint32_t)q);
}

static long select_portable(const float *s, long from, long n, float t, uint64_t *keys, long c) {
    for (long q = from; q < n; q++)
        if (s[q] >= t) keys[c++] = make_key(s, q);
    return c;
}

#ifdef MOSAIC_X86
__attribute__((target("avx2"))) static long select_avx2(const float *s, long n, float t, uint64_t *keys) {
    __m256 tv = _mm256_set1_ps(t);
    long c = 0, j = 0;
    for (; j + 8 <= n; j += 8) {
        unsigned bits = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(s + j), tv, _CMP_GE_OQ));
        while (bits) {
            keys[c++] = make_key(s, j + __builtin_ctz(bits));
            bits &= bits - 1;
        }
    }
    return select_portable(s, j, n, t, keys, c);
}

__attribute__((target("avx512f"))) static long select_avx512(const float *s, long n, float t, uint64_t *keys) {
    __m512 tv = _mm512_set1_ps(t);
    long c = 0, j = 0;
    for (; j + 16 <= n; j += 16) {
        unsigned bits = (unsigned)_mm512_cmp_ps_mask(_mm512_loadu_ps(s + j), tv, _CMP_GE_OQ);
        while (bits) {
            keys[c++] = make_key(s, j + __builtin_ctz(bits));
            bits &= bits - 1;
        }
    }
    return select_portable(s, j, n, t, keys, c);
}
#endif

long mosaic_select_at_least_level(int level, const float *s, long n, float threshold, uint64_t *keys) {
    int supported = mosaic_kernel_level_supported();
    if (level > supported) level = supported;
#ifdef MOSAIC_X86
    if (level == MOSAIC_KERNEL_AVX512) return select_avx512(s, n, threshold, keys);
    if (level == MOSAIC_KERNEL_AVX2) return select_avx2(s, n, threshold, keys);
#endif
    return select_portable(s, 0, n, threshold, keys, 0);
}

long mosaic_select_at_least(const float *s, long n, float threshold, uint64_t *keys) {
    return mosaic_select_at_least_level(mosaic_kernel_level(), s, n, threshold, keys);
}
