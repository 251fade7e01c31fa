/* report.c — what a training run writes: metrics.csv, predictions,
 * confusion matrices, metrics.json. */
#include <fnmatch.h>
#include <gsl/gsl_randist.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trainer.h"
#include "runner/kit/util.h"
#include "textout.h"

/* ---- logging ------------------------------------------------------------------ */

log_row *tr_add_row(trainer *tr)
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
int tr_write_metrics_csv(FILE *f, void *ctx)
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

void tr_copy_values(eval_values *dst, const eval_values *src)
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

/* predictions_<task>.csv (or .jsonl) and confusion_<task>.csv of the dev set. */

static const char *tr_label_name(const task *t, int32_t id)
{
    return id >= 0 && id < t->train.ds.n_names ? t->train.ds.names[id] : "-";
}

/* Word tags of dev row i (gold or predicted) as one string: "O B-PER". */
static char *tr_tags(const task *t, const int32_t *tags, int64_t w0, int64_t nw)
{
    size_t len = 1;
    for (int64_t w = 0; w < nw; w++)
        len += strlen(tr_label_name(t, tags[w0 + w])) + 1;
    char *s = malloc(len), *at = s;
    for (int64_t w = 0; s && w < nw; w++)
        at += sprintf(at, "%s%s", w ? " " : "", tr_label_name(t, tags[w0 + w]));
    if (s)
        *at = 0;
    return s;
}

/* One field: a CSV field (after a comma) or a JSON member. */
static void tr_field(FILE *f, int jsonl, const char *key, const char *value)
{
    if (jsonl) {
        fprintf(f, ", \"%s\": ", key);
        json_text(f, value ? value : "", value ? strlen(value) : 0);
    } else {
        fputc(',', f);
        csv_field(f, value ? value : "", value ? strlen(value) : 0);
    }
}

/* Dev predictions: CSV (RFC 4180; id, text, gold, predicted, probability)
 * or JSON Lines with the same keys. Token tasks: tags space-separated,
 * probability the mean over words. */
int tr_write_predictions(FILE *f, void *ctx)
{
    const struct pred_out *o = ctx;
    const task *t = o->t;
    const dataset *d = &t->dev.ds;
    if (!o->jsonl)
        fprintf(f, "id,text,gold,predicted,probability\r\n");
    for (int i = 0; i < d->n; i++) {
        const char *text = d->text + d->start[i];
        fprintf(f, o->jsonl ? "{\"id\": %d, \"text\": " : "%d,", i);
        (o->jsonl ? json_text : csv_field)(f, text, d->len[i]);
        double p = o->prob[i];
        if (!t->per_token) {
            tr_field(f, o->jsonl, "gold", tr_label_name(t, d->label[i]));
            tr_field(f, o->jsonl, "predicted", tr_label_name(t, o->pred[i]));
        } else {
            int64_t w0 = d->tag_off[i], nw = d->tag_off[i + 1] - w0;
            char *gold = tr_tags(t, d->tags, w0, nw), *pred = tr_tags(t, o->pred, w0, nw);
            tr_field(f, o->jsonl, "gold", gold);
            tr_field(f, o->jsonl, "predicted", pred);
            free(gold);
            free(pred);
            p = 0;
            for (int64_t w = 0; w < nw; w++)
                p += o->prob[w0 + w];
            p = nw ? p / (double)nw : 0.0;
        }
        fprintf(f, o->jsonl ? ", \"probability\": %.4f}\n" : ",%.4f\r\n", p);
    }
    return ferror(f) ? err_set("write error") : 0;
}

int tr_write_confusion(FILE *f, void *ctx)
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

/* ---- results ------------------------------------------------------------------- */

static json_t *tr_values_json(const eval_values *v)
{
    json_t *o = json_object();
    for (int i = 0; o && i < v->n; i++)
        json_object_set_new(o, v->name[i], json_real(v->value[i]));
    return o;
}

int tr_write_metrics_json(trainer *tr)
{
    json_t *root = json_object(), *tasks = json_object();
    for (int k = 0; k < tr->m.ntasks; k++) {
        json_t *t = json_object();
        json_object_set_new(t, "final", tr_values_json(&tr->final_v[k]));
        json_object_set_new(t, "best", tr_values_json(&tr->best_v[k]));
        json_object_set_new(t, "train_examples", json_integer(tr->m.t[k].train.ds.n));
        json_object_set_new(t, "dev_examples", json_integer(tr->m.t[k].dev.ds.n));
        if (tr->test_v && tr->m.t[k].has_test) { /* the best checkpoint, once, apart from dev */
            json_t *test = tr_values_json(&tr->test_v[k]);
            json_object_set_new(test, "examples", json_integer(tr->m.t[k].test.ds.n));
            json_object_set_new(test, "step", json_integer(tr->test_from));
            json_object_set_new(t, "test", test);
        }
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
