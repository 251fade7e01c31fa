/* nn.c — the layer kernels (core/nn.c) and the pooling math (core/pool.c):
 * forwards against naive double-precision references, the AVX-512 and
 * generic paths against each other, and every backward against central
 * finite differences of loss = sum(out * R) for a fixed random R. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runner/kit/nn.h"
#include "runner/kit/pool.h"
#include "tap.h"

static uint64_t rs = 88172645463325252ull;
static float frand(void) /* uniform (-1, 1) */
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (float)((rs >> 11) * (1.0 / 9007199254740992.0)) * 2 - 1;
}

static float *rand_vec(int64_t n, float scale)
{
    float *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++)
        v[i] = scale * frand();
    return v;
}

static double max_diff(const float *a, const double *b, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++)
        m = fmax(m, fabs(a[i] - b[i]));
    return m;
}

/* ---- finite differences: the kernel under test runs in a closure ---------------------- */

typedef struct fd_case {
    void (*forward)(struct fd_case *c); /* writes c->out */
    float *out, *R;
    int64_t nout;
    void *ctx;
} fd_case;

static double fd_loss(fd_case *c)
{
    c->forward(c);
    double l = 0;
    for (int64_t i = 0; i < c->nout; i++)
        l += (double)c->out[i] * c->R[i];
    return l;
}

/* Worst relative error of grad against central differences over up to 24
 * entries of x (n floats). */
static double fd_check(fd_case *c, float *x, const float *grad, int64_t n, float eps)
{
    double worst = 0;
    for (int k = 0; k < 24 && k < n; k++) {
        int64_t j = n <= 24 ? k : (int64_t)((k * 2654435761u) % (uint64_t)n);
        float keep = x[j];
        x[j] = keep + eps;
        double lp = fd_loss(c);
        x[j] = keep - eps;
        double lm = fd_loss(c);
        x[j] = keep;
        double fd = (lp - lm) / (2.0 * eps);
        double err = fabs(fd - grad[j]) / fmax(1e-3, fabs(fd) + fabs(grad[j]));
        worst = fmax(worst, err);
    }
    return worst;
}

/* ---- linear ------------------------------------------------------------------------- */

enum { LN_ = 7, LIN = 5, LOUT = 6 };
static float *lx, *lW, *lb;

static void lin_fwd(fd_case *c) { linear_forward(c->out, lx, lW, lb, LN_, LIN, LOUT); }

static void test_linear(void)
{
    lx = rand_vec(LN_ * LIN, 1);
    lW = rand_vec(LOUT * LIN, 1);
    lb = rand_vec(LOUT, 1);
    float y[LN_ * LOUT], R[LN_ * LOUT];
    double ref[LN_ * LOUT];
    for (int i = 0; i < LN_; i++)
        for (int o = 0; o < LOUT; o++) {
            double s = lb[o];
            for (int k = 0; k < LIN; k++)
                s += (double)lx[i * LIN + k] * lW[o * LIN + k];
            ref[i * LOUT + o] = s;
        }
    linear_forward(y, lx, lW, lb, LN_, LIN, LOUT);
    cmp_ok(max_diff(y, ref, LN_ * LOUT), <, 1e-5, "linear forward = x W^T + b");
    linear_forward(y, lx, lW, NULL, LN_, LIN, LOUT);
    for (int i = 0; i < LN_ * LOUT; i++)
        ref[i] -= lb[i % LOUT];
    cmp_ok(max_diff(y, ref, LN_ * LOUT), <, 1e-5, "linear forward without bias");
    for (int i = 0; i < LN_ * LOUT; i++)
        R[i] = frand();
    float dx[LN_ * LIN] = {0}, dW[LOUT * LIN] = {0}, db[LOUT] = {0};
    linear_backward(dx, dW, db, R, lx, lW, LN_, LIN, LOUT);
    fd_case c = {lin_fwd, y, R, LN_ * LOUT, NULL};
    double e = fmax(fd_check(&c, lx, dx, LN_ * LIN, 1e-2f),
                    fmax(fd_check(&c, lW, dW, LOUT * LIN, 1e-2f), fd_check(&c, lb, db, LOUT, 1e-2f)));
    cmp_ok(e, <, 1e-3, "linear backward (dx, dW, db) vs finite differences");
    float dx2[LN_ * LIN] = {0};
    linear_backward(dx2, NULL, NULL, R, lx, lW, LN_, LIN, LOUT);
    linear_backward(dx2, NULL, NULL, R, lx, lW, LN_, LIN, LOUT);
    double acc = 0;
    for (int i = 0; i < LN_ * LIN; i++)
        acc = fmax(acc, fabs(dx2[i] - 2 * dx[i]));
    cmp_ok(acc, <, 1e-5, "linear backward accumulates (+=), NULL gradients skipped");
    free(lx);
    free(lW);
    free(lb);
}

/* ---- layernorm ---------------------------------------------------------------------------- */

enum { NN_ = 5, NC = 16 };
static float *nx, *nw, *nb;

static void ln_fwd(fd_case *c) { layernorm_forward(c->out, NULL, NULL, nx, nw, nb, NN_, NC, 1e-5f); }

