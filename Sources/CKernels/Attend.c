// Target attention over per-row selected events (the ranker's ESU): see include/CKernels.h.
//
// Why C: the Swift package is compiled for generic x86-64, where Swift's SIMD8<Float> is two
// SSE registers and a horizontal sum is a chain of scalar extracts. Here the dot products are
// AVX-512 FMAs with masked loads (any head width), one reduction per event, and the softmax's
// exponentials are a 16-lane polynomial (Cephes' expf: range reduction by ln 2 and a degree-6 polynomial, about 1 ulp).

#include "CKernels.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define MOSAIC_X86 1
#include <immintrin.h>
#endif

static void attend_portable(const float *q, long ldq, const float *keys, const float *values, long ldkv,
                            const int32_t *idx, const int32_t *count, long n, long k, long heads, long e,
                            float scale, float *context, long ldc, float *w) {
    for (long i = 0; i < n; i++) {
        float *crow = context + i * ldc;
        memset(crow, 0, sizeof(float) * (size_t)(heads * e));
        long cnt = count[i];
        for (long hd = 0; hd < heads; hd++) {
            const float *qo = q + i * ldq + hd * e;
            float mx = -INFINITY;
            for (long s = 0; s < cnt; s++) {
                const float *kr = keys + (long)idx[i * k + s] * ldkv + hd * e;
                float dot = 0;
                for (long c = 0; c < e; c++) dot += qo[c] * kr[c];
                w[s] = dot * scale;
                if (w[s] > mx) mx = w[s];
            }
            float total = 0;
            for (long s = 0; s < cnt; s++) {
                w[s] = expf(w[s] - mx);
                total += w[s];
            }
            float *co = crow + hd * e;
            for (long s = 0; s < cnt; s++) {
                const float *vr = values + (long)idx[i * k + s] * ldkv + hd * e;
                float a = w[s] / total;
                for (long c = 0; c < e; c++) co[c] += a * vr[c];
            }
        }
    }
}

#ifdef MOSAIC_X86
/// exp(x) on 16 lanes: range reduction by ln 2 and a degree-6 polynomial (Cephes' expf).
__attribute__((target("avx512f"))) static inline __m512 exp16(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.7f));
    __m512 fx = _mm512_roundscale_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504f), _mm512_set1_ps(0.5f)),
                                     _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
    x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), x);
    __m512 z = _mm512_mul_ps(x, x);
    __m512 y = _mm512_set1_ps(1.9875691500e-4f);
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.3981999507e-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(8.3334519073e-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(4.1665795894e-2f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.6666665459e-1f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(5.0000001201e-1f));
    y = _mm512_add_ps(_mm512_fmadd_ps(y, z, x), _mm512_set1_ps(1.0f));
    __m512i p = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(fx), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(y, _mm512_castsi512_ps(p));
}

__attribute__((target("avx512f"))) static void attend_avx512(const float *q, long ldq, const float *keys,
                                                            const float *values, long ldkv, const int32_t *idx,
                                                            const int32_t *count, long n, long k, long heads, long e,
                                                            float scale, float *context, long ldc, float *w) {
    for (long i = 0; i < n; i++) {
        float *crow = context + i * ldc;
        memset(crow, 0, sizeof(float) * (size_t)(heads * e));
        long cnt = count[i];
        const int32_t *ix = idx + i * k;
        for (long hd = 0; hd < heads; hd++) {
            const float *qo = q + i * ldq + hd * e;
            float mx = -INFINITY;
            for (long s = 0; s < cnt; s++) {
                const float *kr = keys + (long)ix[s] * ldkv + hd * e;
                __m512 acc = _mm512_setzero_ps();
                for (long c = 0; c < e; c += 16) {
                    __mmask16 m = e - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (e - c)) - 1);
                    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, qo + c), _mm512_maskz_loadu_ps(m, kr + c), acc);
                }
                float v = _mm512_reduce_add_ps(acc) * scale;
                w[s] = v;
                mx = v > mx ? v : mx;
            }
            __m512 sum = _mm512_setzero_ps(), mv = _mm512_set1_ps(mx);
            for (long s = 0; s < cnt; s += 16) {
                __mmask16 m = cnt - s >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (cnt - s)) - 1);
                __m512 x = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, w + s), mv));
                x = _mm512_maskz_mov_ps(m, x);
                _mm512_mask_storeu_ps(w + s, m, x);
                sum = _mm512_add_ps(sum, x);
            }
            __m512 total = _mm512_set1_ps(_mm512_reduce_add_ps(sum));
            for (long s = 0; s < cnt; s += 16) {
                __mmask16 m = cnt - s >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (cnt - s)) - 1);
                _mm512_mask_storeu_ps(w + s, m, _mm512_div_ps(_mm512_maskz_loadu_ps(m, w + s), total));
            }
            float *co = crow + hd * e;
            for (long c = 0; c < e; c += 16) {
                __mmask16 m = e - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (e - c)) - 1);
                __m512 acc = _mm512_setzero_ps();
                for (long s = 0; s < cnt; s++) {
                    const float *vr = values + (long)ix[s] * ldkv + hd * e + c;
                    acc = _mm512_fmadd_ps(_mm512_set1_ps(w[s]), _mm512_maskz_loadu_ps(m, vr), acc);
                }
                _mm512_mask_storeu_ps(co + c, m, acc);
            }
        }
    }
}
#endif

