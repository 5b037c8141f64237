#ifndef SCALPEL_VECTORS_H
#define SCALPEL_VECTORS_H
#include <stdint.h>

/* The 16-lane vectors of the row kernels, for clang's vector extensions: each kernel is one definition
 * compiled for the baseline and for AVX2+F16C. */

/* No fused multiply-add anywhere: every ISA variant must give the same bits. */
#pragma clang fp contract(off)
/* The vector helpers are always inlined: no vector crosses a call, whatever the ISA variant. */
#pragma clang diagnostic ignored "-Wpsabi"

typedef float v16f __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));
typedef uint32_t v16u __attribute__((vector_size(64)));
typedef _Float16 v16h __attribute__((vector_size(32)));

/* Lane by lane `mask ? a : b` (mask lanes all ones or all zeros, as comparisons give). */
static inline __attribute__((always_inline)) v16f select_v(v16i mask, v16f a, v16f b) {
    return (v16f)(((v16u)mask & (v16u)a) | (~(v16u)mask & (v16u)b));
}

/* Rounds every lane to f16 (nearest even; beyond f16's range: infinity; NaN stays NaN) and back. */
static inline __attribute__((always_inline)) v16f to_f16_v(v16f v) {
    return __builtin_convertvector(__builtin_convertvector(v, v16h), v16f);
}

#endif