static void test_layernorm(void)
{
    nx = rand_vec(NN_ * NC, 2);
    nw = rand_vec(NC, 1);
    nb = rand_vec(NC, 1);
    float y[NN_ * NC], mean[NN_], rstd[NN_], R[NN_ * NC];
    double ref[NN_ * NC];
    for (int i = 0; i < NN_; i++) {
        double m = 0, v = 0;
        for (int c = 0; c < NC; c++)
            m += nx[i * NC + c] / (double)NC;
        for (int c = 0; c < NC; c++)
            v += (nx[i * NC + c] - m) * (nx[i * NC + c] - m) / NC;
        for (int c = 0; c < NC; c++)
            ref[i * NC + c] = (nx[i * NC + c] - m) / sqrt(v + 1e-5) * nw[c] + nb[c];
    }
    layernorm_forward(y, mean, rstd, nx, nw, nb, NN_, NC, 1e-5f);
    cmp_ok(max_diff(y, ref, NN_ * NC), <, 1e-5, "layernorm forward (biased variance, eps inside sqrt)");
    for (int i = 0; i < NN_ * NC; i++)
        R[i] = frand();
    float dx[NN_ * NC] = {0}, dw[NC] = {0}, db[NC] = {0};
    layernorm_backward(dx, dw, db, R, nx, nw, mean, rstd, NN_, NC);
    fd_case c = {ln_fwd, y, R, NN_ * NC, NULL};
    double e = fmax(fd_check(&c, nx, dx, NN_ * NC, 1e-2f),
                    fmax(fd_check(&c, nw, dw, NC, 1e-2f), fd_check(&c, nb, db, NC, 1e-2f)));
    cmp_ok(e, <, 5e-3, "layernorm backward (dx, dw, db) vs finite differences");
    /* the fused residual + LayerNorm = residual then LayerNorm */
    float *na = rand_vec(NN_ * NC, 1), sum[NN_ * NC], y2[NN_ * NC], m2[NN_], r2[NN_];
    for (int i = 0; i < NN_ * NC; i++)
        sum[i] = na[i] + nx[i];
    layernorm_forward(y, mean, rstd, sum, nw, nb, NN_, NC, 1e-5f);
    float kept[NN_ * NC];
    residual_layernorm_forward(y2, kept, m2, r2, na, nx, nw, nb, NN_, NC, 1e-5f);
    double d = 0;
    for (int i = 0; i < NN_ * NC; i++)
        d = fmax(d, fmax(fabs(y2[i] - y[i]), fabs(kept[i] - sum[i])));
    cmp_ok(d, <, 1e-6, "residual_layernorm_forward = residual_forward + layernorm_forward");
    /* its AVX-512 rows (two partial sums, a masked tail) against the generic ones */
    double dv = 0;
    for (int C = 8; C <= 392; C += 48) {
        enum { R3 = 3 };
        float *ra = rand_vec(R3 * C, 2), *rb = rand_vec(R3 * C, 2), *w3 = rand_vec(C, 1), *b3 = rand_vec(C, 1);
        float *o1 = malloc((size_t)R3 * C * sizeof *o1), *o2 = malloc((size_t)R3 * C * sizeof *o2);
        float mm1[R3], rr1[R3], mm2[R3], rr2[R3];
        residual_layernorm_forward(o1, NULL, mm1, rr1, ra, rb, w3, b3, R3, C, 1e-12f);
        nn_use_avx512(0);
        residual_layernorm_forward(o2, NULL, mm2, rr2, ra, rb, w3, b3, R3, C, 1e-12f);
        nn_use_avx512(1);
        for (int i = 0; i < R3 * C; i++)
            dv = fmax(dv, fabs((double)o1[i] - o2[i]));
        for (int i = 0; i < R3; i++)
            dv = fmax(dv, fmax(fabs((double)mm1[i] - mm2[i]), fabs((double)rr1[i] - rr2[i]) / rr2[i]));
        free(ra), free(rb), free(w3), free(b3), free(o1), free(o2);
    }
    cmp_ok(dv, <, 1e-5, "residual_layernorm_forward: AVX-512 and generic rows agree (C = 8 .. 392)");
    float da[NN_ * NC] = {0}, dbb[NN_ * NC] = {0}, dw2[NC] = {0}, db2[NC] = {0}, ds[NN_ * NC];
    float dref[NN_ * NC] = {0}, dwr[NC] = {0}, dbr[NC] = {0};
    residual_layernorm_backward(da, dbb, dw2, db2, ds, R, kept, nw, m2, r2, NN_, NC);
    layernorm_backward(dref, dwr, dbr, R, sum, nw, mean, rstd, NN_, NC);
    d = 0;
    for (int i = 0; i < NN_ * NC; i++)
        d = fmax(d, fmax(fabs(da[i] - dref[i]), fabs(dbb[i] - dref[i])));
    for (int k = 0; k < NC; k++)
        d = fmax(d, fmax(fabs(dw2[k] - dwr[k]), fabs(db2[k] - dbr[k])));
    cmp_ok(d, <, 1e-6, "residual_layernorm_backward: both addends get the LayerNorm input's gradient");
    free(na);
    free(nx);
    free(nw);
    free(nb);
}

/* ---- GELU ---------------------------------------------------------------------------------- */

enum { GN = 4099 };
static float *gx;

static void gelu_fwd(fd_case *c) { gelu_forward(c->out, gx, GN); }

