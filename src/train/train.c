/* drive_train.c — `run = "train"` (Task 4): the multi-task training loop.
 * Each step the sampler picks the task of the next batch (or a joint batch
 * of all tasks); the batch runs forward through the shared encoder and the
 * task's head and loss; the combined loss runs backward (only the heads
 * that had labels in the batch get gradient; the backbone only when it
 * trains, and only down to its lowest trainable layer); every `accumulate`
 * batches the gradients are clipped and AdamW steps with the scheduled
 * learning rate times each tensor's scale. The freeze policy may change
 * what trains before any step. Dev sets are evaluated every `eval_every`
 * steps or each epoch; the best evaluation's checkpoint is kept in best/,
 * the latest (with the optimizer and data state, for --resume) in last/.
 * Writes metrics.csv, metrics.json, predictions_<task>.tsv,
 * confusion_<task>.csv and PNG plots. */
#include <fnmatch.h>
#include <gsl/gsl_randist.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "drivers.h"
#include "model.h"
#include "optim.h"
#include "plot.h"
#include "run.h"
#include "runner/kit/util.h"

typedef struct log_row {
    int64_t step;
    int epoch, task, dev;
    double loss, lr, sps;
    eval_values v; /* dev rows */
} log_row;

typedef struct trainer {
    pipeline *pl;
    model m;
    stage *sampler, *freeze;
    adamw opt;
    sched_kind sched;
    int B, accumulate, epochs, eval_every, log_every, patience;
    int64_t steps_per_epoch, total, warmup, step, stop_after;
    int64_t step0; /* the step this process started at (after --resume) */
    double lr, clip;
    /* selection */
    const char *select;
    double best;
    int64_t best_step;
    int bad_evals, evals, stopped_early;
    eval_values *final_v, *best_v; /* per task */
    /* logging */
    log_row *rows;
    int nrows, caprows;
    double *loss_sum;
    int *loss_n;
    double t_start, t_log, train_seconds;
    int64_t sentences, sentences_log;
    int tty;
} trainer;

/* ---- data positions --------------------------------------------------------- */

static void shuffle_task(trainer *tr, task *t)
{
    gsl_ran_shuffle(tr->pl->rng, t->order, (size_t)t->train.ds.n, sizeof *t->order);
    t->cursor = 0;
}

/* Next n rows of task t, wrapping (and reshuffling) at the end. */
static int next_rows(trainer *tr, task *t, int *rows)
{
    int n = tr->B < t->train.ds.n ? tr->B : t->train.ds.n;
    for (int i = 0; i < n; i++) {
        if (t->cursor >= t->train.ds.n) {
            t->passes++;
            shuffle_task(tr, t);
        }
        rows[i] = t->order[t->cursor++];
    }
    return n;
}

/* ---- trainer state (checkpoints) ------------------------------------------- */

static int state_save(trainer *tr, blob *b)
{
    params *P = &tr->pl->P;
    uint32_t rng_size = (uint32_t)gsl_rng_size(tr->pl->rng);
    int has_m = P->m != NULL;
    if (blob_put(b, &tr->step, sizeof tr->step) || blob_put(b, &tr->opt.t, sizeof tr->opt.t) ||
        blob_put(b, &tr->best, sizeof tr->best) || blob_put(b, &tr->best_step, sizeof tr->best_step) ||
        blob_put(b, &tr->bad_evals, sizeof tr->bad_evals) || blob_put(b, &tr->evals, sizeof tr->evals) ||
        blob_put(b, &rng_size, sizeof rng_size) || blob_put(b, gsl_rng_state(tr->pl->rng), rng_size) ||
        blob_put(b, &tr->m.ntasks, sizeof tr->m.ntasks))
        return -1;
    for (int k = 0; k < tr->m.ntasks; k++) {
        task *t = &tr->m.t[k];
        if (blob_put(b, &t->train.ds.n, sizeof t->train.ds.n) || blob_put(b, &t->cursor, sizeof t->cursor) ||
            blob_put(b, &t->passes, sizeof t->passes) ||
            blob_put(b, t->order, (size_t)t->train.ds.n * sizeof *t->order))
            return -1;
    }
    if (blob_put(b, &P->total, sizeof P->total) || blob_put(b, &has_m, sizeof has_m))
        return -1;
    if (has_m && (blob_put(b, P->m, (size_t)P->total * sizeof(float)) ||
                  blob_put(b, P->v, (size_t)P->total * sizeof(float))))
        return -1;
    return 0;
}

