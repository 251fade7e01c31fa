/* mlm.c — BERT's masked-language-model prediction head (Hugging Face
 * BertLMPredictionHead, `cls.predictions`), per token:
 *
 *   transform: h = LayerNorm(GELU(x W^T + b))      (C -> C, erf GELU, eps 1e-12)
 *   decoder:   logits = h E^T + bias               (C -> V)
 *
 * E (V,C) is by default the backbone's word-embedding matrix (tied weights,
 * reached through h->param_ref on first use); tie = false gives the head a
 * decoder matrix of its own, "decoder.weight". The core calls the head on the
 * masked pieces only (N rows of the last layer's states), so the two
 * (N,C)x(C,V) GEMMs of the decoder and its backward, on OpenBLAS, are the
 * whole cost. Backward adds into the head's tensors, into E's gradient when
 * E trains (dE += dlogits^T h), and into dx. docs/heads.md. */
#include <string.h>

#include "runner/kit/nn.h"
#include "runner/runner.h"

#define LN_EPS 1e-12f     /* BERT's layer_norm_eps */
#define INIT_STD 0.02f    /* BERT's initializer_range */

static const runner_key keys[] = {
    {"tie", RUNNER_T_BOOL, "true",
     "decoder weights tied to the word embeddings (false: a decoder.weight [V,C] of its own)"},
    {"embeddings", RUNNER_T_STRING, "\"backbone.embeddings.word_embeddings.weight\"",
     "full name of the (V,C) tensor the decoder is tied to"},
    {0},
};

typedef struct mlm_head {
    const runner_host *h;
    int tie;
    char *emb_name;           /* the tied tensor's full name */
    int C, V;                 /* 0 until bound */
    /* own tensors: data, gradient, id */
    float *Wd, *bd, *dWd, *dbd;       /* transform.dense (C,C), (C) */
    float *lnw, *lnb, *dlnw, *dlnb;   /* transform.LayerNorm (C), (C) */
    float *bias, *dbias;              /* decoder bias (V) */
    int id_Wd, id_bd, id_lnw, id_lnb, id_bias;
    /* the decoder matrix (V,C): the tied tensor, or decoder.weight */
    float *E, *dE, *own_E, *own_dE;
    int id_E;
    int E_ready;
    /* activations of the last forward and backward scratch, (cap,C) / (cap) */
    int cap, last_N;
    float *z, *g, *u, *mean, *rstd; /* dense output, GELU output, LayerNorm output, its stats */
    float *du, *dg, *dz;
} mlm_head;

static void free_buffers(mlm_head *m)
{
    const runner_host *h = m->h;
    float **bufs[] = {&m->z, &m->g, &m->u, &m->mean, &m->rstd, &m->du, &m->dg, &m->dz};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) {
        h->free(*bufs[i]);
        *bufs[i] = NULL;
    }
    m->cap = 0;
}

static void mlm_destroy(void *self)
{
    mlm_head *m = self;
    if (!m)
        return;
    const runner_host *h = m->h;
    free_buffers(m);
    h->free(m->emb_name);
    h->free(m);
}

static int mlm_create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    mlm_head *m = h->calloc(1, sizeof *m);
    if (!m)
        return h->error(h, "out of memory");
    m->h = h;
    m->last_N = -1;
    m->id_E = -1;
    const char *name = NULL;
    if (h->cfg_bool(cfg, "tie", &m->tie) != 0 || h->cfg_string(cfg, "embeddings", &name) != 0) {
        h->error(h, "keys tie and embeddings have no value (was the pipeline validated?)");
        goto fail;
    }
    if (!*name) {
        h->error(h, "embeddings = \"\": name the (V,C) tensor to tie the decoder to");
        goto fail;
    }
    m->emb_name = h->alloc(strlen(name) + 1);
    if (!m->emb_name) {
        h->error(h, "out of memory");
        goto fail;
    }
    strcpy(m->emb_name, name);
    *self = m;
    return 0;
fail:
    mlm_destroy(m);
    return -1;
}

