/* accuracy.c — share of counted rows (gold >= 0) whose prediction is the
 * gold label; a missing prediction (-1) counts as wrong. Emits "accuracy". */
#include "runner/kit/classify.h"
#include "runner/runner.h"

static int create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    return cm_create(h, sizeof(confusion_metric), self);
}

static int report(void *self, runner_emit_fn emit, void *ctx)
{
    const confusion_metric *m = self;
    emit(ctx, "accuracy", confusion_accuracy(&m->c));
    return 0;
}

static const runner_metric_ops ops = {
    .reset = cm_reset,
    .add = cm_add,
    .report = report,
};

RUNNER_DEFINE_PLUGIN(metric, accuracy,
    "share of correct predictions (rows with gold -1 are not counted)",
    NULL, create, cm_destroy, &ops)
