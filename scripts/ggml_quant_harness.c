// Scalpel's own harness around ggml's public quantization API (ggml-base), used by the K-quant interop
// tests and benchmarks as the reference. Built by scripts/llamacpp.sh with -ffp-contract=off.
//
//   ggml-quant-harness quantize TYPE NROWS NPERROW IN.f32 OUT.bin [IMATRIX.f32]
//       ggml_quantize_chunk over all rows, one call; IN is NROWS*NPERROW little-endian f32,
//       IMATRIX (optional) is NPERROW f32 importance weights.
//   ggml-quant-harness dequantize TYPE N IN.bin OUT.f32
//       the type's to_float over N values.
//   ggml-quant-harness bench TYPE NROWS NPERROW THREADS REPEATS [IN.f32|-] [IMATRIX.f32]
//       times ggml_quantize_chunk over NROWS rows split in THREADS contiguous row ranges, one pthread each
//       (what llama-quantize does); input from IN or a fixed pseudo-random matrix; prints one JSON line
//       with the median seconds over REPEATS runs and the FNV-1a hash of the output bytes.
//   ggml-quant-harness types
//       every type name and its block size / type size.
#define _POSIX_C_SOURCE 200809L
#include <ggml.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static void die(const char *msg, const char *arg) {
    fprintf(stderr, "ggml-quant-harness: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
    exit(1);
}

static enum ggml_type type_named(const char *name) {
    for (int t = 0; t < GGML_TYPE_COUNT; t++) {
        const struct ggml_type_traits *tr = ggml_get_type_traits((enum ggml_type)t);
        if (tr && tr->type_name && strcasecmp(tr->type_name, name) == 0) return (enum ggml_type)t;
    }
    die("unknown type", name);
    return GGML_TYPE_COUNT;
}

static void *read_all(const char *path, size_t expect) {
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open", path);
    void *buf = malloc(expect ? expect : 1);
    if (fread(buf, 1, expect, f) != expect) die("short file", path);
    fclose(f);
    return buf;
}

static void write_all(const char *path, const void *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) die("cannot create", path);
    if (fwrite(buf, 1, n, f) != n) die("short write", path);
    fclose(f);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct job {
    enum ggml_type type;
    const float *src;
    void *dst;
    int64_t start_row, nrows, n_per_row;
    const float *imatrix;
};

