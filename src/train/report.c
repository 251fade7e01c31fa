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

/* The value names of the rows of task k (-1: the run rows, grad_cosine.*
 * and loss_weight.*), without "loss" when skip_loss, in order of first
 * appearance; *n of them (-1: out of memory). Caller frees the array (not
 * the names). */
static const char **tr_row_names(const trainer *tr, int k, int skip_loss, int *n)
{
    const char **names = NULL;
    *n = 0;
    for (int i = 0; i < tr->nrows; i++) {
        const log_row *r = &tr->rows[i];
        for (int j = 0; r->task == k && j < r->v.n; j++) {
            int seen = skip_loss && strcmp(r->v.name[j], "loss") == 0;
            for (int c = 0; c < *n && !seen; c++)
                seen = strcmp(names[c], r->v.name[j]) == 0;
            if (seen)
                continue;
            const char **g = realloc(names, (size_t)(*n + 1) * sizeof *g);
            if (!g) {
                free(names);
                *n = -1;
                return NULL;
            }
            names = g;
            names[(*n)++] = r->v.name[j];
        }
    }
    return names;
}

/* The metric names (other than loss) of task k's dev rows. */
static const char **tr_metric_names(const trainer *tr, int k, int *n) { return tr_row_names(tr, k, 1, n); }

/* The value names of the run rows. */
const char **tr_run_names(const trainer *tr, int *n) { return tr_row_names(tr, -1, 0, n); }

/* ",<task>.<col>" as one CSV field (quoted when it holds , " or a newline). */
static void csv_head(FILE *f, const char *tname, const char *col)
{
    int quote = strpbrk(tname, ",\"\r\n") || strpbrk(col, ",\"\r\n");
    fputs(quote ? ",\"" : ",", f);
    for (int part = 0; part < 2; part++) {
        for (const char *p = part ? col : tname; *p; p++)
            fputs(*p == '"' && quote ? "\"\"" : (char[2]){*p, 0}, f);
        if (!part)
            fputc('.', f);
    }
    if (quote)
        fputc('"', f);
}

static void csv_num(FILE *f, double v)
{
    fputc(',', f);
    if (isfinite(v))
        fprintf(f, "%.6g", v);
}

/* One CSV row: every log row of one step (train losses, dev values). */
static void tr_csv_row(FILE *f, const trainer *tr, int first, int last, const char ***names, const int *nn)
{
    double lr = NAN, sps = NAN;
    for (int i = first; i < last; i++) {
        lr = tr->rows[i].lr;
        if (!tr->rows[i].dev && tr->rows[i].task >= 0)
            sps = tr->rows[i].sps;
    }
    fprintf(f, "%lld", (long long)tr->rows[first].step);
    csv_num(f, (double)tr->rows[first].step / (double)tr->steps_per_epoch);
    csv_num(f, lr);
    csv_num(f, sps);
    for (int k = 0; k < tr->m.ntasks; k++) {
        const log_row *tr_row = NULL, *dev = NULL;
        for (int i = first; i < last; i++)
            if (tr->rows[i].task == k) {
                if (tr->rows[i].dev)
                    dev = &tr->rows[i];
                else
                    tr_row = &tr->rows[i];
            }
        csv_num(f, tr_row ? tr_row->loss : NAN);
        csv_num(f, dev ? dev->loss : NAN);
        csv_num(f, dev ? dev->sps : NAN);
        for (int c = 0; c < nn[k]; c++) {
            double v = NAN;
            for (int j = 0; dev && j < dev->v.n; j++)
                if (strcmp(dev->v.name[j], names[k][c]) == 0)
                    v = dev->v.value[j];
            csv_num(f, v);
        }
    }
    for (int c = 0; c < nn[tr->m.ntasks]; c++) { /* the run rows' values */
        double v = NAN;
        for (int i = first; i < last; i++)
            for (int j = 0; tr->rows[i].task < 0 && j < tr->rows[i].v.n; j++)
                if (strcmp(tr->rows[i].v.name[j], names[tr->m.ntasks][c]) == 0)
                    v = tr->rows[i].v.value[j];
        csv_num(f, v);
    }
    fputc('\n', f);
}

/* metrics.csv: one row per logged step; every cell one number (or empty);
 * columns step, epoch (fractional), lr, train_sentences_per_s, then per
 * task <task>.train_loss, <task>.dev_loss, <task>.dev_sentences_per_s and
 * <task>.<metric> for each dev metric, then the run rows' values
 * (grad_cosine.<a>.<b>, loss_weight.<task>; empty on other steps). */
int tr_write_metrics_csv(FILE *f, void *ctx)
{
    trainer *tr = ctx;
    int K = tr->m.ntasks, rc = 0;
    const char ***names = calloc((size_t)K + 1, sizeof *names);
    int *nn = calloc((size_t)K + 1, sizeof *nn);
    if (!names || !nn) {
        rc = err_set("out of memory");
        goto done;
    }
    fprintf(f, "step,epoch,lr,train_sentences_per_s");
    for (int k = 0; k < K; k++) {
        const char *t = tr->m.t[k].name;
        names[k] = tr_metric_names(tr, k, &nn[k]);
        if (nn[k] < 0) {
            rc = err_set("out of memory");
            goto done;
        }
        csv_head(f, t, "train_loss");
        csv_head(f, t, "dev_loss");
        csv_head(f, t, "dev_sentences_per_s");
        for (int c = 0; c < nn[k]; c++)
            csv_head(f, t, names[k][c]);
    }
    names[K] = tr_run_names(tr, &nn[K]);
    if (nn[K] < 0) {
        rc = err_set("out of memory");
        goto done;
    }
    for (int c = 0; c < nn[K]; c++) {
        fputc(',', f);
        csv_field(f, names[K][c], strlen(names[K][c]));
    }
    fputc('\n', f);
    for (int i = 0; i < tr->nrows;) {
        int j = i + 1;
        while (j < tr->nrows && tr->rows[j].step == tr->rows[i].step)
            j++;
        tr_csv_row(f, tr, i, j, names, nn);
        i = j;
    }
    rc = ferror(f) ? err_set("write error") : 0;
done:
    for (int k = 0; names && k <= K; k++)
        free((void *)names[k]);
    free(names);
    free(nn);
    return rc;
}