static int state_load(trainer *tr, blob *b, const char *dir)
{
    params *P = &tr->pl->P;
    uint32_t rng_size;
    int ntasks, has_m;
    int64_t total;
    if (blob_get(b, &tr->step, sizeof tr->step) || blob_get(b, &tr->opt.t, sizeof tr->opt.t) ||
        blob_get(b, &tr->best, sizeof tr->best) || blob_get(b, &tr->best_step, sizeof tr->best_step) ||
        blob_get(b, &tr->bad_evals, sizeof tr->bad_evals) || blob_get(b, &tr->evals, sizeof tr->evals) ||
        blob_get(b, &rng_size, sizeof rng_size))
        return err_set("%s: %s", dir, err_get());
    if (rng_size != gsl_rng_size(tr->pl->rng))
        return err_set("%s: RNG state of %u bytes, expected %zu", dir, rng_size, gsl_rng_size(tr->pl->rng));
    if (blob_get(b, gsl_rng_state(tr->pl->rng), rng_size) || blob_get(b, &ntasks, sizeof ntasks))
        return err_set("%s: %s", dir, err_get());
    if (ntasks != tr->m.ntasks)
        return err_set("%s: checkpoint of %d tasks, the pipeline has %d", dir, ntasks, tr->m.ntasks);
    for (int k = 0; k < ntasks; k++) {
        task *t = &tr->m.t[k];
        int n;
        if (blob_get(b, &n, sizeof n))
            return err_set("%s: %s", dir, err_get());
        if (n != t->train.ds.n)
            return err_set("%s: task %s had %d training examples, now %d: the data or its settings changed",
                           dir, t->name, n, t->train.ds.n);
        if (blob_get(b, &t->cursor, sizeof t->cursor) || blob_get(b, &t->passes, sizeof t->passes) ||
            blob_get(b, t->order, (size_t)n * sizeof *t->order))
            return err_set("%s: %s", dir, err_get());
    }
    if (blob_get(b, &total, sizeof total) || blob_get(b, &has_m, sizeof has_m))
        return err_set("%s: %s", dir, err_get());
    if (total != P->total)
        return err_set("%s: %lld parameters, the model has %lld", dir, (long long)total, (long long)P->total);
    if (has_m) {
        if (params_alloc_moments(P) != 0 || blob_get(b, P->m, (size_t)total * sizeof(float)) ||
            blob_get(b, P->v, (size_t)total * sizeof(float)))
            return err_set("%s: %s", dir, err_get());
    }
    if (b->at != b->n)
        return err_set("%s: %zu bytes of trainer state left over", dir, b->n - b->at);
    return 0;
}

static int save_checkpoint(trainer *tr, const char *name, int with_state)
{
    char **meta = NULL;
    int nmeta = 0, rc = -1;
    blob b = {0};
    char *dir = run_path(tr->pl, name);
    if (!dir || model_meta(&tr->m, &meta, &nmeta) != 0)
        goto done;
    if (with_state && state_save(tr, &b) != 0)
        goto done;
    rc = checkpoint_save(dir, &tr->pl->P, with_state ? &b : NULL, tr->m.enc.backbone, cfg_str(tr->pl, "model"),
                         (const char *const *)meta, nmeta);
done:
    blob_free(&b);
    model_meta_free(meta, nmeta);
    free(dir);
    return rc;
}

/* ---- logging ------------------------------------------------------------------ */

static log_row *add_row(trainer *tr)
{
    if (tr->nrows == tr->caprows) {
        int cap = tr->caprows ? 2 * tr->caprows : 64;
        log_row *r = realloc(tr->rows, (size_t)cap * sizeof *r);
        if (!r)
            return NULL;
        tr->rows = r;
        tr->caprows = cap;
    }
    log_row *r = &tr->rows[tr->nrows++];
    memset(r, 0, sizeof *r);
    return r;
}

/* metrics.csv: one row per (step, task, split); the metric columns are the
 * union of every metric name seen. */
static int write_metrics_csv(FILE *f, void *ctx)
{
    trainer *tr = ctx;
    const char **cols = NULL;
    int ncols = 0;
    for (int i = 0; i < tr->nrows; i++)
        for (int j = 0; j < tr->rows[i].v.n; j++) {
            const char *nm = tr->rows[i].v.name[j];
            int seen = strcmp(nm, "loss") == 0;
            for (int c = 0; c < ncols && !seen; c++)
                seen = strcmp(cols[c], nm) == 0;
            if (seen)
                continue;
            const char **g = realloc(cols, (size_t)(ncols + 1) * sizeof *g);
            if (!g) {
                free(cols);
                return err_set("out of memory");
            }
            cols = g;
            cols[ncols++] = nm;
        }
    fprintf(f, "step,epoch,task,split,loss,lr,sentences_per_s");
    for (int c = 0; c < ncols; c++)
        fprintf(f, ",%s", cols[c]);
    fputc('\n', f);
    for (int i = 0; i < tr->nrows; i++) {
        const log_row *r = &tr->rows[i];
        fprintf(f, "%lld,%d,%s,%s,%.6f,%.6g,%.1f", (long long)r->step, r->epoch, tr->m.t[r->task].name,
                r->dev ? "dev" : "train", r->loss, r->lr, r->sps);
        for (int c = 0; c < ncols; c++) {
            fputc(',', f);
            for (int j = 0; j < r->v.n; j++)
                if (strcmp(r->v.name[j], cols[c]) == 0)
                    fprintf(f, "%.6f", r->v.value[j]);
        }
        fputc('\n', f);
    }
    free(cols);
    return ferror(f) ? err_set("write error") : 0;
}

