/* drive_predict.c — `run = "predict"` (Task 2): the multi-task model on
 * the sentences of `input`: for every sentence and task, the predicted
 * label and its probability (token tasks: a tag per word). With
 * `checkpoint` (a trained run's best/ or last/ folder) the trained heads
 * and backbone are loaded and label names come from it; without one the
 * heads are freshly initialised and the output only shows the shapes.
 * Writes predictions.csv (RFC 4180: id, text, per task label and
 * probability) or, with output.format = "jsonl", predictions.jsonl; with
 * output.stdout = "jsonl" (--jsonl) stdout carries the JSON Lines only. */
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "drivers.h"
#include "model.h"
#include "run.h"
#include "runner/kit/util.h"
#include "textout.h"

struct pred_out {
    const model *m;
    const lines *L;
    int32_t **label;
    float **prob;
    int64_t *word_off;
};

static const char *name_of(const task *t, int32_t id)
{
    return id >= 0 && id < t->train.ds.n_names ? t->train.ds.names[id] : "-";
}

static void put_csv(FILE *f, const char *s)
{
    csv_field(f, s, strlen(s));
}

/* A token task's tags of sentence i, space-separated (CSV) or as a JSON
 * array. */
static void put_tags(FILE *f, const struct pred_out *o, int k, int i, int json)
{
    const task *t = &o->m->t[k];
    size_t len = 0;
    for (int64_t w = o->word_off[i]; w < o->word_off[i + 1]; w++)
        len += strlen(name_of(t, o->label[k][w])) + 1;
    char *buf = malloc(len + 1), *at = buf;
    for (int64_t w = o->word_off[i]; buf && w < o->word_off[i + 1]; w++) {
        const char *n = name_of(t, o->label[k][w]);
        if (json) {
            fputs(w > o->word_off[i] ? ", " : "[", f);
            json_text(f, n, strlen(n));
        }
        at += sprintf(at, "%s%s", w > o->word_off[i] ? " " : "", n);
    }
    if (json)
        fputs(o->word_off[i] == o->word_off[i + 1] ? "[]" : "]", f);
    else if (buf)
        csv_field(f, buf, (size_t)(at - buf));
    free(buf);
}

/* CSV (RFC 4180): id, text, per task its label and probability (token
 * tasks: the tags, space-separated, and an empty probability). */
static int write_csv(FILE *f, void *ctx)
{
    const struct pred_out *o = ctx;
    fprintf(f, "id,text");
    for (int k = 0; k < o->m->ntasks; k++) {
        fputc(',', f);
        put_csv(f, o->m->t[k].name);
        fputc(',', f);
        char *p = str_printf("%s_probability", o->m->t[k].name);
        if (p)
            put_csv(f, p);
        free(p);
    }
    fputs("\r\n", f);
    for (int i = 0; i < o->L->n; i++) {
        fprintf(f, "%d,", i);
        csv_field(f, o->L->data + o->L->start[i], o->L->len[i]);
        for (int k = 0; k < o->m->ntasks; k++) {
            fputc(',', f);
            if (o->m->t[k].per_token) {
                put_tags(f, o, k, i, 0);
                fputc(',', f);
                continue;
            }
            put_csv(f, name_of(&o->m->t[k], o->label[k][i]));
            fprintf(f, ",%.4f", o->prob[k][i]);
        }
        fputs("\r\n", f);
    }
    return ferror(f) ? err_set("write error") : 0;
}

/* JSON Lines: {"id", "text", <task>: {"label", "probability"} or [tags]}. */
static int write_jsonl(FILE *f, void *ctx)
{
    const struct pred_out *o = ctx;
    for (int i = 0; i < o->L->n; i++) {
        fprintf(f, "{\"id\": %d, \"text\": ", i);
        json_text(f, o->L->data + o->L->start[i], o->L->len[i]);
        for (int k = 0; k < o->m->ntasks; k++) {
            const task *t = &o->m->t[k];
            fputs(", ", f);
            json_text(f, t->name, strlen(t->name));
            fputs(": ", f);
            if (t->per_token) {
                put_tags(f, o, k, i, 1);
                continue;
            }
            fputs("{\"label\": ", f);
            json_text(f, name_of(t, o->label[k][i]), strlen(name_of(t, o->label[k][i])));
            fprintf(f, ", \"probability\": %.4f}", o->prob[k][i]);
        }
        fputs("}\n", f);
    }
    return ferror(f) ? err_set("write error") : 0;
}

