/* pool.c — pooling math (forward/backward) and the pooler plugins' shared
 * body (see pool.h). */
#include "runner/kit/pool.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int pool_layer_index(long long layer, int L)
{
    long long i = layer < 0 ? L + 1 + layer : layer;
    return i >= 0 && i <= L ? (int)i : -1;
}

/* Weight of token t of row b for the linear poolings (mean-like, cls);
 * norm receives the row's normaliser; returns 0 when the row is empty. */
static int row_weights(pool_kind kind, const uint8_t *m, int T, float *norm)
{
    double count = 0;
    for (int t = 0; t < T; t++)
        if (m[t])
            count += kind == POOL_WEIGHTED_MEAN ? t + 1 : 1;
    if (kind == POOL_CLS) {
        *norm = 1;
        return T > 0;
    }
    if (count == 0)
        return 0;
    *norm = (float)(kind == POOL_MEAN_SQRT_LEN ? 1.0 / sqrt(count) : 1.0 / count);
    return 1;
}

static float token_weight(pool_kind kind, const uint8_t *m, int t, float norm)
{
    if (kind == POOL_CLS)
        return t == 0 ? norm : 0;
    if (!m[t])
        return 0;
    return kind == POOL_WEIGHTED_MEAN ? (float)(t + 1) * norm : norm;
}

/* Pooled, not yet normalised vector of row b into v (C). */
static void pool_row(const pool_spec *p, const runner_states *s, const uint8_t *m, int b,
                     float *v)
{
    const int T = s->T, C = s->C;
    const float inv_l = 1.0f / (float)p->nlayers;
    memset(v, 0, (size_t)C * sizeof *v);
    if (p->kind == POOL_MAX) {
        int any = 0;
        for (int t = 0; t < T; t++) {
            if (!m[t])
                continue;
            for (int c = 0; c < C; c++) {
                float x = 0;
                for (int l = 0; l < p->nlayers; l++)
                    x += s->hidden[p->layers[l]][((int64_t)b * T + t) * C + c];
                x *= inv_l;
                v[c] = any && v[c] >= x ? v[c] : x;
            }
            any = 1;
        }
        return;
    }
    float norm;
    if (!row_weights(p->kind, m, T, &norm))
        return;
    for (int t = 0; t < T; t++) {
        float w = token_weight(p->kind, m, t, norm) * inv_l;
        if (w == 0)
            continue;
        for (int l = 0; l < p->nlayers; l++) {
            const float *h = s->hidden[p->layers[l]] + ((int64_t)b * T + t) * C;
#pragma omp simd
            for (int c = 0; c < C; c++)
                v[c] += w * h[c];
        }
    }
}

static float l2norm(const float *v, int C)
{
    double s = 0;
    for (int c = 0; c < C; c++)
        s += (double)v[c] * v[c];
    return (float)sqrt(s);
}

void pool_forward(const pool_spec *p, const runner_states *s, const uint8_t *mask, float *out)
{
#pragma omp parallel for schedule(static)
    for (int b = 0; b < s->B; b++) {
        float *v = out + (int64_t)b * s->C;
        pool_row(p, s, mask + (int64_t)b * s->T, b, v);
        if (p->normalize) {
            float n = l2norm(v, s->C), inv = 1.0f / (n > 1e-12f ? n : 1e-12f);
            for (int c = 0; c < s->C; c++)
                v[c] *= inv;
        }
    }
}

void pool_backward(const pool_spec *p, const runner_states *s, const uint8_t *mask,
                   const float *dout, float *scratch)
{
    const int T = s->T, C = s->C;
    const float inv_l = 1.0f / (float)p->nlayers;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < s->B; b++) {
        const uint8_t *m = mask + (int64_t)b * T;
        const float *g = dout + (int64_t)b * C;
        float *dv = scratch + (int64_t)b * C;
        if (p->normalize || p->kind == POOL_MAX)
            pool_row(p, s, m, b, dv); /* dv holds v for now */
        if (p->normalize) {
            /* y = v / max(|v|, eps): dv = (g - y (y.g)) / |v| (or g / eps) */
            float n = l2norm(dv, C);
            if (n > 1e-12f) {
                float yg = 0;
                for (int c = 0; c < C; c++)
                    yg += dv[c] / n * g[c];
                for (int c = 0; c < C; c++)
                    dv[c] = (g[c] - dv[c] / n * yg) / n;
            } else {
                for (int c = 0; c < C; c++)
                    dv[c] = g[c] / 1e-12f;
            }
        } else if (p->kind != POOL_MAX) {
            memcpy(dv, g, (size_t)C * sizeof *dv);
        }
        if (p->kind == POOL_MAX) {
            /* route each dimension's gradient to the token that won it
             * (the first one on ties, as the forward keeps the first) */
            const float *grad = p->normalize ? dv : g;
            for (int c = 0; c < C; c++) {
                int best = -1;
                float bv = 0;
                for (int t = 0; t < T; t++) {
                    if (!m[t])
                        continue;
                    float x = 0;
                    for (int l = 0; l < p->nlayers; l++)
                        x += s->hidden[p->layers[l]][((int64_t)b * T + t) * C + c];
                    x *= inv_l;
                    if (best < 0 || x > bv) {
                        best = t;
                        bv = x;
                    }
                }
                if (best < 0)
                    continue;
                for (int l = 0; l < p->nlayers; l++)
                    s->dhidden[p->layers[l]][((int64_t)b * T + best) * C + c] += grad[c] * inv_l;
            }
            continue;
        }
        float norm;
        if (!row_weights(p->kind, m, T, &norm))
            continue;
        for (int t = 0; t < T; t++) {
            float w = token_weight(p->kind, m, t, norm) * inv_l;
            if (w == 0)
                continue;
            for (int l = 0; l < p->nlayers; l++) {
                float *dh = s->dhidden[p->layers[l]] + ((int64_t)b * T + t) * C;
#pragma omp simd
                for (int c = 0; c < C; c++)
                    dh[c] += w * dv[c];
            }
        }
    }
}

