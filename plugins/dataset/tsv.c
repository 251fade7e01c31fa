/* tsv.c — dataset: GLUE-style TSV, a header line naming the columns, then
 * one row per line; the text and label columns are chosen by name. */
#include <stdio.h>
#include <string.h>

#include "runner/kit/rows.h"
#include "runner/runner.h"

#define MAX_FIELDS 64

typedef struct tsv {
    const runner_host *h;
    const char *text_field, *label_field;
} tsv;

static const runner_key keys[] = {
    {"text_field", RUNNER_T_STRING, "\"sentence\"", "column (header name) holding the text", NULL},
    {"label_field", RUNNER_T_STRING, "\"label\"", "column (header name) holding the label", NULL},
    {0},
};

static int create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    tsv *t = h->calloc(1, sizeof *t);
    if (!t)
        return h->error(h, "out of memory");
    t->h = h;
    t->text_field = "sentence";
    t->label_field = "label";
    if (h->cfg_string(cfg, "text_field", &t->text_field) < 0 ||
        h->cfg_string(cfg, "label_field", &t->label_field) < 0) {
        h->free(t);
        return -1;
    }
    *self = t;
    return 0;
}

static void destroy(void *self)
{
    tsv *t = self;
    if (t)
        t->h->free(t);
}

/* Column index of name among the header's fields, or -1. */
static int column(const char *name, const char *const *f, const size_t *fl, int n)
{
    for (int i = 0; i < n; i++) {
        const char *c = f[i];
        size_t cn = fl[i];
        txt_trim(&c, &cn);
        if (strlen(name) == cn && strncmp(c, name, cn) == 0)
            return i;
    }
    return -1;
}

static int no_column(const runner_host *h, const txt_reader *r, const char *name, const char *const *f,
                     const size_t *fl, int n)
{
    char cols[512] = "";
    size_t used = 0;
    for (int i = 0; i < n && used < sizeof cols; i++)
        used += (size_t)snprintf(cols + used, sizeof cols - used, "%s'%.*s'", i ? ", " : "", (int)fl[i], f[i]);
    return h->error(h, "%s:%ld: no column '%s' in the header (columns: %s)", r->path, r->line, name, cols);
}

/* One data line into R (or a bad row). */
static int row(const tsv *t, runner_rows *R, const txt_reader *r, int ncol, int tcol, int lcol)
{
    const char *f[MAX_FIELDS];
    size_t fl[MAX_FIELDS];
    int nf = txt_split(r->s, r->len, "\t", 1, f, fl, MAX_FIELDS);
    if (nf != ncol)
        return rows_bad(R, r->path, r->line, "expected %d tab-separated fields, got %d", ncol, nf);
    const char *tx = f[tcol], *l = f[lcol];
    size_t tn = fl[tcol], ln = fl[lcol];
    txt_trim(&tx, &tn);
    txt_trim(&l, &ln);
    if (!tn || !ln)
        return rows_bad(R, r->path, r->line, "missing %s (column '%s' is empty)", !tn ? "text" : "label",
                        !tn ? t->text_field : t->label_field);
    return rows_add(R, r->path, r->line, tx, tn, l, ln);
}

static int read_tsv(void *self, const char *path, runner_rows *R)
{
    const tsv *t = self;
    const runner_host *h = t->h;
    txt_reader r;
    const char *f[MAX_FIELDS];
    size_t fl[MAX_FIELDS];
    int got, rc = -1;
    rows_kind(R, ROWS_LABELS);
    if (txt_open(&r, path) != 0)
        return -1;
    while ((got = txt_next(&r)) == 1 && r.len == 0) {
    }
    if (got <= 0) {
        if (got == 0)
            h->error(h, "%s: empty file, expected a header line naming the columns", path);
        goto done;
    }
    int ncol = txt_split(r.s, r.len, "\t", 1, f, fl, MAX_FIELDS);
    if (ncol > MAX_FIELDS) {
        h->error(h, "%s:%ld: %d columns; at most %d are read", path, r.line, ncol, MAX_FIELDS);
        goto done;
    }
    int tcol = column(t->text_field, f, fl, ncol), lcol = column(t->label_field, f, fl, ncol);
    if (tcol < 0 || lcol < 0) {
        no_column(h, &r, tcol < 0 ? t->text_field : t->label_field, f, fl, ncol);
        goto done;
    }
    while (!rows_full(R) && (got = txt_next(&r)) == 1)
        if (r.len && row(t, R, &r, ncol, tcol, lcol) != 0)
            goto done;
    rc = got < 0 ? -1 : 0;
done:
    txt_close(&r);
    return rc;
}

static const runner_dataset_ops ops = {.read = read_tsv};

RUNNER_DEFINE_PLUGIN(dataset, tsv,
    "GLUE-style TSV: a header naming the columns, text_field and label_field chosen by name",
    keys, create, destroy, &ops)