static void test_gelu(void)
{
    gx = malloc(GN * sizeof *gx);
    for (int i = 0; i < GN; i++)
        gx[i] = -12.0f + 24.0f * i / (GN - 1);
    gx[7] = 0;
    gx[8] = 1e-20f;
    float *y = malloc(GN * sizeof *y), *y2 = malloc(GN * sizeof *y2);
    double *ref = malloc(GN * sizeof *ref), worst = 0;
    for (int i = 0; i < GN; i++)
        ref[i] = 0.5 * gx[i] * (1 + erf(gx[i] / sqrt(2.0)));
    gelu_forward(y, gx, GN);
    for (int i = 0; i < GN; i++)
        worst = fmax(worst, fabs(y[i] - ref[i]) / fmax(1.0, fabs(ref[i])));
    cmp_ok(worst, <, 5e-7, "gelu forward (%s) = exact erf GELU to float precision",
           nn_avx512() ? "AVX-512" : "generic");
    nn_use_avx512(0);
    gelu_forward(y2, gx, GN);
    nn_use_avx512(1);
    double paths = 0;
    for (int i = 0; i < GN; i++)
        paths = fmax(paths, fabs(y[i] - y2[i]) / fmax(1.0f, fabsf(y2[i])));
    cmp_ok(paths, <, 5e-7, "gelu: AVX-512 and libm paths agree");
    {   /* the AVX2 path (CPUs without AVX-512): the AVX-512 path's pieces, the same bits */
        float sp[GN + 19], o512[GN + 19], o2[GN + 19];
        const float special[19] = {NAN, -NAN, INFINITY, -INFINITY, 4.0f, -4.0f, 3.9999998f, 0.25f, -0.0f,
                                   1e-40f, -1e-40f, 3.4e38f, -3.4e38f, 5.656854f, -5.656854f, 0.5f, 1.0f, -2.0f, 8.0f};
        memcpy(sp, gx, GN * sizeof *gx);
        memcpy(sp + GN, special, sizeof special);
        gelu_forward(o512, sp, GN + 19);
        nn_use_avx512(2);
        gelu_forward(o2, sp, GN + 19);
        nn_use_avx512(1);
        double w2 = 0;
        for (int i = 0; i < GN; i++)
            w2 = fmax(w2, fabs(o2[i] - ref[i]) / fmax(1.0, fabs(ref[i])));
        int same = !nn_avx512() || memcmp(o512, o2, sizeof o2) == 0;
        ok(w2 < 5e-7 && same, "gelu forward without AVX-512 (AVX2 where there is) = exact GELU (%.1e)%s", w2,
           nn_avx512() ? ", = the AVX-512 path bit for bit, NaN, infinities and denormals included" : "");
        /* backward: exp's scaling by two powers of two, at the ends of its range too */
        float *dy = rand_vec(GN + 19, 3), d512[GN + 19], d2[GN + 19];
        const float ends[6] = {13.3f, -13.3f, 13.6f, 14.0f, 20.0f, 1e19f};
        memcpy(sp + 100, ends, sizeof ends);
        for (int i = 0; i < GN + 19; i++)
            d512[i] = d2[i] = 0.25f * (float)(i % 7);
        gelu_backward(d512, sp, dy, GN + 19);
        nn_use_avx512(2);
        gelu_backward(d2, sp, dy, GN + 19);
        nn_use_avx512(1);
        double wb = 0;
        for (int i = 0; i < GN; i++) {
            double x = sp[i], d = 0.5 * (1 + erf(x / sqrt(2.0))) + x * exp(-0.5 * x * x) / sqrt(2 * M_PI);
            wb = fmax(wb, fabs(d2[i] - 0.25f * (float)(i % 7) - dy[i] * d));
        }
        same = !nn_avx512() || memcmp(d512, d2, sizeof d2) == 0;
        ok(wb < 1e-6 && same, "gelu backward without AVX-512 (AVX2 where there is) = dy GELU' (%.1e)%s", wb,
           nn_avx512() ? ", = the AVX-512 path bit for bit" : "");
        free(dy);
    }
    gelu_row(y2, gx, GN);
    ok(memcmp(y, y2, GN * sizeof *y) == 0, "gelu_row (one thread) = gelu_forward, bit for bit");
    float *R = rand_vec(GN, 1), *dx = calloc(GN, sizeof *dx), *dx2 = calloc(GN, sizeof *dx2);
    gelu_backward(dx, gx, R, GN);
    nn_use_avx512(0);
    gelu_backward(dx2, gx, R, GN);
    nn_use_avx512(1);
    paths = 0;
    for (int i = 0; i < GN; i++)
        paths = fmax(paths, fabs(dx[i] - dx2[i]));
    cmp_ok(paths, <, 1e-6, "gelu backward: AVX-512 and libm paths agree");
    double exact = 0;
    for (int i = 0; i < GN; i++) {
        double x = gx[i], d = 0.5 * (1 + erf(x / sqrt(2.0))) + x * exp(-0.5 * x * x) / sqrt(2 * M_PI);
        exact = fmax(exact, fabs(dx[i] - R[i] * d));
    }
    cmp_ok(exact, <, 1e-6, "gelu backward = dy (Phi(x) + x phi(x)), in double");
    fd_case c = {gelu_fwd, y, R, GN, NULL};
    cmp_ok(fd_check(&c, gx, dx, GN, 1e-2f), <, 2e-2, "gelu backward vs finite differences");
    free(gx);
    free(y);
    free(y2);
    free(ref);
    free(R);
    free(dx);
    free(dx2);
}

/* ---- embeddings, residual, dropout ------------------------------------------------------------ */

enum { EV = 9, EP = 6, ET = 2, EC = 8, EN = 7 };
static float *ewte, *ewpe, *ewtt;
static const int32_t eids[EN] = {3, 1, 3, 8, 0, 5, 3}, epos[EN] = {0, 1, 2, 0, 1, 2, 3},
                     etypes[EN] = {0, 0, 1, 0, 1, 1, 0};

static void emb_fwd(fd_case *c)
{
    embeddings_forward(c->out, eids, epos, etypes, EN, EC, ewte, ewpe, ewtt);
}