/* ---- the pooler plugins' shared body ----------------------------------------- */

const runner_key pooler_keys[] = {
    {"layer", RUNNER_T_INT, "-1",
     "hidden state to pool: -1 last layer, -2 second to last, ...; 0 = embedding output", "[-1024, 1024]"},
    {"layers", RUNNER_T_INT_LIST, NULL,
     "average these hidden states (same numbering as layer) before pooling; unset: use layer", "[-1024, 1024]"},
    {"normalize", RUNNER_T_BOOL, "false", "scale each embedding to unit L2 norm"},
    {0},
};

typedef struct pooler {
    const runner_host *h;
    pool_kind kind;
    int nlayers, normalize;
    long long *setting; /* as configured */
    int *index;         /* resolved against the backbone's L */
    float *scratch;     /* (B,C) for backward */
    size_t scratch_cap;
} pooler;

void pooler_destroy(void *self)
{
    pooler *p = self;
    if (!p)
        return;
    free(p->setting);
    free(p->index);
    p->h->free(p->scratch);
    free(p);
}

int pooler_create(const runner_host *h, const runner_cfg *cfg, pool_kind kind, void **self)
{
    pooler *p = calloc(1, sizeof *p);
    if (!p)
        return h->error(h, "out of memory");
    p->h = h;
    p->kind = kind;
    int n = h->cfg_count(cfg, "layers");
    if (n == 0) {
        h->error(h, "layers = [] names no layer (leave it unset to use `layer`)");
        goto fail;
    }
    p->nlayers = n > 0 ? n : 1;
    p->setting = calloc((size_t)p->nlayers, sizeof *p->setting);
    p->index = calloc((size_t)p->nlayers, sizeof *p->index);
    if (!p->setting || !p->index) {
        h->error(h, "out of memory");
        goto fail;
    }
    for (int i = 0; i < p->nlayers; i++)
        if ((n > 0 ? h->cfg_int_at(cfg, "layers", i, &p->setting[i])
                   : h->cfg_int(cfg, "layer", &p->setting[i])) != 0)
            goto fail;
    if (h->cfg_bool(cfg, "normalize", &p->normalize) != 0)
        goto fail;
    *self = p;
    return 0;
fail:
    pooler_destroy(p);
    return -1;
}

static int resolve(pooler *p, int L)
{
    for (int i = 0; i < p->nlayers; i++) {
        p->index[i] = pool_layer_index(p->setting[i], L);
        if (p->index[i] < 0)
            return p->h->error(p->h, "layer %lld does not exist: the backbone has %d layers "
                               "(valid: %d..-1 from the end, 0..%d from the embeddings)",
                               p->setting[i], L, -(L + 1), L);
    }
    return 0;
}

static int pooler_out_dim(void *self, const runner_states *s) { (void)self; return s->C; }

static int pooler_lowest_layer(void *self, int L)
{
    pooler *p = self;
    int lo = L;
    for (int i = 0; i < p->nlayers; i++) {
        int k = pool_layer_index(p->setting[i], L);
        if (k >= 0 && k < lo)
            lo = k;
    }
    return lo;
}

static int pooler_forward(void *self, const runner_batch *b, const runner_states *s, float *out)
{
    pooler *p = self;
    if (resolve(p, s->L) != 0)
        return -1;
    pool_spec spec = {p->kind, p->nlayers, p->index, p->normalize};
    pool_forward(&spec, s, b->mask, out);
    return 0;
}

static int pooler_backward(void *self, const runner_batch *b, const runner_states *s,
                           const float *dout)
{
    pooler *p = self;
    if (!s->dhidden)
        return p->h->error(p->h, "backward without a training forward (no gradient buffers)");
    if (resolve(p, s->L) != 0)
        return -1;
    size_t need = (size_t)s->B * (size_t)s->C;
    if (need > p->scratch_cap) {
        p->h->free(p->scratch);
        p->scratch = p->h->alloc(need * sizeof *p->scratch);
        p->scratch_cap = p->scratch ? need : 0;
        if (!p->scratch)
            return p->h->error(p->h, "out of memory for %zu floats", need);
    }
    pool_spec spec = {p->kind, p->nlayers, p->index, p->normalize};
    pool_backward(&spec, s, b->mask, dout, p->scratch);
    return 0;
}

const runner_pooler_ops pooler_ops = {
    .out_dim = pooler_out_dim,
    .lowest_layer = pooler_lowest_layer,
    .forward = pooler_forward,
    .backward = pooler_backward,
};
