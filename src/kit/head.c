/* head.c — the head plugins' shared body (see head.h): key reading,
 * parameter binding, forward and backward of a fully connected stack with
 * the kernels of nn.c (Linear, LayerNorm, GELU, dropout) and act.c (ReLU,
 * tanh). Errors go through h->error only: this code is linked into the
 * plugins, whose copy of the core's error state the host never reads. */
#include "runner/kit/head.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "runner/kit/act.h"
#include "runner/kit/nn.h"

#define LN_EPS 1e-5f /* torch.nn.LayerNorm's default */

typedef enum head_act { ACT_GELU = 0, ACT_RELU, ACT_TANH } head_act;
static const char *const act_names[] = {"gelu", "relu", "tanh"};

/* One Linear of the stack and, for hidden layers, what follows it. */
typedef struct fc_layer {
    int in, out;
    int id_w, id_b, id_lw, id_lb;        /* parameter ids (LayerNorm: -1 when absent) */
    float *W, *b, *dW, *db;              /* (out,in), (out): in the parameter store */
    float *ln_w, *ln_b, *dln_w, *dln_b;  /* (out) LayerNorm of a hidden layer */
    /* activations of the last forward, hidden layers only */
    float *z;           /* (cap,out) Linear output */
    float *u;           /* (cap,out) LayerNorm output */
    float *mean, *rstd; /* (cap) LayerNorm statistics */
    float *g;           /* (cap,out) activation output */
    float *a;           /* (cap,out) g after dropout: the next layer's input */
    uint64_t seed;      /* dropout seed of the last training forward */
} fc_layer;

typedef struct head {
    const runner_host *h;
    int nhidden, *hidden; /* hidden sizes */
    head_act act;
    int layer_norm;
    float p_in, p_hid;    /* dropout on the input; after each hidden activation */
    int in_dim, n_out, nl, width;
    fc_layer *L;          /* (nl = nhidden + 1), fixed once bound */
    int cap;              /* rows every buffer holds */
    float *xd;            /* (cap,in_dim) input after dropout */
    uint64_t *keys;       /* (cap) row keys of the last forward (keyed dropout) */
    uint64_t in_seed;
    int dropped;          /* the last forward applied dropout */
    int last_N;           /* rows of the last forward, -1 before any */
    float *dA, *dG, *dP, *dZ; /* (cap,width) backward scratch: d input, d act out,
                                 d act in, d Linear out */
} head;

/* ---- creation ---------------------------------------------------------------------- */

/* A config getter's status: 1 (absent without default) becomes an error. */
static int got(const runner_host *h, int rc, const char *key)
{
    if (rc > 0)
        return h->error(h, "key '%s' has no value (was the pipeline validated?)", key);
    return rc;
}

static int read_dropout(const runner_host *h, const runner_cfg *cfg, float *p)
{
    double v;
    if (got(h, h->cfg_float(cfg, "dropout", &v), "dropout") != 0)
        return -1;
    if (!(v >= 0 && v < 1))
        return h->error(h, "dropout = %g is outside [0, 1)", v);
    *p = (float)v;
    return 0;
}

static int read_mlp(head *hd, const runner_cfg *cfg)
{
    const runner_host *h = hd->h;
    int n = h->cfg_count(cfg, "hidden");
    if (n < 0)
        return got(h, 1, "hidden");
    if (n == 0)
        return h->error(h, "hidden = []: an MLP needs at least one hidden layer "
                           "(use the linear head for none)");
    hd->hidden = h->alloc((size_t)n * sizeof *hd->hidden);
    if (!hd->hidden)
        return h->error(h, "out of memory");
    hd->nhidden = n;
    for (int i = 0; i < n; i++) {
        long long v;
        if (got(h, h->cfg_int_at(cfg, "hidden", i, &v), "hidden") != 0)
            return -1;
        if (v < 1 || v > 1 << 20)
            return h->error(h, "hidden[%d] = %lld: sizes must be in [1, 1048576]", i, v);
        hd->hidden[i] = (int)v;
    }
    const char *act;
    if (got(h, h->cfg_string(cfg, "activation", &act), "activation") != 0)
        return -1;
    int a = 0;
    while (a < 3 && strcmp(act, act_names[a]) != 0)
        a++;
    if (a == 3)
        return h->error(h, "activation = \"%s\": expected \"gelu\", \"relu\" or \"tanh\"", act);
    hd->act = (head_act)a;
    if (got(h, h->cfg_bool(cfg, "layer_norm", &hd->layer_norm), "layer_norm") != 0)
        return -1;
    return read_dropout(h, cfg, &hd->p_hid);
}

