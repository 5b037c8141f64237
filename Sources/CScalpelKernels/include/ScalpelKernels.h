#ifndef SCALPEL_KERNELS_H
#define SCALPEL_KERNELS_H
#include <stddef.h>
#include <stdint.h>

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

#endif
