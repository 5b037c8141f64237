#include "ScalpelKernels.h"
#include "CPUFeatures.h"
#include "Vectors.h"
#include <string.h>

typedef uint8_t v16b __attribute__((vector_size(16)));

enum { ROUND_F32 = 0, ROUND_BF16 = 1, ROUND_F16 = 2 };

/* Rounding to the scale dtype, lane by lane (round to nearest even; NaN stays NaN). */
static inline __attribute__((always_inline)) v16f round_v(v16f v, int mode) {
    if (mode == ROUND_BF16) {
        v16u b = (v16u)v;
        v16u r = (b + 0x7fffu + ((b >> 16) & 1u)) & 0xffff0000u;
        v16i nan = v != v;
        return (v16f)(((v16u)nan & b) | (~(v16u)nan & r));
    }
    if (mode == ROUND_F16) return to_f16_v(v);
    return v;
}

static inline __attribute__((always_inline)) float round_s(float x, int mode) {
    if (mode == ROUND_BF16) {
        if (x != x) return x;
        uint32_t b;
        memcpy(&b, &x, 4);
        b = (b + 0x7fffu + ((b >> 16) & 1u)) & 0xffff0000u;
        memcpy(&x, &b, 4);
        return x;
    }
    if (mode == ROUND_F16) return (float)(_Float16)x;
    return x;
}

/* Swift's max(x, y) and min(x, y): y >= x ? y : x and y < x ? y : x. */
static inline float max_s(float x, float y) { return y >= x ? y : x; }
static inline float min_s(float x, float y) { return y < x ? y : x; }

/* Round to nearest even of |v| < 2^22 by the 1.5 * 2^23 addition. */
static inline __attribute__((always_inline)) v16i nearest_v(v16f v) {
    v16f t = v + 12582912.0f;
    return (((v16i)t) & 0x007fffff) - 0x00400000;
}