static void *run_job(void *arg) {
    struct job *j = arg;
    ggml_quantize_chunk(j->type, j->src, j->dst, j->start_row * j->n_per_row, j->nrows, j->n_per_row, j->imatrix);
    return NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 2) die("usage: quantize | dequantize | bench | types", NULL);
    const char *cmd = argv[1];

    if (strcmp(cmd, "types") == 0) {
        for (int t = 0; t < GGML_TYPE_COUNT; t++) {
            const struct ggml_type_traits *tr = ggml_get_type_traits((enum ggml_type)t);
            if (tr && tr->type_name && tr->blck_size > 0)
                printf("%s %lld %zu\n", tr->type_name, (long long)tr->blck_size, tr->type_size);
        }
        return 0;
    }

    if (strcmp(cmd, "quantize") == 0) {
        if (argc < 7) die("usage: quantize TYPE NROWS NPERROW IN.f32 OUT.bin [IMATRIX.f32]", NULL);
        enum ggml_type type = type_named(argv[2]);
        int64_t nrows = atoll(argv[3]), n_per_row = atoll(argv[4]);
        float *src = read_all(argv[5], (size_t)(nrows * n_per_row) * sizeof(float));
        float *imatrix = argc > 7 ? read_all(argv[7], (size_t)n_per_row * sizeof(float)) : NULL;
        size_t row_size = ggml_row_size(type, n_per_row);
        void *dst = calloc((size_t)nrows, row_size);
        ggml_quantize_init(type);
        size_t n = ggml_quantize_chunk(type, src, dst, 0, nrows, n_per_row, imatrix);
        write_all(argv[6], dst, n);
        return 0;
    }

    if (strcmp(cmd, "dequantize") == 0) {
        if (argc < 6) die("usage: dequantize TYPE N IN.bin OUT.f32", NULL);
        enum ggml_type type = type_named(argv[2]);
        int64_t n = atoll(argv[3]);
        const struct ggml_type_traits *tr = ggml_get_type_traits(type);
        if (!tr->to_float) die("no to_float for", argv[2]);
        void *src = read_all(argv[4], ggml_row_size(type, n));
        float *dst = malloc((size_t)n * sizeof(float));
        tr->to_float(src, dst, n);
        write_all(argv[5], dst, (size_t)n * sizeof(float));
        return 0;
    }

    if (strcmp(cmd, "bench") == 0) {
        if (argc < 7) die("usage: bench TYPE NROWS NPERROW THREADS REPEATS [IN.f32|-] [IMATRIX.f32]", NULL);
        enum ggml_type type = type_named(argv[2]);
        int64_t nrows = atoll(argv[3]), n_per_row = atoll(argv[4]);
        int threads = atoi(argv[5]), repeats = atoi(argv[6]);
        if (threads < 1 || repeats < 1 || nrows < 1) die("bad THREADS/REPEATS/NROWS", NULL);
        size_t count = (size_t)(nrows * n_per_row);
        float *src;
        if (argc > 7 && strcmp(argv[7], "-") != 0) {
            src = read_all(argv[7], count * sizeof(float));
        } else {
            // The same generator as scalpel-kernel-bench's K-quant section: xorshift64*, uniform in [-1, 1).
            src = malloc(count * sizeof(float));
            uint64_t s = 0x9E3779B97F4A7C15ull;
            for (size_t i = 0; i < count; i++) {
                s ^= s >> 12; s ^= s << 25; s ^= s >> 27;
                uint64_t r = s * 0x2545F4914F6CDD1Dull;
                src[i] = (float)((double)(r >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
            }
        }
        float *imatrix = argc > 8 ? read_all(argv[8], (size_t)n_per_row * sizeof(float)) : NULL;
        size_t row_size = ggml_row_size(type, n_per_row);
        unsigned char *dst = calloc((size_t)nrows, row_size);
        ggml_quantize_init(type);
        pthread_t *tids = malloc(sizeof(pthread_t) * threads);
        struct job *jobs = malloc(sizeof(struct job) * threads);
        double *times = malloc(sizeof(double) * repeats);
        for (int r = 0; r < repeats; r++) {
            double t0 = now();
            int64_t per = (nrows + threads - 1) / threads;
            int used = 0;
            for (int t = 0; t < threads; t++) {
                int64_t first = t * per;
                if (first >= nrows) break;
                int64_t n = first + per > nrows ? nrows - first : per;
                // ggml_quantize_chunk offsets src by `start` and dst by start's row: pass the base pointers.
                jobs[t] = (struct job){type, src, dst, first, n, n_per_row, imatrix};
                if (threads == 1) run_job(&jobs[t]);
                else pthread_create(&tids[t], NULL, run_job, &jobs[t]);
                used++;
            }
            if (threads > 1) for (int t = 0; t < used; t++) pthread_join(tids[t], NULL);
            times[r] = now() - t0;
        }
        qsort(times, repeats, sizeof(double), cmp_double);
        uint64_t h = 0xcbf29ce484222325ull;
        for (size_t i = 0; i < (size_t)nrows * row_size; i++) { h ^= dst[i]; h *= 0x100000001b3ull; }
        double med = times[repeats / 2];
        printf("{\"type\": \"%s\", \"rows\": %lld, \"n_per_row\": %lld, \"threads\": %d, \"repeats\": %d, "
               "\"imatrix\": %s, \"median_s\": %.6f, \"min_s\": %.6f, \"gb_per_s_f32\": %.3f, \"fnv1a\": \"%016llx\"}\n",
               ggml_type_name(type), (long long)nrows, (long long)n_per_row, threads, repeats,
               imatrix ? "true" : "false", med, times[0], (double)count * 4.0 / med / 1e9, (unsigned long long)h);
        return 0;
    }
    die("unknown command", cmd);
    return 1;
}
