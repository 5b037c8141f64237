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
/// `dequantized` is not null, the round trip `R((q - zp) * scale)`. No fused multiply-add; the AVX2+F16C
/// variant chosen at run time gives the same bits as the baseline one (`portable` 1, what tests compare
/// with).
void scalpel_ct_quantize_row(const float *w, size_t groups, size_t group_size, int bits, int symmetric, int rounding,
                             uint8_t *codes, float *scales, int8_t *zero_points, float *dequantized, int portable);

/// One row of bitsandbytes' LLM.int8 (`BnbInt8`): returns the row's SCB, the largest magnitude of its
/// f16-rounded values (NaN when one is NaN). When `codes` is not null, also writes
/// `round_half_even(f16(w) * (127 / SCB))` (0 for the whole row when the SCB is 0 or NaN, and for a NaN
/// product) and, when `dequantized` is not null, `(code * SCB) * f32(1/127)`. The AVX2+F16C variant chosen
/// at run time gives the same bits as the baseline one (`portable` 1, what tests compare with).
float scalpel_int8_quantize_row(const float *w, size_t n, int8_t *codes, float *dequantized, int portable);

/// ggml's `make_qx_quants` (rmse_type 1) for 16 groups of 16 values side by side: element i of group j
/// at `x[16 i + j]`, weights `w` in the same layout (NULL: the weights are x²). Writes
/// `L[16 i + j] = nmax + l` as a float (0 for a group whose largest |x| is below 1e-15) and `scale[j]`.
/// Bit for bit the reference: f32 sums in element order, no fused multiply-add. AVX2 when the CPU has it
/// and `portable` is 0; the baseline variant (`portable` 1, what tests compare with) gives the same bits.
void scalpel_kq_search_symmetric16(const float *x, const float *w, int nmax, float *L, float *scale, int portable);

/// ggml's `make_q3_quants` with `do_rmse` for 16 groups of 16 values, in the layout of
/// `scalpel_kq_search_symmetric16`: `L[16 i + j] = nmax + l` as a float, `scale[j]`.
void scalpel_kq_search_q3_16(const float *x, int nmax, float *L, float *scale, int portable);

/// ggml's `make_qx_quants` (rmse_type 1) for one group of `n` <= 16 values with weights `w`: writes
/// `L[i] = nmax + l` and returns the scale (the 19 candidate scales run in vector lanes).
float scalpel_kq_search_symmetric1(int n, int nmax, const float *x, const float *w, int8_t *L, int portable);

#endif
