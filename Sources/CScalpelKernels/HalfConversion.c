#include "ScalpelKernels.h"
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define SCALPEL_X86 1
#endif

static inline uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static float half_to_float_soft(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0) {
        if (man == 0) return bits_f32(sign);
        /* subnormal: value = man * 2^-24 */
        float v = (float)man * 5.9604644775390625e-08f;
        return sign ? -v : v;
    }
    if (exp == 31) return bits_f32(sign | 0x7f800000u | (man << 13));
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

static uint16_t float_to_half_soft(float f) {
    uint32_t x = f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffffu;
    if (absx > 0x7f800000u) {               /* NaN: keep the top payload bits (numpy's rule) */
        uint32_t payload = (absx >> 13) & 0x3ff;
        return (uint16_t)(sign | 0x7c00 | (payload ? payload : 1));
    }
    if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds to >= 65520: infinity */
    if (absx < 0x38800000u) {               /* below the smallest normal half: subnormal or zero */
        if (absx < 0x33000000u) return (uint16_t)sign; /* < 2^-25 rounds to zero (2^-25 ties to even 0) */
        uint32_t exp = absx >> 23;
        uint32_t man = (absx & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - exp;        /* 14 + (113 - exp) ... value = man * 2^(exp-150) */
        /* half subnormal unit is 2^-24: q = man * 2^(exp-150+24) = man >> (126 - exp) */
        uint32_t q = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t r = absx + 0xfff + ((absx >> 13) & 1); /* round to nearest even on the 13 dropped bits */
    r -= 0x38000000u;                       /* rebias exponent 127 -> 15 */
    return (uint16_t)(sign | (r >> 13));
}

#ifdef SCALPEL_X86
__attribute__((target("avx,f16c")))
static void f16_to_f32_f16c(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(src + i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; i++) dst[i] = half_to_float_soft(src[i]);
}

/* Eight values in software: the rare path of a vector holding a NaN, kept out of line so that the
 * compiler does not inline and vectorize it into the hot loop (same code at -O2 and -O3). */
__attribute__((noinline, cold))
static void f32_to_f16_soft8(const float *src, uint16_t *dst) {
    for (size_t k = 0; k < 8; k++) dst[k] = float_to_half_soft(src[k]);
}

__attribute__((target("avx,f16c")))
static void f32_to_f16_f16c(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(src + i);
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
        /* F16C quiets signaling NaNs; numpy keeps their payload. Redo NaN lanes in software. */
        if (__builtin_expect(_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)) != 0, 0)) f32_to_f16_soft8(src + i, dst + i);
    }
    for (; i < n; i++) dst[i] = float_to_half_soft(src[i]);
}
#endif

int scalpel_has_f16c(void) {
#ifdef SCALPEL_X86
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx");
    return cached;
#else
    return 0;
#endif
}

void scalpel_f16_to_f32(const uint16_t *src, float *dst, size_t count) {
#ifdef SCALPEL_X86
    if (scalpel_has_f16c()) { f16_to_f32_f16c(src, dst, count); return; }
#endif
    for (size_t i = 0; i < count; i++) dst[i] = half_to_float_soft(src[i]);
}

void scalpel_f32_to_f16(const float *src, uint16_t *dst, size_t count) {
#ifdef SCALPEL_X86
    if (scalpel_has_f16c()) { f32_to_f16_f16c(src, dst, count); return; }
#endif
    for (size_t i = 0; i < count; i++) dst[i] = float_to_half_soft(src[i]);
}

void scalpel_bf16_to_f32(const uint16_t *src, float *dst, size_t count) {
    uint32_t *out = (uint32_t *)dst;
    for (size_t i = 0; i < count; i++) out[i] = (uint32_t)src[i] << 16;
}

void scalpel_f32_to_bf16(const float *src, uint16_t *dst, size_t count) {
    const uint32_t *in = (const uint32_t *)src;
    for (size_t i = 0; i < count; i++) {
        uint32_t n = in[i];
        if ((n & 0x7fffffffu) > 0x7f800000u) n = (n & 0xffff0000u) | (64u << 16);
        n = (n + (0x7fffu + ((n >> 16) & 1u))) >> 16;
        dst[i] = (uint16_t)n;
    }
}
