/* cross_entropy.c — softmax cross-entropy loss with PyTorch's class weights
 * and label smoothing, for sentence tasks (N = B rows) and token tasks alike
 * (a per-token head gives N = B*T rows; padding and non-first word pieces
 * carry label -1 and are ignored, so this IS token cross-entropy). The mean
 * is taken in double over the counted rows; see docs/metrics.md. */
#include <math.h>
#include <string.h>

#include "runner/kit/classify.h"
#include "runner/runner.h"

typedef struct cross_entropy {
    const runner_host *h;
    double *weight; /* (n_weight) class weights, NULL = all 1 */
    int n_weight;
    double weight_sum;
    double smoothing;
    double *z, *dz; /* (cap) one row in double */
    int cap;
} cross_entropy;

/* the key table's default and the value when the section lacks the key */
#define STR_(x) #x
#define STR(x) STR_(x)
#define DEFAULT_SMOOTHING 0.0

static const runner_key keys[] = {
    {"class_weights", RUNNER_T_FLOAT_LIST, NULL,
     "weight of each class (PyTorch `weight`: mean = sum w_y nll / sum w_y); default all 1", "[0, inf)"},
    {"label_smoothing", RUNNER_T_FLOAT, STR(DEFAULT_SMOOTHING),
     "share eps in [0, 1] of the target spread uniformly over the classes (PyTorch semantics)", "[0, 1)"},
    {0},
};

static void ce_destroy(void *self)
{
    cross_entropy *ce = self;
    if (!ce)
        return;
    const runner_host *h = ce->h;
    h->free(ce->weight);
    h->free(ce->z);
    h->free(ce->dz);
    h->free(ce);
}

static int ce_create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    cross_entropy *ce = h->calloc(1, sizeof *ce);
    if (!ce)
        return h->error(h, "out of memory");
    ce->h = h;
    ce->smoothing = DEFAULT_SMOOTHING;
    if (h->cfg_float(cfg, "label_smoothing", &ce->smoothing) < 0)
        goto fail;
    if (!(ce->smoothing >= 0 && ce->smoothing <= 1)) {
        h->error(h, "label_smoothing = %g is outside [0, 1]", ce->smoothing);
        goto fail;
    }
    int n = h->cfg_count(cfg, "class_weights");
    if (n == 0) {
        h->error(h, "class_weights is an empty list (leave it out for all 1)");
        goto fail;
    }
    if (n > 0) {
        ce->weight = h->alloc((size_t)n * sizeof *ce->weight);
        if (!ce->weight) {
            h->error(h, "out of memory");
            goto fail;
        }
        ce->n_weight = n;
        for (int i = 0; i < n; i++) {
            if (h->cfg_float_at(cfg, "class_weights", i, &ce->weight[i]) != 0)
                goto fail;
            if (!(ce->weight[i] >= 0) || isinf(ce->weight[i])) {
                h->error(h, "class_weights[%d] = %g: weights must be finite and >= 0", i,
                         ce->weight[i]);
                goto fail;
            }
            ce->weight_sum += ce->weight[i];
        }
        if (ce->weight_sum <= 0) {
            h->error(h, "class_weights are all 0: no row would count");
            goto fail;
        }
    }
    *self = ce;
    return 0;
fail:
    ce_destroy(ce);
    return -1;
}

static int check_classes(cross_entropy *ce, int K)
{
    if (K < 2)
        return ce->h->error(ce->h, "needs at least 2 classes, got %d", K);
    if (ce->weight && ce->n_weight != K)
        return ce->h->error(ce->h, "class_weights has %d entries for %d classes", ce->n_weight, K);
    return 0;
}

static int ce_outputs(void *self, int n_labels, int *n_out)
{
    if (check_classes(self, n_labels) != 0)
        return -1;
    *n_out = n_labels;
    return 0;
}

static int ce_forward(void *self, int N, int K, const float *logits, const int32_t *labels,
                      double *loss, float *dlogits)
{
    cross_entropy *ce = self;
    const runner_host *h = ce->h;
    if (check_classes(ce, K) != 0)
        return -1;
    if (K > ce->cap) {
        h->free(ce->z);
        h->free(ce->dz);
        ce->z = h->alloc((size_t)K * sizeof *ce->z);
        ce->dz = h->alloc((size_t)K * sizeof *ce->dz);
        ce->cap = ce->z && ce->dz ? K : 0;
        if (!ce->cap)
            return h->error(h, "out of memory");
    }
    /* the denominator first: dlogits are written already divided by it */
    double denom = 0;
    for (int i = 0; i < N; i++) {
        if (labels[i] >= K)
            return h->error(h, "labels[%d] = %d is outside [0, %d) (or -1 to ignore)", i,
                            labels[i], K);
        if (labels[i] >= 0)
            denom += ce->weight ? ce->weight[labels[i]] : 1.0;
    }
    double total = 0;
    double weight_sum = ce->weight ? ce->weight_sum : K;
    for (int i = 0; i < N; i++) {
        float *drow = dlogits ? dlogits + (int64_t)i * K : NULL;
        if (labels[i] < 0 || denom == 0) {
            if (drow)
                memset(drow, 0, (size_t)K * sizeof *drow);
            continue;
        }
        const float *row = logits + (int64_t)i * K;
        for (int c = 0; c < K; c++)
            ce->z[c] = row[c];
        total += xent_row(K, ce->z, labels[i], ce->weight, weight_sum, ce->smoothing,
                          drow ? ce->dz : NULL);
        for (int c = 0; drow && c < K; c++)
            drow[c] = (float)(ce->dz[c] / denom);
    }
    *loss = denom > 0 ? total / denom : 0;
    if (!isfinite(*loss))
        return h->error(h, "loss is %g: the logits hold NaN or Inf", *loss);
    return 0;
}

static void ce_predict(void *self, int K, const float *logits, int32_t *label, float *prob)
{
    *label = xent_argmax(K, logits, prob);
}

static const runner_loss_ops ops = {
    .outputs = ce_outputs,
    .forward = ce_forward,
    .predict = ce_predict,
};

RUNNER_DEFINE_PLUGIN(loss, cross_entropy,
    "softmax cross-entropy (class weights, label smoothing); on a per-token head it is "
    "token cross-entropy over B*T rows, label -1 ignored",
    keys, ce_create, ce_destroy, &ops)