static inline __attribute__((always_inline))
void ct_row(const float *w, size_t groups, size_t group_size, int bits, int symmetric, int mode,
            uint8_t *codes, float *scales, int8_t *zero_points, float *dequantized) {
    const float qmin = (float)(-(1 << (bits - 1))), qmax = (float)((1 << (bits - 1)) - 1);
    const int32_t offset = 1 << (bits - 1);
    const float epsilon = mode == ROUND_BF16 ? 0x1p-7f : mode == ROUND_F16 ? 0x1p-10f : 0x1p-23f;
    for (size_t g = 0; g < groups; g++) {
        const float *x = w + g * group_size;
        /* Minimum and maximum (from 0) of the rounded values, NaN noted and left out. */
        v16f mn_v = {0}, mx_v = {0};
        v16i nan_v = {0};
        size_t i = 0;
        for (; i + 16 <= group_size; i += 16) {
            v16f v;
            memcpy(&v, x + i, sizeof v);
            v = round_v(v, mode);
            v16i nan = v != v;
            nan_v |= nan;
            v16f c = select_v(nan, (v16f){0}, v);
            mn_v = select_v(c < mn_v, c, mn_v);
            mx_v = select_v(c > mx_v, c, mx_v);
        }
        float mn = mn_v[0], mx = mx_v[0];
        int has_nan = 0;
        for (int j = 1; j < 16; j++) { mn = min_s(mn, mn_v[j]); mx = max_s(mx, mx_v[j]); }
        for (int j = 0; j < 16; j++) has_nan |= nan_v[j] != 0;
        for (; i < group_size; i++) {
            float v = round_s(x[i], mode);
            if (v != v) has_nan = 1;
            else { mn = min_s(mn, v); mx = max_s(mx, v); }
        }
        float scale, zp = 0;
        if (has_nan) {
            scale = __builtin_nanf("");
        } else if (symmetric) {
            scale = round_s(max_s(-mn, mx) / round_s((qmax - qmin) / 2, mode), mode);
        } else {
            scale = round_s(round_s(mx - mn, mode) / (qmax - qmin), mode);
            float z = round_s(qmin - round_s(mn / scale, mode), mode);
            zp = z != z ? 0 : __builtin_roundevenf(min_s(max_s(z, qmin), qmax));
        }
        if (scale == 0) scale = epsilon;
        scales[g] = scale;
        if (zero_points) zero_points[g] = (int8_t)zp;
        if (!codes) continue;

        /* Codes: q = clamp(R(R(x) / scale) [+ zp, rounded again]) rounded, NaN -> 0, plus the offset. */
        uint8_t *out = codes + g * group_size;
        const v16f lo = (v16f){0} + qmin, hi = (v16f){0} + qmax, scale_v = (v16f){0} + scale, zp_v = (v16f){0} + zp;
        for (i = 0; i + 16 <= group_size; i += 16) {
            v16f v;
            memcpy(&v, x + i, sizeof v);
            v16f s = round_v(round_v(v, mode) / scale_v, mode);
            if (!symmetric) s = round_v(s + zp_v, mode);
            v16f clamped = select_v(lo > s, lo, s);
            clamped = select_v(hi < clamped, hi, clamped);
            clamped = select_v(s != s, (v16f){0}, clamped);
            v16b q = __builtin_convertvector(nearest_v(clamped) + offset, v16b);
            memcpy(out + i, &q, sizeof q);
        }
        for (; i < group_size; i++) {
            float s = round_s(round_s(x[i], mode) / scale, mode);
            if (!symmetric) s = round_s(s + zp, mode);
            int32_t q = s != s ? 0 : (int32_t)__builtin_roundevenf(min_s(max_s(s, qmin), qmax));
            out[i] = (uint8_t)(q + offset);
        }
        if (!dequantized) continue;

        /* The round trip: R((code - offset - zp) * scale). */
        float *back = dequantized + g * group_size;
        const int32_t shift = offset + (int32_t)zp;
        for (i = 0; i + 16 <= group_size; i += 16) {
            v16b q;
            memcpy(&q, out + i, sizeof q);
            v16f f = __builtin_convertvector(__builtin_convertvector(q, v16i) - shift, v16f);
            v16f d = round_v(f * scale_v, mode);
            memcpy(back + i, &d, sizeof d);
        }
        for (; i < group_size; i++) back[i] = round_s((float)((int32_t)out[i] - shift) * scale, mode);
    }
}

/* One body per rounding mode, so that the mode is a constant inside the loops. */
#define CT_ROW_VARIANTS(SUFFIX, ATTR)                                                                        \
    ATTR static void ct_row_##SUFFIX(const float *w, size_t groups, size_t group_size, int bits, int symmetric, \
                                     int mode, uint8_t *codes, float *scales, int8_t *zero_points,            \
                                     float *dequantized) {                                                    \
        switch (mode) {                                                                                       \
        case ROUND_BF16: ct_row(w, groups, group_size, bits, symmetric, ROUND_BF16, codes, scales, zero_points, dequantized); break; \
        case ROUND_F16: ct_row(w, groups, group_size, bits, symmetric, ROUND_F16, codes, scales, zero_points, dequantized); break; \
        default: ct_row(w, groups, group_size, bits, symmetric, ROUND_F32, codes, scales, zero_points, dequantized); break; \
        }                                                                                                     \
    }

CT_ROW_VARIANTS(portable, )
#if defined(__x86_64__)
CT_ROW_VARIANTS(avx2, __attribute__((target("avx2,f16c"))))
#endif

void scalpel_ct_quantize_row(const float *w, size_t groups, size_t group_size, int bits, int symmetric, int rounding,
                             uint8_t *codes, float *scales, int8_t *zero_points, float *dequantized, int portable) {
#if defined(__x86_64__)
    if (!portable && scalpel_cpu_has_avx2_f16c()) {
        ct_row_avx2(w, groups, group_size, bits, symmetric, rounding, codes, scales, zero_points, dequantized);
        return;
    }
#endif
    ct_row_portable(w, groups, group_size, bits, symmetric, rounding, codes, scales, zero_points, dequantized);
}