int head_create(const runner_host *h, const runner_cfg *cfg, head_kind kind, void **self)
{
    head *hd = h->calloc(1, sizeof *hd);
    if (!hd)
        return h->error(h, "out of memory");
    hd->h = h;
    hd->last_N = -1;
    if (kind == HEAD_MLP ? read_mlp(hd, cfg) : read_dropout(h, cfg, &hd->p_in))
        goto fail;
    *self = hd;
    return 0;
fail:
    head_destroy(hd);
    return -1;
}

static void free_buffers(head *hd)
{
    const runner_host *h = hd->h;
    for (int i = 0; hd->L && i < hd->nl; i++) {
        fc_layer *l = &hd->L[i];
        h->free(l->z);
        h->free(l->u);
        h->free(l->mean);
        h->free(l->rstd);
        h->free(l->g);
        h->free(l->a);
        l->z = l->u = l->mean = l->rstd = l->g = l->a = NULL;
    }
    h->free(hd->xd);
    h->free(hd->keys);
    hd->keys = NULL;
    h->free(hd->dA);
    h->free(hd->dG);
    h->free(hd->dP);
    h->free(hd->dZ);
    hd->xd = hd->dA = hd->dG = hd->dP = hd->dZ = NULL;
    hd->cap = 0;
}

void head_destroy(void *self)
{
    head *hd = self;
    if (!hd)
        return;
    const runner_host *h = hd->h;
    free_buffers(hd);
    h->free(hd->L);
    h->free(hd->hidden);
    h->free(hd);
}

/* ---- binding ------------------------------------------------------------------------ */

static int add_param(const runner_host *h, int index, const char *what, int ndim,
                     const int64_t *shape, unsigned flags, runner_init init, float bound,
                     float **data, float **grad)
{
    char name[32];
    snprintf(name, sizeof name, "%d.%s", index, what);
    return h->param_add(h, name, ndim, shape, flags, init, bound, data, grad);
}

int head_bind(void *self, int in_dim, int n_out)
{
    head *hd = self;
    const runner_host *h = hd->h;
    if (hd->L)
        return h->error(h, "bound twice");
    if (in_dim < 1 || n_out < 1)
        return h->error(h, "cannot bind to %d inputs and %d outputs", in_dim, n_out);
    hd->nl = hd->nhidden + 1;
    hd->L = h->calloc((size_t)hd->nl, sizeof *hd->L);
    if (!hd->L)
        return h->error(h, "out of memory");
    hd->in_dim = in_dim;
    hd->n_out = n_out;
    hd->width = in_dim;
    const int step = hd->layer_norm ? 4 : 3; /* Linear, [LayerNorm], activation, Dropout */
    int in = in_dim;
    for (int i = 0; i < hd->nl; i++) {
        fc_layer *l = &hd->L[i];
        l->in = in;
        l->out = i < hd->nhidden ? hd->hidden[i] : n_out;
        l->id_lw = l->id_lb = -1;
        /* nn.Linear's default init: U(-1/sqrt(in), 1/sqrt(in)) for both */
        const float bound = 1.0f / sqrtf((float)in);
        int64_t wshape[2] = {l->out, l->in}, bshape[1] = {l->out};
        l->id_w = add_param(h, i * step, "weight", 2, wshape, 0, RUNNER_INIT_UNIFORM, bound,
                            &l->W, &l->dW);
        l->id_b = add_param(h, i * step, "bias", 1, bshape, RUNNER_PARAM_NO_DECAY,
                            RUNNER_INIT_UNIFORM, bound, &l->b, &l->db);
        if (l->id_w < 0 || l->id_b < 0)
            return -1;
        if (i < hd->nhidden && hd->layer_norm) {
            l->id_lw = add_param(h, i * step + 1, "weight", 1, bshape, RUNNER_PARAM_NO_DECAY,
                                 RUNNER_INIT_ONE, 0, &l->ln_w, &l->dln_w);
            l->id_lb = add_param(h, i * step + 1, "bias", 1, bshape, RUNNER_PARAM_NO_DECAY,
                                 RUNNER_INIT_ZERO, 0, &l->ln_b, &l->dln_b);
            if (l->id_lw < 0 || l->id_lb < 0)
                return -1;
        }
        if (l->out > hd->width)
            hd->width = l->out;
        in = l->out;
    }
    return 0;
}

