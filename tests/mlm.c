/* mlm.c — the masked-language-model head (head/mlm) and loss
 * (loss/masked_lm), their gradients proven (docs/heads.md):
 *
 * (a) the head against PyTorch autograd (tests/goldens/mlm.safetensors:
 *     BertLMPredictionHead with its decoder tied to a given embedding
 *     matrix, loss = cross-entropy over the rows, two rows ignored): logits,
 *     loss, every parameter gradient, the tied matrix's gradient and dx; and
 *     the head + loss chain against float64 central differences over every
 *     element of every tensor and of x;
 * (b) the loss against PyTorch values, a hand-computed case, float32
 *     logits' central differences, ignored rows, empty and all-ignored
 *     batches, a 30,522-piece vocabulary against classify.c's xent_row (in
 *     double), the same bits for 1 and 2 threads, predictions and errors;
 *     its vectorised row (core/softmax_xent.c) against xent_row on every
 *     row length up to 40, far-off and -Inf logits;
 * (c) the tie: the embedding gradient, read through the store and through
 *     the host's param_ref, is autograd's, and adds to what is already
 *     there; a frozen embedding gets none; tie = false registers and trains
 *     its own decoder.weight; a missing or mis-sized tied tensor is a clear
 *     error; and in a real pipeline (tiny BERT, lines data, BERT masking)
 *     the word-embedding gradient — input side plus tied decoder — matches
 *     finite differences of the training loss.
 *
 * Relative error of a tensor: max|got - want| / max(max|want|, FLOOR). */
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "runner/kit/classify.h"
#include "model.h"
#include "plugin_stage.h"
#include "runner/kit/safetensors.h"
#include "runner/kit/softmax_xent.h"
#include "tap.h"

#define GOLDENS "tests/goldens/mlm.safetensors"
#define EMB "backbone.embeddings.word_embeddings.weight"
#define TOL 1e-3
#define TOL_FD32 2e-3
#define FLOOR 1e-2

#include "check.h" /* after FLOOR, which it uses */
enum { N = 12, C = 16, V = 50, NP = 5 };

#define HEAD "heads.mlm."
static const char *const pnames[NP] = {"transform.dense.weight", "transform.dense.bias",
                                       "transform.LayerNorm.weight", "transform.LayerNorm.bias", "bias"};
static const char *const full[NP] = {HEAD "transform.dense.weight", HEAD "transform.dense.bias",
                                     HEAD "transform.LayerNorm.weight", HEAD "transform.LayerNorm.bias",
                                     HEAD "bias"};

/* ---- helpers ------------------------------------------------------------------------ */

/* The golden tensors of the mlm case. */
typedef struct golden {
    safetensors st;
    float *x, *E, *p[NP], *logits, *loss, *dlogits, *g[NP], *gE, *dx;
    int64_t n[NP];
    int32_t labels[N];
} golden;

