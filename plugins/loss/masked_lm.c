/* masked_lm.c — the masked-language-model loss: softmax cross-entropy over
 * the vocabulary (V = 30,522 for BERT's), averaged over the rows it is
 * given. With the mlm head those rows are the masked pieces only (the core
 * gathers them), each labelled with its original piece id; a row labelled
 * -1 is ignored. The math of cross_entropy without class weights or label
 * smoothing, per row with xent_row_f32 (core/softmax_xent.h: vectorised
 * float32, one pass for the max, one for the sum of exponentials, one for
 * the gradient), rows spread over the OpenMP threads, the mean summed in row
 * order so the result does not depend on the thread count. docs/heads.md. */
#include <math.h>
#include <string.h>

#include "runner/kit/classify.h"
#include "runner/runner.h"
#include "runner/kit/softmax_xent.h"

typedef struct masked_lm {
    const runner_host *h;
    double *row_loss; /* (cap) */
    int cap;
} masked_lm;

static const runner_key keys[] = {{0}};

static void mlm_loss_destroy(void *self)
{
    masked_lm *l = self;
    if (!l)
        return;
    const runner_host *h = l->h;
    h->free(l->row_loss);
    h->free(l);
}

static int mlm_loss_create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    masked_lm *l = h->calloc(1, sizeof *l);
    if (!l)
        return h->error(h, "out of memory");
    l->h = h;
    *self = l;
    return 0;
}

static int check_classes(const masked_lm *l, int K)
{
    if (K < 2)
        return l->h->error(l->h, "needs a vocabulary of at least 2 pieces, got %d", K);
    return 0;
}

static int mlm_loss_outputs(void *self, int n_labels, int *n_out)
{
    if (check_classes(self, n_labels) != 0)
        return -1;
    *n_out = n_labels;
    return 0;
}

// logits (N,K), labels (N) -> mean loss over labelled rows, dlogits (N,K) written
static int mlm_loss_forward(void *self, int N, int K, const float *logits, const int32_t *labels,
                            double *loss, float *dlogits)
{
    masked_lm *l = self;
    const runner_host *h = l->h;
    *loss = 0;
    if (check_classes(l, K) != 0)
        return -1;
    int counted = 0;
    for (int i = 0; i < N; i++) {
        if (labels[i] >= K)
            return h->error(h, "labels[%d] = %d is outside the vocabulary [0, %d) (or -1 to ignore)", i,
                            labels[i], K);
        counted += labels[i] >= 0;
    }
    if (counted == 0) {
        if (dlogits && N > 0)
            memset(dlogits, 0, (size_t)N * (size_t)K * sizeof *dlogits);
        return 0;
    }
    if (N > l->cap) {
        h->free(l->row_loss);
        l->row_loss = h->alloc((size_t)N * sizeof *l->row_loss);
        l->cap = l->row_loss ? N : 0;
        if (!l->row_loss)
            return h->error(h, "out of memory for %d rows", N);
    }
    const float inv = (float)(1.0 / counted);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        const int64_t at = (int64_t)i * K;
        float *drow = dlogits ? dlogits + at : NULL;
        l->row_loss[i] = 0;
        if (labels[i] >= 0)
            l->row_loss[i] = xent_row_f32(K, logits + at, labels[i], inv, drow);
        else if (drow)
            memset(drow, 0, (size_t)K * sizeof *drow);
    }
    double total = 0;
    for (int i = 0; i < N; i++)
        total += l->row_loss[i];
    *loss = total / counted;
    if (!isfinite(*loss))
        return h->error(h, "loss is %g: the logits hold NaN or Inf", *loss);
    return 0;
}

static void mlm_loss_predict(void *self, int K, const float *logits, int32_t *label, float *prob)
{
    *label = xent_argmax(K, logits, prob);
}

static const runner_loss_ops ops = {
    .outputs = mlm_loss_outputs,
    .forward = mlm_loss_forward,
    .predict = mlm_loss_predict,
};

RUNNER_DEFINE_PLUGIN(loss, masked_lm,
    "masked-LM cross-entropy over the vocabulary at the masked pieces (mean over them; "
    "label -1 ignored); predicts the most likely piece",
    keys, mlm_loss_create, mlm_loss_destroy, &ops)
