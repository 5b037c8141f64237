#include "ScalpelKernels.h"
#include <string.h>

/* No fused multiply-add anywhere: every ISA variant must give the same bits. */
#pragma clang fp contract(off)

typedef float v16f __attribute__((vector_size(64)));
typedef double v8d __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));

/* The one definition of the arithmetic; each ISA variant below compiles it for its vector width. */
static inline __attribute__((always_inline))
void error_sums(const float *x, const float *y, size_t n, scalpel_error_sums_t *out) {
    v8d sig_lo = {0}, sig_hi = {0}, err_lo = {0}, err_hi = {0};
    v16i max_bits = {0};
    const v16i magnitude = (v16i){0} + 0x7fffffff;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        v16f a, b;
        memcpy(&a, x + i, sizeof a);
        memcpy(&b, y + i, sizeof b);
        v16f d = a - b;
        v8d a_lo = __builtin_convertvector(__builtin_shufflevector(a, a, 0, 1, 2, 3, 4, 5, 6, 7), v8d);
        v8d a_hi = __builtin_convertvector(__builtin_shufflevector(a, a, 8, 9, 10, 11, 12, 13, 14, 15), v8d);
        v8d d_lo = __builtin_convertvector(__builtin_shufflevector(d, d, 0, 1, 2, 3, 4, 5, 6, 7), v8d);
        v8d d_hi = __builtin_convertvector(__builtin_shufflevector(d, d, 8, 9, 10, 11, 12, 13, 14, 15), v8d);
        sig_lo += a_lo * a_lo;
        sig_hi += a_hi * a_hi;
        err_lo += d_lo * d_lo;
        err_hi += d_hi * d_hi;
        v16i bits;
        memcpy(&bits, &d, sizeof bits);
        bits &= magnitude;
        v16i greater = bits > max_bits;
        max_bits = (bits & greater) | (max_bits & ~greater);
    }
    double signal = 0, error = 0;
    int32_t m = 0;
    for (int j = 0; j < 8; j++) { signal += sig_lo[j]; error += err_lo[j]; }
    for (int j = 0; j < 8; j++) { signal += sig_hi[j]; error += err_hi[j]; }
    for (int j = 0; j < 16; j++) if (max_bits[j] > m) m = max_bits[j];
    for (; i < n; i++) {
        float d = x[i] - y[i];
        signal += (double)x[i] * (double)x[i];
        error += (double)d * (double)d;
        uint32_t u;
        memcpy(&u, &d, 4);
        int32_t bits = (int32_t)(u & 0x7fffffffu);
        if (bits > m) m = bits;
    }
    out->signal = signal;
    out->error = error;
    out->max_abs_bits = (uint32_t)m;
}

void scalpel_error_sums_portable(const float *x, const float *y, size_t n, scalpel_error_sums_t *out) {
    error_sums(x, y, n, out);
}

#if defined(__x86_64__)
__attribute__((target("avx2")))
static void error_sums_avx2(const float *x, const float *y, size_t n, scalpel_error_sums_t *out) {
    error_sums(x, y, n, out);
}

__attribute__((target("avx512f")))
static void error_sums_avx512(const float *x, const float *y, size_t n, scalpel_error_sums_t *out) {
    error_sums(x, y, n, out);
}
#endif

typedef void (*error_sums_fn)(const float *, const float *, size_t, scalpel_error_sums_t *);

static error_sums_fn chosen_error_sums(void) {
    static error_sums_fn chosen = 0;
    if (!chosen) {
        error_sums_fn f = scalpel_error_sums_portable;
#if defined(__x86_64__)
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f")) f = error_sums_avx512;
        else if (__builtin_cpu_supports("avx2")) f = error_sums_avx2;
#endif
        chosen = f;
    }
    return chosen;
}

void scalpel_error_sums(const float *x, const float *y, size_t n, scalpel_error_sums_t *out) {
    chosen_error_sums()(x, y, n, out);
}
