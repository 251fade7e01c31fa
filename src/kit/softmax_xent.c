/* softmax_xent.c — vectorised softmax cross-entropy rows (softmax_xent.h). */
#include "runner/kit/softmax_xent.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

typedef float vf __attribute__((vector_size(32)));
typedef int32_t vi __attribute__((vector_size(32)));
enum { LANES = 8, BLOCK = 1024 };

static inline vf splat(float a) { return (vf){0} + a; }
static inline vf load(const float *p)
{
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void store(float *p, vf v) { memcpy(p, &v, sizeof v); }
/* a where mask, else b */
static inline vf blend(vi mask, vf a, vf b) { return (vf)(((vi)a & mask) | ((vi)b & ~mask)); }

/* exp(x) for x <= 0, Cephes' expf: n = round(x log2 e), r = x - n ln 2 in
 * two parts, a degree-6 polynomial, times 2^n built in the exponent bits.
 * Below -87.3 (2^-126) the result stays 2^-126 instead of going subnormal;
 * NaN stays NaN. */
static inline vf exp_neg(vf x)
{
    const vf lo = splat(-87.33654f), magic = splat(12582912.0f); /* 1.5 * 2^23: rounds */
    x = blend(x < lo, lo, x);
    vf t = x * 1.44269504088896341f + magic;
    vf n = t - magic;
    vf r = x - n * 0.693359375f - n * -2.12194440e-4f;
    vf p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    vi e = ((vi)t - 0x4B400000 + 127) << 23; /* (n + 127) in the exponent field */
    return p * (vf)e;
}

/* exp of one scalar x <= 0 through lane 0 (the tails of rows) */
static inline float exp_neg1(float x) { return exp_neg(splat(x))[0]; }

double xent_row_f32(int K, const float *z, int y, float scale, float *dz)
{
    int c = 0;
    float m = z[0];
    if (K >= LANES) {
        vf mv = load(z);
        for (c = LANES; c + LANES <= K; c += LANES) {
            vf v = load(z + c);
            mv = blend(v > mv, v, mv);
        }
        for (int l = 0; l < LANES; l++)
            m = mv[l] > m ? mv[l] : m;
    }
    for (; c < K; c++)
        m = z[c] > m ? z[c] : m;
    /* a NaN anywhere: mv/m skip it, but exp(NaN - m) carries it into s */
    double s = 0;
    c = 0;
    while (c + LANES <= K) {
        const int end = c + BLOCK < K ? c + BLOCK : K;
        vf acc = splat(0);
        for (; c + LANES <= end; c += LANES)
            acc += exp_neg(load(z + c) - m);
        for (int l = 0; l < LANES; l++)
            s += acc[l];
    }
    for (; c < K; c++)
        s += exp_neg1(z[c] - m);
    if (dz) { /* softmax = exp(z - m) / s */
        const float f = (float)(scale / s);
        for (c = 0; c + LANES <= K; c += LANES)
            store(dz + c, exp_neg(load(z + c) - m) * f);
        for (; c < K; c++)
            dz[c] = exp_neg1(z[c] - m) * f;
        dz[y] -= scale;
    }
    return (double)m + log(s) - (double)z[y];
}