static int mlm_bind(void *self, int in_dim, int n_out)
{
    mlm_head *m = self;
    const runner_host *h = m->h;
    if (m->C)
        return h->error(h, "bound twice");
    if (in_dim < 1 || n_out < 2)
        return h->error(h, "cannot bind to %d inputs and %d outputs (a vocabulary)", in_dim, n_out);
    m->C = in_dim;
    m->V = n_out;
    const int64_t cc[2] = {in_dim, in_dim}, c[1] = {in_dim}, v[1] = {n_out}, vc[2] = {n_out, in_dim};
    m->id_Wd = h->param_add(h, "transform.dense.weight", 2, cc, 0, RUNNER_INIT_NORMAL, INIT_STD,
                            &m->Wd, &m->dWd);
    m->id_bd = h->param_add(h, "transform.dense.bias", 1, c, RUNNER_PARAM_NO_DECAY, RUNNER_INIT_ZERO,
                            0, &m->bd, &m->dbd);
    m->id_lnw = h->param_add(h, "transform.LayerNorm.weight", 1, c, RUNNER_PARAM_NO_DECAY,
                             RUNNER_INIT_ONE, 0, &m->lnw, &m->dlnw);
    m->id_lnb = h->param_add(h, "transform.LayerNorm.bias", 1, c, RUNNER_PARAM_NO_DECAY,
                             RUNNER_INIT_ZERO, 0, &m->lnb, &m->dlnb);
    m->id_bias = h->param_add(h, "bias", 1, v, RUNNER_PARAM_NO_DECAY, RUNNER_INIT_ZERO, 0, &m->bias,
                              &m->dbias);
    if (m->id_Wd < 0 || m->id_bd < 0 || m->id_lnw < 0 || m->id_lnb < 0 || m->id_bias < 0)
        return -1;
    if (!m->tie) {
        m->id_E = h->param_add(h, "decoder.weight", 2, vc, 0, RUNNER_INIT_NORMAL, INIT_STD,
                               &m->own_E, &m->own_dE);
        if (m->id_E < 0)
            return -1;
    }
    return 0;
}

/* The decoder matrix, on first use (the store is allocated by then): the
 * tied tensor must be (V,C) for the task's V labels and the head's C. */
static int decoder_ready(mlm_head *m)
{
    const runner_host *h = m->h;
    if (m->E_ready)
        return 0;
    if (!m->tie) {
        m->E = m->own_E;
        m->dE = m->own_dE;
        m->E_ready = 1;
        return 0;
    }
    float *data = NULL, *grad = NULL;
    int id = h->param_ref(h, m->emb_name, &data, &grad);
    if (id < 0)
        return h->error(h, "tie = true, but there is no parameter %s to tie the decoder to "
                           "(set `embeddings` to the word-embedding tensor, or tie = false)",
                        m->emb_name);
    int64_t n = h->param_count(h, m->emb_name);
    if (n != (int64_t)m->V * m->C) {
        if (n % m->C == 0)
            return h->error(h, "the tied tensor %s is [%lld, %d], but the task has %d labels: an MLM "
                               "task's labels must be the vocabulary the embeddings index",
                            m->emb_name, (long long)(n / m->C), m->C, m->V);
        return h->error(h, "the tied tensor %s holds %lld floats: not rows of the head's width %d "
                           "(expected [%d, %d])", m->emb_name, (long long)n, m->C, m->V, m->C);
    }
    m->E = data;
    m->dE = grad;
    m->id_E = id;
    m->E_ready = 1;
    return 0;
}

static int check_ready(mlm_head *m, int N)
{
    const runner_host *h = m->h;
    if (!m->C)
        return h->error(h, "used before bind()");
    if (!m->Wd)
        return h->error(h, "used before the parameter store was allocated");
    if (N < 0)
        return h->error(h, "%d rows", N);
    return decoder_ready(m);
}

