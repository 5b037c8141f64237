#include "ScalpelKernels.h"
#include "CPUFeatures.h"
#include <string.h>

/* The scale searches of ggml's K-quants (ggml-quants.c: make_qx_quants with rmse_type 1, make_q3_quants
 * with do_rmse), bit for bit. Every sum is accumulated element by element in the reference's order, in
 * f32, with no fused multiply-add; the vectors only run independent groups (or candidate scales) side by
 * side. Each ISA variant below compiles the same definitions. */
#pragma clang fp contract(off)
#pragma clang diagnostic ignored "-Wpsabi"

typedef float v16f __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));

#define AI static inline __attribute__((always_inline))

AI v16f splat(float v) {
    v16f r;
    for (int k = 0; k < 16; k++) r[k] = v;
    return r;
}

AI v16i splati(int32_t v) {
    v16i r;
    for (int k = 0; k < 16; k++) r[k] = v;
    return r;
}

/* m ? a : b per lane (m all ones or zero). */
AI v16f sel(v16i m, v16f a, v16f b) { return (v16f)((m & (v16i)a) | (~m & (v16i)b)); }

AI v16f load16(const float *p) {
    v16f v;
    memcpy(&v, p, sizeof v);
    return v;
}

AI int any16(v16i m) {
    int32_t o = 0;
    for (int k = 0; k < 16; k++) o |= m[k];
    return o != 0;
}

AI v16f magnitude(v16f v) { return (v16f)((v16i)v & splati(0x7fffffff)); }

/* nearest_int(v), clamped to lo...hi, as a float, for |v| < 2^22: adding 1.5·2^23 rounds to an integer
 * (half to even) exactly as the reference's bit trick does; subtracting it back is exact. */
AI v16f round_clamp(v16f v, v16f lo, v16f hi) {
    const v16f magic = splat(12582912.f);
    v16f r = (v + magic) - magic;
    r = sel(r < hi, r, hi);
    return sel(r > lo, r, lo);
}

/* nearest_int(v) with the reference's bit arithmetic for any v (also |v| >= 2^22, infinity, NaN), then
 * clamped to lo...hi, as a float. */
AI v16f round_clamp_bits(v16f v, int32_t lo, int32_t hi) {
    v16i i = ((v16i)(v + splat(12582912.f)) & splati(0x007fffff)) - splati(0x00400000);
    v16i h = splati(hi), l = splati(lo);
    v16i lt = i < h;
    i = (lt & i) | (~lt & h);
    v16i gt = i > l;
    i = (gt & i) | (~gt & l);
    return __builtin_convertvector(i, v16f);
}

/* The first element of largest magnitude per lane (+0 when all are zero) and that magnitude. */
AI void signed_max(const v16f *x, int n, v16f *mx, v16f *amax) {
    v16f m = splat(0), a = splat(0);
    for (int i = 0; i < n; i++) {
        v16f ax = magnitude(x[i]);
        v16i bigger = ax > a;
        a = sel(bigger, ax, a);
        m = sel(bigger, x[i], m);
    }
    *mx = m;
    *amax = a;
}