static void test_embeddings(void)
{
    ewte = rand_vec(EV * EC, 1);
    ewpe = rand_vec(EP * EC, 1);
    ewtt = rand_vec(ET * EC, 1);
    float y[EN * EC], R[EN * EC];
    double ref[EN * EC];
    for (int i = 0; i < EN; i++)
        for (int c = 0; c < EC; c++)
            ref[i * EC + c] = (double)ewte[eids[i] * EC + c] + ewpe[epos[i] * EC + c] +
                              ewtt[etypes[i] * EC + c];
    emb_fwd(&(fd_case){.out = y});
    cmp_ok(max_diff(y, ref, EN * EC), <, 1e-6, "embeddings forward = word + position + type");
    for (int i = 0; i < EN * EC; i++)
        R[i] = frand();
    float dwte[EV * EC] = {0}, dwpe[EP * EC] = {0}, dwtt[ET * EC] = {0};
    embeddings_backward(dwte, dwpe, dwtt, R, eids, epos, etypes, EN, EC);
    fd_case c = {emb_fwd, y, R, EN * EC, NULL};
    double e = fmax(fd_check(&c, ewte, dwte, EV * EC, 1e-2f),
                    fmax(fd_check(&c, ewpe, dwpe, EP * EC, 1e-2f), fd_check(&c, ewtt, dwtt, ET * EC, 1e-2f)));
    cmp_ok(e, <, 1e-3, "embeddings backward scatters (repeated id 3 accumulates)");
    free(ewte);
    free(ewpe);
    free(ewtt);

    float a[5] = {1, 2, 3, 4, 5}, b[5] = {5, 4, 3, 2, 1}, s[5], da[5] = {0}, dbv[5] = {1, 1, 1, 1, 1};
    residual_forward(s, a, b, 5);
    residual_backward(da, dbv, a, 5);
    ok(s[0] == 6 && s[4] == 6 && da[2] == 3 && dbv[2] == 4, "residual forward and backward (+=)");

    enum { DN = 100000 };
    float *x = rand_vec(DN, 1), *y1 = malloc(DN * sizeof *y1), *y2 = malloc(DN * sizeof *y2);
    float *dx = calloc(DN, sizeof *dx), *ones = malloc(DN * sizeof *ones);
    for (int i = 0; i < DN; i++)
        ones[i] = 1;
    dropout_forward(y1, x, DN, 0.3f, 42);
    dropout_forward(y2, x, DN, 0.3f, 42);
    int kept = 0, scaled = 1;
    for (int i = 0; i < DN; i++) {
        if (y1[i] != 0) {
            kept++;
            scaled = scaled && fabsf(y1[i] - x[i] / 0.7f) < 1e-6f;
        }
    }
    ok(memcmp(y1, y2, DN * sizeof *y1) == 0 && fabs(kept / (double)DN - 0.7) < 0.01 && scaled,
       "dropout keeps %.3f of the elements (p = 0.3), scaled by 1/(1-p), same seed same mask",
       kept / (double)DN);
    dropout_forward(y2, x, DN, 0.3f, 43);
    ok(memcmp(y1, y2, DN * sizeof *y1) != 0, "another seed, another mask");
    dropout_backward(dx, ones, DN, 0.3f, 42);
    int same = 1;
    for (int i = 0; i < DN; i++)
        same = same && ((y1[i] != 0) == (dx[i] != 0)) && (dx[i] == 0 || fabsf(dx[i] - 1 / 0.7f) < 1e-6f);
    ok(same, "dropout backward regenerates the forward's mask");
    free(x);
    free(y1);
    free(y2);
    free(dx);
    free(ones);
}

/* ---- attention ------------------------------------------------------------------------------- */

enum { AC = 8, ANH = 2, AS = 3 };
static const int aoff[AS + 1] = {0, 5, 8, 14};
static float *aqkv, *aprobs;
static int64_t apoff[AS];

static void att_fwd(fd_case *c)
{
    float scratch[4096];
    attention_forward(c->out, aprobs, aqkv, aoff, apoff, AS, AC, ANH, 0, 0, scratch);
}

/* Hugging Face's way: all sequences padded to T, additive mask -10000 on
 * padding keys, in double. */
static void attention_reference(double *out)
{
    const int T = 6, hd = AC / ANH;
    for (int s = 0; s < AS; s++) {
        int n = aoff[s + 1] - aoff[s];
        for (int h = 0; h < ANH; h++)
            for (int i = 0; i < n; i++) {
                const float *q = aqkv + (aoff[s] + i) * 3 * AC + h * hd;
                double sc[6], mx = -1e300, sum = 0;
                for (int j = 0; j < T; j++) {
                    double d = 0;
                    if (j < n) {
                        const float *k = aqkv + (aoff[s] + j) * 3 * AC + AC + h * hd;
                        for (int e = 0; e < hd; e++)
                            d += (double)q[e] * k[e];
                    }
                    sc[j] = d / sqrt(hd) + (j < n ? 0 : -10000.0);
                    mx = fmax(mx, sc[j]);
                }
                for (int j = 0; j < T; j++)
                    sum += sc[j] = exp(sc[j] - mx);
                for (int e = 0; e < hd; e++) {
                    double o = 0;
                    for (int j = 0; j < n; j++)
                        o += sc[j] / sum * aqkv[(aoff[s] + j) * 3 * AC + 2 * AC + h * hd + e];
                    out[(aoff[s] + i) * AC + h * hd + e] = o;
                }
            }
    }
}

