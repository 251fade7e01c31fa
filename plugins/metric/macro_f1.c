/* macro_f1.c — macro-averaged F1: the unweighted mean of the per-class F1
 * over the classes that occur in gold or predictions (sklearn's
 * average="macro", zero_division=0). Emits macro_f1 (headline), then
 * macro_precision and macro_recall (means of the per-class values). */
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
    confusion_macro(&m->c, &p, &r, &f1);
    emit(ctx, "macro_f1", f1);
    emit(ctx, "macro_precision", p);
    emit(ctx, "macro_recall", r);
    return 0;
}

static const runner_metric_ops ops = {
    .reset = cm_reset,
    .add = cm_add,
    .report = report,
};

RUNNER_DEFINE_PLUGIN(metric, macro_f1,
    "unweighted mean of per-class F1 over the classes seen in gold or predictions",
    NULL, create, cm_destroy, &ops)