AI void symmetric16(const float *xp, const float *wp, int nmax, float *Lp, float *scp) {
    v16f x[16], w[16], wx[16];
    for (int i = 0; i < 16; i++) {
        x[i] = load16(xp + 16 * i);
        w[i] = wp ? load16(wp + 16 * i) : x[i] * x[i];
        wx[i] = w[i] * x[i];
    }
    v16f mx, amax;
    signed_max(x, 16, &mx, &amax);
    const v16f lo = splat((float)-nmax), hi = splat((float)(nmax - 1)), nm = splat((float)nmax);
    v16f iscale = splat((float)-nmax) / mx;
    v16f sumlx = splat(0), suml2 = splat(0);
    for (int i = 0; i < 16; i++) {
        v16f l = round_clamp(iscale * x[i], lo, hi);
        sumlx += wx[i] * l;
        suml2 += (w[i] * l) * l;
    }
    v16f scale = sel(suml2 != splat(0), sumlx / suml2, splat(0));
    v16f best = scale * sumlx;
    v16f best_iscale = iscale;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -splat((float)nmax + 0.1f * (float)is) / mx;
        sumlx = splat(0);
        suml2 = splat(0);
        for (int i = 0; i < 16; i++) {
            v16f l = round_clamp(iscale * x[i], lo, hi);
            sumlx += wx[i] * l;
            suml2 += (w[i] * l) * l;
        }
        v16i take = (suml2 > splat(0)) & ((sumlx * sumlx) > (best * suml2));
        scale = sel(take, sumlx / suml2, scale);
        best = sel(take, scale * sumlx, best);
        best_iscale = sel(take, iscale, best_iscale);
    }
    v16i empty = amax < splat(1e-15f);
    for (int i = 0; i < 16; i++) {
        v16f l = round_clamp(best_iscale * x[i], lo, hi) + nm;
        l = sel(empty, splat(0), l);
        memcpy(Lp + 16 * i, &l, sizeof l);
    }
    scale = sel(empty, splat(0), scale);
    memcpy(scp, &scale, sizeof scale);
}

AI void q3_16(const float *xp, int nmax, float *Lp, float *scp) {
    v16f x[16], w[16], wx[16], L[16];
    for (int i = 0; i < 16; i++) {
        x[i] = load16(xp + 16 * i);
        w[i] = x[i] * x[i];
        wx[i] = w[i] * x[i];
    }
    v16f mx, amax;
    signed_max(x, 16, &mx, &amax);
    const v16f lo = splat((float)-nmax), hi = splat((float)(nmax - 1));
    v16f iscale = splat((float)-nmax) / mx;
    v16f sumlx = splat(0), suml2 = splat(0);
    for (int i = 0; i < 16; i++) {
        v16f l = round_clamp(iscale * x[i], lo, hi);
        L[i] = l;
        sumlx += wx[i] * l;
        suml2 += (w[i] * l) * l;
    }
    for (int itry = 0; itry < 5; itry++) {
        v16i changed = splati(0);
        for (int i = 0; i < 16; i++) {
            v16f li = L[i];
            v16f slx = sumlx - wx[i] * li;
            v16i positive = slx > splat(0);
            if (!any16(positive)) continue;
            v16f sl2 = suml2 - (w[i] * li) * li;
            v16f nl = round_clamp_bits((x[i] * sl2) / slx, -nmax, nmax - 1);
            v16i differs = positive & (nl != li);
            if (!any16(differs)) continue;
            slx += wx[i] * nl;
            sl2 += (w[i] * nl) * nl;
            v16i take = differs & (sl2 > splat(0)) & (((slx * slx) * suml2) > ((sumlx * sumlx) * sl2));
            L[i] = sel(take, nl, li);
            sumlx = sel(take, slx, sumlx);
            suml2 = sel(take, sl2, suml2);
            changed |= take;
        }
        /* A lane without a change in a pass changes nothing in later passes: running it on is harmless. */
        if (!any16(changed)) break;
    }
    v16i empty = amax < splat(1e-15f);
    const v16f nm = splat((float)nmax);
    for (int i = 0; i < 16; i++) {
        v16f l = sel(empty, splat(0), L[i] + nm);
        memcpy(Lp + 16 * i, &l, sizeof l);
    }
    v16f scale = sel(suml2 > splat(0), sumlx / suml2, splat(0));
    scale = sel(empty, splat(0), scale);
    memcpy(scp, &scale, sizeof scale);
}

/* One group of n <= 16 values, the 19 candidate scales in lanes (lane 0 the first guess, lanes 1...18
 * is = -9...-1, 1...9), each lane summing over the elements in order; the choice then runs through the
 * candidates in the reference's order. */