static void test_attention(void)
{
    const int N = aoff[AS];
    aqkv = rand_vec(N * 3 * AC, 1.5f);
    int64_t np = attention_probs_size(aoff, AS, ANH, apoff);
    is(np, ANH * (25 + 9 + 36), "attention_probs_size: heads x n^2 per sequence");
    aprobs = malloc((size_t)np * sizeof *aprobs);
    float out[14 * AC], out2[14 * AC], R[14 * AC], scratch[4096];
    double ref[14 * AC];
    attention_reference(ref);
    attention_forward(out, NULL, aqkv, aoff, apoff, AS, AC, ANH, 0, 0, scratch);
    cmp_ok(max_diff(out, ref, N * AC), <, 1e-5,
           "attention over packed sequences = padded attention with the additive -10000 mask");
    nn_use_avx512(0);
    attention_forward(out2, aprobs, aqkv, aoff, apoff, AS, AC, ANH, 0, 0, scratch);
    nn_use_avx512(1);
    cmp_ok(max_diff(out2, ref, N * AC), <, 1e-5, "attention, generic path (probs kept)");
    double rowsum = 0;
    for (int j = 0; j < 5; j++)
        rowsum += aprobs[apoff[0] + 5 * 5 + j]; /* sequence 0, head 1, query 0 */
    cmp_ok(fabs(rowsum - 1), <, 1e-6, "kept probabilities sum to 1 per query");
    for (int i = 0; i < N * AC; i++)
        R[i] = frand();
    float *dqkv = calloc((size_t)N * 3 * AC, sizeof *dqkv);
    attention_forward(out, aprobs, aqkv, aoff, apoff, AS, AC, ANH, 0, 0, scratch);
    attention_backward(dqkv, R, aqkv, aprobs, aoff, apoff, AS, AC, ANH, 0, 0, scratch);
    fd_case c = {att_fwd, out, R, N * AC, NULL};
    cmp_ok(fd_check(&c, aqkv, dqkv, N * 3 * AC, 1e-2f), <, 5e-3,
           "attention backward (dq, dk, dv) vs finite differences");
    float *dqkv2 = calloc((size_t)N * 3 * AC, sizeof *dqkv2);
    attention_forward(out, aprobs, aqkv, aoff, apoff, AS, AC, ANH, 0, 0, scratch);
    nn_use_avx512(0);
    attention_backward(dqkv2, R, aqkv, aprobs, aoff, apoff, AS, AC, ANH, 0, 0, scratch);
    nn_use_avx512(1);
    double bdiff = 0;
    for (int i = 0; i < N * 3 * AC; i++)
        bdiff = fmax(bdiff, fabs(dqkv[i] - dqkv2[i]));
    cmp_ok(bdiff, <, 1e-5, "attention backward: AVX-512 and generic builds agree");
    free(dqkv2);
    /* with attention dropout, the same seed gives the same masks */
    float d1[14 * AC], d2[14 * AC];
    attention_forward(d1, aprobs, aqkv, aoff, apoff, AS, AC, ANH, 0.25f, 7, scratch);
    attention_forward(d2, aprobs, aqkv, aoff, apoff, AS, AC, ANH, 0.25f, 7, scratch);
    ok(memcmp(d1, d2, sizeof d1) == 0 && memcmp(d1, out, sizeof d1) != 0,
       "attention dropout: deterministic per seed, changes the output");
    free(aqkv);
    free(aprobs);
    free(dqkv);
}

/* Keyed dropout: a row's mask follows its key, wherever the row is. */
static void test_keyed_dropout(void)
{
    enum { KN = 4, KC = 5000 };
    float *x = rand_vec(KN * KC, 1), *x2 = malloc(KN * KC * sizeof *x2);
    float *y1 = malloc(KN * KC * sizeof *y1), *y2 = malloc(KN * KC * sizeof *y2);
    float *ones = malloc(KN * KC * sizeof *ones), *dx = calloc(KN * KC, sizeof *dx);
    const uint64_t k1[KN] = {10, 11, 12, 13}, k2[KN] = {20, 21, 22, 10};
    for (int i = 0; i < KN * KC; i++) {
        ones[i] = 1;
        x2[i] = x[i] + 1;
    }
    memcpy(x2 + 3 * KC, x, KC * sizeof *x); /* row 3 of the second batch = row 0 of the first */
    dropout_rows_forward(y1, x, KN, KC, 0.3f, 42, k1);
    dropout_rows_forward(y2, x2, KN, KC, 0.3f, 42, k2);
    ok(memcmp(y1, y2 + 3 * KC, KC * sizeof *y1) == 0, "keyed dropout: key 10 at row 0 and at row 3, same output");
    int kept = 0, same01 = 0;
    for (int i = 0; i < KN * KC; i++)
        kept += y1[i] != 0;
    for (int c = 0; c < KC; c++)
        same01 += (y1[c] != 0) == (y1[KC + c] != 0);
    ok(fabs(kept / (double)(KN * KC) - 0.7) < 0.01 && same01 < KC * 0.7,
       "keyed dropout keeps %.3f (p = 0.3); rows of other keys get other masks (%d of %d agree)",
       kept / (double)(KN * KC), same01, KC);
    dropout_rows_forward(y2, x, KN, KC, 0.3f, 43, k1);
    ok(memcmp(y1, y2, KN * KC * sizeof *y1) != 0, "keyed dropout: another seed, another mask");
    dropout_rows_backward(dx, ones, KN, KC, 0.3f, 42, k1);
    int same = 1;
    for (int i = 0; i < KN * KC; i++)
        same = same && ((y1[i] != 0) == (dx[i] != 0)) && (dx[i] == 0 || fabsf(dx[i] - 1 / 0.7f) < 1e-6f);
    ok(same, "keyed dropout backward regenerates the forward's mask");
    /* the AVX-512 rows and the portable loop draw the same bits */
    float *y3 = malloc(KN * KC * sizeof *y3), *dx3 = calloc(KN * KC, sizeof *dx3);
    nn_use_avx512(0);
    dropout_rows_forward(y3, x, KN, KC, 0.3f, 42, k1);
    dropout_rows_backward(dx3, ones, KN, KC, 0.3f, 42, k1);
    nn_use_avx512(1);
    ok(y3 && dx3 && memcmp(y1, y3, KN * KC * sizeof *y1) == 0 && memcmp(dx, dx3, KN * KC * sizeof *dx) == 0,
       "keyed dropout: the portable loop gives the vector path's bits (forward and backward)");
    free(y3);
    free(dx3);
    free(x);
    free(x2);
    free(y1);
    free(y2);
    free(ones);
    free(dx);
}

static const uint64_t akeys[AS] = {100, 101, 102};

static void att_fwd_keyed(fd_case *c)
{
    float scratch[4096];
    attention_forward_keyed(c->out, aprobs, aqkv, aoff, apoff, AS, AC, ANH, 0.25f, 7, akeys, scratch);
}

/* Keyed attention dropout: sequence 2 alone (key 102) gets the outputs
 * and gradients it gets packed after two others; backward vs finite
 * differences with the masks on. */
