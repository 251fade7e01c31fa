/* select.c — evaluation on the dev sets and the selection value that
 * picks the best checkpoint and drives early stopping. */
#include <fnmatch.h>
#include <gsl/gsl_randist.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trainer.h"
#include "world.h"
#include "runner/kit/util.h"
#include "textout.h"

/* ---- evaluation ---------------------------------------------------------------- */

static double tr_headline(const eval_values *v) { return v->n ? v->value[0] : 0.0; }

/* Does the selection minimise (a loss) rather than maximise (a score)? */
int tr_select_minimises(const trainer *tr)
{
    if (!tr->select)
        return 0;
    size_t n = strlen(tr->select);
    return n >= 4 && strcmp(tr->select + n - 4, "loss") == 0;
}

/* The selection value: task.metric named by train.select, else the mean
 * of every task's headline metric. A train.select naming no value of the
 * evaluation is an error (never a silent fallback). */
int tr_selection(trainer *tr, eval_values *vals, double *value)
{
    if (tr->select) {
        for (int k = 0; k < tr->m.ntasks; k++) {
            size_t ln = strlen(tr->m.t[k].name);
            if (strncmp(tr->select, tr->m.t[k].name, ln) != 0 || tr->select[ln] != '.')
                continue;
            for (int j = 0; j < vals[k].n; j++)
                if (strcmp(vals[k].name[j], tr->select + ln + 1) == 0) {
                    *value = vals[k].value[j];
                    return 0;
                }
        }
        return err_set("%s: train.select = \"%s\": the evaluation reported no such value", tr->pl->file,
                       tr->select);
    }
    double s = 0;
    for (int k = 0; k < tr->m.ntasks; k++)
        s += tr_headline(&vals[k]);
    *value = s / tr->m.ntasks;
    return 0;
}

/* Task k on its dev set: values, predictions, a log row and a log line. */
static int eval_task(trainer *tr, int k, double lr, eval_values *vals, int32_t **pred, float **prob)
{
    task *t = &tr->m.t[k];
    int64_t n = t->mlm ? 0 : t->per_token ? t->dev.ds.tag_off[t->dev.ds.n] : t->dev.ds.n;
    pred[k] = malloc(((size_t)n + 1) * sizeof **pred);
    prob[k] = malloc(((size_t)n + 1) * sizeof **prob);
    if (!pred[k] || !prob[k])
        return err_set("out of memory");
    double t0 = time_now();
    if (model_evaluate(&tr->m, k, &vals[k], pred[k], prob[k]) != 0)
        return -1;
    double dt = time_now() - t0;
    log_row *r = tr_add_row(tr);
    if (!r)
        return err_set("out of memory");
    r->step = tr->step;
    r->epoch = (int)(tr->step / tr->steps_per_epoch);
    r->task = k;
    r->dev = 1;
    r->loss = vals[k].value[vals[k].n - 1];
    r->lr = lr;
    r->sps = dt > 0 ? (double)t->dev.ds.n / dt : 0;
    tr_copy_values(&r->v, &vals[k]);
    tr_copy_values(&tr->final_v[k], &vals[k]);
    char line[1024];
    size_t used = 0;
    for (int j = 0; j < vals[k].n && j < 4 && used < sizeof line; j++)
        used += (size_t)snprintf(line + used, sizeof line - used, " %s %.4f", vals[k].name[j], vals[k].value[j]);
    tr_clear_progress(tr);
    pipeline_log(tr->pl, RUNNER_LOG_INFO, "step %lld dev %s:%s", (long long)tr->step, t->name, line);
    return 0;
}

/* A new best evaluation: its values, predictions and confusion matrices
 * (rank 0 writes), and the best/ checkpoint. */
static int keep_best(trainer *tr, eval_values *vals, int32_t **pred, float **prob)
{
    for (int k = 0; k < tr->m.ntasks; k++) {
        tr_copy_values(&tr->best_v[k], &vals[k]);
        if (tr->m.t[k].mlm || !world_is_root()) /* rank 0 writes */
            continue;
        struct pred_out o = {&tr->m.t[k], pred[k], prob[k], output_jsonl(tr->pl), NULL};
        size_t nl = (size_t)tr->m.t[k].n_labels;
        if (!tr->best_cm[k] && !(tr->best_cm[k] = malloc(nl * nl * sizeof **tr->best_cm)))
            return err_set("out of memory");
        tr_confusion_counts(&o, tr->best_cm[k]);
        char *pp = str_printf("%s/predictions_%s.%s", tr->pl->out_dir, tr->m.t[k].name, o.jsonl ? "jsonl" : "csv");
        char *cp = str_printf("%s/confusion_%s.csv", tr->pl->out_dir, tr->m.t[k].name);
        int bad = !pp || !cp || file_write_atomic_with(pp, tr_write_predictions, &o) != 0 ||
                  file_write_atomic_with(cp, tr_write_confusion, &o) != 0;
        free(pp);
        free(cp);
        if (bad)
            return -1;
    }
    return cfg_bool(tr->pl, "train.save_best", 1) ? tr_save_checkpoint(tr, "best", 0) : 0;
}

int tr_evaluate(trainer *tr, double lr)
{
    int K = tr->m.ntasks, rc = -1;
    eval_values *vals = calloc((size_t)K, sizeof *vals);
    int32_t **pred = calloc((size_t)K, sizeof *pred);
    float **prob = calloc((size_t)K, sizeof *prob);
    if (!vals || !pred || !prob) {
        err_set("out of memory");
        goto done;
    }
    for (int k = 0; k < K; k++)
        if (eval_task(tr, k, lr, vals, pred, prob) != 0)
            goto done;
    tr->evals++;
    double sel;
    if (tr_selection(tr, vals, &sel) != 0)
        goto done;
    int better = tr_select_minimises(tr) ? sel < tr->best : sel > tr->best;
    if (tr->evals == 1 || better) {
        tr->best = sel;
        tr->best_step = tr->step;
        tr->bad_evals = 0;
        if (keep_best(tr, vals, pred, prob) != 0)
            goto done;
    } else {
        tr->bad_evals++;
    }
    if (cfg_bool(tr->pl, "train.save_last", 1) && tr->pl->P.grad && tr_save_checkpoint(tr, "last", 1) != 0)
        goto done;
    char *csv = run_path(tr->pl, "metrics.csv");
    rc = !csv                ? err_set("out of memory")
         : world_is_root() ? file_write_atomic_with(csv, tr_write_metrics_csv, tr)
                           : 0;
    free(csv);
done:
    for (int k = 0; vals && pred && prob && k < K; k++) {
        eval_values_free(&vals[k]);
        free(pred[k]);
        free(prob[k]);
    }
    free(vals);
    free(pred);
    free(prob);
    return rc;
}