static void copy_values(eval_values *dst, const eval_values *src)
{
    eval_values_free(dst);
    for (int i = 0; i < src->n; i++) {
        if (dst->n == dst->cap) {
            int cap = dst->cap ? 2 * dst->cap : 16;
            char **n = realloc(dst->name, (size_t)cap * sizeof *n);
            double *v = n ? realloc(dst->value, (size_t)cap * sizeof *v) : NULL;
            if (n)
                dst->name = n;
            if (!v)
                return;
            dst->value = v;
            dst->cap = cap;
        }
        dst->name[dst->n] = str_dup(src->name[i]);
        dst->value[dst->n++] = src->value[i];
    }
}

/* predictions_<task>.tsv and confusion_<task>.csv of the dev set. */
struct pred_out {
    const task *t;
    const int32_t *pred;
    const float *prob;
};

static const char *label_name(const task *t, int32_t id)
{
    return id >= 0 && id < t->train.ds.n_names ? t->train.ds.names[id] : "-";
}

static int write_predictions(FILE *f, void *ctx)
{
    const struct pred_out *o = ctx;
    const task *t = o->t;
    const dataset *d = &t->dev.ds;
    fprintf(f, "text\tgold\tpredicted\tprobability\n");
    for (int i = 0; i < d->n; i++) {
        const char *text = d->text + d->start[i];
        for (size_t c = 0; c < d->len[i]; c++)
            fputc(text[c] == '\t' || text[c] == '\n' ? ' ' : text[c], f);
        if (!t->per_token) {
            fprintf(f, "\t%s\t%s\t%.4f\n", label_name(t, d->label[i]), label_name(t, o->pred[i]), o->prob[i]);
            continue;
        }
        double p = 0;
        int64_t w0 = d->tag_off[i], nw = d->tag_off[i + 1] - w0;
        for (int pass = 0; pass < 2; pass++) {
            fputc('\t', f);
            for (int64_t w = 0; w < nw; w++)
                fprintf(f, "%s%s", w ? " " : "", label_name(t, pass ? o->pred[w0 + w] : d->tags[w0 + w]));
        }
        for (int64_t w = 0; w < nw; w++)
            p += o->prob[w0 + w];
        fprintf(f, "\t%.4f\n", nw ? p / (double)nw : 0.0);
    }
    return ferror(f) ? err_set("write error") : 0;
}

static int write_confusion(FILE *f, void *ctx)
{
    const struct pred_out *o = ctx;
    const task *t = o->t;
    const dataset *d = &t->dev.ds;
    int K = t->n_labels;
    int64_t *cm = calloc((size_t)K * (size_t)K, sizeof *cm);
    if (!cm)
        return err_set("out of memory");
    int64_t n = t->per_token ? d->tag_off[d->n] : d->n;
    const int32_t *gold = t->per_token ? d->tags : d->label;
    for (int64_t i = 0; i < n; i++)
        if (gold[i] >= 0 && gold[i] < K && o->pred[i] >= 0 && o->pred[i] < K)
            cm[(size_t)gold[i] * K + o->pred[i]]++;
    fprintf(f, "gold\\predicted");
    for (int j = 0; j < K; j++)
        fprintf(f, ",%s", t->train.ds.names[j]);
    fputc('\n', f);
    for (int i = 0; i < K; i++) {
        fprintf(f, "%s", t->train.ds.names[i]);
        for (int j = 0; j < K; j++)
            fprintf(f, ",%lld", (long long)cm[(size_t)i * K + j]);
        fputc('\n', f);
    }
    free(cm);
    return ferror(f) ? err_set("write error") : 0;
}

/* ---- evaluation ---------------------------------------------------------------- */

static double headline(const eval_values *v) { return v->n ? v->value[0] : 0.0; }

/* The selection value: task.metric named by train.select, else the mean
 * of every task's headline metric. */
static double selection(trainer *tr, eval_values *vals)
{
    if (tr->select) {
        for (int k = 0; k < tr->m.ntasks; k++) {
            size_t ln = strlen(tr->m.t[k].name);
            if (strncmp(tr->select, tr->m.t[k].name, ln) != 0 || tr->select[ln] != '.')
                continue;
            for (int j = 0; j < vals[k].n; j++)
                if (strcmp(vals[k].name[j], tr->select + ln + 1) == 0)
                    return vals[k].value[j];
        }
    }
    double s = 0;
    for (int k = 0; k < tr->m.ntasks; k++)
        s += headline(&vals[k]);
    return s / tr->m.ntasks;
}

