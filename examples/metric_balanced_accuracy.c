/* metric_balanced_accuracy.c — an example metric plugin built out of tree:
 * balanced accuracy, the mean of the per-class recalls over the classes
 * that occur in gold (sklearn's balanced_accuracy_score). It reuses the
 * kit's confusion matrix (runner/kit/classify.h), so the plugin is only its
 * report(). Build it as docs/plugins.md shows:
 *   cc -shared -fPIC -fvisibility=hidden $(pkg-config --cflags runner) \
 *      -o myplugins/metric_balanced_accuracy.so examples/metric_balanced_accuracy.c \
 *      $(pkg-config --libs runner)
 * and name it in a task: metrics = ["accuracy", "balanced_accuracy"]. */
#include "runner/kit/classify.h"
#include "runner/runner.h"

static int create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    return cm_create(h, sizeof(confusion_metric), self);
}

static int report(void *self, runner_emit_fn emit, void *ctx)
{
    const confusion_metric *m = self;
    double sum = 0;
    int seen = 0;
    for (int k = 0; k < m->c.K; k++) {
        class_scores s;
        confusion_class(&m->c, k, &s);
        if (s.support > 0) {
            sum += s.recall;
            seen++;
        }
    }
    emit(ctx, "balanced_accuracy", seen ? sum / seen : 0.0);
    return 0;
}

static const runner_metric_ops ops = {
    .reset = cm_reset,
    .add = cm_add,
    .report = report,
};

RUNNER_DEFINE_PLUGIN(metric, balanced_accuracy,
    "mean recall over the classes present in gold (an example plugin built out of tree)",
    NULL, create, cm_destroy, &ops)
