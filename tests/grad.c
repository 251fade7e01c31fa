/* grad.c — every gradient proven twice (docs/heads.md).
 *
 * 1. Against PyTorch autograd, float32, from tests/goldens (written by
 *    scripts/make_goldens.py; no torch needed here): the heads' logits and
 *    every parameter and input gradient; the tiny BERT's hidden states and
 *    every parameter gradient, for the whole model and for each level
 *    (embeddings, each layer) alone, fed autograd's gradient at its output.
 * 2. By finite differences: each head against a float64 re-implementation
 *    of its forward (central differences in double, every element); the
 *    backbone per layer, the heads with dropout and the poolers by central
 *    differences of the float32 plugins themselves, the loss summed in
 *    double, on sampled elements.
 * Plus dropout: in training the output differs and repeats for the same
 * seed; in eval it equals p = 0.
 *
 * Relative error of a tensor: max|got - want| / max(max|want|, FLOOR). The
 * floor only matters for tensors whose true gradient is zero (the
 * attention key bias: softmax ignores a shift along the key). */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "plugin_stage.h"
#include "runner/kit/safetensors.h"
#include "tap.h"

#define GOLDENS "tests/goldens"
#define TOL 1e-3       /* against autograd, and float64 finite differences */
#define TOL_FD32 2e-3  /* float32 finite differences (docs/heads.md) */
#define FLOOR 1e-2

#include "check.h" /* after FLOOR, which it uses */
/* Float32 finite differences of the backbone: the loss sums ~1400 float32
 * states, so it carries ~1e-5 of rounding noise, ~1e-4 in a difference
 * quotient with step 4e-2: measured against a gradient no smaller than this */
#define FLOOR_BERT_FD 0.5
#define STEP_BERT_FD 4e-2f
#define HEAD_D 32
#define HEAD_K 5

/* ---- helpers ------------------------------------------------------------------------ */