static int evaluate(trainer *tr, double lr)
{
    int K = tr->m.ntasks, rc = -1;
    eval_values *vals = calloc((size_t)K, sizeof *vals);
    int32_t **pred = calloc((size_t)K, sizeof *pred);
    float **prob = calloc((size_t)K, sizeof *prob);
    if (!vals || !pred || !prob) {
        err_set("out of memory");
        goto done;
    }
    for (int k = 0; k < K; k++) {
        task *t = &tr->m.t[k];
        int64_t n = t->mlm ? 0 : t->per_token ? t->dev.ds.tag_off[t->dev.ds.n] : t->dev.ds.n;
        pred[k] = malloc(((size_t)n + 1) * sizeof **pred);
        prob[k] = malloc(((size_t)n + 1) * sizeof **prob);
        if (!pred[k] || !prob[k]) {
            err_set("out of memory");
            goto done;
        }
        if (model_evaluate(&tr->m, k, &vals[k], pred[k], prob[k]) != 0)
            goto done;
        log_row *r = add_row(tr);
        if (!r) {
            err_set("out of memory");
            goto done;
        }
        r->step = tr->step;
        r->epoch = (int)(tr->step / tr->steps_per_epoch);
        r->task = k;
        r->dev = 1;
        r->loss = vals[k].value[vals[k].n - 1];
        r->lr = lr;
        copy_values(&r->v, &vals[k]);
        copy_values(&tr->final_v[k], &vals[k]);
        char line[1024];
        size_t used = 0;
        for (int j = 0; j < vals[k].n && j < 4 && used < sizeof line; j++)
            used += (size_t)snprintf(line + used, sizeof line - used, " %s %.4f", vals[k].name[j], vals[k].value[j]);
        if (tr->tty)
            fputc('\n', stderr);
        pipeline_log(tr->pl, RUNNER_LOG_INFO, "step %lld dev %s:%s", (long long)tr->step, t->name, line);
    }
    tr->evals++;
    double sel = selection(tr, vals);
    if (tr->evals == 1 || sel > tr->best) {
        tr->best = sel;
        tr->best_step = tr->step;
        tr->bad_evals = 0;
        for (int k = 0; k < K; k++) {
            copy_values(&tr->best_v[k], &vals[k]);
            if (tr->m.t[k].mlm)
                continue;
            struct pred_out o = {&tr->m.t[k], pred[k], prob[k]};
            char *pp = str_printf("%s/predictions_%s.tsv", tr->pl->out_dir, tr->m.t[k].name);
            char *cp = str_printf("%s/confusion_%s.csv", tr->pl->out_dir, tr->m.t[k].name);
            int bad = !pp || !cp || file_write_atomic_with(pp, write_predictions, &o) != 0 ||
                      file_write_atomic_with(cp, write_confusion, &o) != 0;
            free(pp);
            free(cp);
            if (bad)
                goto done;
        }
        if (cfg_bool(tr->pl, "train.save_best", 1) && save_checkpoint(tr, "best", 0) != 0)
            goto done;
    } else {
        tr->bad_evals++;
    }
    if (cfg_bool(tr->pl, "train.save_last", 1) && tr->pl->P.grad && save_checkpoint(tr, "last", 1) != 0)
        goto done;
    char *csv = run_path(tr->pl, "metrics.csv");
    rc = csv ? file_write_atomic_with(csv, write_metrics_csv, tr) : err_set("out of memory");
    free(csv);
done:
    for (int k = 0; k < K; k++) {
        if (vals)
            eval_values_free(&vals[k]);
        if (pred)
            free(pred[k]);
        if (prob)
            free(prob[k]);
    }
    free(vals);
    free(pred);
    free(prob);
    return rc;
}

/* ---- results ------------------------------------------------------------------- */

static json_t *values_json(const eval_values *v)
{
    json_t *o = json_object();
    for (int i = 0; o && i < v->n; i++)
        json_object_set_new(o, v->name[i], json_real(v->value[i]));
    return o;
}