static void test_keyed_attention(void)
{
    const int N = aoff[AS], n2 = aoff[3] - aoff[2];
    aqkv = rand_vec(N * 3 * AC, 1.5f);
    aprobs = malloc((size_t)attention_probs_size(aoff, AS, ANH, apoff) * sizeof *aprobs);
    float out[14 * AC], R[14 * AC], scratch[4096], one[6 * AC], probs1[2 * 36];
    float *dqkv = calloc((size_t)N * 3 * AC, sizeof *dqkv), dq1[6 * 3 * AC] = {0};
    for (int i = 0; i < N * AC; i++)
        R[i] = frand();
    attention_forward_keyed(out, aprobs, aqkv, aoff, apoff, AS, AC, ANH, 0.25f, 7, akeys, scratch);
    attention_backward_keyed(dqkv, R, aqkv, aprobs, aoff, apoff, AS, AC, ANH, 0.25f, 7, akeys, scratch);
    const int off1[2] = {0, n2};
    int64_t poff1[1];
    attention_probs_size(off1, 1, ANH, poff1);
    const float *q2 = aqkv + aoff[2] * 3 * AC;
    attention_forward_keyed(one, probs1, q2, off1, poff1, 1, AC, ANH, 0.25f, 7, akeys + 2, scratch);
    attention_backward_keyed(dq1, R + aoff[2] * AC, q2, probs1, off1, poff1, 1, AC, ANH, 0.25f, 7, akeys + 2,
                             scratch);
    ok(memcmp(one, out + aoff[2] * AC, sizeof one) == 0 &&
           memcmp(dq1, dqkv + aoff[2] * 3 * AC, sizeof dq1) == 0,
       "keyed attention dropout: a sequence alone = the same sequence packed third (forward and backward)");
    float plain[14 * AC];
    attention_forward(plain, aprobs, aqkv, aoff, apoff, AS, AC, ANH, 0, 0, scratch);
    ok(memcmp(plain, out, sizeof out) != 0, "keyed attention dropout changes the output");
    fd_case c = {att_fwd_keyed, out, R, N * AC, NULL};
    cmp_ok(fd_check(&c, aqkv, dqkv, N * 3 * AC, 1e-2f), <, 5e-3,
           "keyed attention dropout: backward vs finite differences");
    free(aqkv);
    free(aprobs);
    free(dqkv);
}

/* ---- pooling ----------------------------------------------------------------------------------- */

enum { PL = 2, PB = 3, PT = 5, PC = 6 };
static float *phid[PL + 1], *pdh[PL + 1];
static uint8_t pmask[PB * PT] = {1, 1, 1, 1, 0, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1};
static pool_spec pspec;

static void pool_fwd(fd_case *c)
{
    runner_states s = {PL, PB, PT, PC, phid, NULL};
    pool_forward(&pspec, &s, pmask, c->out);
}

static void test_pool(void)
{
    /* the tokens of a (row, channel) at least 0.06 apart, in an order that
     * changes with the row and channel: max pooling's finite differences
     * (steps of 0.01) never cross a tie, whatever the generator's state;
     * every channel's values of one sign and at least 0.48 from zero, so
     * the normalized variants' norms are never near zero */
    for (int l = 0; l <= PL; l++) {
        phid[l] = malloc(PB * PT * PC * sizeof(float));
        pdh[l] = calloc(PB * PT * PC, sizeof(float));
        for (int b = 0; b < PB; b++)
            for (int t = 0; t < PT; t++)
                for (int c = 0; c < PC; c++)
                    phid[l][(b * PT + t) * PC + c] =
                        (c % 2 ? -1.0f : 1.0f) * (0.5f + 0.1f * (float)((3 * t + b + c + l) % PT)) +
                        0.02f * frand();
    }
    /* padding holds huge values: no pooling may see them */
    for (int b = 0; b < PB; b++)
        for (int t = 0; t < PT; t++)
            if (!pmask[b * PT + t])
                for (int l = 0; l <= PL; l++)
                    for (int c = 0; c < PC; c++)
                        phid[l][(b * PT + t) * PC + c] = 1000;
    is(pool_layer_index(-1, 6), 6, "layer -1 is the last hidden state");
    is(pool_layer_index(-2, 6), 5, "layer -2 the second to last");
    is(pool_layer_index(-7, 6), 0, "layer -7 of 6 the embedding output");
    is(pool_layer_index(-8, 6), -1, "layer -8 of 6 does not exist");
    is(pool_layer_index(3, 6), 3, "non-negative layers count from the embeddings");
    int last[1] = {PL}, two[2] = {PL, 1};
    float out[PB * PC], scratch[PB * PC];
    runner_states s = {PL, PB, PT, PC, phid, pdh};
    /* reference values for row 1 (tokens 0, 1) of the last layer */
    const float *h0 = phid[PL] + (1 * PT + 0) * PC, *h1 = phid[PL] + (1 * PT + 1) * PC;
    const char *names[] = {"mean", "cls", "max", "mean_sqrt_len", "weighted_mean"};
    for (int k = POOL_MEAN; k <= POOL_WEIGHTED_MEAN; k++) {
        pspec = (pool_spec){(pool_kind)k, 1, last, 0};
        pool_forward(&pspec, &s, pmask, out);
        double worst = 0;
        for (int c = 0; c < PC; c++) {
            double want = k == POOL_MEAN ? (h0[c] + h1[c]) / 2.0
                          : k == POOL_CLS ? h0[c]
                          : k == POOL_MAX ? fmax(h0[c], h1[c])
                          : k == POOL_MEAN_SQRT_LEN ? (h0[c] + h1[c]) / sqrt(2.0)
                                                    : (1.0 * h0[c] + 2.0 * h1[c]) / 3.0;
            worst = fmax(worst, fabs(out[PC + c] - want));
        }
        cmp_ok(worst, <, 1e-6, "%s pooling of a 2-token row (padding never counts)", names[k]);
        for (int variant = 0; variant < 2; variant++) {
            pspec = (pool_spec){(pool_kind)k, variant ? 2 : 1, variant ? two : last, variant};
            float R[PB * PC];
            for (int i = 0; i < PB * PC; i++)
                R[i] = frand();
            for (int l = 0; l <= PL; l++)
                memset(pdh[l], 0, PB * PT * PC * sizeof(float));
            pool_backward(&pspec, &s, pmask, R, scratch);
            fd_case c = {pool_fwd, out, R, PB * PC, NULL};
            double e = fmax(fd_check(&c, phid[PL], pdh[PL], PB * PT * PC, 1e-2f),
                            variant ? fd_check(&c, phid[1], pdh[1], PB * PT * PC, 1e-2f) : 0);
            cmp_ok(e, <, 5e-3, "%s backward vs finite differences%s", names[k],
                   variant ? " (average of layers -1 and 1, normalized)" : "");
        }
    }
    int zero_mask_ok = 1;
    uint8_t none[PB * PT] = {0};
    pspec = (pool_spec){POOL_MAX, 1, last, 1};
    pool_forward(&pspec, &s, none, out);
    for (int i = 0; i < PB * PC; i++)
        zero_mask_ok = zero_mask_ok && out[i] == 0 && !isnan(out[i]);
    ok(zero_mask_ok, "rows without tokens pool to zeros (no NaN even normalized)");
    for (int l = 0; l <= PL; l++) {
        free(phid[l]);
        free(pdh[l]);
    }
}

