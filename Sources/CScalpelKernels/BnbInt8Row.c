#include "ScalpelKernels.h"
#include "CPUFeatures.h"
#include "Vectors.h"
#include <string.h>

typedef int8_t v16c __attribute__((vector_size(16)));

static inline __attribute__((always_inline))
float int8_row(const float *w, size_t n, int8_t *codes, float *dequantized) {
    /* The largest magnitude of the f16-rounded row, NaN noted. */
    v16f amax_v = {0};
    v16i nan_v = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        v16f v;
        memcpy(&v, w + i, sizeof v);
        v = to_f16_v(v);
        v16i nan = v != v;
        nan_v |= nan;
        v16f mag = (v16f)((v16u)v & 0x7fffffffu);
        mag = select_v(nan, (v16f){0}, mag);
        amax_v = select_v(mag > amax_v, mag, amax_v);
    }
    float m = 0;
    int has_nan = 0;
    for (int j = 0; j < 16; j++) { if (amax_v[j] > m) m = amax_v[j]; has_nan |= nan_v[j] != 0; }
    for (; i < n; i++) {
        float v = (float)(_Float16)w[i];
        if (v != v) has_nan = 1;
        else if (__builtin_fabsf(v) > m) m = __builtin_fabsf(v);
    }
    if (has_nan) m = __builtin_nanf("");
    if (!codes) return m;
    /* bitsandbytes' f32 constant for 1/127 (a Python float rounded to f32). */
    const float inv127 = (float)7.874015718698502e-3;
    if (has_nan || m == 0) {
        memset(codes, 0, n);
        if (dequantized) for (i = 0; i < n; i++) dequantized[i] = (0.0f * m) * inv127;
        return m;
    }

    /* code = round_half_even(f16(w) * (127 / m)); NaN (an infinite value times 0) gives 0. */
    const float scale = 127 / m;
    const v16f scale_v = (v16f){0} + scale;
    for (i = 0; i + 16 <= n; i += 16) {
        v16f v;
        memcpy(&v, w + i, sizeof v);
        v16f s = to_f16_v(v) * scale_v;
        s = select_v(s != s, (v16f){0}, s);
        v16f t = s + 12582912.0f;
        v16i q = (((v16i)t) & 0x007fffff) - 0x00400000;
        v16c c = __builtin_convertvector(q, v16c);
        memcpy(codes + i, &c, sizeof c);
        if (dequantized) {
            v16f d = (__builtin_convertvector(q, v16f) * m) * inv127;
            memcpy(dequantized + i, &d, sizeof d);
        }
    }
    for (; i < n; i++) {
        float s = (float)(_Float16)w[i] * scale;
        codes[i] = s != s ? 0 : (int8_t)__builtin_roundevenf(s);
        if (dequantized) dequantized[i] = ((float)codes[i] * m) * inv127;
    }
    return m;
}

static float int8_row_portable(const float *w, size_t n, int8_t *codes, float *dequantized) {
    return int8_row(w, n, codes, dequantized);
}

#if defined(__x86_64__)
__attribute__((target("avx2,f16c")))
static float int8_row_avx2(const float *w, size_t n, int8_t *codes, float *dequantized) {
    return int8_row(w, n, codes, dequantized);
}
#endif

float scalpel_int8_quantize_row(const float *w, size_t n, int8_t *codes, float *dequantized, int portable) {
#if defined(__x86_64__)
    if (!portable && scalpel_cpu_has_avx2_f16c()) return int8_row_avx2(w, n, codes, dequantized);
#endif
    return int8_row_portable(w, n, codes, dequantized);
}
