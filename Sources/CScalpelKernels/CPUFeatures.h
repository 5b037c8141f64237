#ifndef SCALPEL_CPU_FEATURES_H
#define SCALPEL_CPU_FEATURES_H

/* 1 when the running CPU has AVX2 and F16C, so that the kernels' `avx2,f16c` variants may run (asked
 * once); always 0 off x86-64. */
int scalpel_cpu_has_avx2_f16c(void);

#endif