/* ---- buffers -------------------------------------------------------------------------- */

static float *rows(const runner_host *h, int N, int C, int *fail)
{
    float *p = h->alloc((size_t)N * (size_t)C * sizeof(float));
    *fail |= p == NULL;
    return p;
}

/* Activations and scratch for N rows; reallocated only when N grows. */
static int reserve(head *hd, int N)
{
    if (N <= hd->cap)
        return 0;
    const runner_host *h = hd->h;
    free_buffers(hd);
    int fail = 0;
    for (int i = 0; i < hd->nhidden; i++) {
        fc_layer *l = &hd->L[i];
        l->z = rows(h, N, l->out, &fail);
        l->g = rows(h, N, l->out, &fail);
        if (hd->layer_norm) {
            l->u = rows(h, N, l->out, &fail);
            l->mean = rows(h, N, 1, &fail);
            l->rstd = rows(h, N, 1, &fail);
        }
        if (hd->p_hid > 0)
            l->a = rows(h, N, l->out, &fail);
    }
    if (hd->p_in > 0)
        hd->xd = rows(h, N, hd->in_dim, &fail);
    hd->keys = h->alloc((size_t)N * sizeof *hd->keys + 1);
    fail |= hd->keys == NULL;
    hd->dA = rows(h, N, hd->width, &fail);
    hd->dG = rows(h, N, hd->width, &fail);
    hd->dP = rows(h, N, hd->width, &fail);
    hd->dZ = rows(h, N, hd->width, &fail);
    if (fail) {
        free_buffers(hd);
        return h->error(h, "out of memory for the activations of %d rows", N);
    }
    hd->cap = N;
    return 0;
}

/* ---- forward / backward ----------------------------------------------------------------- */

static int check_ready(head *hd, int N)
{
    const runner_host *h = hd->h;
    if (!hd->L)
        return h->error(h, "used before bind()");
    if (!hd->L[0].W)
        return h->error(h, "used before the parameter store was allocated");
    if (N < 0)
        return h->error(h, "%d rows", N);
    return 0;
}

/* activation of a hidden layer: g = act(pre) */
static void act_forward(head_act act, float *g, const float *pre, int64_t n)
{
    switch (act) {
    case ACT_GELU: gelu_forward(g, pre, n); break;
    case ACT_RELU: relu_forward(g, pre, n); break;
    case ACT_TANH: tanh_forward(g, pre, n); break;
    }
}

/* dpre += d act / d pre . dg (GELU and ReLU read the input, tanh the output) */
static void act_backward(head_act act, float *dpre, const float *pre, const float *g,
                         const float *dg, int64_t n)
{
    switch (act) {
    case ACT_GELU: gelu_backward(dpre, pre, dg, n); break;
    case ACT_RELU: relu_backward(dpre, pre, dg, n); break;
    case ACT_TANH: tanh_backward(dpre, g, dg, n); break;
    }
}

/* the gradient of a parameter when it trains, else NULL (not wanted) */
static float *grad_of(const head *hd, int id, float *grad)
{
    return id >= 0 && hd->h->param_trainable(hd->h, id) ? grad : NULL;
}

static void zero(float *p, int64_t n) { memset(p, 0, (size_t)n * sizeof *p); }

/* The input of Linear i in the last forward: (N, L[i].in). */
static const float *layer_input(const head *hd, int i, const float *x)
{
    if (i == 0)
        return hd->dropped && hd->p_in > 0 ? hd->xd : x;
    const fc_layer *p = &hd->L[i - 1];
    return hd->dropped && hd->p_hid > 0 ? p->a : p->g;
}

/* This forward's dropout seeds, one per site in stack order, drawn even
 * for 0 rows (every rank draws the same). */
static void draw_seeds(head *hd)
{
    const runner_host *h = hd->h;
    if (hd->p_in > 0)
        hd->in_seed = h->rng_u64(h);
    for (int i = 0; hd->p_hid > 0 && i < hd->nhidden; i++)
        hd->L[i].seed = h->rng_u64(h);
}

int head_forward(void *self, int N, const float *x, float *logits, int train)
{
    return head_forward_keyed(self, N, x, logits, train, NULL);
}

