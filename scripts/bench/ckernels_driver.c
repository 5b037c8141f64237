// Driver for the CScalpelKernels entry points, used by docs/bench/07-package-settings.md to compare
// compiler flags without Swift in the way: build it against the kernel sources with each set of flags,
// then count instructions (valgrind --tool=callgrind, deterministic on a shared machine) or time it:
//
//   clang -O2 [-O3] -DSWIFT_PACKAGE=1 -fblocks -fPIC -gdwarf-4 -fno-omit-frame-pointer \
//       -I Sources/CScalpelKernels/include Sources/CScalpelKernels/*.c scripts/bench/ckernels_driver.c -o drv
//   valgrind --tool=callgrind --callgrind-out-file=cg.out ./drv 1048576 1 && callgrind_annotate cg.out
//   ./drv 16777216 15      # min seconds of 15 calls of each kernel on 16M values
//
// (-gdwarf-4: older valgrind cannot read DWARF 5.)
#include "ScalpelKernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char **argv) {
    size_t n = (size_t)atol(argv[1]); int runs = atoi(argv[2]);
    float *x = malloc(n * 4), *y = malloc(n * 4); uint16_t *h = malloc(n * 2);
    uint64_t s = 1;
    for (size_t i = 0; i < n; i++) { s = s * 6364136223846793005ULL + 1442695040888963407ULL; x[i] = (float)((int64_t)(s >> 11) % 2000000) / 1e6f; y[i] = x[i] * 1.001f; }
    double best[3] = {1e9, 1e9, 1e9}; scalpel_error_sums_t e;
    for (int r = 0; r < runs; r++) {
        double t0 = now(); scalpel_f32_to_f16(x, h, n);
        double t1 = now(); scalpel_f16_to_f32(h, y, n);
        double t2 = now(); scalpel_error_sums(x, y, n, &e);
        double t3 = now();
        if (t1 - t0 < best[0]) best[0] = t1 - t0;
        if (t2 - t1 < best[1]) best[1] = t2 - t1;
        if (t3 - t2 < best[2]) best[2] = t3 - t2;
    }
    printf("f32_to_f16 %.4f f16_to_f32 %.4f error_sums %.4f (min s over %d runs, n=%zu)\n", best[0], best[1], best[2], runs, n);
    return 0;
}