/* The log history in the trainer state, so that a resumed run's
 * metrics.csv and pictures start at step 0: row count, then per row its
 * fields and its named values. */
int tr_history_save(const trainer *tr, blob *b)
{
    if (blob_put(b, &tr->nrows, sizeof tr->nrows))
        return -1;
    for (int i = 0; i < tr->nrows; i++) {
        const log_row *r = &tr->rows[i];
        if (blob_put(b, &r->step, sizeof r->step) || blob_put(b, &r->epoch, sizeof r->epoch) ||
            blob_put(b, &r->task, sizeof r->task) || blob_put(b, &r->dev, sizeof r->dev) ||
            blob_put(b, &r->loss, sizeof r->loss) || blob_put(b, &r->lr, sizeof r->lr) ||
            blob_put(b, &r->sps, sizeof r->sps) || blob_put(b, &r->v.n, sizeof r->v.n))
            return -1;
        for (int j = 0; j < r->v.n; j++) {
            uint32_t len = (uint32_t)strlen(r->v.name[j]);
            if (blob_put(b, &len, sizeof len) || blob_put(b, r->v.name[j], len) ||
                blob_put(b, &r->v.value[j], sizeof r->v.value[j]))
                return -1;
        }
    }
    return 0;
}

int tr_history_load(trainer *tr, blob *b)
{
    /* the saved history replaces whatever the trainer holds */
    for (int i = 0; i < tr->nrows; i++)
        eval_values_free(&tr->rows[i].v);
    tr->nrows = 0;
    int n;
    if (blob_get(b, &n, sizeof n) || n < 0)
        return err_set("log history: truncated");
    for (int i = 0; i < n; i++) {
        log_row *r = tr_add_row(tr);
        int nv;
        if (!r)
            return err_set("out of memory");
        if (blob_get(b, &r->step, sizeof r->step) || blob_get(b, &r->epoch, sizeof r->epoch) ||
            blob_get(b, &r->task, sizeof r->task) || blob_get(b, &r->dev, sizeof r->dev) ||
            blob_get(b, &r->loss, sizeof r->loss) || blob_get(b, &r->lr, sizeof r->lr) ||
            blob_get(b, &r->sps, sizeof r->sps) || blob_get(b, &nv, sizeof nv) || nv < 0 ||
            r->task < -1 || r->task >= tr->m.ntasks) /* -1: a run row (study.c) */
            return err_set("log history: row %d is damaged", i);
        for (int j = 0; j < nv; j++) {
            uint32_t len;
            double v;
            if (blob_get(b, &len, sizeof len) || len > 4096 || b->n - b->at < len)
                return err_set("log history: row %d is damaged", i);
            char *name = strndup((const char *)b->p + b->at, len);
            b->at += len;
            int bad = !name || blob_get(b, &v, sizeof v) || eval_values_add(&r->v, name, v) != 0;
            free(name);
            if (bad)
                return err_set("log history: row %d is damaged", i);
        }
    }
    return 0;
}

void tr_copy_values(eval_values *dst, const eval_values *src)
{
    eval_values_free(dst);
    for (int i = 0; i < src->n; i++)
        if (eval_values_add(dst, src->name[i], src->value[i]) != 0)
            return;
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

/* Dev (or test: o->d) predictions: CSV (RFC 4180; id, text, gold, predicted, probability)
 * or JSON Lines with the same keys. Token tasks: tags space-separated,
 * probability the mean over words. */
int tr_write_predictions(FILE *f, void *ctx)
{
    const struct pred_out *o = ctx;
    const task *t = o->t;
    const dataset *d = o->d ? o->d : &t->dev.ds;
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

void tr_confusion_counts(const struct pred_out *o, int64_t *cm)
{
    const task *t = o->t;
    const dataset *d = &t->dev.ds;
    int K = t->n_labels;
    memset(cm, 0, (size_t)K * (size_t)K * sizeof *cm);
    int64_t n = t->per_token ? d->tag_off[d->n] : d->n;
    const int32_t *gold = t->per_token ? d->tags : d->label;
    for (int64_t i = 0; i < n; i++)
        if (gold[i] >= 0 && gold[i] < K && o->pred[i] >= 0 && o->pred[i] < K)
            cm[(size_t)gold[i] * K + o->pred[i]]++;
}

int tr_write_confusion(FILE *f, void *ctx)
{
    const struct pred_out *o = ctx;
    const task *t = o->t;
    int K = t->n_labels;
    int64_t *cm = calloc((size_t)K * (size_t)K, sizeof *cm);
    if (!cm)
        return err_set("out of memory");
    tr_confusion_counts(o, cm);
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
        json_object_set_new(t, "test", json_null()); /* replaced below when the task has a test split */
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
    return run_write_json(tr->pl, "metrics.json", root, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
}
