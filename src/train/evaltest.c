/* evaltest.c — after training, the best checkpoint evaluated once on each
 * task's test source (dataset `test`), reported apart from dev: a log
 * line, a line on stdout, a `test` section in metrics.json, and the
 * predictions in predictions_<task>_test.csv (or .jsonl: the dev file's
 * format, for paired comparisons). Test rows never take part in
 * selection or early stopping. */
#include <stdlib.h>
#include <string.h>

#include "textout.h"
#include "trainer.h"
#include "world.h"
#include "runner/kit/util.h"

/* The best checkpoint's parameters into the store; 0 when there is none
 * (save_best = false, or nothing was evaluated): the final ones stay. */
static int load_best(trainer *tr, int *from_best)
{
    *from_best = 0;
    if (!cfg_bool(tr->pl, "train.save_best", 1) || tr->evals == 0)
        return 0;
    char *best = run_path(tr->pl, "best");
    char *dir = best ? checkpoint_resolve(best) : NULL;
    int rc = dir ? checkpoint_load_params(dir, &tr->pl->P, 0, NULL) : 0;
    *from_best = dir != NULL && rc == 0;
    free(best);
    free(dir);
    return rc;
}

static void test_line(const trainer *tr, int k, const char *from)
{
    const eval_values *v = &tr->test_v[k];
    char line[1024];
    size_t used = 0;
    for (int j = 0; j < v->n && j < 4 && used < sizeof line; j++)
        used += (size_t)snprintf(line + used, sizeof line - used, " %s %.4f", v->name[j], v->value[j]);
    pipeline_log(tr->pl, RUNNER_LOG_INFO, "test %s (%s, %d examples):%s", tr->m.t[k].name, from,
                 tr->m.t[k].test.ds.n, line);
}

void tr_print_test(const trainer *tr)
{
    for (int k = 0; tr->test_v && k < tr->m.ntasks; k++) {
        if (!tr->m.t[k].has_test)
            continue;
        printf("  %-12s test (step %lld, %d examples):", tr->m.t[k].name, (long long)tr->test_from,
               tr->m.t[k].test.ds.n);
        for (int j = 0; j < tr->test_v[k].n && j < 4; j++)
            printf(" %s %.4f", tr->test_v[k].name[j], tr->test_v[k].value[j]);
        printf("\n");
    }
}

/* Task k on its test source: values, and (rank 0) the predictions file. */
static int test_task(trainer *tr, int k)
{
    task *t = &tr->m.t[k];
    const dataset *d = &t->test.ds;
    int64_t npred = t->mlm ? 0 : t->per_token ? d->tag_off[d->n] : d->n;
    int32_t *pred = malloc(((size_t)npred + 1) * sizeof *pred);
    float *prob = malloc(((size_t)npred + 1) * sizeof *prob);
    char *path = NULL;
    int rc = -1;
    if (!pred || !prob) {
        err_set("out of memory");
        goto done;
    }
    if (model_evaluate_test(&tr->m, k, &tr->test_v[k], pred, prob) != 0) {
        err_set("task %s, test %s: %s", t->name, d->source, err_get());
        goto done;
    }
    rc = 0;
    if (t->mlm || !world_is_root()) /* rank 0 writes; MLM predicts no labels */
        goto done;
    struct pred_out o = {t, pred, prob, output_jsonl(tr->pl), d};
    path = str_printf("%s/predictions_%s_test.%s", tr->pl->out_dir, t->name, o.jsonl ? "jsonl" : "csv");
    rc = !path ? err_set("out of memory") : file_write_atomic_with(path, tr_write_predictions, &o);
done:
    free(path);
    free(pred);
    free(prob);
    return rc;
}

int tr_evaluate_test(trainer *tr)
{
    int any = 0, from_best;
    for (int k = 0; k < tr->m.ntasks; k++)
        any |= tr->m.t[k].has_test;
    if (!any)
        return 0;
    if (!(tr->test_v = calloc((size_t)tr->m.ntasks, sizeof *tr->test_v)))
        return err_set("out of memory");
    if (load_best(tr, &from_best) != 0)
        return -1;
    char from[64];
    if (from_best)
        snprintf(from, sizeof from, "best checkpoint, step %lld", (long long)tr->best_step);
    else
        snprintf(from, sizeof from, "final parameters, step %lld", (long long)tr->step);
    tr->test_from = from_best ? tr->best_step : tr->step;
    for (int k = 0; k < tr->m.ntasks; k++) {
        if (!tr->m.t[k].has_test)
            continue;
        if (test_task(tr, k) != 0)
            return -1;
        test_line(tr, k, from);
    }
    return 0;
}