static void print_text(const struct pred_out *o)
{
    for (int i = 0; i < o->L->n; i++) {
        printf("%.*s\n", (int)o->L->len[i], o->L->data + o->L->start[i]);
        for (int k = 0; k < o->m->ntasks; k++) {
            const task *t = &o->m->t[k];
            if (!t->per_token) {
                printf("  %-12s %-16s p = %.3f\n", t->name, name_of(t, o->label[k][i]), o->prob[k][i]);
                continue;
            }
            printf("  %-12s", t->name);
            for (int64_t w = o->word_off[i]; w < o->word_off[i + 1]; w++)
                printf(" %s", name_of(t, o->label[k][w]));
            printf("\n");
        }
    }
}

/* Whitespace words of each line (the tokenizer's word index counts them). */
static int count_words(const lines *L, int64_t **off)
{
    *off = malloc(((size_t)L->n + 1) * sizeof **off);
    if (!*off)
        return err_set("out of memory");
    int64_t total = 0;
    for (int i = 0; i < L->n; i++) {
        (*off)[i] = total;
        const char *s = L->data + L->start[i];
        int in = 0;
        for (size_t c = 0; c < L->len[i]; c++) {
            int space = s[c] == ' ' || s[c] == '\t' || s[c] == '\n' || s[c] == '\r';
            if (!space && !in)
                total++;
            in = !space;
        }
    }
    (*off)[L->n] = total;
    return 0;
}

int drive_predict(pipeline *pl)
{
    model m;
    lines L = {0};
    encoded e = {0};
    int64_t *word_off = NULL;
    int32_t **label = NULL;
    float **prob = NULL;
    char *path = NULL;
    int rc = -1;
    const char *input = cfg_str(pl, "input");
    const char *ckpt_set = cfg_str(pl, "checkpoint");
    char *ckpt = ckpt_set ? checkpoint_resolve(ckpt_set) : NULL;
    if (!input)
        return err_set("%s: `input` (a file of sentences) is not set", pl->file);
    if (ckpt_set && !ckpt)
        return err_set("checkpoint %s: no model.safetensors there", ckpt_set);
    if (lines_read(input, &L) != 0) { /* before the model: a bad input fails at once */
        free(ckpt);
        return -1;
    }
    if (model_open(pl, &m, 0, ckpt) != 0)
        goto done;
    if (encoder_load(pl, &m.enc, 0) != 0)
        goto done;
    if (ckpt) {
        int missing = 0;
        if (checkpoint_load_params(ckpt, &pl->P, 1, &missing) != 0)
            goto done;
        if (missing)
            pipeline_log(pl, RUNNER_LOG_WARN, "%s lacks %d of the model's tensors: they keep their initial values",
                         ckpt, missing);
    } else {
        pipeline_log(pl, RUNNER_LOG_WARN, "no `checkpoint`: the heads are untrained, predictions are arbitrary "
                                          "(train with pipelines/task4.cfg, then --set checkpoint=RUN/best)");
    }
    if (encoder_prepare(&m.enc) != 0 || encode_lines(m.enc.tok, &L, &e) != 0 ||
        count_words(&L, &word_off) != 0)
        goto done;
    label = calloc((size_t)m.ntasks, sizeof *label);
    prob = calloc((size_t)m.ntasks, sizeof *prob);
    if (!label || !prob) {
        err_set("out of memory");
        goto done;
    }
    for (int k = 0; k < m.ntasks; k++) {
        int64_t n = m.t[k].per_token ? word_off[L.n] : L.n;
        label[k] = malloc(((size_t)n + 1) * sizeof **label);
        prob[k] = malloc(((size_t)n + 1) * sizeof **prob);
        if (!label[k] || !prob[k]) {
            err_set("out of memory");
            goto done;
        }
        if (model_predict_sentences(&m, &e, k, label[k], prob[k], word_off) != 0)
            goto done;
    }
    struct pred_out o = {&m, &L, label, prob, word_off};
    if (stdout_jsonl(pl)) {
        if (write_jsonl(stdout, &o) != 0 || fflush(stdout) != 0)
            goto done;
    } else {
        print_text(&o);
    }
    int jsonl = output_jsonl(pl);
    path = run_path(pl, jsonl ? "predictions.jsonl" : "predictions.csv");
    if (!path || file_write_atomic_with(path, jsonl ? write_jsonl : write_csv, &o) != 0)
        goto done;
    rc = 0;
done:
    for (int k = 0; label && k < m.ntasks; k++)
        free(label[k]);
    for (int k = 0; prob && k < m.ntasks; k++)
        free(prob[k]);
    free(label);
    free(prob);
    free(word_off);
    free(path);
    free(ckpt);
    encoded_free(&e);
    lines_free(&L);
    model_close(&m);
    return rc;
}