/* The first NaN or infinity, across the scan's block boundaries and in
 * vectors' tails (the prefixes end 15 values into a vector), with the
 * AVX-512 scan (avx512 1) or the portable one (0). */
static void test_first_nonfinite(int avx512)
{
    enum { FN = 10000 };
    float *x = calloc(FN, sizeof *x);
    nn_use_avx512(avx512);
    int good = x != NULL && nn_first_nonfinite(x, FN) == -1 && nn_first_nonfinite(x, 0) == -1;
    const int64_t at[] = {0, 4095, 4096, 9999};
    const float bad[] = {NAN, INFINITY, -INFINITY, NAN};
    for (int k = 0; good && k < 4; k++) {
        x[at[k]] = bad[k];
        x[FN - 1] = k < 3 ? -INFINITY : x[FN - 1]; /* a later one does not win */
        good = nn_first_nonfinite(x, FN) == at[k] && nn_first_nonfinite(x, at[k]) == -1 &&
               (at[k] == 0 || nn_first_nonfinite(x + 1, FN - 1) == at[k] - 1); /* 9999: in a tail */
        memset(x, 0, FN * sizeof *x);
    }
    x[17] = 3.4e38f; /* large but finite */
    x[9998] = -3.4e38f;
    good = good && nn_first_nonfinite(x, FN) == -1;
    nn_use_avx512(1);
    ok(good, "first non-finite%s: NaN, +inf, -inf found at 0, 4095, 4096, 9999; finite extremes pass",
       avx512 && nn_avx512() ? " (AVX-512)" : " (portable)");
    free(x);
}

/* n floats ending exactly where a PROT_NONE page begins (NULL on failure):
 * a kernel writing past the end faults at the writing instruction, which
 * neither ASan (blind to AVX-512 masked stores) nor valgrind (no AVX-512)
 * would report. Kept mapped until the process ends. */
static float *guarded(size_t n)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE), bytes = n * sizeof(float), span = (bytes + pg - 1) / pg * pg;
    char *p = mmap(NULL, span + pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED || mprotect(p + span, pg, PROT_NONE) != 0)
        return NULL;
    float *f = (float *)(p + span - bytes);
    for (size_t i = 0; i < n; i++)
        f[i] = (float)((i * 7919) % 13) * 0.01f - 0.06f;
    return f;
}

/* The training kernels at the tiny model's shapes (C 32, 4 heads of 8:
 * narrower than a vector), and the eval attention with 2 heads of 16, on
 * buffers that end at a guard page: 1-3 sequences of 1-33 tokens. A fault
 * here is an overrun. */
static void test_guard_pages(void)
{
    const int C = 32, NH = 4, FF = 64;
    int cases = 0, ok_all = 1;
    for (int S = 1; S <= 3 && ok_all; S++)
        for (int len = 1; len <= 33 && ok_all; len++) {
            int off[4];
            int64_t poff[4];
            uint64_t keys[4];
            off[0] = 0;
            for (int s = 0; s < S; s++) {
                off[s + 1] = off[s] + len + s;
                keys[s] = 100 + (uint64_t)s;
            }
            const int N = off[S];
            int64_t np = attention_probs_size(off, S, NH, poff);
            float *qkv = guarded((size_t)N * 3 * C), *out = guarded((size_t)N * C), *probs = guarded((size_t)np);
            float *dout = guarded((size_t)N * C), *dqkv = guarded((size_t)N * 3 * C);
            float *scr = guarded((size_t)attention_scratch(len + S, C, 2) * (size_t)omp_get_max_threads());
            float *x = guarded((size_t)N * C), *y = guarded((size_t)N * C), *s2 = guarded((size_t)N * C);
            float *dx = guarded((size_t)N * C), *da = guarded((size_t)N * C), *ds = guarded((size_t)N * C);
            float *w = guarded(C), *b = guarded(C), *dw = guarded(C), *db = guarded(C);
            float *mean = guarded(N), *rstd = guarded(N), *h = guarded((size_t)N * FF), *g = guarded((size_t)N * FF);
            float *W = guarded((size_t)FF * C), *dW = guarded((size_t)FF * C), *bf = guarded(FF), *dbf = guarded(FF);
            float *all[] = {qkv, out, probs, dout, dqkv, scr, x, y, s2, dx, da, ds, w, b, dw, db, mean, rstd, h, g, W, dW, bf, dbf};
            for (size_t k = 0; k < sizeof all / sizeof *all; k++)
                ok_all = ok_all && all[k];
            if (!ok_all)
                break;
            attention_forward_keyed(out, NULL, qkv, off, poff, S, C, 2, 0, 0, NULL, scr); /* eval, heads of 16 */
            attention_forward_keyed(out, probs, qkv, off, poff, S, C, NH, 0.1f, 7, keys, scr);
            attention_backward_keyed(dqkv, dout, qkv, probs, off, poff, S, C, NH, 0.1f, 7, keys, scr);
            dropout_rows_forward(y, x, N, C, 0.1f, 3, NULL);
            dropout_rows_backward(y, x, N, C, 0.1f, 3, NULL);
            layernorm_forward(y, mean, rstd, x, w, b, N, C, 1e-12f);
            layernorm_backward(dx, dw, db, dout, x, w, mean, rstd, N, C);
            residual_layernorm_forward(y, s2, mean, rstd, x, dout, w, b, N, C, 1e-12f);
            residual_layernorm_backward(da, dx, dw, db, ds, dout, s2, w, mean, rstd, N, C);
            linear_forward(h, x, W, bf, N, C, FF);
            gelu_forward(g, h, (int64_t)N * FF);
            gelu_backward(h, g, h, (int64_t)N * FF);
            linear_backward(dx, dW, dbf, h, x, W, N, C, FF);
            cases++;
        }
    ok(ok_all && cases == 99, "AVX-512 kernels stay inside buffers that end at a guard page (%d shapes)", cases);
}

