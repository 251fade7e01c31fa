/* bce.c — binary cross-entropy with one logit for a two-label task (label 1
 * is the positive class), PyTorch's BCEWithLogitsLoss with pos_weight; the
 * mean is over the rows whose label is not -1. See docs/metrics.md. */
#include <math.h>

#include "runner/kit/classify.h"
#include "runner/runner.h"

typedef struct bce {
    const runner_host *h;
    double pos_weight;
} bce;

/* the key table's default and the value when the section lacks the key */
#define STR_(x) #x
#define STR(x) STR_(x)
#define DEFAULT_POS_WEIGHT 1.0

static const runner_key keys[] = {
    {"pos_weight", RUNNER_T_FLOAT, STR(DEFAULT_POS_WEIGHT),
     "weight of the positive class (label 1) in the loss, >= 0 (PyTorch pos_weight)", "[0, inf)"},
    {0},
};

static void bce_destroy(void *self)
{
    bce *b = self;
    if (b)
        b->h->free(b);
}

static int bce_create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    bce *b = h->calloc(1, sizeof *b);
    if (!b)
        return h->error(h, "out of memory");
    b->h = h;
    b->pos_weight = DEFAULT_POS_WEIGHT;
    if (h->cfg_float(cfg, "pos_weight", &b->pos_weight) < 0)
        goto fail;
    if (!(b->pos_weight >= 0) || isinf(b->pos_weight)) {
        h->error(h, "pos_weight = %g: must be finite and >= 0", b->pos_weight);
        goto fail;
    }
    *self = b;
    return 0;
fail:
    bce_destroy(b);
    return -1;
}

static int bce_outputs(void *self, int n_labels, int *n_out)
{
    bce *b = self;
    if (n_labels != 2)
        return b->h->error(b->h, "bce is for 2 labels (one logit), the task has %d; use "
                                 "cross_entropy for more", n_labels);
    *n_out = 1;
    return 0;
}

static int bce_forward(void *self, int N, int K, const float *logits, const int32_t *labels,
                       double *loss, float *dlogits)
{
    bce *b = self;
    const runner_host *h = b->h;
    if (K != 1)
        return h->error(h, "logits have %d columns, expected 1", K);
    int64_t counted = 0;
    for (int i = 0; i < N; i++) {
        if (labels[i] > 1)
            return h->error(h, "labels[%d] = %d: expected 0, 1 (or -1 to ignore)", i, labels[i]);
        counted += labels[i] >= 0;
    }
    double total = 0;
    for (int i = 0; i < N; i++) {
        double dz = 0;
        if (labels[i] >= 0)
            total += bce_row(logits[i], labels[i], b->pos_weight, dlogits ? &dz : NULL);
        if (dlogits)
            dlogits[i] = (float)(counted ? dz / (double)counted : 0);
    }
    *loss = counted ? total / (double)counted : 0;
    if (!isfinite(*loss))
        return h->error(h, "loss is %g: the logits hold NaN or Inf", *loss);
    return 0;
}

static void bce_predict(void *self, int K, const float *logits, int32_t *label, float *prob)
{
    double p = sigmoid(logits[0]);
    *label = p >= 0.5;
    *prob = (float)(*label ? p : 1 - p);
}

static const runner_loss_ops ops = {
    .outputs = bce_outputs,
    .forward = bce_forward,
    .predict = bce_predict,
};

RUNNER_DEFINE_PLUGIN(loss, bce,
    "binary cross-entropy with one logit for 2 labels (pos_weight); predicts 1 when "
    "sigmoid >= 0.5",
    keys, bce_create, bce_destroy, &ops)