AI float symmetric1(int n, int nmax, const float *x, const float *w, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = __builtin_fabsf(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < 1e-15f) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0.f;
    }
    v16f is0, is1;
    is0[0] = (float)-nmax / max;
    for (int k = 1; k < 32; k++) {
        int is = k <= 9 ? k - 10 : k - 9;
        float v = k <= 18 ? -((float)nmax + 0.1f * (float)is) / max : 0.f;
        if (k < 16) is0[k] = v; else is1[k - 16] = v;
    }
    const v16f lo = splat((float)-nmax), hi = splat((float)(nmax - 1));
    v16f lx0 = splat(0), l20 = splat(0), lx1 = splat(0), l21 = splat(0);
    for (int i = 0; i < n; i++) {
        v16f xi = splat(x[i]), wi = splat(w[i]), wxi = wi * xi;
        v16f a = round_clamp(is0 * xi, lo, hi), b = round_clamp(is1 * xi, lo, hi);
        lx0 += wxi * a;
        l20 += (wi * a) * a;
        lx1 += wxi * b;
        l21 += (wi * b) * b;
    }
    float sumlx = lx0[0], suml2 = l20[0];
    float scale = suml2 != 0 ? sumlx / suml2 : 0.f;
    float best = scale * sumlx, chosen = is0[0];
    for (int k = 1; k <= 18; k++) {
        sumlx = k < 16 ? lx0[k] : lx1[k - 16];
        suml2 = k < 16 ? l20[k] : l21[k - 16];
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            scale = sumlx / suml2;
            best = scale * sumlx;
            chosen = k < 16 ? is0[k] : is1[k - 16];
        }
    }
    for (int i = 0; i < n; i++) {
        float v = chosen * x[i] + 12582912.f;
        int32_t b;
        memcpy(&b, &v, 4);
        int32_t l = (b & 0x007fffff) - 0x00400000;
        l = l < nmax - 1 ? l : nmax - 1;
        l = l > -nmax ? l : -nmax;
        L[i] = (int8_t)(nmax + l);
    }
    return scale;
}

static void symmetric16_portable(const float *x, const float *w, int nmax, float *L, float *scale) {
    symmetric16(x, w, nmax, L, scale);
}
static void q3_16_portable(const float *x, int nmax, float *L, float *scale) { q3_16(x, nmax, L, scale); }
static float symmetric1_portable(int n, int nmax, const float *x, const float *w, int8_t *L) {
    return symmetric1(n, nmax, x, w, L);
}

#if defined(__x86_64__)
__attribute__((target("avx2,f16c")))
static void symmetric16_avx2(const float *x, const float *w, int nmax, float *L, float *scale) {
    symmetric16(x, w, nmax, L, scale);
}
__attribute__((target("avx2,f16c")))
static void q3_16_avx2(const float *x, int nmax, float *L, float *scale) { q3_16(x, nmax, L, scale); }
__attribute__((target("avx2,f16c")))
static float symmetric1_avx2(int n, int nmax, const float *x, const float *w, int8_t *L) {
    return symmetric1(n, nmax, x, w, L);
}
#endif

void scalpel_kq_search_symmetric16(const float *x, const float *w, int nmax, float *L, float *scale, int portable) {
#if defined(__x86_64__)
    if (!portable && scalpel_cpu_has_avx2_f16c()) { symmetric16_avx2(x, w, nmax, L, scale); return; }
#endif
    symmetric16_portable(x, w, nmax, L, scale);
}

void scalpel_kq_search_q3_16(const float *x, int nmax, float *L, float *scale, int portable) {
#if defined(__x86_64__)
    if (!portable && scalpel_cpu_has_avx2_f16c()) { q3_16_avx2(x, nmax, L, scale); return; }
#endif
    q3_16_portable(x, nmax, L, scale);
}

float scalpel_kq_search_symmetric1(int n, int nmax, const float *x, const float *w, int8_t *L, int portable) {
#if defined(__x86_64__)
    if (!portable && scalpel_cpu_has_avx2_f16c()) return symmetric1_avx2(n, nmax, x, w, L);
#endif
    return symmetric1_portable(n, nmax, x, w, L);
}