/* Activations and scratch for N rows; reallocated only when N grows. */
static int reserve(mlm_head *m, int N)
{
    if (N <= m->cap)
        return 0;
    const runner_host *h = m->h;
    free_buffers(m);
    const size_t rows = (size_t)N * sizeof(float), nc = rows * (size_t)m->C;
    float **mats[] = {&m->z, &m->g, &m->u, &m->du, &m->dg, &m->dz};
    int fail = 0;
    for (size_t i = 0; i < sizeof mats / sizeof *mats; i++)
        fail |= !(*mats[i] = h->alloc(nc));
    fail |= !(m->mean = h->alloc(rows));
    fail |= !(m->rstd = h->alloc(rows));
    if (fail) {
        free_buffers(m);
        return h->error(h, "out of memory for the activations of %d rows", N);
    }
    m->cap = N;
    return 0;
}

/* the gradient of a tensor when it trains, else NULL (not wanted) */
static float *grad_of(const mlm_head *m, int id, float *grad)
{
    return grad && id >= 0 && m->h->param_trainable(m->h, id) ? grad : NULL;
}

// x (N,C) -> logits (N,V)
static int mlm_forward(void *self, int N, const float *x, float *logits, int train)
{
    mlm_head *m = self;
    if (check_ready(m, N) != 0 || reserve(m, N) != 0)
        return -1;
    m->last_N = N;
    if (N == 0)
        return 0;
    const int C = m->C;
    linear_forward(m->z, x, m->Wd, m->bd, N, C, C);                          // (N,C)
    gelu_forward(m->g, m->z, (int64_t)N * C);                                // (N,C)
    layernorm_forward(m->u, m->mean, m->rstd, m->g, m->lnw, m->lnb, N, C, LN_EPS); // (N,C)
    linear_forward(logits, m->u, m->E, m->bias, N, C, m->V);                 // (N,V)
    return 0;
}

// dlogits (N,V) -> dE, dbias, transform gradients +=; dx (N,C) += (when dx != NULL)
static int mlm_backward(void *self, int N, const float *x, const float *dlogits, float *dx)
{
    mlm_head *m = self;
    const runner_host *h = m->h;
    if (check_ready(m, N) != 0)
        return -1;
    if (N != m->last_N)
        return h->error(h, "backward of %d rows after a forward of %d rows", N, m->last_N);
    if (N == 0)
        return 0;
    const int C = m->C;
    const int64_t n = (int64_t)N * C;
    float *dWd = grad_of(m, m->id_Wd, m->dWd), *dbd = grad_of(m, m->id_bd, m->dbd);
    float *dlnw = grad_of(m, m->id_lnw, m->dlnw), *dlnb = grad_of(m, m->id_lnb, m->dlnb);
    /* d h is only needed when something below the decoder wants a gradient */
    const int below = dx || dWd || dbd || dlnw || dlnb;
    if (below)
        memset(m->du, 0, (size_t)n * sizeof *m->du);
    linear_backward(below ? m->du : NULL, grad_of(m, m->id_E, m->dE), grad_of(m, m->id_bias, m->dbias),
                    dlogits, m->u, m->E, N, C, m->V); // (N,V) -> (N,C), (V,C), (V)
    if (!below)
        return 0;
    memset(m->dg, 0, (size_t)n * sizeof *m->dg);
    layernorm_backward(m->dg, dlnw, dlnb, m->du, m->g, m->lnw, m->mean, m->rstd, N, C); // (N,C)
    memset(m->dz, 0, (size_t)n * sizeof *m->dz);
    gelu_backward(m->dz, m->z, m->dg, n);                                             // (N,C)
    linear_backward(dx, dWd, dbd, m->dz, x, m->Wd, N, C, C);                          // (N,C)
    return 0;
}

static const runner_head_ops ops = {
    .per_token = 1,
    .bind = mlm_bind,
    .forward = mlm_forward,
    .backward = mlm_backward,
};

RUNNER_DEFINE_PLUGIN(head, mlm,
    "BERT's masked-LM head: dense + GELU + LayerNorm, decoder tied to the word embeddings "
    "(logits over the vocabulary at the masked pieces only)",
    keys, mlm_create, mlm_destroy, &ops)