// x (N,in_dim) -> logits (N,n_out); keys (N) or NULL (row i: key i)
int head_forward_keyed(void *self, int N, const float *x, float *logits, int train,
                       const uint64_t *keys)
{
    head *hd = self;
    if (check_ready(hd, N) != 0 || reserve(hd, N) != 0)
        return -1;
    hd->last_N = N;
    hd->dropped = train && (hd->p_in > 0 || hd->p_hid > 0);
    if (hd->dropped)
        draw_seeds(hd);
    if (N == 0)
        return 0;
    for (int i = 0; i < N; i++)
        hd->keys[i] = keys ? keys[i] : (uint64_t)i;
    if (hd->dropped && hd->p_in > 0)
        dropout_rows_forward(hd->xd, x, N, hd->in_dim, hd->p_in, hd->in_seed, hd->keys); // (N,D)
    for (int i = 0; i < hd->nl; i++) {
        fc_layer *l = &hd->L[i];
        const float *in = layer_input(hd, i, x);
        if (i == hd->nl - 1) {
            linear_forward(logits, in, l->W, l->b, N, l->in, l->out); // (N,K)
            break;
        }
        const int64_t n = (int64_t)N * l->out;
        linear_forward(l->z, in, l->W, l->b, N, l->in, l->out); // (N,H)
        const float *pre = l->z;
        if (hd->layer_norm) {
            layernorm_forward(l->u, l->mean, l->rstd, l->z, l->ln_w, l->ln_b, N, l->out,
                              LN_EPS); // (N,H)
            pre = l->u;
        }
        act_forward(hd->act, l->g, pre, n); // (N,H)
        if (hd->dropped && hd->p_hid > 0)
            dropout_rows_forward(l->a, l->g, N, l->out, hd->p_hid, l->seed, hd->keys); // (N,H)
    }
    return 0;
}

// dlogits (N,n_out) -> parameter gradients +=, dx (N,in_dim) += (when dx != NULL)
int head_backward(void *self, int N, const float *x, const float *dlogits, float *dx)
{
    head *hd = self;
    const runner_host *h = hd->h;
    if (check_ready(hd, N) != 0)
        return -1;
    if (N != hd->last_N)
        return h->error(h, "backward of %d rows after a forward of %d rows", N, hd->last_N);
    if (N == 0)
        return 0;
    const float *dcur = dlogits; /* d loss / d output of Linear i: (N, L[i].out) */
    for (int i = hd->nl - 1; i >= 0; i--) {
        fc_layer *l = &hd->L[i];
        const int in_dropped = i == 0 && hd->dropped && hd->p_in > 0;
        float *din = NULL; /* d loss / d input of Linear i */
        if (i > 0 || (dx && in_dropped)) {
            din = hd->dA;
            zero(din, (int64_t)N * l->in);
        } else if (dx) {
            din = dx;
        }
        linear_backward(din, grad_of(hd, l->id_w, l->dW), grad_of(hd, l->id_b, l->db), dcur,
                        layer_input(hd, i, x), l->W, N, l->in, l->out);
        if (i == 0) {
            if (dx && in_dropped)
                dropout_rows_backward(dx, hd->dA, N, l->in, hd->p_in, hd->in_seed, hd->keys);
            break;
        }
        /* back through hidden layer i-1: d a -> d g -> d pre -> d z */
        fc_layer *p = &hd->L[i - 1];
        const int64_t n = (int64_t)N * p->out;
        const float *dg = hd->dA;
        if (hd->dropped && hd->p_hid > 0) {
            zero(hd->dG, n);
            dropout_rows_backward(hd->dG, hd->dA, N, p->out, hd->p_hid, p->seed, hd->keys);
            dg = hd->dG;
        }
        zero(hd->dP, n);
        act_backward(hd->act, hd->dP, hd->layer_norm ? p->u : p->z, p->g, dg, n);
        dcur = hd->dP;
        if (hd->layer_norm) {
            zero(hd->dZ, n);
            layernorm_backward(hd->dZ, grad_of(hd, p->id_lw, p->dln_w),
                               grad_of(hd, p->id_lb, p->dln_b), hd->dP, p->z, p->ln_w, p->mean,
                               p->rstd, N, p->out);
            dcur = hd->dZ;
        }
    }
    return 0;
}