static float *gold(golden *g, int64_t want, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static float *gold(golden *g, int64_t want, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const st_tensor *t = st_find(&g->st, name);
    float *out = t && t->numel == want ? malloc((size_t)want * sizeof *out) : NULL;
    if (!out || st_to_f32(&g->st, t, out) != 0) {
        diag("golden tensor %s: %s", name, !t ? "missing" : out ? err_get() : "wrong size");
        free(out);
        return NULL;
    }
    return out;
}

static int golden_load(golden *g)
{
    memset(g, 0, sizeof *g);
    if (st_open(&g->st, GOLDENS) != 0) {
        diag("%s: %s", GOLDENS, err_get());
        return -1;
    }
    const int64_t sizes[NP] = {C * C, C, C, C, V};
    int fail = 0;
    for (int i = 0; i < NP; i++) {
        g->n[i] = sizes[i];
        fail |= !(g->p[i] = gold(g, sizes[i], "mlm.param.%s", pnames[i]));
        fail |= !(g->g[i] = gold(g, sizes[i], "mlm.grad.%s", pnames[i]));
    }
    fail |= !(g->x = gold(g, N * C, "mlm.x")) | !(g->E = gold(g, V * C, "mlm.embeddings"));
    fail |= !(g->logits = gold(g, N * V, "mlm.logits")) | !(g->loss = gold(g, 1, "mlm.loss"));
    fail |= !(g->dlogits = gold(g, N * V, "mlm.dlogits")) | !(g->gE = gold(g, V * C, "mlm.grad.embeddings"));
    fail |= !(g->dx = gold(g, N * C, "mlm.dx"));
    const st_tensor *t = st_find(&g->st, "mlm.labels");
    if (t && strcmp(t->dtype, "I32") == 0 && t->numel == N)
        memcpy(g->labels, t->data, sizeof g->labels);
    else
        fail = 1;
    return fail ? -1 : 0;
}

static void golden_free(golden *g)
{
    for (int i = 0; i < NP; i++) {
        free(g->p[i]);
        free(g->g[i]);
    }
    free(g->x);
    free(g->E);
    free(g->logits);
    free(g->loss);
    free(g->dlogits);
    free(g->gE);
    free(g->dx);
    st_close(&g->st);
}

static param *find_param(pipeline *pl, const char *name)
{
    int id = params_find(&pl->P, name);
    return id >= 0 ? &pl->P.p[id] : NULL;
}

static float *pdata(pipeline *pl, const char *name)
{
    param *p = find_param(pl, name);
    return p ? pl->P.data + p->offset : NULL;
}

static float *pgrad(pipeline *pl, const char *name)
{
    param *p = find_param(pl, name);
    return p && pl->P.grad ? pl->P.grad + p->offset : NULL;
}

/* ---- a head on a store with a stand-in word-embedding matrix -------------------------- */

typedef struct rig {
    pipeline pl;
    stage *head, *loss;
    const runner_head_ops *hops;
    const runner_loss_ops *lops;
} rig;

/* The mlm head of `section` and the masked_lm loss, bound to C inputs and V
 * outputs, after registering emb_name (V', C) first when emb_name != NULL;
 * the store allocated with gradients. -1 with the error in err_get(). */
static int rig_open(rig *r, const char *section, const char *emb_name, int emb_rows)
{
    char text[1024];
    snprintf(text, sizeof text,
             "run = \"tokenize\";\n"
             "tasks = ( { name = \"mlm\"; head = %s; loss = { plugin = \"masked_lm\"; }; } );\n",
             section);
    memset(r, 0, sizeof *r);
    if (pipeline_from_text(&r->pl, text) != 0)
        return -1;
    r->pl.quiet = 1;
    const int64_t shape[2] = {emb_rows, C};
    if (emb_name && params_add(&r->pl.P, emb_name, 2, shape, 0, RUNNER_INIT_ZERO, 0, NULL, NULL) < 0)
        return -1;
    if (!(r->head = stage_of_task(&r->pl, "mlm", "head", -1, RUNNER_KIND_HEAD)) ||
        !(r->loss = stage_of_task(&r->pl, "mlm", "loss", -1, RUNNER_KIND_LOSS)))
        return -1;
    r->hops = r->head->desc->ops;
    r->lops = r->loss->desc->ops;
    int n_out = 0;
    if (r->lops->outputs(r->loss->self, V, &n_out) != 0 || r->hops->bind(r->head->self, C, n_out) != 0)
        return -1;
    return pipeline_alloc_params(&r->pl, 1);
}

/* Golden values into the head's tensors and into the decoder matrix. */
static void rig_set(rig *r, const golden *g, const char *decoder)
{
    for (int i = 0; i < NP; i++) {
        float *d = pdata(&r->pl, full[i]);
        if (d)
            memcpy(d, g->p[i], (size_t)g->n[i] * sizeof(float));
    }
    float *E = pdata(&r->pl, decoder);
    if (E)
        memcpy(E, g->E, (size_t)V * C * sizeof(float));
}

/* ---- (a) the head against autograd ------------------------------------------------------- */

static void test_registration(rig *r)
{
    pipeline *pl = &r->pl;
    ok(r->hops->per_token == 1, "per_token = 1: the core hands it the masked pieces");
    cmp_ok(r->head->desc->abi_minor, >=, 1, "head descriptor: ABI minor >= 1 (param_ref)");
    cmp_ok(r->loss->desc->abi_minor, >=, 1, "loss descriptor: ABI minor >= 1");
    static const int64_t shapes[NP][2] = {{C, C}, {C, 0}, {C, 0}, {C, 0}, {V, 0}};
    int shapes_ok = 1, flags_ok = 1;
    for (int i = 0; i < NP; i++) {
        const param *p = find_param(pl, full[i]);
        shapes_ok &= p && p->ndim == (shapes[i][1] ? 2 : 1) && p->shape[0] == shapes[i][0] &&
                     (!shapes[i][1] || p->shape[1] == shapes[i][1]);
        flags_ok &= p && ((p->flags & RUNNER_PARAM_NO_DECAY) != 0) == (i > 0);
    }
    ok(shapes_ok, "tensors heads.mlm.transform.dense.weight [C,C], .bias, LayerNorm [C], bias [V]");
    ok(flags_ok, "no weight decay on biases and LayerNorm, decay on the dense weight");
    is(params_count(&pl->P, "heads.mlm.*", 0), (int64_t)C * C + 3 * C + V,
       "tied: no decoder matrix of its own (%d floats)", C * C + 3 * C + V);
    /* BERT's init: dense N(0, 0.02), biases 0, LayerNorm 1 */
    const float *w = pdata(pl, full[0]);
    double s = 0, s2 = 0;
    for (int i = 0; w && i < C * C; i++) {
        s += w[i];
        s2 += (double)w[i] * w[i];
    }
    double sd = sqrt(s2 / (C * C) - (s / (C * C)) * (s / (C * C)));
    ok(sd > 0.015 && sd < 0.025, "dense weight drawn from N(0, 0.02) (sample sd %.4f)", sd);
    int inits = 1;
    for (int i = 1; i < NP; i++) {
        const float *v = pdata(pl, full[i]);
        for (int64_t j = 0; v && j < (i == NP - 1 ? V : C); j++)
            inits &= v[j] == (i == 2 ? 1.0f : 0.0f);
    }
    ok(inits, "dense bias 0, LayerNorm 1 and 0, decoder bias 0");
}

/* Forward, loss and backward of the golden case on rig r with decoder
 * tensor `decoder`; gradients zeroed first; dx (N,C) added into. */
static int run_case(rig *r, const golden *g, float *logits, double *loss, float *dlogits, float *dx)
{
    params_zero_grad(&r->pl.P);
    return r->hops->forward(r->head->self, N, g->x, logits, 1) != 0 ||
                   r->lops->forward(r->loss->self, N, V, logits, g->labels, loss, dlogits) != 0 ||
                   r->hops->backward(r->head->self, N, g->x, dlogits, dx) != 0
               ? -1
               : 0;
}

static double worst_param(rig *r, const golden *g)
{
    double worst = 0;
    for (int i = 0; i < NP; i++)
        worst = fmax(worst, rel_err(pgrad(&r->pl, full[i]), g->g[i], g->n[i]));
    return worst;
}

static void test_golden(rig *r, const golden *g, double *worst)
{
    pipeline *pl = &r->pl;
    float logits[N * V], dlogits[N * V], dx[N * C] = {0};
    double loss = 0;
    rig_set(r, g, EMB);
    int rc = run_case(r, g, logits, &loss, dlogits, dx);
    ok(rc == 0, "forward, loss, backward%s%s", rc ? ": " : "", rc ? err_get() : "");
    double e = check(logits, g->logits, N * V, TOL, "logits against autograd");
    float loss32 = (float)loss;
    e = fmax(e, check(&loss32, g->loss, 1, TOL, "masked_lm loss %.6f against autograd's %.6f", loss, g->loss[0]));
    e = fmax(e, check(dlogits, g->dlogits, N * V, TOL, "d logits (mean over the 10 labelled rows)"));
    for (int i = 0; i < NP; i++)
        e = fmax(e, check(pgrad(pl, full[i]), g->g[i], g->n[i], TOL, "d %s", pnames[i]));
    e = fmax(e, check(pgrad(pl, EMB), g->gE, V * C, TOL, "d tied embeddings, read in the store"));
    float *data = NULL, *grad = NULL;
    int id = r->head->host.param_ref(&r->head->host, EMB, &data, &grad);
    ok(id >= 0 && data == pdata(pl, EMB), "param_ref gives the store's tensor");
    e = fmax(e, check(grad, g->gE, V * C, TOL, "d tied embeddings, read through param_ref"));
    e = fmax(e, check(dx, g->dx, N * C, TOL, "d x against autograd"));
    *worst = e;

    /* dx = NULL (nothing below trains): the parameter gradients stay right */
    rc = run_case(r, g, logits, &loss, dlogits, NULL);
    float *gE = pgrad(pl, EMB);
    ok(rc == 0 && worst_param(r, g) <= TOL && rel_err(gE, g->gE, V * C) <= TOL,
       "dx = NULL: every parameter gradient still right");

    /* backward adds: into dx and into the embedding gradient (the backbone's share) */
    for (int i = 0; i < N * C; i++)
        dx[i] = 1.0f;
    params_zero_grad(&pl->P);
    for (int i = 0; i < V * C; i++)
        gE[i] = 1.0f;
    r->hops->backward(r->head->self, N, g->x, dlogits, dx);
    for (int i = 0; i < N * C; i++)
        dx[i] -= 1.0f;
    for (int i = 0; i < V * C; i++)
        gE[i] -= 1.0f;
    check(dx, g->dx, N * C, TOL, "backward adds into dx");
    check(gE, g->gE, V * C, TOL, "backward adds into the embedding gradient");

    /* a frozen embedding matrix gets nothing; the head still trains */
    params_set(&pl->P, EMB, 0, -1);
    run_case(r, g, logits, &loss, dlogits, NULL);
    float gmax = 0;
    for (int i = 0; i < V * C; i++)
        gmax = fmaxf(gmax, fabsf(gE[i]));
    ok(gmax == 0 && worst_param(r, g) <= TOL, "frozen embeddings: no gradient, the head's own still right");
    params_set(&pl->P, EMB, 1, -1);

    /* only the decoder trains and nothing below wants dx: the transform's backward is skipped */
    params_set(&pl->P, "heads.mlm.transform.*", 0, -1);
    run_case(r, g, logits, &loss, dlogits, NULL);
    double tmax = 0;
    for (int i = 0; i < NP - 1; i++) {
        const float *gr = pgrad(pl, full[i]);
        for (int64_t j = 0; j < g->n[i]; j++)
            tmax = fmax(tmax, fabsf(gr[j]));
    }
    ok(tmax == 0 && rel_err(gE, g->gE, V * C) <= TOL &&
           rel_err(pgrad(pl, HEAD "bias"), g->g[NP - 1], V) <= TOL,
       "transform frozen, dx = NULL: decoder and bias gradients right, the transform's none");
    params_set(&pl->P, "heads.mlm.transform.*", 1, -1);

    /* fewer rows reuse the buffers; a backward must follow a forward of as many; no rows */
    rc = r->hops->forward(r->head->self, N / 2, g->x, logits, 0);
    check(logits, g->logits, (N / 2) * V, TOL, "%d rows after %d", N / 2, N);
    rc = r->hops->backward(r->head->self, N, g->x, dlogits, NULL);
    ok(rc == -1, "backward of other rows than the forward's is refused");
    like(err_get(), "after a forward of", "... and says so");
    ok(r->hops->forward(r->head->self, 0, g->x, logits, 1) == 0 &&
           r->hops->backward(r->head->self, 0, g->x, dlogits, dx) == 0,
       "no masked piece in the batch: 0 rows forward and backward");
}

/* ---- (a) float64 reference of head + loss, central differences ------------------------------ */

typedef struct ref {
    double *v[NP + 2]; /* head tensors in pnames order, then E, then x */
    int64_t n[NP + 2];
    const int32_t *labels;
} ref;

static double gelu64(double v) { return 0.5 * v * (1 + erf(v / sqrt(2.0))); }

/* mean cross-entropy over the labelled rows of the head's logits, in double */
static double ref_loss(const ref *r, double *logits_out)
{
    const double *W = r->v[0], *b = r->v[1], *lw = r->v[2], *lb = r->v[3], *bias = r->v[4];
    const double *E = r->v[NP], *x = r->v[NP + 1];
    double total = 0;
    int counted = 0;
    for (int i = 0; i < N; i++) {
        double h[C], z[V], m = 0, var = 0;
        for (int o = 0; o < C; o++) {
            double s = b[o];
            for (int j = 0; j < C; j++)
                s += W[o * C + j] * x[i * C + j];
            h[o] = gelu64(s);
            m += h[o];
        }
        m /= C;
        for (int o = 0; o < C; o++)
            var += (h[o] - m) * (h[o] - m);
        double rs = 1 / sqrt(var / C + 1e-12);
        for (int o = 0; o < C; o++)
            h[o] = (h[o] - m) * rs * lw[o] + lb[o];
        double mx = -INFINITY;
        for (int k = 0; k < V; k++) {
            double s = bias[k];
            for (int o = 0; o < C; o++)
                s += E[k * C + o] * h[o];
            z[k] = s;
            mx = fmax(mx, s);
            if (logits_out)
                logits_out[i * V + k] = s;
        }
        if (r->labels[i] < 0)
            continue;
        double se = 0;
        for (int k = 0; k < V; k++)
            se += exp(z[k] - mx);
        total += mx + log(se) - z[r->labels[i]];
        counted++;
    }
    return total / counted;
}

static void test_fd64(rig *r, const golden *g, double *worst_out)
{
    pipeline *pl = &r->pl;
    ref R = {.labels = g->labels};
    const float *src[NP + 2];
    for (int i = 0; i < NP; i++) {
        src[i] = g->p[i];
        R.n[i] = g->n[i];
    }
    src[NP] = g->E;
    R.n[NP] = V * C;
    src[NP + 1] = g->x;
    R.n[NP + 1] = N * C;
    for (int i = 0; i < NP + 2; i++) {
        R.v[i] = malloc((size_t)R.n[i] * sizeof(double));
        for (int64_t j = 0; j < R.n[i]; j++)
            R.v[i][j] = src[i][j];
    }
    float logits[N * V], dlogits[N * V], dx[N * C] = {0};
    double loss = 0, ref_logits[N * V];
    rig_set(r, g, EMB);
    run_case(r, g, logits, &loss, dlogits, dx);
    double L = ref_loss(&R, ref_logits);
    float want[N * V];
    for (int i = 0; i < N * V; i++)
        want[i] = (float)ref_logits[i];
    check(logits, want, N * V, TOL, "logits against the float64 reference");
    ok(fabs(loss - L) <= 1e-5 * fabs(L), "loss %.7f against the float64 reference %.7f", loss, L);
    const float *got[NP + 2];
    for (int i = 0; i < NP; i++)
        got[i] = pgrad(pl, full[i]);
    got[NP] = pgrad(pl, EMB);
    got[NP + 1] = dx;
    double worst = 0;
    const char *worst_name = "";
    int64_t elements = 0;
    const double eps = 1e-6;
    for (int i = 0; i < NP + 2; i++) {
        float *fd = malloc((size_t)R.n[i] * sizeof *fd);
        for (int64_t j = 0; j < R.n[i]; j++) {
            double keep = R.v[i][j];
            R.v[i][j] = keep + eps;
            double lp = ref_loss(&R, NULL);
            R.v[i][j] = keep - eps;
            double lm = ref_loss(&R, NULL);
            R.v[i][j] = keep;
            fd[j] = (float)((lp - lm) / (2 * eps));
        }
        elements += R.n[i];
        double e = rel_err(got[i], fd, R.n[i]);
        if (!(e <= worst)) {
            worst = isnan(e) ? INFINITY : e;
            worst_name = i < NP ? pnames[i] : i == NP ? "embeddings" : "x";
        }
        free(fd);
    }
    ok(worst <= TOL, "all %lld gradient elements (head, tied embeddings, x) against float64 central "
       "differences of head + loss (worst %.1e, d %s)", (long long)elements, worst, worst_name);
    *worst_out = worst;
    for (int i = 0; i < NP + 2; i++)
        free(R.v[i]);
}

/* ---- (c) tie = false, custom and missing tied tensors ------------------------------------------- */

static void test_untied(const golden *g)
{
    rig r;
    int rc = rig_open(&r, "{ plugin = \"mlm\"; tie = false; }", EMB, V);
    ok(rc == 0, "tie = false: opens%s%s", rc ? ": " : "", rc ? err_get() : "");
    if (rc != 0) {
        pipeline_close(&r.pl);
        return;
    }
    pipeline *pl = &r.pl;
    const param *p = find_param(pl, HEAD "decoder.weight");
    ok(p && p->ndim == 2 && p->shape[0] == V && p->shape[1] == C && !(p->flags & RUNNER_PARAM_NO_DECAY),
       "tie = false: registers heads.mlm.decoder.weight [V,C] with weight decay");
    is(params_count(&pl->P, "heads.mlm.*", 0), (int64_t)C * C + 3 * C + V + V * C,
       "tie = false: the head's count includes its decoder");
    double s2 = 0;
    const float *d = pdata(pl, HEAD "decoder.weight");
    for (int i = 0; d && i < V * C; i++)
        s2 += (double)d[i] * d[i];
    ok(sqrt(s2 / (V * C)) > 0.015 && sqrt(s2 / (V * C)) < 0.025, "decoder.weight drawn from N(0, 0.02)");
    rig_set(&r, g, HEAD "decoder.weight");
    float logits[N * V], dlogits[N * V], dx[N * C] = {0};
    double loss;
    rc = run_case(&r, g, logits, &loss, dlogits, dx);
    ok(rc == 0, "tie = false: forward and backward");
    check(logits, g->logits, N * V, TOL, "tie = false: logits with decoder.weight = E");
    check(pgrad(pl, HEAD "decoder.weight"), g->gE, V * C, TOL, "tie = false: d decoder.weight");
    check(dx, g->dx, N * C, TOL, "tie = false: d x");
    float gmax = 0;
    const float *gE = pgrad(pl, EMB);
    for (int i = 0; i < V * C; i++)
        gmax = fmaxf(gmax, fabsf(gE[i]));
    ok(gmax == 0, "tie = false: the word embeddings get no gradient from the head");
    pipeline_close(&r.pl);

    /* a tensor of another name */
    rc = rig_open(&r, "{ plugin = \"mlm\"; embeddings = \"backbone.wte\"; }", "backbone.wte", V);
    rig_set(&r, g, "backbone.wte");
    rc = rc == 0 ? run_case(&r, g, logits, &loss, dlogits, NULL) : -1;
    ok(rc == 0 && rel_err(pgrad(&r.pl, "backbone.wte"), g->gE, V * C) <= TOL,
       "embeddings = \"backbone.wte\": tied to that tensor");
    pipeline_close(&r.pl);

    /* errors, at the first forward */
    rc = rig_open(&r, "{ plugin = \"mlm\"; }", NULL, 0);
    ok(rc == 0 && r.hops->forward(r.head->self, N, g->x, logits, 1) == -1, "tied to a tensor the store lacks: refused");
    like(err_get(), "no parameter " EMB " to tie the decoder to", "... naming it");
    pipeline_close(&r.pl);
    rc = rig_open(&r, "{ plugin = \"mlm\"; }", EMB, V + 1);
    ok(rc == 0 && r.hops->forward(r.head->self, N, g->x, logits, 1) == -1, "a tied matrix of V+1 rows: refused");
    like(err_get(), "is [51, 16], but the task has 50 labels", "... with both sizes");
    pipeline_close(&r.pl);
    rc = rig_open(&r, "{ plugin = \"mlm\"; embeddings = \"\"; }", NULL, 0);
    ok(rc == -1, "embeddings = \"\": refused");
    like(err_get(), "name the (V,C) tensor", "... saying what it wants");
    pipeline_close(&r.pl);
}

/* ---- (b) the loss --------------------------------------------------------------------------- */

/* PyTorch 1.13, float64 (tests/loss.c's "plain" case): F.cross_entropy(z, y,
 * ignore_index=-1) and its gradient */
static const float pt_z[4 * 3] = {1.5f, -0.3f, 0.2f, 0.1f, 2.0f, -1.0f, 3.0f, 0.0f, 0.5f, -0.7f, 0.4f, 0.9f};
static const int32_t pt_y[4] = {0, 2, -1, 1};
static const double pt_loss = 1.545792498959;
static const double pt_grad[4 * 3] = {-0.1015026055, 0.0383213616, 0.0631812439, 0.0415691583, 0.2779270043,
                                      -0.3194961626, 0,           0,            0,            0.0372140168,
                                      -0.2215362485, 0.1843222317};

/* classify.c's xent_row (double) over n rows: the mean loss and its
 * gradient dz (may be NULL), the reference of the masked_lm loss */
static double xent_ref(int n, int K, const float *z, const int32_t *y, double *dz)
{
    double total = 0, *zd = malloc((size_t)K * sizeof *zd);
    int counted = 0;
    for (int i = 0; i < n; i++)
        counted += y[i] >= 0;
    for (int i = 0; i < n; i++) {
        double *drow = dz ? dz + (int64_t)i * K : NULL;
        if (y[i] < 0) {
            for (int c = 0; drow && c < K; c++)
                drow[c] = 0;
            continue;
        }
        for (int c = 0; c < K; c++)
            zd[c] = z[(int64_t)i * K + c];
        total += xent_row(K, zd, y[i], NULL, K, 0.0, drow);
        for (int c = 0; drow && c < K; c++)
            drow[c] /= counted;
    }
    free(zd);
    return counted ? total / counted : 0;
}

/* xent_row_f32 (core/softmax_xent.c) against xent_row on rows of every
 * length up to 40 (vector body and scalar tail), logits spread over
 * [-40, 40], far from 0 (1e4 + ...), and with -Inf entries. */
static void test_row_f32(double *worst_loss, double *worst_grad)
{
    enum { KMAX = 40 };
    float z[KMAX], dz[KMAX], want[KMAX];
    double zd[KMAX], dd[KMAX];
    uint64_t s = 99;
    *worst_loss = *worst_grad = 0;
    int fine = 1;
    for (int kind = 0; kind < 3; kind++)
        for (int K = 1; K <= KMAX; K++)
            for (int y = 0; y < K; y += 3) {
                for (int c = 0; c < K; c++) {
                    s = s * 6364136223846793005ull + 1442695040888963407ull;
                    float u = (float)((double)(s >> 11) / 9007199254740992.0);
                    z[c] = kind == 1 ? 1e4f + 8 * u : 80 * u - 40;
                    if (kind == 2 && c % 5 == 1 && c != y)
                        z[c] = -INFINITY;
                    zd[c] = z[c];
                }
                double got = xent_row_f32(K, z, y, 0.25f, dz);
                double exact = xent_row(K, zd, y, NULL, K, 0.0, dd);
                for (int c = 0; c < K; c++)
                    want[c] = (float)(0.25 * dd[c]);
                *worst_loss = fmax(*worst_loss, fabs(got - exact) / fmax(fabs(exact), 1.0));
                *worst_grad = fmax(*worst_grad, rel_err(dz, want, K));
                fine &= isfinite(got);
            }
    ok(fine && *worst_loss <= 1e-6 && *worst_grad <= 1e-5,
       "xent_row_f32 against xent_row, 3 x 40 row lengths (tails, offsets of 1e4, -Inf logits): "
       "loss %.1e, gradient %.1e", *worst_loss, *worst_grad);
    const float nan_z[9] = {0, 1, 2, NAN, 4, 5, 6, 7, 8}, inf_z[3] = {0, INFINITY, 1};
    ok(isnan(xent_row_f32(9, nan_z, 0, 1, NULL)) && isnan(xent_row_f32(3, inf_z, 0, 1, NULL)),
       "xent_row_f32: NaN or +Inf logits give a NaN loss");
}

static void test_loss(rig *r, const golden *g, double *fd_worst)
{
    void *self = r->loss->self;
    const runner_loss_ops *L = r->lops;
    double loss = -1;
    float d[4 * 3];
    int n_out = 0;
    ok(L->outputs(self, 30522, &n_out) == 0 && n_out == 30522, "outputs: one logit per vocabulary piece");
    ok(L->outputs(self, 1, &n_out) == -1, "outputs: a 1-piece vocabulary is refused");
    like(err_get(), "at least 2 pieces", "... saying why");

    int rc = L->forward(self, 4, 3, pt_z, pt_y, &loss, d);
    /* the logits here are float32 roundings of PyTorch's float64 inputs: ~1e-8 apart */
    ok(rc == 0 && fabs(loss - pt_loss) < 1e-7, "PyTorch's value: %.12f (want %.12f)", loss, pt_loss);
    float want[4 * 3];
    for (int i = 0; i < 12; i++)
        want[i] = (float)pt_grad[i];
    check(d, want, 12, 1e-6, "PyTorch's gradient, the ignored row zero");

    /* by hand: all-zero logits over 4 classes, rows labelled 1, -1, 3 */
    float z0[3 * 4] = {0}, d0[3 * 4];
    const int32_t y0[3] = {1, -1, 3};
    memset(d0, 0x7f, sizeof d0);
    rc = L->forward(self, 3, 4, z0, y0, &loss, d0);
    ok(rc == 0 && fabs(loss - log(4.0)) < 1e-12, "uniform logits: loss log 4 = %.12f", loss);
    const float hand[12] = {0.125f, -0.375f, 0.125f, 0.125f, 0, 0, 0, 0, 0.125f, 0.125f, 0.125f, -0.375f};
    ok(memcmp(d0, hand, sizeof hand) == 0, "uniform logits: d = (1/4 - [c = y]) / 2, the ignored row 0");

    /* the golden case: float32 central differences of the plugin's loss */
    float dl[N * V], z[N * V];
    memcpy(z, g->logits, sizeof z);
    L->forward(self, N, V, z, g->labels, &loss, dl);
    check(dl, g->dlogits, N * V, TOL, "golden logits: d logits against autograd");
    float fd[N * V];
    for (int i = 0; i < N * V; i++) {
        const float keep = z[i];
        double lp, lm;
        z[i] = keep + 1e-2f;
        const double up = z[i];
        L->forward(self, N, V, z, g->labels, &lp, NULL);
        z[i] = keep - 1e-2f;
        const double down = z[i];
        L->forward(self, N, V, z, g->labels, &lm, NULL);
        z[i] = keep;
        fd[i] = (float)((lp - lm) / (up - down));
    }
    *fd_worst = check(dl, fd, N * V, TOL_FD32, "every d logit against central differences (step 1e-2)");
    int flat = 1;
    for (int k = 0; k < V; k++)
        flat &= dl[3 * V + k] == 0 && dl[8 * V + k] == 0 && fd[3 * V + k] == 0 && fd[8 * V + k] == 0;
    ok(flat, "ignored rows: zero gradient, and moving their logits leaves the loss alone");

    /* empty and all-ignored batches; no gradient wanted */
    loss = -1;
    ok(L->forward(self, 0, V, NULL, NULL, &loss, NULL) == 0 && loss == 0, "no rows: loss 0");
    const int32_t none[2] = {-1, -1};
    float d2[2 * 3];
    memset(d2, 0x7f, sizeof d2);
    ok(L->forward(self, 2, 3, pt_z, none, &loss, d2) == 0 && loss == 0 && d2[0] == 0 && d2[5] == 0,
       "every row ignored: loss 0, gradient 0");
    ok(L->forward(self, 4, 3, pt_z, pt_y, &loss, NULL) == 0 && fabs(loss - pt_loss) < 1e-6,
       "dlogits = NULL (evaluation): the same loss");

    /* errors */
    const int32_t bad[2] = {0, 3};
    ok(L->forward(self, 2, 3, pt_z, bad, &loss, NULL) == -1, "a label outside the vocabulary: refused");
    like(err_get(), "labels[1] = 3 is outside the vocabulary [0, 3)", "... naming the row");
    const float inf_z[3] = {INFINITY, 0, 0};
    const int32_t y1[1] = {1};
    ok(L->forward(self, 1, 3, inf_z, y1, &loss, NULL) == -1, "Inf logits: refused");
    like(err_get(), "NaN or Inf", "... saying so");

    /* predict: argmax and its softmax probability */
    int32_t label = -1;
    float prob = 0;
    L->predict(self, 3, pt_z + 3, &label, &prob);
    double p1 = 1 / (exp(0.1 - 2.0) + 1 + exp(-1.0 - 2.0));
    ok(label == 1 && fabsf(prob - (float)p1) < 1e-6f, "predict: piece 1, probability %.6f", prob);
}

/* A 30,522-piece vocabulary: the threaded plugin against xent_row, and the
 * same bits for 1 and 2 threads. */
static void test_loss_vocab(rig *r)
{
    enum { NB = 67, K = 30522 };
    float *z = malloc((size_t)NB * K * sizeof *z), *d1 = malloc((size_t)NB * K * sizeof *d1);
    float *d2 = malloc((size_t)NB * K * sizeof *d2), *dr = malloc((size_t)NB * K * sizeof *dr);
    double *dref = malloc((size_t)NB * K * sizeof *dref);
    int32_t y[NB];
    uint64_t s = 12345;
    for (int64_t i = 0; i < (int64_t)NB * K; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        z[i] = (float)((double)(s >> 11) / 9007199254740992.0 * 16.0 - 8.0);
    }
    for (int i = 0; i < NB; i++)
        y[i] = i % 7 == 3 ? -1 : (int32_t)((i * 7919) % K);
    double want = xent_ref(NB, K, z, y, dref);
    for (int64_t i = 0; i < (int64_t)NB * K; i++)
        dr[i] = (float)dref[i];
    const int threads = omp_get_max_threads();
    double l1 = 0, l2 = 0;
    omp_set_num_threads(1);
    int rc = r->lops->forward(r->loss->self, NB, K, z, y, &l1, d1);
    omp_set_num_threads(2);
    rc |= r->lops->forward(r->loss->self, NB, K, z, y, &l2, d2);
    omp_set_num_threads(threads);
    ok(rc == 0 && fabs(l2 - want) <= 1e-6 * want, "V = 30522, %d rows: loss %.10f, xent_row's %.10f", NB, l2,
       want);
    check(d2, dr, (int64_t)NB * K, 1e-5, "V = 30522: gradient against xent_row's");
    ok(l1 == l2 && memcmp(d1, d2, (size_t)NB * K * sizeof *d1) == 0, "1 and 2 threads: the same bits");
    free(z);
    free(d1);
    free(d2);
    free(dr);
    free(dref);
}

/* ---- (c) the tie in a real pipeline ---------------------------------------------------------- */

static char dir[] = "/tmp/runner-mlm-XXXXXX";

/* The training loss of one batch with the masks and dropout of seed 11. */
static double batch_loss(model *m, const int *rows, int n)
{
    double total = NAN;
    gsl_rng_set(m->pl->rng, 11);
    params_zero_grad(&m->pl->P);
    if (model_train_batch(m, 0, rows, n, 1, &total) != 0)
        diag("model_train_batch: %s", err_get());
    return total;
}

static void test_pipeline(void)
{
    static const char *const corpus[] = {
        "the cat sat on the mat .", "a big dog ran fast to the old red mat !",
        "one two three four five six seven eight", "the green cat is small and the blue dog is big",
        "it was a good day for the new cat", "the slow dog sat with the fast cat .",
        "is this the bad red dog ?", "five big cats and six small dogs ran",
    };
    if (!mkdtemp(dir)) {
        skip(5, "no temporary folder");
        return;
    }
    char *data = str_printf("%s/lines.txt", dir), *text = NULL;
    FILE *f = fopen(data, "w");
    for (size_t i = 0; f && i < sizeof corpus / sizeof *corpus; i++)
        fprintf(f, "%s\n", corpus[i]);
    if (f)
        fclose(f);
    text = str_printf("name = \"mlm\";\nrun = \"train\";\nmodel = \"tests/goldens/tiny-bert\";\n"
                      "tokenizer = { plugin = \"wordpiece\"; max_len = 16; };\n"
                      "backbone = { plugin = \"bert\"; };\n"
                      "tasks = ( { name = \"mlm\"; dataset = { plugin = \"lines\"; train = \"%s\"; dev = \"%s\"; };\n"
                      "            head = { plugin = \"mlm\"; }; loss = { plugin = \"masked_lm\"; }; metrics = []; } );\n"
                      "train = { batch = 8; };\n",
                      data, data);
    pipeline pl;
    model m;
    memset(&m, 0, sizeof m);
    int built = pipeline_from_text(&pl, text) == 0 && (pl.quiet = 1) && model_open(&pl, &m, 1, NULL) == 0 &&
                encoder_load(&pl, &m.enc, 1) == 0;
    ok(built, "tiny BERT + lines + mlm head + masked_lm loss: a model%s%s", built ? "" : ": ",
       built ? "" : err_get());
    if (!built) {
        skip(4, "no model");
        goto done;
    }
    ok(m.t[0].mlm && m.t[0].n_out == 64, "an MLM task over the 64-piece vocabulary");
    int rows[8];
    for (int i = 0; i < 8; i++)
        rows[i] = i;
    double L = batch_loss(&m, rows, 8);
    param *E = find_param(&pl, EMB);
    float *grad = malloc((size_t)E->numel * sizeof *grad);
    memcpy(grad, pl.P.grad + E->offset, (size_t)E->numel * sizeof *grad);
    ok(isfinite(L) && L > 0 && m.t[0].batch_count > 0, "one batch: loss %.4f over %d masked pieces", L,
       m.t[0].batch_count);
    /* float32 central differences of the whole training loss, Richardson-
     * extrapolated (steps 2e-2, 1e-2): the largest elements of dE, the sum
     * of the input side (embedding lookup) and the tied decoder */
    float *v = pl.P.data + E->offset;
    double worst = 0;
    for (int k = 0; k < 6; k++) {
        int64_t at = 0;
        for (int64_t j = 1; j < E->numel; j++)
            if (fabsf(grad[j]) > fabsf(grad[at]))
                at = j;
        const float keep = v[at], want = grad[at];
        double dd[2];
        for (int q = 0; q < 2; q++) {
            const float h = q ? 1e-2f : 2e-2f;
            v[at] = keep + h;
            double lp = batch_loss(&m, rows, 8);
            v[at] = keep - h;
            double lm = batch_loss(&m, rows, 8);
            dd[q] = (lp - lm) / (2.0 * h);
        }
        v[at] = keep;
        double fd = (4 * dd[1] - dd[0]) / 3;
        worst = fmax(worst, fabs(fd - want) / fmax(fabs(want), FLOOR));
        grad[at] = 0; /* the next largest */
    }
    ok(worst <= TOL_FD32, "word-embedding gradient (input + tied decoder) against differences of the "
       "training loss, 6 largest elements: worst %.1e", worst);
    free(grad);
    char **meta = NULL;
    int nmeta = 0;
    ok(model_meta(&m, &meta, &nmeta) == 0 && nmeta == 1 && strcmp(meta[0], "labels.mlm") == 0 && !meta[1][0],
       "checkpoint metadata: no label list for an MLM task (vocab.txt holds the vocabulary)");
    model_meta_free(meta, nmeta);
done:
    model_close(&m);
    pipeline_close(&pl);
    free(text);
    remove(data);
    free(data);
    remove(dir);
}

int main(void)
{
    golden g;
    int have = golden_load(&g) == 0;
    ok(have, "golden tensors of %s", GOLDENS);
    if (!have) {
        golden_free(&g);
        return done_testing(79);
    }
    rig r;
    int rc = rig_open(&r, "{ plugin = \"mlm\"; }", EMB, V);
    ok(rc == 0, "mlm head and masked_lm loss on a store with %s [%d, %d]%s%s", EMB, V, C, rc ? ": " : "",
       rc ? err_get() : "");
    if (rc == 0) {
        double golden_worst = 0, fd_worst = 0, loss_fd = 0;
        test_registration(&r);
        test_golden(&r, &g, &golden_worst);
        test_fd64(&r, &g, &fd_worst);
        test_loss(&r, &g, &loss_fd);
        test_loss_vocab(&r);
        double row_loss, row_grad;
        test_row_f32(&row_loss, &row_grad);
        diag("worst relative errors: against autograd %.1e, float64 differences %.1e, "
             "loss float32 differences %.1e", golden_worst, fd_worst, loss_fd);
    }
    pipeline_close(&r.pl);
    test_untied(&g);
    test_pipeline();
    golden_free(&g);
    return done_testing(79);
}
