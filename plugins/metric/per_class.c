/* per_class.c — precision, recall and F1 of every class (sklearn's
 * classification_report, zero_division=0). Emits macro_f1 first (the
 * headline: one number that weighs every class alike), then for each class
 * in label order precision.<label>, recall.<label>, f1.<label> and
 * support.<label> (gold rows of the class). */
#include <stdio.h>

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
    for (int k = 0; k < m->c.K; k++) {
        class_scores s;
        char name[512];
        confusion_class(&m->c, k, &s);
        snprintf(name, sizeof name, "precision.%s", m->names[k]);
        emit(ctx, name, s.precision);
        snprintf(name, sizeof name, "recall.%s", m->names[k]);
        emit(ctx, name, s.recall);
        snprintf(name, sizeof name, "f1.%s", m->names[k]);
        emit(ctx, name, s.f1);
        snprintf(name, sizeof name, "support.%s", m->names[k]);
        emit(ctx, name, (double)s.support);
    }
    return 0;
}

static const runner_metric_ops ops = {
    .reset = cm_reset,
    .add = cm_add,
    .report = report,
};

RUNNER_DEFINE_PLUGIN(metric, per_class,
    "precision, recall, F1 and support of every class; headline macro F1",
    NULL, create, cm_destroy, &ops)
