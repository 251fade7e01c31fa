/* micro_f1.c — micro-averaged F1 from the global counts (sum of true
 * positives over all classes). For a single-label multi-class task every
 * counted row is one prediction and one gold label, so micro precision =
 * micro recall = micro F1 = accuracy; they part only when predictions are
 * missing (-1). Emits micro_f1 (headline), micro_precision, micro_recall. */
#include "runner/kit/classify.h"
#include "runner/runner.h"

static int create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    return cm_create(h, sizeof(confusion_metric), self);
}

static int report(void *self, runner_emit_fn emit, void *ctx)
{
    const confusion_metric *m = self;
    double p, r, f1;
    confusion_micro(&m->c, &p, &r, &f1);
    emit(ctx, "micro_f1", f1);
    emit(ctx, "micro_precision", p);
    emit(ctx, "micro_recall", r);
    return 0;
}

static const runner_metric_ops ops = {
    .reset = cm_reset,
    .add = cm_add,
    .report = report,
};

RUNNER_DEFINE_PLUGIN(metric, micro_f1,
    "F1 of the global counts; equals accuracy for single-label multi-class tasks",
    NULL, create, cm_destroy, &ops)
