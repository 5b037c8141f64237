#ifndef SCALPEL_KERNELS_H
#define SCALPEL_KERNELS_H
#include <stddef.h>
#include <stdint.h>
#include "ScalpelCleanup.h"

/// Converts `count` IEEE binary16 values to binary32 (exact). Uses F16C when the CPU has it.
void scalpel_f16_to_f32(const uint16_t *src, float *dst, size_t count);

/// Converts `count` binary32 values to binary16, rounding to nearest even; NaN stays NaN with its top
/// 10 payload bits (numpy's rule: a payload that would vanish becomes 1), overflow becomes infinity. Uses F16C when the CPU has it; the software path gives the same bits.
void scalpel_f32_to_f16(const float *src, uint16_t *dst, size_t count);

/// Converts `count` bfloat16 values to binary32 (exact: a 16-bit shift).
void scalpel_bf16_to_f32(const uint16_t *src, float *dst, size_t count);

/// Converts `count` binary32 values to bfloat16, rounding to nearest even; NaN becomes a quiet NaN with
/// the sign kept (ggml's and gguf-py's rule: (bits & 0xffff0000) | 0x400000, then shifted).
void scalpel_f32_to_bf16(const float *src, uint16_t *dst, size_t count);

/// 1 when the running CPU has the F16C instructions, else 0.
int scalpel_has_f16c(void);

/// Σx², Σ(x − y)² and max |x − y| of a span, from `scalpel_error_sums`.
typedef struct {
    /// Σ x² in f64 (each square exact).
    double signal;
    /// Σ (x − y)² in f64, the difference rounded to f32 first.
    double error;
    /// max |x − y| as the bit pattern of an f32 with the sign cleared: a NaN difference wins.
    uint32_t max_abs_bits;
} scalpel_error_sums_t;

/// Fills `out` for `x[0..<n]` against `y[0..<n]`. Squares and sums are f64, over 16 lanes (lane j takes
/// the elements whose index is j mod 16, up to the last whole group of 16), the lanes added in order 0
/// to 15, then the remaining elements in order; no fused multiply-add. The bits are the same on every
/// CPU: the AVX-512 and AVX2 variants chosen at run time do the same operations as the portable one.
void scalpel_error_sums(const float *x, const float *y, size_t n, scalpel_error_sums_t *out);

/// `scalpel_error_sums` compiled for the baseline instruction set, without run-time dispatch: what the
/// dispatcher falls back to, and what tests compare the wider variants with.
void scalpel_error_sums_portable(const float *x, const float *y, size_t n, scalpel_error_sums_t *out);

/// One row of compressed-tensors' group quantization (`CompressedTensorsKernel`): for each of `groups`
/// groups of `group_size` values of `w`, rounded to the scale dtype (`rounding`: 0 f32, 1 bf16, 2 f16),
/// the scale (`scales[g]`) and, unless `symmetric`, the zero point (`zero_points[g]`) from the minimum
/// and maximum (taken from 0; NaN makes the scale NaN), then, when `codes` is not null, the offset
/// codes `q + 2^(bits-1)` of every value (`bits` 4 or 8; NaN gives code 0 + offset), and, when
/// `dequantized` is not null, the round trip `R((q - zp) * scale)`. No fused multiply-add; the AVX2
/// variant chosen at run time gives the same bits as the portable one.
void scalpel_ct_quantize_row(const float *w, size_t groups, size_t group_size, int bits, int symmetric, int rounding,
                             uint8_t *codes, float *scales, int8_t *zero_points, float *dequantized);

/// `scalpel_ct_quantize_row` compiled for the baseline instruction set, without run-time dispatch.
void scalpel_ct_quantize_row_portable(const float *w, size_t groups, size_t group_size, int bits, int symmetric, int rounding,
                                      uint8_t *codes, float *scales, int8_t *zero_points, float *dequantized);

#endif