static int write_metrics_json(trainer *tr)
{
    json_t *root = json_object(), *tasks = json_object();
    for (int k = 0; k < tr->m.ntasks; k++) {
        json_t *t = json_object();
        json_object_set_new(t, "final", values_json(&tr->final_v[k]));
        json_object_set_new(t, "best", values_json(&tr->best_v[k]));
        json_object_set_new(t, "train_examples", json_integer(tr->m.t[k].train.ds.n));
        json_object_set_new(t, "dev_examples", json_integer(tr->m.t[k].dev.ds.n));
        json_object_set_new(tasks, tr->m.t[k].name, t);
    }
    json_object_set_new(root, "tasks", tasks);
    json_object_set_new(root, "selection", json_string(tr->select ? tr->select : "mean of headline metrics"));
    json_object_set_new(root, "best_value", json_real(tr->best));
    json_object_set_new(root, "best_step", json_integer(tr->best_step));
    json_object_set_new(root, "steps", json_integer(tr->step));
    json_object_set_new(root, "stopped_early", json_boolean(tr->stopped_early));
    json_object_set_new(root, "train_seconds", json_real(tr->train_seconds));
    json_object_set_new(root, "train_sentences_per_s",
                        json_real(tr->train_seconds > 0 ? (double)tr->sentences / tr->train_seconds : 0));
    json_object_set_new(root, "parameters", json_integer(params_count(&tr->pl->P, "*", 0)));
    json_object_set_new(root, "trainable_parameters",
                        json_integer(tr->pl->P.grad ? params_count(&tr->pl->P, "*", 1) : 0));
    json_object_set_new(root, "threads", json_integer(tr->pl->threads));
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
    json_decref(root);
    char *path = run_path(tr->pl, "metrics.json");
    int rc = -1;
    if (text && path) {
        size_t n = strlen(text);
        text[n] = '\n';
        rc = file_write_atomic(path, text, n + 1);
    }
    free(text);
    free(path);
    return rc;
}

static int draw_plots(trainer *tr)
{
    char s[8192];
    size_t used = (size_t)snprintf(s, sizeof s,
                                   "set datafile separator ','\nset key outside right\nset xlabel 'step'\n"
                                   "set ylabel 'loss'\nset title 'training and dev loss'\nset grid\nplot ");
    for (int k = 0; k < tr->m.ntasks; k++)
        used += (size_t)snprintf(s + used, sizeof s - used,
                                 "%s'metrics.csv' using 1:(strcol(3) eq '%s' && strcol(4) eq 'train' ? $5 : NaN) "
                                 "with lines title '%s train', "
                                 "'metrics.csv' using 1:(strcol(3) eq '%s' && strcol(4) eq 'dev' ? $5 : NaN) "
                                 "with linespoints title '%s dev'",
                                 k ? ", " : "", tr->m.t[k].name, tr->m.t[k].name, tr->m.t[k].name,
                                 tr->m.t[k].name);
    if (plot_script(tr->pl, "loss.png", s) != 0)
        return -1;
    used = (size_t)snprintf(s, sizeof s,
                            "set datafile separator ','\nset key outside right\nset xlabel 'step'\n"
                            "set ylabel 'headline dev metric'\nset title 'dev metrics'\nset grid\nplot ");
    for (int k = 0; k < tr->m.ntasks; k++) {
        const char *metric = tr->final_v[k].n ? tr->final_v[k].name[0] : "loss";
        used += (size_t)snprintf(s + used, sizeof s - used,
                                 "%s'metrics.csv' using 1:(strcol(3) eq '%s' && strcol(4) eq 'dev' ? "
                                 "column('%s') : NaN) with linespoints title '%s %s'",
                                 k ? ", " : "", tr->m.t[k].name, metric, tr->m.t[k].name, metric);
    }
    if (plot_script(tr->pl, "dev_metrics.png", s) != 0)
        return -1;
    for (int k = 0; k < tr->m.ntasks; k++) {
        const task *t = &tr->m.t[k];
        if (t->n_labels > 40 || t->mlm)
            continue;
        char png[300];
        snprintf(png, sizeof png, "confusion_%s.png", t->name);
        snprintf(s, sizeof s,
                 "set datafile separator ','\nunset key\nset title 'confusion matrix, %s (dev, best step)'\n"
                 "set xlabel 'predicted'\nset ylabel 'gold'\nset palette defined (0 'white', 1 'dark-blue')\n"
                 "set xtics rotate by 45 right\n"
                 "plot 'confusion_%s.csv' matrix rowheaders columnheaders using 1:2:3 with image, "
                 "'' matrix rowheaders columnheaders using 1:2:(sprintf('%%d',$3)) with labels",
                 t->name, t->name);
        if (plot_script(tr->pl, png, s) != 0)
            return -1;
    }
    return 0;
}

/* ---- the loop ------------------------------------------------------------------ */

static void log_groups(trainer *tr)
{
    params *P = &tr->pl->P;
    const runner_backbone_ops *bops = tr->m.enc.backbone->desc->ops;
    runner_backbone_info info;
    bops->info(tr->m.enc.backbone->self, &info);
    pipeline_log(tr->pl, RUNNER_LOG_INFO, "step %lld: trainable parameters by group:", (long long)tr->step);
    char glob[300];
    for (int g = -1; g <= info.layers; g++) {
        if (g < 0)
            snprintf(glob, sizeof glob, "backbone.embeddings.*");
        else if (g < info.layers)
            snprintf(glob, sizeof glob, "backbone.encoder.layer.%d.*", g);
        else
            snprintf(glob, sizeof glob, "heads.*");
        int64_t all = params_count(P, glob, 0), on = params_count(P, glob, 1);
        double scale = -1;
        for (int i = 0; i < P->n; i++)
            if (fnmatch(glob, P->p[i].name, 0) == 0) {
                scale = P->p[i].lr_scale;
                break;
            }
        pipeline_log(tr->pl, RUNNER_LOG_INFO, "  %-28s %10lld of %10lld trainable, lr scale %.4g", glob,
                     (long long)on, (long long)all, scale);
    }
}