/* The AVX-512 attention has four paths: inference with n <= 64 (heads of
 * a multiple of 16 dimensions: 16 queries a vector, keys in groups of 8
 * to 12; others: 4 queries at a time, the probabilities kept on the
 * stack), n <= 64 with the probabilities kept for the backward, and
 * longer sequences (scores, then the softmax). Lengths on each side of
 * the tile edges (1, 15, 17, 17, 64, 65, 100, 4, 16, 25, 33, 5, 20, 20:
 * a last block of 1-4 queries goes 4 at a time), heads of 32 and 24 (the
 * keys are transposed by blocks of 16 dimensions). */
static void test_attention_lengths(int C, int NH)
{
    enum { S = 14 };
    const int off[S + 1] = {0, 1, 16, 33, 50, 114, 179, 279, 283, 299, 324, 357, 362, 382, 402};
    const int N = off[S];
    int64_t poff[S], np = attention_probs_size(off, S, NH, poff);
    float *qkv = rand_vec((int64_t)N * 3 * C, 2.0f), *probs = malloc((size_t)np * sizeof *probs);
    float *a = malloc((size_t)N * C * sizeof *a), *b = malloc((size_t)N * C * sizeof *b);
    float *g = malloc((size_t)N * C * sizeof *g);
    float *scratch = malloc((size_t)(attention_scratch(100, C, NH) * omp_get_max_threads()) * sizeof *scratch);
    attention_forward(a, NULL, qkv, off, poff, S, C, NH, 0, 0, scratch);
    attention_forward(b, probs, qkv, off, poff, S, C, NH, 0, 0, scratch);
    nn_use_avx512(0);
    attention_forward(g, NULL, qkv, off, poff, S, C, NH, 0, 0, scratch);
    nn_use_avx512(1);
    ok(memcmp(a, b, (size_t)N * C * sizeof *a) == 0,
       "attention, lengths 1-100, head %d: the same bits with and without the probabilities kept", C / NH);
    double d = 0;
    for (int64_t i = 0; i < (int64_t)N * C; i++)
        d = fmax(d, fabs((double)a[i] - g[i]));
    cmp_ok(d, <, 1e-5, "attention, lengths 1-100, head %d: AVX-512 and generic paths agree", C / NH);
    /* the backward, with attention dropout: blocks of 4 queries, V^T by
     * blocks of 16, dk/dv by 32 dimensions, against the generic loops */
    float *dout = rand_vec((int64_t)N * C, 1.0f);
    float *d1 = calloc((size_t)N * 3 * C, sizeof *d1), *d2 = calloc((size_t)N * 3 * C, sizeof *d2);
    nn_use_avx512(0);
    attention_forward(g, probs, qkv, off, poff, S, C, NH, 0.1f, 5, scratch);
    nn_use_avx512(1);
    attention_forward(a, probs, qkv, off, poff, S, C, NH, 0.1f, 5, scratch);
    d = 0;
    for (int64_t i = 0; i < (int64_t)N * C; i++)
        d = fmax(d, fabs((double)a[i] - g[i]));
    cmp_ok(d, <, 1e-5, "attention with dropout, lengths 1-100, head %d: AVX-512 and generic agree", C / NH);
    attention_backward(d1, dout, qkv, probs, off, poff, S, C, NH, 0.1f, 5, scratch);
    nn_use_avx512(0);
    attention_backward(d2, dout, qkv, probs, off, poff, S, C, NH, 0.1f, 5, scratch);
    nn_use_avx512(1);
    double db = 0, big = 0;
    for (int64_t i = 0; i < (int64_t)N * 3 * C; i++) {
        db = fmax(db, fabs((double)d1[i] - d2[i]));
        big = fmax(big, fabs((double)d2[i]));
    }
    cmp_ok(db, <, 1e-5 * fmax(1, big),
           "attention backward with dropout, lengths 1-100, head %d: AVX-512 and generic agree (max %.3g)",
           C / NH, big);
    free(qkv), free(probs), free(a), free(b), free(g), free(scratch), free(dout), free(d1), free(d2);
}

int main(void)
{
    diag("AVX-512 paths %s", nn_avx512() ? "on" : "off (CPU lacks AVX-512F)");
    test_linear();
    test_layernorm();
    test_gelu();
    test_embeddings();
    test_attention();
    test_attention_lengths(64, 2);
    test_attention_lengths(48, 2);
    test_keyed_dropout();
    test_keyed_attention();
    test_pool();
    test_first_nonfinite(1);
    test_first_nonfinite(0);
    test_guard_pages();
    return done_testing(70);
}