/* A float32 golden tensor (malloc'ed copy), or NULL with a diag. */
static float *gold(const safetensors *st, int64_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static float *gold(const safetensors *st, int64_t *n, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const st_tensor *t = st_find(st, name);
    float *out = t ? malloc((size_t)t->numel * sizeof *out + 1) : NULL;
    if (!t || !out || st_to_f32(st, t, out) != 0) {
        diag("golden tensor %s: %s", name, t ? err_get() : "missing");
        free(out);
        return NULL;
    }
    if (n)
        *n = t->numel;
    return out;
}

static int32_t *gold_i32(const safetensors *st, const char *name, int64_t *n)
{
    const st_tensor *t = st_find(st, name);
    if (!t || strcmp(t->dtype, "I32") != 0) {
        diag("golden tensor %s: %s", name, t ? "not I32" : "missing");
        return NULL;
    }
    int32_t *out = malloc((size_t)t->numel * sizeof *out);
    if (out)
        memcpy(out, t->data, (size_t)t->numel * sizeof *out);
    *n = t->numel;
    return out;
}

static param *find_param(pipeline *pl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static param *find_param(pipeline *pl, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    int id = params_find(&pl->P, name);
    return id >= 0 ? &pl->P.p[id] : NULL;
}

static float *pdata(pipeline *pl, const param *p) { return pl->P.data + p->offset; }
static float *pgrad(pipeline *pl, const param *p) { return pl->P.grad + p->offset; }

/* deterministic element picks for sampled checks */
static uint64_t lcg = 88172645463325252ull;
static int64_t pick(int64_t n)
{
    lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
    return (int64_t)((lcg >> 33) % (uint64_t)n);
}

static int64_t argmax_abs(const float *v, int64_t n)
{
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (fabsf(v[i]) > fabsf(v[best]))
            best = i;
    return best;
}

/* ---- the goldens' header -------------------------------------------------------------- */

static void test_manifest(const safetensors *bert_st, const safetensors *heads_st)
{
    json_error_t e;
    json_t *m = json_load_file(GOLDENS "/manifest.json", 0, &e);
    ok(m != NULL, "manifest.json parses%s%s", m ? "" : ": ", m ? "" : e.text);
    is_str(json_string_value(json_object_get(m, "generator")), "make_goldens.py",
           "manifest: generator named");
    is(json_integer_value(json_object_get(m, "version")), 1, "manifest: goldens version 1");
    is_str(st_meta(bert_st, "version"), "1", "bert.safetensors: version 1 in its metadata");
    is_str(st_meta(heads_st, "version"), "1", "heads.safetensors: version 1 in its metadata");
    /* every golden file is the one the manifest describes */
    json_t *files = json_object_get(m, "files");
    const char *name;
    json_t *want;
    int nfiles = 0, good = 0;
    json_object_foreach(files, name, want) {
        char cmd[1024], got[65] = "";
        snprintf(cmd, sizeof cmd, "sha256sum '%s/%s'", GOLDENS, name);
        FILE *p = popen(cmd, "r");
        if (p && fscanf(p, "%64s", got) == 1 && strcmp(got, json_string_value(want)) == 0)
            good++;
        else
            diag("  %s: sha256 %s, manifest %s", name, got, json_string_value(want));
        if (p)
            pclose(p);
        nfiles++;
    }
    ok(nfiles == 6 && good == nfiles, "the goldens' sha256 match their manifest (%d of %d files)", good, nfiles);
    json_decref(m);
}

/* ---- heads ------------------------------------------------------------------------------ */

enum { ACT_NONE = 0, ACT_GELU, ACT_RELU, ACT_TANH };

typedef struct head_case {
    const char *name;    /* task name = golden case */
    const char *golden;  /* golden case of its parameters and inputs */
    int N, nh, hidden[2], act, ln, per_token;
    float p;             /* dropout in its section */
} head_case;

static const head_case cases[] = {
    {"linear", "linear", 6, 0, {0}, ACT_NONE, 0, 0, 0},
    {"mlp", "mlp", 6, 2, {16, 12}, ACT_GELU, 1, 0, 0},
    {"mlp_relu", "mlp_relu", 6, 1, {16}, ACT_RELU, 0, 0, 0},
    {"mlp_tanh", "mlp_tanh", 6, 2, {24, 8}, ACT_TANH, 1, 0, 0},
    {"token_linear", "token_linear", 21, 0, {0}, ACT_NONE, 0, 1, 0},
    {"drop_linear", "linear", 6, 0, {0}, ACT_NONE, 0, 0, 0.5f},
    {"drop_mlp", "mlp", 6, 2, {16, 12}, ACT_GELU, 1, 0, 0.5f},
    {"drop_token", "token_linear", 21, 0, {0}, ACT_NONE, 0, 1, 0.1f},
};
enum { NCASES = sizeof cases / sizeof cases[0], NGOLD = 5 };

static const char *heads_config =
    "run = \"tokenize\";\n"
    "tasks = (\n"
    "  { name = \"linear\"; head = { plugin = \"linear\"; }; },\n"
    "  { name = \"mlp\"; head = { plugin = \"mlp\"; hidden = [16, 12]; dropout = 0.0; }; },\n"
    "  { name = \"mlp_relu\"; head = { plugin = \"mlp\"; hidden = [16]; activation = \"relu\";\n"
    "                                layer_norm = false; dropout = 0.0; }; },\n"
    "  { name = \"mlp_tanh\"; head = { plugin = \"mlp\"; hidden = [24, 8]; activation = \"tanh\";\n"
    "                                dropout = 0.0; }; },\n"
    "  { name = \"token_linear\"; head = { plugin = \"token_linear\"; dropout = 0.0; }; },\n"
    "  { name = \"drop_linear\"; head = { plugin = \"linear\"; dropout = 0.5; }; },\n"
    "  { name = \"drop_mlp\"; head = { plugin = \"mlp\"; hidden = [16, 12]; dropout = 0.5; }; },\n"
    "  { name = \"drop_token\"; head = { plugin = \"token_linear\"; }; },\n"
    "  { name = \"defaults\"; head = { plugin = \"mlp\"; }; }\n"
    ");\n";

typedef struct head_run {
    const head_case *c;
    stage *st;
    const runner_head_ops *ops;
    int np;            /* golden parameter tensors */
    char names[12][16];
    param *p[12];
    float *gp[12], *gg[12]; /* golden values, gradients */
    int64_t n[12];
    float *x, *logits, *G, *dx; /* golden */
} head_run;

static void head_run_free(head_run *r)
{
    for (int i = 0; i < r->np; i++) {
        free(r->gp[i]);
        free(r->gg[i]);
    }
    free(r->x);
    free(r->logits);
    free(r->G);
    free(r->dx);
}

/* Golden tensors of the case, and the store's tensor of each name. */
static int head_load(pipeline *pl, const safetensors *st, head_run *r)
{
    const char *g = r->c->golden;
    const int step = r->c->ln ? 4 : 3;
    for (int i = 0; i <= r->c->nh; i++) {
        snprintf(r->names[r->np++], 16, "%d.weight", i * step);
        snprintf(r->names[r->np++], 16, "%d.bias", i * step);
        if (i < r->c->nh && r->c->ln) {
            snprintf(r->names[r->np++], 16, "%d.weight", i * step + 1);
            snprintf(r->names[r->np++], 16, "%d.bias", i * step + 1);
        }
    }
    int fail = 0;
    for (int i = 0; i < r->np; i++) {
        int64_t n2 = 0;
        r->gp[i] = gold(st, &r->n[i], "%s.param.%s", g, r->names[i]);
        r->gg[i] = gold(st, &n2, "%s.grad.%s", g, r->names[i]);
        r->p[i] = find_param(pl, "heads.%s.%s", r->c->name, r->names[i]);
        if (!r->p[i])
            diag("no parameter heads.%s.%s", r->c->name, r->names[i]);
        fail |= !r->gp[i] || !r->gg[i] || !r->p[i] || r->p[i]->numel != r->n[i] || n2 != r->n[i];
    }
    r->x = gold(st, NULL, "%s.x", g);
    r->logits = gold(st, NULL, "%s.logits", g);
    r->G = gold(st, NULL, "%s.dlogits", g);
    r->dx = gold(st, NULL, "%s.dx", g);
    return fail || !r->x || !r->logits || !r->G || !r->dx ? -1 : 0;
}

static void head_set_params(pipeline *pl, head_run *r)
{
    for (int i = 0; i < r->np; i++)
        memcpy(pdata(pl, r->p[i]), r->gp[i], (size_t)r->n[i] * sizeof(float));
}

/* Parameters named as the torch nn.Sequential, with nn.Linear's init. */
static void test_head_registration(pipeline *pl, head_run *r)
{
    const head_case *c = r->c;
    char glob[64];
    snprintf(glob, sizeof glob, "heads.%s.*", c->name);
    int64_t want = 0;
    int shapes = 1, inits = 1, flags = 1, in = HEAD_D;
    for (int i = 0; i < r->np; i++) {
        want += r->n[i];
        const param *p = r->p[i];
        const float *v = pdata(pl, p);
        const int is_ln = c->ln && atoi(r->names[i]) % 4 == 1;
        const int is_bias = strstr(r->names[i], "bias") != NULL;
        shapes &= p->ndim == (is_ln || is_bias ? 1 : 2);
        flags &= (is_bias || is_ln) == ((p->flags & RUNNER_PARAM_NO_DECAY) != 0);
        if (is_ln) {
            for (int64_t j = 0; j < p->numel; j++)
                inits &= v[j] == (is_bias ? 0.0f : 1.0f);
            continue;
        }
        if (!is_bias)
            in = (int)p->shape[p->ndim - 1];
        const float bound = 1.0f / sqrtf((float)in);
        float mx = 0;
        for (int64_t j = 0; j < p->numel; j++)
            mx = fmaxf(mx, fabsf(v[j]));
        inits &= mx <= bound && mx > 0.5f * bound;
    }
    is(params_count(&pl->P, glob, 0), want, "%s: parameters as the torch Sequential names them (%d tensors)",
       c->name, r->np);
    ok(shapes && flags, "%s: shapes, and no weight decay on biases and LayerNorm", c->name);
    ok(inits, "%s: init U(-1/sqrt(in), 1/sqrt(in)) for Linear, LayerNorm 1 and 0", c->name);
}

/* (a) forward and gradients against autograd */
static void test_head_golden(pipeline *pl, head_run *r)
{
    const head_case *c = r->c;
    const int N = c->N;
    void *self = r->st->self;
    float *logits = calloc((size_t)N * HEAD_K, sizeof *logits);
    float *dx = calloc((size_t)N * HEAD_D, sizeof *dx);
    is(r->ops->per_token, c->per_token, "%s: per_token = %d", c->name, c->per_token);
    head_set_params(pl, r);
    int rc = r->ops->forward(self, N, r->x, logits, 1);
    ok(rc == 0, "%s: forward", c->name);
    check(logits, r->logits, (int64_t)N * HEAD_K, TOL, "%s: logits against autograd", c->name);
    params_zero_grad(&pl->P);
    rc = r->ops->backward(self, N, r->x, r->G, dx);
    ok(rc == 0, "%s: backward%s%s", c->name, rc ? ": " : "", rc ? err_get() : "");
    for (int i = 0; i < r->np; i++)
        check(pgrad(pl, r->p[i]), r->gg[i], r->n[i], TOL, "%s: d %s against autograd", c->name,
              r->names[i]);
    check(dx, r->dx, (int64_t)N * HEAD_D, TOL, "%s: d x against autograd", c->name);

    /* dx accumulates; dx = NULL still gives the parameter gradients */
    for (int64_t i = 0; i < (int64_t)N * HEAD_D; i++)
        dx[i] = 1.0f;
    params_zero_grad(&pl->P);
    r->ops->backward(self, N, r->x, r->G, dx);
    for (int64_t i = 0; i < (int64_t)N * HEAD_D; i++)
        dx[i] -= 1.0f;
    check(dx, r->dx, (int64_t)N * HEAD_D, TOL, "%s: backward adds into dx", c->name);
    params_zero_grad(&pl->P);
    rc = r->ops->backward(self, N, r->x, r->G, NULL);
    double worst = 0;
    for (int i = 0; i < r->np; i++)
        worst = fmax(worst, rel_err(pgrad(pl, r->p[i]), r->gg[i], r->n[i]));
    ok(rc == 0 && worst <= TOL, "%s: dx = NULL: parameter gradients still right (%.1e)", c->name,
       worst);

    /* a frozen first Linear gets no gradient; the others still do */
    char glob[64];
    snprintf(glob, sizeof glob, "heads.%s.0.*", c->name);
    params_set(&pl->P, glob, 0, -1);
    params_zero_grad(&pl->P);
    r->ops->backward(self, N, r->x, r->G, dx);
    float gmax = 0;
    for (int64_t j = 0; j < r->n[0]; j++)
        gmax = fmaxf(gmax, fabsf(pgrad(pl, r->p[0])[j]));
    int last = r->np - 2; /* the last Linear's weight */
    ok(gmax == 0 && (c->nh == 0 || rel_err(pgrad(pl, r->p[last]), r->gg[last], r->n[last]) <= TOL),
       "%s: a frozen tensor gets no gradient, the trainable ones theirs", c->name);
    params_set(&pl->P, glob, 1, -1);

    /* fewer rows reuse the buffers; backward must follow a forward of as many */
    rc = r->ops->forward(self, N / 2, r->x, logits, 0);
    check(logits, r->logits, (int64_t)(N / 2) * HEAD_K, TOL, "%s: %d rows after %d", c->name, N / 2, N);
    rc = r->ops->backward(self, N, r->x, r->G, NULL);
    ok(rc == -1, "%s: backward of other rows than the forward's is refused", c->name);
    like(err_get(), "after a forward of", "%s: ... and says so", c->name);
    free(logits);
    free(dx);
}

/* ---- (b) float64 reference of a head, central differences ------------------------------ */

typedef struct ref_head {
    const head_case *c;
    double *v[12]; /* parameter tensors, in head_run order */
    int64_t n[12];
    int np;
    double *x, *G;
} ref_head;

static double act64(int act, double v)
{
    switch (act) {
    case ACT_GELU: return 0.5 * v * (1 + erf(v / sqrt(2.0)));
    case ACT_RELU: return v > 0 ? v : 0;
    case ACT_TANH: return tanh(v);
    }
    return v;
}

/* L = sum(logits * G) of the head in double; logits (N,K) kept when not NULL */
static double ref_loss(const ref_head *h, double *logits_out)
{
    const head_case *c = h->c;
    enum { MAXW = 32, MAXN = 21 };
    double a[MAXN * MAXW], z[MAXN * MAXW];
    const int N = c->N;
    int din = HEAD_D, k = 0;
    memcpy(a, h->x, (size_t)N * HEAD_D * sizeof *a);
    double L = 0;
    for (int i = 0; i <= c->nh; i++) {
        const int dout = i < c->nh ? c->hidden[i] : HEAD_K;
        const double *W = h->v[k++], *b = h->v[k++];
        for (int r = 0; r < N; r++)
            for (int o = 0; o < dout; o++) {
                double s = b[o];
                for (int j = 0; j < din; j++)
                    s += W[o * din + j] * a[r * din + j];
                z[r * dout + o] = s;
            }
        if (i == c->nh) {
            for (int r = 0; r < N * HEAD_K; r++) {
                L += z[r] * h->G[r];
                if (logits_out)
                    logits_out[r] = z[r];
            }
            break;
        }
        if (c->ln) {
            const double *lw = h->v[k++], *lb = h->v[k++];
            for (int r = 0; r < N; r++) {
                double m = 0, var = 0;
                for (int o = 0; o < dout; o++)
                    m += z[r * dout + o];
                m /= dout;
                for (int o = 0; o < dout; o++)
                    var += (z[r * dout + o] - m) * (z[r * dout + o] - m);
                double rs = 1 / sqrt(var / dout + 1e-5);
                for (int o = 0; o < dout; o++)
                    z[r * dout + o] = (z[r * dout + o] - m) * rs * lw[o] + lb[o];
            }
        }
        for (int r = 0; r < N * dout; r++)
            a[r] = act64(c->act, z[r]);
        din = dout;
    }
    return L;
}

static double *to64(const float *v, int64_t n)
{
    double *d = malloc((size_t)n * sizeof *d);
    for (int64_t i = 0; i < n; i++)
        d[i] = v[i];
    return d;
}

/* central differences of ref_loss over every element of v (n) into fd */
static void fd64(const ref_head *h, double *v, int64_t n, float *fd)
{
    const double eps = 1e-6;
    for (int64_t i = 0; i < n; i++) {
        double keep = v[i];
        v[i] = keep + eps;
        double lp = ref_loss(h, NULL);
        v[i] = keep - eps;
        double lm = ref_loss(h, NULL);
        v[i] = keep;
        fd[i] = (float)((lp - lm) / (2 * eps));
    }
}

static void test_head_fd64(pipeline *pl, head_run *r)
{
    const head_case *c = r->c;
    const int N = c->N;
    ref_head h = {.c = c, .np = r->np};
    for (int i = 0; i < r->np; i++) {
        h.v[i] = to64(r->gp[i], r->n[i]);
        h.n[i] = r->n[i];
    }
    h.x = to64(r->x, (int64_t)N * HEAD_D);
    h.G = to64(r->G, (int64_t)N * HEAD_K);
    /* the plugin's gradients once more, from the golden values */
    float *logits = calloc((size_t)N * HEAD_K, sizeof *logits);
    float *dx = calloc((size_t)N * HEAD_D, sizeof *dx);
    head_set_params(pl, r);
    r->ops->forward(r->st->self, N, r->x, logits, 1);
    params_zero_grad(&pl->P);
    r->ops->backward(r->st->self, N, r->x, r->G, dx);
    double ref_logits[21 * HEAD_K];
    ref_loss(&h, ref_logits);
    float ref32[21 * HEAD_K];
    for (int i = 0; i < N * HEAD_K; i++)
        ref32[i] = (float)ref_logits[i];
    check(logits, ref32, (int64_t)N * HEAD_K, TOL, "%s: logits against the float64 reference",
          c->name);
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i <= r->np; i++) {
        int64_t n = i < r->np ? r->n[i] : (int64_t)N * HEAD_D;
        float *fd = malloc((size_t)n * sizeof *fd);
        fd64(&h, i < r->np ? h.v[i] : h.x, n, fd);
        double e = rel_err(i < r->np ? pgrad(pl, r->p[i]) : dx, fd, n);
        if (!(e <= worst)) {
            worst = isnan(e) ? INFINITY : e;
            worst_name = i < r->np ? r->names[i] : "x";
        }
        free(fd);
    }
    ok(worst <= TOL, "%s: every gradient element against float64 central differences "
       "(worst %.1e, d %s)", c->name, worst, worst_name);
    for (int i = 0; i < r->np; i++)
        free(h.v[i]);
    free(h.x);
    free(h.G);
    free(logits);
    free(dx);
}

/* ---- head dropout -------------------------------------------------------------------------- */

/* L = sum(logits * G) of a training forward whose dropout seed comes from
 * the host RNG reset to `seed` */
static double head_loss32(pipeline *pl, head_run *r, unsigned long seed, float *logits)
{
    gsl_rng_set(pl->rng, seed);
    r->ops->forward(r->st->self, r->c->N, r->x, logits, 1);
    double L = 0;
    for (int i = 0; i < r->c->N * HEAD_K; i++)
        L += (double)logits[i] * r->G[i];
    return L;
}

/* Central differences of head_loss32 at seed 7, Richardson-extrapolated:
 * (4 D(h/2) - D(h)) / 3 with h = 1e-2 */
static double head_fd32(pipeline *pl, head_run *r, float *v, float *logits)
{
    const float keep = *v;
    double d[2];
    for (int k = 0; k < 2; k++) {
        float h = k ? 5e-3f : 1e-2f;
        *v = keep + h;
        double lp = head_loss32(pl, r, 7, logits);
        *v = keep - h;
        double lm = head_loss32(pl, r, 7, logits);
        d[k] = (lp - lm) / (2.0 * h);
    }
    *v = keep;
    return (4 * d[1] - d[0]) / 3;
}

static void test_head_dropout(pipeline *pl, head_run *r, const head_run *ref)
{
    const head_case *c = r->c;
    const int N = c->N, NK = N * HEAD_K;
    void *self = r->st->self;
    float *a = calloc((size_t)NK, sizeof *a), *b = calloc((size_t)NK, sizeof *b);
    float *e = calloc((size_t)NK, sizeof *e), *dx = calloc((size_t)N * HEAD_D, sizeof *dx);
    head_set_params(pl, r);
    r->ops->forward(self, N, r->x, e, 0);
    check(e, ref->logits, NK, TOL, "%s (p = %g): eval equals p = 0", c->name, c->p);
    head_loss32(pl, r, 7, a);
    head_loss32(pl, r, 7, b);
    ok(memcmp(a, b, (size_t)NK * sizeof *a) == 0, "%s: training, same seed: same output", c->name);
    ok(rel_err(a, e, NK) > 1e-3, "%s: training output differs from eval", c->name);
    r->ops->forward(self, N, r->x, b, 1);
    ok(memcmp(a, b, (size_t)NK * sizeof *a) != 0, "%s: the next training forward draws a new mask",
       c->name);

    /* backward through the mask: float32 central differences at fixed seed */
    head_loss32(pl, r, 7, a);
    params_zero_grad(&pl->P);
    r->ops->backward(self, N, r->x, r->G, dx);
    double worst = 0;
    for (int i = 0; i <= r->np; i++) {
        float *v = i < r->np ? pdata(pl, r->p[i]) : r->x;
        const float *g = i < r->np ? pgrad(pl, r->p[i]) : dx;
        int64_t n = i < r->np ? r->n[i] : (int64_t)N * HEAD_D;
        float gmax = 0;
        for (int64_t j = 0; j < n; j++)
            gmax = fmaxf(gmax, fabsf(g[j]));
        for (int s = 0; s < 4; s++) {
            int64_t j = s == 0 ? argmax_abs(g, n) : pick(n);
            double err = fabs(head_fd32(pl, r, v + j, a) - g[j]) / fmax(gmax, FLOOR);
            worst = fmax(worst, isnan(err) ? INFINITY : err);
        }
    }
    ok(worst <= TOL_FD32, "%s: gradients through dropout against float32 central differences "
       "(worst %.1e <= %.0e)", c->name, worst, TOL_FD32);
    free(a);
    free(b);
    free(e);
    free(dx);
}

static void test_head_defaults_and_errors(pipeline *pl)
{
    is(cfg_int(pl, "tasks.[8].head.hidden.[0]", 0), 256, "mlp: hidden defaults to [256]");
    is_str(cfg_str(pl, "tasks.[8].head.activation"), "gelu", "mlp: activation defaults to gelu");
    is(cfg_bool(pl, "tasks.[8].head.layer_norm", 0), 1, "mlp: layer_norm defaults to true");
    ok(fabs(cfg_num(pl, "tasks.[8].head.dropout", 0) - 0.1) < 1e-12, "mlp: dropout defaults to 0.1");
    ok(fabs(cfg_num(pl, "tasks.[7].head.dropout", 0) - 0.1) < 1e-12,
       "token_linear: dropout defaults to 0.1");
    ok(fabs(cfg_num(pl, "tasks.[0].head.dropout", 1) - 0.0) < 1e-12, "linear: dropout defaults to 0");
    ok(find_param(pl, "heads.defaults.4.weight") && find_param(pl, "heads.defaults.4.weight")->shape[1] == 256,
       "mlp defaults: 0 Linear, 1 LayerNorm, (2 GELU, 3 Dropout), 4 Linear 256 -> K");

    /* value errors: refused by validation (--check), naming key and value */
    static const struct {
        const char *section, *want;
    } bad[] = {
        {"{ plugin = \"mlp\"; activation = \"swish\"; }", "tasks.[0].head.activation: 'swish' is not one of gelu|relu|tanh"},
        {"{ plugin = \"mlp\"; hidden = [0]; }", "tasks.[0].head.hidden.[0]: 0 is out of range: must be in [1, 65536]"},
        {"{ plugin = \"linear\"; dropout = 1.0; }", "tasks.[0].head.dropout: 1 is out of range: must be in [0, 1)"},
        {"{ plugin = \"token_linear\"; dropout = -0.5; }", "tasks.[0].head.dropout: -0.5 is out of range"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *text = str_printf("run = \"tokenize\"; tasks = ({ name = \"t\"; head = %s; });", bad[i].section);
        char *e = validate_errors(text);
        like(e, bad[i].want, "head %s is refused at --check, naming key and value", bad[i].section);
        free(e);
        free(text);
    }
    /* what the table cannot say: refused by the plugin's create(), naming its slot */
    pipeline bp;
    int rc = pipeline_from_text(&bp, "run = \"tokenize\"; tasks = ({ name = \"t\"; head = { plugin = \"mlp\"; hidden = []; }; });");
    stage *st = rc == 0 ? stage_of_task(&bp, "t", "head", -1, RUNNER_KIND_HEAD) : NULL;
    ok(rc == 0 && st == NULL, "head mlp with hidden = [] is refused");
    like(err_get(), "at least one hidden layer", "... with a message naming it");
    like(err_get(), "tasks.t.head/", "... and its slot");
    pipeline_close(&bp);
}

static void test_heads(void)
{
    safetensors st;
    if (st_open(&st, GOLDENS "/heads.safetensors") != 0) {
        ok(0, "heads goldens: %s", err_get());
        return;
    }
    pipeline pl;
    if (pipeline_from_text(&pl, heads_config) != 0) {
        ok(0, "heads pipeline validates");
        st_close(&st);
        return;
    }
    head_run runs[NCASES];
    memset(runs, 0, sizeof runs);
    int fail = 0;
    for (int i = 0; i < NCASES; i++) {
        runs[i].c = &cases[i];
        runs[i].st = stage_of_task(&pl, cases[i].name, "head", -1, RUNNER_KIND_HEAD);
        if (!runs[i].st) {
            ok(0, "head %s: %s", cases[i].name, err_get());
            fail = 1;
            continue;
        }
        runs[i].ops = runs[i].st->desc->ops;
        fail |= runs[i].ops->bind(runs[i].st->self, HEAD_D, HEAD_K) != 0;
    }
    stage *def = stage_of_task(&pl, "defaults", "head", -1, RUNNER_KIND_HEAD);
    fail |= !def || ((const runner_head_ops *)def->desc->ops)->bind(def->self, HEAD_D, HEAD_K) != 0;
    ok(!fail, "every head binds%s%s", fail ? ": " : "", fail ? err_get() : "");
    float dummy[HEAD_K];
    ok(!fail && runs[0].ops->forward(runs[0].st->self, 1, dummy, dummy, 0) == -1,
       "forward before the store is allocated is refused");
    like(err_get(), "before the parameter store was allocated", "... and says so");
    ok(!fail && runs[0].ops->bind(runs[0].st->self, HEAD_D, HEAD_K) == -1, "binding twice is refused");
    if (fail || pipeline_alloc_params(&pl, 1) != 0) {
        ok(0, "heads: parameter store allocated: %s", err_get());
        goto done;
    }
    for (int i = 0; i < NCASES; i++)
        fail |= head_load(&pl, &st, &runs[i]);
    ok(!fail, "heads: every golden tensor has its parameter of the same size");
    if (fail)
        goto done;
    for (int i = 0; i < NGOLD; i++)
        test_head_registration(&pl, &runs[i]);
    for (int i = 0; i < NGOLD; i++)
        test_head_golden(&pl, &runs[i]);
    for (int i = 0; i < NGOLD; i++)
        test_head_fd64(&pl, &runs[i]);
    for (int i = NGOLD; i < NCASES; i++) {
        const head_run *ref = &runs[0];
        while (strcmp(ref->c->name, cases[i].golden) != 0)
            ref++;
        test_head_dropout(&pl, &runs[i], ref);
    }
    test_head_defaults_and_errors(&pl);
done:
    for (int i = 0; i < NCASES; i++)
        head_run_free(&runs[i]);
    pipeline_close(&pl);
    st_close(&st);
}

/* ---- backbone ----------------------------------------------------------------------------- */

enum { BL = 2, BB = 3, BT = 7, BC = 32 };

typedef struct bert_gold {
    int32_t *ids, *types;
    uint8_t mask[BB * BT];
    int len[BB];
    float *hidden[BL + 1], *R[BL + 1], *dhidden[BL + 1];
    runner_batch batch;
} bert_gold;

static int bert_gold_load(const safetensors *st, bert_gold *g)
{
    int64_t n1 = 0, n2 = 0, n3 = 0;
    int32_t *mask = gold_i32(st, "input.mask", &n3);
    g->ids = gold_i32(st, "input.ids", &n1);
    g->types = gold_i32(st, "input.type_ids", &n2);
    int fail = !g->ids || !g->types || !mask || n1 != BB * BT || n2 != n1 || n3 != n1;
    for (int b = 0; !fail && b < BB; b++) {
        g->len[b] = 0;
        for (int t = 0; t < BT; t++) {
            g->mask[b * BT + t] = (uint8_t)mask[b * BT + t];
            g->len[b] += mask[b * BT + t];
        }
    }
    free(mask);
    for (int l = 0; l <= BL; l++) {
        int64_t n = 0;
        g->hidden[l] = gold(st, &n, "hidden.%d", l);
        fail |= !g->hidden[l] || n != BB * BT * BC;
        g->R[l] = gold(st, NULL, "R.%d", l);
        g->dhidden[l] = gold(st, NULL, "dhidden.%d", l);
        fail |= !g->R[l] || !g->dhidden[l];
    }
    g->batch = (runner_batch){BB, BT, g->ids, g->types, g->mask, NULL, g->len};
    return fail ? -1 : 0;
}

static void bert_gold_free(bert_gold *g)
{
    free(g->ids);
    free(g->types);
    for (int l = 0; l <= BL; l++) {
        free(g->hidden[l]);
        free(g->R[l]);
        free(g->dhidden[l]);
    }
}

/* the token rows (mask = 1) of a (B,T,C) tensor, packed */
static int64_t packed(const bert_gold *g, const float *src, float *dst)
{
    int64_t n = 0;
    for (int k = 0; k < BB * BT; k++)
        if (g->mask[k])
            for (int c = 0; c < BC; c++)
                dst[n++] = src[(int64_t)k * BC + c];
    return n;
}

/* the loss of the goldens: sum_l sum(hidden[l] * R_l), R_l zero on padding */
static double bert_loss(const bert_gold *g, const runner_states *s)
{
    double L = 0;
    for (int l = 0; l <= BL; l++)
        for (int64_t i = 0; i < BB * BT * BC; i++)
            L += (double)s->hidden[l][i] * g->R[l][i];
    return L;
}

typedef struct bert_stage {
    pipeline pl;
    stage *st;
    const runner_backbone_ops *ops;
} bert_stage;

static int bert_open(bert_stage *b, const char *section)
{
    memset(b, 0, sizeof *b);
    char *text = str_printf("run = \"tokenize\";\nmodel = \"" GOLDENS "/tiny-bert\";\nbackbone = %s;\n",
                            section);
    int rc = pipeline_from_text(&b->pl, text);
    free(text);
    if (rc != 0)
        return -1;
    b->st = pipeline_stage(&b->pl, "backbone", "backbone.", RUNNER_KIND_BACKBONE,
                           config_lookup(&b->pl.cfg, "backbone"));
    if (!b->st)
        return -1;
    b->ops = b->st->desc->ops;
    if (pipeline_alloc_params(&b->pl, 1) != 0 || b->ops->load(b->st->self) != 0)
        return -1;
    return 0;
}

/* forward; training ones get dhidden = the given gradients (NULL: R) */
static int bert_run(bert_stage *b, const bert_gold *g, int train, float *const *dh,
                    const runner_states **s)
{
    if (b->ops->forward(b->st->self, &g->batch, train, s) != 0)
        return -1;
    for (int l = 0; train && l <= BL; l++)
        memcpy((*s)->dhidden[l], dh ? dh[l] : g->R[l], (size_t)BB * BT * BC * sizeof(float));
    return 0;
}

static const char *const bert_tensors[] = {
    "embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
    "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight",
    "embeddings.LayerNorm.bias",
};
static const char *const bert_layer_tensors[] = {
    "attention.self.query.weight", "attention.self.query.bias", "attention.self.key.weight",
    "attention.self.key.bias", "attention.self.value.weight", "attention.self.value.bias",
    "attention.output.dense.weight", "attention.output.dense.bias",
    "attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias",
    "intermediate.dense.weight", "intermediate.dense.bias", "output.dense.weight",
    "output.dense.bias", "output.LayerNorm.weight", "output.LayerNorm.bias",
};
enum { NEMB = 5, NLAYER_T = 16, NBT = NEMB + BL * NLAYER_T };

static void tensor_name(int i, char *out, size_t size)
{
    if (i < NEMB)
        snprintf(out, size, "%s", bert_tensors[i]);
    else
        snprintf(out, size, "encoder.layer.%d.%s", (i - NEMB) / NLAYER_T,
                 bert_layer_tensors[(i - NEMB) % NLAYER_T]);
}

/* level of tensor i: -1 embeddings, else its layer */
static int tensor_level(int i) { return i < NEMB ? -1 : (i - NEMB) / NLAYER_T; }

static const char *level_name(int level)
{
    static char buf[BL + 1][16];
    if (level < 0)
        return "embeddings";
    snprintf(buf[level], sizeof buf[level], "layer %d", level);
    return buf[level];
}

static void test_bert_golden(bert_stage *b, const bert_gold *g, float **ggrad, param **P)
{
    const runner_states *s;
    float *got = malloc(BB * BT * BC * sizeof *got), *want = malloc(BB * BT * BC * sizeof *want);
    int rc = bert_run(b, g, 0, NULL, &s);
    ok(rc == 0 && s->L == BL && s->B == BB && s->T == BT && s->C == BC,
       "backbone: eval forward (L %d, B %d, T %d, C %d)", rc ? -1 : s->L, rc ? -1 : s->B,
       rc ? -1 : s->T, rc ? -1 : s->C);
    for (int l = 0; rc == 0 && l <= BL; l++) {
        int64_t n = packed(g, s->hidden[l], got);
        packed(g, g->hidden[l], want);
        check(got, want, n, TOL, "backbone: hidden[%d] (eval) against PyTorch", l);
    }
    rc = bert_run(b, g, 1, NULL, &s);
    ok(rc == 0, "backbone: training forward (dropout 0)");
    double worst = 0;
    for (int l = 0; rc == 0 && l <= BL; l++) {
        int64_t n = packed(g, s->hidden[l], got);
        packed(g, g->hidden[l], want);
        worst = fmax(worst, rel_err(got, want, n));
    }
    ok(rc == 0 && worst <= TOL, "backbone: training hidden states with p = 0 equal eval's (%.1e)", worst);
    params_zero_grad(&b->pl.P);
    rc = rc ? rc : b->ops->backward(b->st->self, &g->batch);
    if (!ok(rc == 0, "backbone: backward"))
        diag("bert backward failed: %s", err_get());
    for (int i = 0; i < NBT; i++) {
        char name[128];
        tensor_name(i, name, sizeof name);
        check(rc == 0 && P[i] ? pgrad(&b->pl, P[i]) : NULL, ggrad[i], P[i] ? P[i]->numel : 0, TOL,
              "backbone: d %s against autograd", name);
    }
    free(got);
    free(want);
}

/* Each level alone: only its tensors train, and the gradient at its output
 * is autograd's total there (dhidden.<l+1>; embeddings: dhidden.0). */
static void test_bert_levels(bert_stage *b, const bert_gold *g, float **ggrad, param **P)
{
    float *zero = calloc(BB * BT * BC, sizeof *zero);
    for (int level = -1; level < BL; level++) {
        params_set(&b->pl.P, "backbone.*", 0, -1);
        char glob[64];
        if (level < 0)
            snprintf(glob, sizeof glob, "backbone.embeddings.*");
        else
            snprintf(glob, sizeof glob, "backbone.encoder.layer.%d.*", level);
        params_set(&b->pl.P, glob, 1, -1);
        float *dh[BL + 1];
        for (int l = 0; l <= BL; l++)
            dh[l] = l == level + 1 ? g->dhidden[l] : zero;
        const runner_states *s;
        params_zero_grad(&b->pl.P);
        int rc = bert_run(b, g, 1, dh, &s);
        rc = rc ? rc : b->ops->backward(b->st->self, &g->batch);
        double worst = 0, other = 0;
        const char *worst_name = "";
        static char names[NBT][128];
        for (int i = 0; i < NBT; i++) {
            tensor_name(i, names[i], sizeof names[i]);
            if (!P[i])
                continue;
            const float *gr = pgrad(&b->pl, P[i]);
            if (tensor_level(i) == level) {
                double e = rel_err(gr, ggrad[i], P[i]->numel);
                if (!(e <= worst)) {
                    worst = isnan(e) ? INFINITY : e;
                    worst_name = names[i];
                }
            } else {
                for (int64_t j = 0; j < P[i]->numel; j++)
                    other = fmax(other, fabs(gr[j]));
            }
        }
        ok(rc == 0 && worst <= TOL, "backbone: %s alone, from autograd's gradient at its output "
           "(worst %.1e, d %s)", level_name(level), worst, worst_name);
        ok(rc == 0 && other == 0, "backbone: frozen tensors get no gradient (level %d)", level);
    }
    params_set(&b->pl.P, "backbone.*", 1, -1);
    free(zero);
}

/* L at the current parameters: eval forward, or a training forward whose
 * dropout seed comes from the host RNG reset to seed (seed != 0) */
static double bert_loss_at(bert_stage *b, const bert_gold *g, unsigned long seed)
{
    const runner_states *s;
    if (seed)
        gsl_rng_set(b->pl.rng, seed);
    if (b->ops->forward(b->st->self, &g->batch, seed != 0, &s) != 0)
        return NAN;
    return bert_loss(g, s);
}

/* Central differences, Richardson-extrapolated: (4 D(eps/2) - D(eps)) / 3. */
static double bert_fd(bert_stage *b, const bert_gold *g, float *v, unsigned long seed, float eps)
{
    float keep = *v;
    double d[2];
    for (int k = 0; k < 2; k++) {
        float h = k ? eps / 2 : eps;
        *v = keep + h;
        double lp = bert_loss_at(b, g, seed);
        *v = keep - h;
        double lm = bert_loss_at(b, g, seed);
        d[k] = (lp - lm) / (2.0 * h);
    }
    *v = keep;
    return (4 * d[1] - d[0]) / 3;
}

/* float32 central differences on sampled elements of every tensor, per
 * layer; seed != 0: in training mode with the dropout masks of that seed */
static void test_bert_fd(bert_stage *b, const bert_gold *g, param **P, unsigned long seed,
                         int samples, const char *what)
{
    const runner_states *s;
    if (seed)
        gsl_rng_set(b->pl.rng, seed);
    params_zero_grad(&b->pl.P);
    int rc = bert_run(b, g, 1, NULL, &s);
    rc = rc ? rc : b->ops->backward(b->st->self, &g->batch);
    ok(rc == 0, "backbone%s: backward for the finite differences", what);
    double worst_level[BL + 1] = {0};
    const char *worst_name[BL + 1] = {""};
    static char names[NBT][128];
    float *grad = NULL;
    for (int i = 0; rc == 0 && i < NBT; i++) {
        tensor_name(i, names[i], sizeof names[i]);
        if (!P[i])
            continue;
        int64_t n = P[i]->numel;
        float *gr = realloc(grad, (size_t)n * sizeof *grad);
        if (!gr)
            break;
        grad = gr;
        memcpy(grad, pgrad(&b->pl, P[i]), (size_t)n * sizeof *grad);
        float gmax = 0;
        for (int64_t j = 0; j < n; j++)
            gmax = fmaxf(gmax, fabsf(grad[j]));
        for (int k = 0; k < samples; k++) {
            int64_t j = k == 0 ? argmax_abs(grad, n) : pick(n);
            double fd = bert_fd(b, g, pdata(&b->pl, P[i]) + j, seed, STEP_BERT_FD);
            double e = fabs(fd - grad[j]) / fmax(gmax, FLOOR_BERT_FD);
            int lv = tensor_level(i) + 1;
            if (!(e <= worst_level[lv])) {
                worst_level[lv] = isnan(e) ? INFINITY : e;
                worst_name[lv] = names[i];
            }
        }
    }
    free(grad);
    for (int lv = 0; lv <= BL; lv++)
        ok(rc == 0 && worst_level[lv] <= TOL_FD32,
           "backbone%s: %s: %d elements per tensor against float32 central differences "
           "(worst %.1e <= %.0e, d %s)", what, level_name(lv - 1), samples, worst_level[lv],
           TOL_FD32, worst_name[lv]);
}

static void test_bert_dropout(const bert_gold *g)
{
    bert_stage d;
    if (bert_open(&d, "{ plugin = \"bert\"; }") != 0) {
        ok(0, "backbone with config.json's dropout (0.1): %s", err_get());
        pipeline_close(&d.pl);
        return;
    }
    const int64_t n = BB * BT * BC;
    float *ev[BL + 1], *a[BL + 1];
    const runner_states *s;
    int rc = d.ops->forward(d.st->self, &g->batch, 0, &s);
    double worst = 0;
    float *got = malloc(n * sizeof *got), *want = malloc(n * sizeof *want);
    for (int l = 0; l <= BL; l++) {
        ev[l] = malloc(n * sizeof(float));
        a[l] = malloc(n * sizeof(float));
        memcpy(ev[l], s->hidden[l], n * sizeof(float));
        int64_t m = packed(g, ev[l], got);
        packed(g, g->hidden[l], want);
        worst = fmax(worst, rel_err(got, want, m));
    }
    ok(rc == 0 && worst <= TOL, "backbone p = 0.1: eval equals the p = 0 goldens (%.1e)", worst);
    gsl_rng_set(d.pl.rng, 11);
    d.ops->forward(d.st->self, &g->batch, 1, &s);
    int differs = 1, same = 1, fresh = 0;
    for (int l = 0; l <= BL; l++) {
        memcpy(a[l], s->hidden[l], n * sizeof(float));
        differs &= memcmp(a[l], ev[l], n * sizeof(float)) != 0;
    }
    gsl_rng_set(d.pl.rng, 11);
    d.ops->forward(d.st->self, &g->batch, 1, &s);
    for (int l = 0; l <= BL; l++)
        same &= memcmp(a[l], s->hidden[l], n * sizeof(float)) == 0;
    d.ops->forward(d.st->self, &g->batch, 1, &s);
    for (int l = 0; l <= BL; l++)
        fresh |= memcmp(a[l], s->hidden[l], n * sizeof(float)) != 0;
    ok(differs, "backbone p = 0.1: training output differs from eval at every level");
    ok(same, "backbone p = 0.1: same seed, same training output");
    ok(fresh, "backbone p = 0.1: the next training forward draws new masks");
    param *P[NBT];
    for (int i = 0; i < NBT; i++) {
        char name[128];
        tensor_name(i, name, sizeof name);
        P[i] = find_param(&d.pl, "backbone.%s", name);
    }
    test_bert_fd(&d, g, P, 11, 2, " with dropout 0.1 (hidden and attention)");
    for (int l = 0; l <= BL; l++) {
        free(ev[l]);
        free(a[l]);
    }
    free(got);
    free(want);
    pipeline_close(&d.pl);
}

static void test_backbone(void)
{
    safetensors st;
    bert_gold g;
    memset(&g, 0, sizeof g);
    if (st_open(&st, GOLDENS "/bert.safetensors") != 0 || bert_gold_load(&st, &g) != 0) {
        ok(0, "bert goldens: %s", err_get());
        return;
    }
    bert_stage b;
    if (bert_open(&b, "{ plugin = \"bert\"; hidden_dropout = 0.0; attention_dropout = 0.0; }") != 0) {
        ok(0, "backbone: the bert plugin loads tests/goldens/tiny-bert: %s", err_get());
        pipeline_close(&b.pl);
        bert_gold_free(&g);
        st_close(&st);
        return;
    }
    ok(1, "backbone: the bert plugin loads tests/goldens/tiny-bert");
    param *P[NBT];
    float *ggrad[NBT];
    int fail = 0;
    for (int i = 0; i < NBT; i++) {
        char name[128];
        tensor_name(i, name, sizeof name);
        int64_t n = 0;
        P[i] = find_param(&b.pl, "backbone.%s", name);
        ggrad[i] = gold(&st, &n, "grad.%s", name);
        if (!P[i] || !ggrad[i] || P[i]->numel != n) {
            diag("backbone.%s: %s", name, P[i] ? "size differs from the golden's" : "not registered");
            fail = 1;
        }
    }
    is(b.pl.P.n, NBT, "backbone: %d tensors, as the goldens", NBT);
    ok(!fail, "backbone: every golden gradient has its parameter of the same size");
    if (!fail) {
        test_bert_golden(&b, &g, ggrad, P);
        test_bert_levels(&b, &g, ggrad, P);
        test_bert_fd(&b, &g, P, 0, 3, "");
        test_bert_dropout(&g);
    }
    for (int i = 0; i < NBT; i++)
        free(ggrad[i]);
    pipeline_close(&b.pl);
    bert_gold_free(&g);
    st_close(&st);
}

/* ---- poolers ------------------------------------------------------------------------------- */

static const char *const pooler_sections[] = {
    "\"mean\"", "\"cls\"", "\"max\"", "\"mean_sqrt_len\"", "\"weighted_mean\"",
    "{ plugin = \"mean\"; layers = [0, -1]; normalize = true; }",
    "{ plugin = \"max\"; layers = [1, 2]; normalize = true; }",
};
enum { NPOOL = sizeof pooler_sections / sizeof pooler_sections[0] };

/* L = sum(out * G) of the pooler over states s (float32 forward) */
static double pool_loss(const stage *st, const runner_batch *b, const runner_states *s, float *out,
                        const float *G, int D)
{
    const runner_pooler_ops *ops = st->desc->ops;
    if (ops->forward(st->self, b, s, out) != 0)
        return NAN;
    double L = 0;
    for (int i = 0; i < b->B * D; i++)
        L += (double)out[i] * G[i];
    return L;
}

/* Poolers' backward by central differences over every token element of
 * the states they read. Synthetic states: per dimension the tokens are
 * spread at least 0.05 apart, so max pooling keeps its arg max under the
 * 1e-2 steps. */
static void test_poolers(void)
{
    pipeline pl;
    char *text = str_printf("run = \"tokenize\";\npoolers = (%s", pooler_sections[0]);
    for (int i = 1; i < NPOOL; i++) {
        char *t = str_printf("%s, %s", text, pooler_sections[i]);
        free(text);
        text = t;
    }
    char *t = str_printf("%s);\n", text);
    free(text);
    text = t;
    int rc = pipeline_from_text(&pl, text);
    free(text);
    ok(rc == 0, "poolers pipeline validates");
    const int64_t n = BB * BT * BC;
    float *hidden[BL + 1], *dhidden[BL + 1];
    uint64_t s = 12345;
    for (int l = 0; l <= BL; l++) {
        hidden[l] = malloc(n * sizeof(float));
        dhidden[l] = calloc(n, sizeof(float));
    }
    for (int b = 0; b < BB; b++)
        for (int c = 0; c < BC; c++) {
            /* a random order of the T tokens for this (b, c), the same in every layer */
            int order[BT];
            for (int k = 0; k < BT; k++)
                order[k] = k;
            for (int k = BT - 1; k > 0; k--) {
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                int j = (int)((s >> 33) % (uint64_t)(k + 1)), tmp = order[k];
                order[k] = order[j];
                order[j] = tmp;
            }
            for (int l = 0; l <= BL; l++) {
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                float base = (float)((s >> 40) % 1000) / 500.0f - 1.0f;
                for (int k = 0; k < BT; k++)
                    hidden[l][((int64_t)b * BT + k) * BC + c] = base + 0.1f * (float)order[k] - 0.3f;
            }
        }
    uint8_t mask[BB * BT] = {0};
    int len[BB] = {7, 5, 3};
    for (int b = 0; b < BB; b++)
        for (int k = 0; k < len[b]; k++)
            mask[b * BT + k] = 1;
    int32_t ids[BB * BT] = {0};
    runner_batch batch = {BB, BT, ids, NULL, mask, NULL, len};
    runner_states states = {BL, BB, BT, BC, hidden, dhidden};
    config_setting_t *list = config_lookup(&pl.cfg, "poolers");
    for (int i = 0; rc == 0 && i < NPOOL; i++) {
        stage *st = pipeline_stage(&pl, "pooler", "pooler.", RUNNER_KIND_POOLER,
                                   config_setting_get_elem(list, (unsigned)i));
        if (!st) {
            ok(0, "pooler %s: %s", pooler_sections[i], err_get());
            continue;
        }
        const runner_pooler_ops *ops = st->desc->ops;
        int D = ops->out_dim(st->self, &states);
        float *out = malloc((size_t)BB * D * sizeof *out), *G = malloc((size_t)BB * D * sizeof *G);
        for (int j = 0; j < BB * D; j++)
            G[j] = (float)((j * 37 % 23) - 11) / 7.0f;
        for (int l = 0; l <= BL; l++)
            memset(dhidden[l], 0, n * sizeof(float));
        pool_loss(st, &batch, &states, out, G, D);
        int brc = ops->backward(st->self, &batch, &states, G);
        double worst = 0;
        float gmax = 0;
        for (int l = 0; l <= BL; l++)
            for (int64_t j = 0; j < n; j++)
                gmax = fmaxf(gmax, fabsf(dhidden[l][j]));
        const float eps = 1e-2f;
        for (int l = 0; l <= BL; l++)
            for (int64_t j = 0; j < n; j++) {
                if (!mask[j / BC])
                    continue;
                float keep = hidden[l][j];
                hidden[l][j] = keep + eps;
                double lp = pool_loss(st, &batch, &states, out, G, D);
                hidden[l][j] = keep - eps;
                double lm = pool_loss(st, &batch, &states, out, G, D);
                hidden[l][j] = keep;
                double e = fabs((lp - lm) / (2 * eps) - dhidden[l][j]) / fmax(gmax, FLOOR);
                worst = fmax(worst, isnan(e) ? INFINITY : e);
            }
        ok(brc == 0 && gmax > 0 && worst <= TOL_FD32,
           "pooler %s: backward against float32 central differences, every token element "
           "(worst %.1e <= %.0e)", pooler_sections[i], worst, TOL_FD32);
        free(out);
        free(G);
    }
    for (int l = 0; l <= BL; l++) {
        free(hidden[l]);
        free(dhidden[l]);
    }
    pipeline_close(&pl);
}

int main(void)
{
    safetensors a, b;
    if (st_open(&a, GOLDENS "/bert.safetensors") == 0 && st_open(&b, GOLDENS "/heads.safetensors") == 0) {
        test_manifest(&a, &b);
        st_close(&a);
        st_close(&b);
    } else {
        ok(0, "goldens open: %s", err_get());
    }
    test_heads();
    test_backbone();
    test_poolers();
    return done_testing(221);
}
