/* confusion.c — the confusion matrix as counts. Emits accuracy first (the
 * headline), then confusion.<gold>.<pred> for every cell in gold-major
 * order (or only the non-zero cells with skip_zero = true, for tasks with
 * many labels), and missed.<gold> for gold rows without a prediction (-1)
 * where there are any. */
#include <stdio.h>

#include "runner/kit/classify.h"
#include "runner/runner.h"

typedef struct confusion_plugin {
    confusion_metric m; /* first member: the cm_* callbacks see it */
    int skip_zero;
} confusion_plugin;

static const runner_key keys[] = {
    {"skip_zero", RUNNER_T_BOOL, "false", "emit only the non-zero cells"},
    {0},
};

static int create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    confusion_plugin *cp;
    if (cm_create(h, sizeof *cp, (void **)&cp) != 0)
        return -1;
    cp->skip_zero = 0; /* the key's default, when the section lacks it */
    if (h->cfg_bool(cfg, "skip_zero", &cp->skip_zero) < 0) {
        cm_destroy(cp);
        return -1;
    }
    *self = cp;
    return 0;
}

static int report(void *self, runner_emit_fn emit, void *ctx)
{
    const confusion_plugin *cp = self;
    const confusion *c = &cp->m.c;
    char *const *names = cp->m.names;
    char name[1024];
    emit(ctx, "accuracy", confusion_accuracy(c));
    for (int g = 0; g < c->K; g++)
        for (int p = 0; p < c->K; p++) {
            int64_t count = c->cell[(int64_t)g * c->K + p];
            if (count == 0 && cp->skip_zero)
                continue;
            snprintf(name, sizeof name, "confusion.%s.%s", names[g], names[p]);
            emit(ctx, name, (double)count);
        }
    for (int g = 0; g < c->K; g++)
        if (c->missed[g]) {
            snprintf(name, sizeof name, "missed.%s", names[g]);
            emit(ctx, name, (double)c->missed[g]);
        }
    return 0;
}

static const runner_metric_ops ops = {
    .reset = cm_reset,
    .add = cm_add,
    .report = report,
};

RUNNER_DEFINE_PLUGIN(metric, confusion,
    "confusion matrix counts confusion.<gold>.<pred>; headline accuracy",
    keys, create, cm_destroy, &ops)