static void progress(trainer *tr, double lr)
{
    double now = time_now();
    double sps = (double)(tr->sentences - tr->sentences_log) / (now - tr->t_log + 1e-9);
    for (int k = 0; k < tr->m.ntasks; k++) {
        if (!tr->loss_n[k])
            continue;
        log_row *r = add_row(tr);
        if (r) {
            r->step = tr->step;
            r->epoch = (int)(tr->step / tr->steps_per_epoch);
            r->task = k;
            r->loss = tr->loss_sum[k] / tr->loss_n[k];
            r->lr = lr;
            r->sps = sps;
        }
    }
    double elapsed = tr->train_seconds + (now - tr->t_start), done_steps = (double)(tr->step - tr->step0);
    double eta = done_steps > 0 ? elapsed / done_steps * (double)(tr->total - tr->step) : 0;
    char losses[512];
    size_t used = 0;
    losses[0] = 0;
    for (int k = 0; k < tr->m.ntasks && used < sizeof losses; k++)
        if (tr->loss_n[k])
            used += (size_t)snprintf(losses + used, sizeof losses - used, " %s %.4f", tr->m.t[k].name,
                                     tr->loss_sum[k] / tr->loss_n[k]);
    if (tr->tty && !tr->pl->quiet)
        fprintf(stderr, "\repoch %d/%d step %lld/%lld loss%s | %.0f sent/s | ETA %dm%02ds   ",
                (int)(tr->step / tr->steps_per_epoch) + 1, tr->epochs, (long long)tr->step,
                (long long)tr->total, losses, sps, (int)eta / 60, (int)eta % 60);
    else
        pipeline_log(tr->pl, RUNNER_LOG_INFO, "step %lld/%lld loss%s lr %.3g %.0f sent/s ETA %ds",
                     (long long)tr->step, (long long)tr->total, losses, lr, sps, (int)eta);
    memset(tr->loss_sum, 0, (size_t)tr->m.ntasks * sizeof *tr->loss_sum);
    memset(tr->loss_n, 0, (size_t)tr->m.ntasks * sizeof *tr->loss_n);
    tr->t_log = now;
    tr->sentences_log = tr->sentences;
}

static int setup(trainer *tr)
{
    pipeline *pl = tr->pl;
    if (model_open(pl, &tr->m, 1, NULL) != 0)
        return -1;
    config_setting_t *ss = config_lookup(&pl->cfg, "sampler");
    if (!ss && tr->m.ntasks > 1)
        return err_set("%s: %d tasks need a `sampler` (round_robin, proportional, temperature or joint)",
                       pl->file, tr->m.ntasks);
    if (ss && !(tr->sampler = pipeline_stage(pl, "sampler", "sampler.", RUNNER_KIND_SAMPLER, ss)))
        return -1;
    config_setting_t *fs = config_lookup(&pl->cfg, "freeze");
    if (fs && !(tr->freeze = pipeline_stage(pl, "freeze", "freeze.", RUNNER_KIND_FREEZE, fs)))
        return -1;
    tr->B = (int)cfg_int(pl, "train.batch", 32);
    tr->accumulate = (int)cfg_int(pl, "train.accumulate", 1);
    tr->epochs = (int)cfg_int(pl, "train.epochs", 1);
    tr->eval_every = (int)cfg_int(pl, "train.eval_every", 0);
    tr->log_every = (int)cfg_int(pl, "train.log_every", 20);
    tr->patience = (int)cfg_int(pl, "train.early_stop", 0);
    tr->lr = cfg_num(pl, "train.lr", 5e-5);
    tr->clip = cfg_num(pl, "train.clip", 1.0);
    tr->select = cfg_str(pl, "train.select");
    tr->stop_after = cfg_int(pl, "train.stop_after", 0);
    if (tr->B < 1 || tr->accumulate < 1 || tr->epochs < 1 || tr->log_every < 1)
        return err_set("%s: train.batch, accumulate, epochs and log_every must be at least 1", pl->file);
    if (sched_parse(cfg_str(pl, "train.schedule") ? cfg_str(pl, "train.schedule") : "linear", &tr->sched) != 0)
        return -1;
    tr->opt = (adamw){tr->lr, 0.9, 0.999, 1e-8, cfg_num(pl, "train.weight_decay", 0.01), 0};
    /* one epoch: every task's data once (joint: the shared data once) */
    int64_t batches = 0;
    int joint = tr->sampler && strcmp(tr->sampler->desc->name, "joint") == 0;
    for (int k = 0; k < tr->m.ntasks; k++) {
        int64_t n = tr->m.t[k].train.ds.n;
        if (!joint || k == 0)
            batches += (n + tr->B - 1) / tr->B;
    }
    tr->steps_per_epoch = (batches + tr->accumulate - 1) / tr->accumulate;
    if (tr->steps_per_epoch < 1)
        tr->steps_per_epoch = 1;
    tr->total = tr->steps_per_epoch * tr->epochs;
    int64_t max_steps = cfg_int(pl, "train.max_steps", 0);
    if (max_steps > 0 && max_steps < tr->total)
        tr->total = max_steps;
    tr->warmup = (int64_t)(cfg_num(pl, "train.warmup", 0.1) * (double)tr->total);
    if (tr->sampler) {
        int64_t *sizes = malloc((size_t)tr->m.ntasks * sizeof *sizes);
        if (!sizes)
            return err_set("out of memory");
        for (int k = 0; k < tr->m.ntasks; k++)
            sizes[k] = tr->m.t[k].train.ds.n;
        const runner_sampler_ops *so = tr->sampler->desc->ops;
        int rc = so->bind(tr->sampler->self, tr->m.ntasks, sizes);
        free(sizes);
        if (rc != 0)
            return -1;
    }
    tr->final_v = calloc((size_t)tr->m.ntasks, sizeof *tr->final_v);
    tr->best_v = calloc((size_t)tr->m.ntasks, sizeof *tr->best_v);
    tr->loss_sum = calloc((size_t)tr->m.ntasks, sizeof *tr->loss_sum);
    tr->loss_n = calloc((size_t)tr->m.ntasks, sizeof *tr->loss_n);
    if (!tr->final_v || !tr->best_v || !tr->loss_sum || !tr->loss_n)
        return err_set("out of memory");
    tr->tty = isatty(2);
    return 0;
}