#ifdef MOSAIC_X86
__attribute__((target("avx512f"))) static void softmax_avx512(float *z, long rows, long cols, long ld) {
    for (long r = 0; r < rows; r++) {
        float *row = z + r * ld;
        __m512 mx = _mm512_set1_ps(-INFINITY);
        for (long c = 0; c < cols; c += 16) {
            __mmask16 m = cols - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (cols - c)) - 1);
            mx = _mm512_mask_max_ps(mx, m, mx, _mm512_maskz_loadu_ps(m, row + c));
        }
        __m512 mv = _mm512_set1_ps(_mm512_reduce_max_ps(mx)), sum = _mm512_setzero_ps();
        for (long c = 0; c < cols; c += 16) {
            __mmask16 m = cols - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (cols - c)) - 1);
            __m512 x = _mm512_maskz_mov_ps(m, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, row + c), mv)));
            _mm512_mask_storeu_ps(row + c, m, x);
            sum = _mm512_add_ps(sum, x);
        }
        __m512 total = _mm512_set1_ps(_mm512_reduce_add_ps(sum));
        for (long c = 0; c < cols; c += 16) {
            __mmask16 m = cols - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (cols - c)) - 1);
            _mm512_mask_storeu_ps(row + c, m, _mm512_div_ps(_mm512_maskz_loadu_ps(m, row + c), total));
        }
    }
}
#endif

static void softmax_portable(float *z, long rows, long cols, long ld) {
    for (long r = 0; r < rows; r++) {
        float *row = z + r * ld, mx = -INFINITY, total = 0;
        for (long c = 0; c < cols; c++) mx = row[c] > mx ? row[c] : mx;
        for (long c = 0; c < cols; c++) {
            row[c] = expf(row[c] - mx);
            total += row[c];
        }
        for (long c = 0; c < cols; c++) row[c] /= total;
    }
}

int mosaic_softmax_rows_level(int level, float *z, long rows, long cols, long ld) {
    int supported = mosaic_kernel_level_supported();
    if (level > supported) level = supported;
#ifdef MOSAIC_X86
    if (level == MOSAIC_KERNEL_AVX512) {
        softmax_avx512(z, rows, cols, ld);
        return level;
    }
#endif
    softmax_portable(z, rows, cols, ld);
    return MOSAIC_KERNEL_PORTABLE;
}

void mosaic_softmax_rows(float *z, long rows, long cols, long ld) {
    mosaic_softmax_rows_level(mosaic_kernel_level(), z, rows, cols, ld);
}

int mosaic_attend_selected_level(int level, const float *q, long ldq, const float *keys, const float *values,
                                 long ldkv, const int32_t *idx, const int32_t *count, long n, long k, long heads,
                                 long e, float scale, float *context, long ldc, float *weights) {
    int supported = mosaic_kernel_level_supported();
    if (level > supported) level = supported;
#ifdef MOSAIC_X86
    if (level == MOSAIC_KERNEL_AVX512) {
        attend_avx512(q, ldq, keys, values, ldkv, idx, count, n, k, heads, e, scale, context, ldc, weights);
        return level;
    }
#endif
    attend_portable(q, ldq, keys, values, ldkv, idx, count, n, k, heads, e, scale, context, ldc, weights);
    return MOSAIC_KERNEL_PORTABLE;
}

void mosaic_attend_selected(const float *q, long ldq, const float *keys, const float *values, long ldkv,
                            const int32_t *idx, const int32_t *count, long n, long k, long heads, long e, float scale,
                            float *context, long ldc, float *weights) {
    mosaic_attend_selected_level(mosaic_kernel_level(), q, ldq, keys, values, ldkv, idx, count, n, k, heads, e, scale,
                                 context, ldc, weights);
}
