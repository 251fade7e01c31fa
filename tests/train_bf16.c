/* train_bf16.c — mixed-precision training (train.precision = "bf16") on
 * the tiny BERT of tests/goldens (2 layers of 32): a few AdamW steps of
 * the backbone with bfloat16 matmuls against the same steps in float32.
 * The losses stay within a relative 1e-2 of each other, the weights
 * change, the bf16 copy of the weights is the rounding of the float32
 * master weights after every step, and on a CPU with bf16 matmuls the
 * bf16 run really differs from the f32 one (the bf16 path ran).
 *
 * tests/train_bf16_isa.c builds this file with oneDNN capped at AVX2 (a
 * CPU without AVX-512, see tests/compute_isa.c): there bf16 falls back to
 * float32, so the two runs are identical. */
#include <dnnl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "optim.h"
#include "plugin_stage.h"
#include "runner/kit/compute.h"
#include "tap.h"

enum { B = 4, T = 12, C = 32, L = 2, STEPS = 6, V = 64 };
#define REL_TOL 1e-2

typedef struct {
    pipeline pl;
    stage *st;
    const runner_backbone_ops *ops;
} bb;

static int bb_open(bb *b)
{
    memset(b, 0, sizeof *b);
    const char *text = "run = \"tokenize\";\nmodel = \"tests/goldens/tiny-bert\";\n"
                       "backbone = { plugin = \"bert\"; hidden_dropout = 0.0; attention_dropout = 0.0; };\n";
    if (pipeline_from_text(&b->pl, text) != 0)
        return -1;
    b->st = pipeline_stage(&b->pl, "backbone", "backbone.", RUNNER_KIND_BACKBONE,
                           config_lookup(&b->pl.cfg, "backbone"));
    if (!b->st)
        return -1;
    b->ops = b->st->desc->ops;
    return pipeline_alloc_params(&b->pl, 1) != 0 || b->ops->load(b->st->self) != 0 ? -1 : 0;
}

/* the batch: 4 sentences of 12, 9, 5 and 12 tokens, fixed ids */
typedef struct {
    int32_t ids[B * T], types[B * T];
    uint8_t mask[B * T];
    int len[B];
    float target[B * T * C];
    runner_batch batch;
} data;

static void data_make(data *d)
{
    const int len[B] = {12, 9, 5, 12};
    for (int b = 0; b < B; b++) {
        d->len[b] = len[b];
        for (int t = 0; t < T; t++) {
            int k = b * T + t;
            d->ids[k] = t < len[b] ? 1 + (k * 37 + 11) % (V - 1) : 0;
            d->types[k] = 0;
            d->mask[k] = t < len[b];
        }
    }
    for (int i = 0; i < B * T * C; i++)
        d->target[i] = 0.8f * sinf(0.37f * (float)i);
    d->batch = (runner_batch){B, T, d->ids, d->types, d->mask, NULL, d->len};
}

/* One step: loss = 1/2 sum over real tokens of |top hidden - target|^2,
 * backward, AdamW. The loss before the step, or NAN on failure. */
static double step(bb *b, const data *d, adamw *o)
{
    const runner_states *s;
    if (b->ops->forward(b->st->self, &d->batch, 1, &s) != 0)
        return NAN;
    double loss = 0;
    float *h = s->hidden[L], *dh = s->dhidden[L];
    for (int i = 0; i < B * T * C; i++) {
        float diff = d->mask[i / C] ? h[i] - d->target[i] : 0;
        loss += 0.5 * (double)diff * diff;
        dh[i] = diff;
    }
    if (b->ops->backward(b->st->self, &d->batch) != 0 || adamw_step(o, &b->pl.P, 1e-3, 1.0) != 0)
        return NAN;
    return loss;
}

/* STEPS steps with train.precision = precision; the losses into out */
static int train(const char *precision, const data *d, double *out, int *bf, bb *b)
{
    adamw o = {1e-3, 0.9, 0.999, 1e-8, 0.01, 0};
    if (bb_open(b) != 0 || (*bf = optim_precision(&b->pl.P, precision)) < 0) {
        diag("%s", err_get());
        return -1;
    }
    for (int i = 0; i < STEPS; i++)
        if (isnan(out[i] = step(b, d, &o))) {
            diag("step %d: %s", i, err_get());
            return -1;
        }
    return 0;
}

static void bb_close(bb *b) { pipeline_close(&b->pl); }

int main(void)
{
#ifdef CAP_AVX2
    ok(dnnl_set_max_cpu_isa(dnnl_cpu_isa_avx2) == dnnl_success, "oneDNN capped at AVX2");
#endif
    diag("%s; bf16 matmuls: %s", compute_describe(), compute_bf16_available() ? "yes" : "no");
    data d;
    data_make(&d);
    double l32[STEPS], l16[STEPS];
    int bf32 = -1, bf16 = -1;
    bb b32, b16, fresh;
    int rc = train("f32", &d, l32, &bf32, &b32);
    ok(rc == 0 && bf32 == 0 && !b32.pl.P.bf16, "f32: %d steps, no bf16 copy", STEPS);
    rc |= train("bf16", &d, l16, &bf16, &b16);
    ok(rc == 0 && bf16 == compute_bf16_available() && (bf16 == 1) == (b16.pl.P.bf16 != NULL),
       "bf16: %d steps, %s", STEPS, bf16 == 1 ? "with the bf16 copy of the weights" : "in f32 (fallback)");
    double worst = 0;
    int differ = 0;
    for (int i = 0; rc == 0 && i < STEPS; i++) {
        diag("step %d: loss f32 %.6f, bf16 %.6f", i, l32[i], l16[i]);
        worst = fmax(worst, fabs(l16[i] - l32[i]) / fabs(l32[i]));
        differ |= l16[i] != l32[i];
    }
    ok(rc == 0 && worst < REL_TOL, "bf16 losses within a relative %g of f32's (worst %.2e)", REL_TOL, worst);
    ok(rc == 0 && l16[STEPS - 1] < l16[0] && l32[STEPS - 1] < l32[0], "both runs lower the loss");
    if (compute_bf16_available())
        ok(differ, "bf16 ran: its losses are not f32's");
    else
        ok(!differ, "without bf16 matmuls the bf16 run is the f32 run, bit for bit");
    /* the weights moved, and the bf16 copy is their rounding */
    const params *P = &b16.pl.P;
    int64_t moved = 0, stale = 0;
    if (rc == 0 && bb_open(&fresh) == 0) {
        for (int64_t i = 0; i < P->total; i++) {
            moved += P->data[i] != fresh.pl.P.data[i];
            stale += P->bf16 && P->bf16[i] != compute_bf16_round(P->data[i]);
        }
        bb_close(&fresh);
    }
    ok(moved > P->total / 2, "bf16 training changed %lld of %lld weights", (long long)moved, (long long)P->total);
    ok(rc == 0 && stale == 0, "the bf16 copy is the rounding of every master weight after the last step");
    bb_close(&b32);
    bb_close(&b16);
#ifdef CAP_AVX2
    return done_testing(8);
#else
    return done_testing(7);
#endif
}