static int apply_freeze(trainer *tr, int force_log)
{
    int changed = 0;
    if (tr->freeze) {
        runner_train_pos pos = {tr->step, tr->total, (int)(tr->step / tr->steps_per_epoch), tr->epochs,
                                tr->steps_per_epoch};
        const runner_freeze_ops *fo = tr->freeze->desc->ops;
        if (fo->apply(tr->freeze->self, &pos, &changed) != 0)
            return -1;
    }
    if (changed && tr->pl->P.grad) /* frozen tensors may hold stale sums: none may reach an update */
        params_zero_grad(&tr->pl->P);
    if (changed || force_log)
        log_groups(tr);
    return 0;
}

int drive_train(pipeline *pl)
{
    trainer tr;
    memset(&tr, 0, sizeof tr);
    tr.pl = pl;
    int rc = -1;
    int *rows = NULL;
    if (setup(&tr) != 0)
        goto done;
    if (apply_freeze(&tr, 0) != 0)
        goto done;
    int with_grad = params_count(&pl->P, "*", 1) > 0;
    if (encoder_load(pl, &tr.m.enc, with_grad) != 0)
        goto done;
    const char *init = cfg_str(pl, "checkpoint");
    if (init) {
        int missing = 0;
        if (checkpoint_load_params(init, &pl->P, 1, &missing) != 0)
            goto done;
        pipeline_log(pl, RUNNER_LOG_INFO, "initialised from %s (%d tensors not in it keep their initial values)",
                     init, missing);
    }
    for (int k = 0; k < tr.m.ntasks; k++)
        shuffle_task(&tr, &tr.m.t[k]);
    if (pl->resume) {
        char *dir = checkpoint_resolve(pl->resume);
        blob b = {0};
        if (!dir) {
            err_set("--resume %s: no checkpoint there (model.safetensors missing)", pl->resume);
            goto done;
        }
        int bad = checkpoint_load_params(dir, &pl->P, 0, NULL) != 0 || checkpoint_load_state(dir, &b) != 0 ||
                  state_load(&tr, &b, dir) != 0;
        blob_free(&b);
        if (!bad)
            pipeline_log(pl, RUNNER_LOG_INFO, "resumed from %s at step %lld", dir, (long long)tr.step);
        free(dir);
        if (bad)
            goto done;
    }
    if (!tr.freeze)
        log_groups(&tr);
    pipeline_log(pl, RUNNER_LOG_INFO, "%d task%s, %lld steps (%lld per epoch), batch %d x %d accumulated, lr %.3g",
                 tr.m.ntasks, tr.m.ntasks > 1 ? "s" : "", (long long)tr.total, (long long)tr.steps_per_epoch,
                 tr.B, tr.accumulate, tr.lr);
    if (!with_grad) {
        pipeline_log(pl, RUNNER_LOG_INFO, "nothing trains: evaluation only (no gradients, no optimizer state)");
        if (model_build_cache(&tr.m) != 0 || evaluate(&tr, 0) != 0)
            goto done;
        goto finish;
    }
    rows = malloc((size_t)tr.B * sizeof *rows);
    if (!rows) {
        err_set("out of memory");
        goto done;
    }
    tr.t_start = tr.t_log = time_now();
    tr.step0 = tr.step;
    double lr = 0;
    while (tr.step < tr.total) {
        if (apply_freeze(&tr, 0) != 0)
            goto done;
        int bb = model_backbone_trains(&tr.m);
        if (!bb && model_build_cache(&tr.m) != 0)
            goto done;
        if (bb)
            model_drop_cache(&tr.m);
        for (int micro = 0; micro < tr.accumulate; micro++) {
            int which = 0;
            if (tr.sampler) {
                /* samplers count batches, so tasks alternate within an accumulated step */
                runner_train_pos pos = {tr.step * tr.accumulate + micro, tr.total * tr.accumulate,
                                        (int)(tr.step / tr.steps_per_epoch), tr.epochs,
                                        tr.steps_per_epoch * tr.accumulate};
                const runner_sampler_ops *so = tr.sampler->desc->ops;
                if (so->next(tr.sampler->self, &pos, &which) != 0)
                    goto done;
            }
            int n = next_rows(&tr, &tr.m.t[which < 0 ? 0 : which], rows);
            double total;
            if (model_train_batch(&tr.m, which, rows, n, tr.accumulate, &total) != 0)
                goto done;
            for (int k = 0; k < tr.m.ntasks; k++)
                if (which < 0 || which == k) {
                    tr.loss_sum[k] += tr.m.t[k].batch_loss;
                    tr.loss_n[k]++;
                }
            tr.sentences += n;
        }
        lr = sched_lr(tr.sched, tr.lr, tr.step, tr.total, tr.warmup);
        double scale = clip_scale(grad_norm(&pl->P), tr.clip);
        if (adamw_step(&tr.opt, &pl->P, lr, scale) != 0)
            goto done;
        tr.step++;
        if (tr.step % tr.log_every == 0 || tr.step == tr.total)
            progress(&tr, lr);
        int epoch_end = tr.step % tr.steps_per_epoch == 0;
        if ((tr.eval_every > 0 ? tr.step % tr.eval_every == 0 : epoch_end) || tr.step == tr.total) {
            tr.train_seconds += time_now() - tr.t_start;
            if (evaluate(&tr, lr) != 0)
                goto done;
            tr.t_start = tr.t_log = time_now();
            tr.sentences_log = tr.sentences;
            if (tr.stop_after > 0 && tr.step >= tr.stop_after) {
                pipeline_log(pl, RUNNER_LOG_INFO, "stopping after step %lld as asked (train.stop_after): "
                             "continue with --resume %s/last", (long long)tr.step, pl->out_dir);
                rc = 0;
                goto done;
            }
            if (tr.patience > 0 && tr.bad_evals >= tr.patience) {
                pipeline_log(pl, RUNNER_LOG_INFO, "early stop: %d evaluations without improvement", tr.bad_evals);
                tr.stopped_early = 1;
                break;
            }
        }
    }
finish:
    if (tr.tty && !pl->quiet)
        fputc('\n', stderr);
    if (write_metrics_json(&tr) != 0 || draw_plots(&tr) != 0)
        goto done;
    printf("%s: best at step %lld (%s = %.4f)\n", pl->name, (long long)tr.best_step,
           tr.select ? tr.select : "mean headline metric", tr.best);
    for (int k = 0; k < tr.m.ntasks; k++) {
        printf("  %-12s", tr.m.t[k].name);
        for (int j = 0; j < tr.best_v[k].n && j < 4; j++)
            printf(" %s %.4f", tr.best_v[k].name[j], tr.best_v[k].value[j]);
        printf("\n");
    }
    const char *export = cfg_str(pl, "train.export");
    if (export) {
        char *best = run_path(pl, "best");
        int bad = !best || checkpoint_export(best, export) != 0;
        free(best);
        if (bad)
            goto done;
        printf("exported the best checkpoint's model folder to %s\n", export);
    }
    printf("trained on %lld sentences in %.2f s: %.1f sentences/s\n", (long long)tr.sentences, tr.train_seconds,
           tr.train_seconds > 0 ? (double)tr.sentences / tr.train_seconds : 0.0);
    printf("results in %s\n", pl->out_dir);
    rc = 0;
done:
    free(rows);
    for (int k = 0; k < tr.m.ntasks; k++) {
        if (tr.final_v)
            eval_values_free(&tr.final_v[k]);
        if (tr.best_v)
            eval_values_free(&tr.best_v[k]);
    }
    for (int i = 0; i < tr.nrows; i++)
        eval_values_free(&tr.rows[i].v);
    free(tr.rows);
    free(tr.final_v);
    free(tr.best_v);
    free(tr.loss_sum);
    free(tr.loss_n);
    model_close(&tr.m);
    return rc;
}
