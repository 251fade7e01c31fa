/* delimited.c — dataset: delimited text in any shape. One file with a
 * text and a label per line, split at a delimiter (any string: "\t", ",",
 * "@"): the label is split off at the last delimiter (split = "last",
 * "text@label") or the first ("label<TAB>text"), or chosen by column
 * (text_column, label_column: a header name or a 0-based index) with
 * optional CSV quoting; or two aligned files, text_file and label_file,
 * one line each per example. encoding = "latin-1" reads ISO-8859-1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runner/kit/rows.h"
#include "runner/kit/util.h"
#include "runner/runner.h"

#define MAX_FIELDS 256

typedef struct delimited {
    const runner_host *h;
    const char *delim, *text_col, *label_col, *text_file, *label_file;
    size_t dn;
    int split_first, header, latin1, quote;
    txt_buf fb, text, label; /* per read: CSV fields, converted text and label */
} delimited;

static const runner_key keys[] = {
    {"delimiter", RUNNER_T_STRING, "\"\\t\"", "what separates the fields: any string (\"\\t\", \",\", \"@\", \" ||| \")",
     NULL},
    {"split", RUNNER_T_STRING, "\"last\"",
     "without columns, where the label is split off: last (text<D>label) or first (label<D>text)", "first|last"},
    {"header", RUNNER_T_BOOL, "false", "the first line names the columns", NULL},
    {"text_column", RUNNER_T_STRING, NULL, "column of the text: a header name or a 0-based index (\"0\")", NULL},
    {"label_column", RUNNER_T_STRING, NULL, "column of the label: a header name or a 0-based index (\"1\")", NULL},
    {"encoding", RUNNER_T_STRING, "\"utf-8\"", "of the files: utf-8 (invalid bytes are bad rows) or latin-1",
     "utf-8|latin-1"},
    {"quote", RUNNER_T_BOOL, "false", "CSV quoting: \"a, b\" is one field, \"\" a quote, fields may span lines",
     NULL},
    {"text_file", RUNNER_T_STRING, NULL,
     "two aligned files: each source + text_file holds one text per line (a folder source: source/text_file)", NULL},
    {"label_file", RUNNER_T_STRING, NULL, "... and source + label_file one label per line", NULL},
    {0},
};

static int create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    delimited *d = h->calloc(1, sizeof *d);
    const char *split = "last", *enc = "utf-8";
    if (!d)
        return h->error(h, "out of memory");
    d->h = h;
    d->delim = "\t";
    if (h->cfg_string(cfg, "delimiter", &d->delim) < 0 || h->cfg_string(cfg, "split", &split) < 0 ||
        h->cfg_bool(cfg, "header", &d->header) < 0 || h->cfg_string(cfg, "text_column", &d->text_col) < 0 ||
        h->cfg_string(cfg, "label_column", &d->label_col) < 0 || h->cfg_string(cfg, "encoding", &enc) < 0 ||
        h->cfg_bool(cfg, "quote", &d->quote) < 0 || h->cfg_string(cfg, "text_file", &d->text_file) < 0 ||
        h->cfg_string(cfg, "label_file", &d->label_file) < 0)
        goto fail;
    d->dn = strlen(d->delim);
    d->split_first = strcmp(split, "first") == 0;
    d->latin1 = strcmp(enc, "latin-1") == 0;
    if (!d->dn && !d->text_file) {
        h->error(h, "delimiter is empty");
        goto fail;
    }
    if (!d->text_file != !d->label_file) {
        h->error(h, "set both text_file and label_file (two aligned files), or neither");
        goto fail;
    }
    if (!d->text_col != !d->label_col) {
        h->error(h, "set both text_column and label_column, or neither (the label is split off by `split`)");
        goto fail;
    }
    *self = d;
    return 0;
fail:
    h->free(d);
    return -1;
}

static void destroy(void *self)
{
    delimited *d = self;
    if (!d)
        return;
    txt_buf_free(&d->fb);
    txt_buf_free(&d->text);
    txt_buf_free(&d->label);
    d->h->free(d);
}

/* s as UTF-8 into b (trimmed): latin-1 converted; utf-8 checked: 1 when
 * it is not valid (*bad: the first bad byte). */
static int as_utf8(const delimited *d, txt_buf *b, const char *s, size_t n, int *bad)
{
    txt_trim(&s, &n);
    b->n = 0;
    if (txt_buf_add(b, "", 0) != 0)
        return -1;
    if (d->latin1)
        return txt_latin1_append(b, s, n);
    size_t at = txt_utf8_bad_at(s, n);
    if (at < n) {
        *bad = (unsigned char)s[at];
        return 1;
    }
    return txt_buf_add(b, s, n);
}

/* One example: text and label into the sink, or a bad row. */
static int example(delimited *d, runner_rows *R, const char *file, long line, const char *t, size_t tn,
                   const char *l, size_t ln)
{
    int bad = 0, e = as_utf8(d, &d->text, t, tn, &bad);
    if (e == 0)
        e = as_utf8(d, &d->label, l, ln, &bad);
    if (e < 0)
        return -1;
    if (e > 0)
        return rows_bad(R, file, line, "invalid UTF-8 (byte 0x%02X); for ISO-8859-1 files set encoding = \"latin-1\"",
                        bad);
    if (!d->text.n || !d->label.n)
        return rows_bad(R, file, line, "missing %s", !d->text.n ? "text" : "label");
    return rows_add(R, file, line, d->text.p, d->text.n, d->label.p, d->label.n);
}

/* Column of name (a header name, else a 0-based index) among the header
 * fields f (nf of them, NULL: no header); -1 when there is none. */
static int column_of(const char *name, const char *const *f, const size_t *fl, int nf)
{
    for (int i = 0; f && i < nf && i < MAX_FIELDS; i++) {
        const char *c = f[i];
        size_t cn = fl[i];
        txt_trim(&c, &cn);
        if (strlen(name) == cn && strncmp(c, name, cn) == 0)
            return i;
    }
    char *end;
    long k = strtol(name, &end, 10);
    return *name && !*end && k >= 0 && k < MAX_FIELDS ? (int)k : -1;
}

/* The fields of a line (or of a CSV record from it on). */
typedef struct fields {
    const char *f[MAX_FIELDS];
    size_t fl[MAX_FIELDS];
    int n;
} fields;

/* 1 fields read; 0 a malformed record (a bad row, noted); -1 error. */
static int line_fields(delimited *d, runner_rows *R, txt_reader *r, fields *F)
{
    long line = r->line;
    if (!d->quote) {
        F->n = txt_split(r->s, r->len, d->delim, d->dn, F->f, F->fl, MAX_FIELDS);
        return 1;
    }
    size_t fs[MAX_FIELDS], fn[MAX_FIELDS];
    const char *why = NULL;
    int rec = txt_csv_record(r, d->delim, d->dn, &d->fb, fs, fn, MAX_FIELDS, &F->n, &why);
    if (rec <= 0)
        return rec < 0 ? -1 : rows_bad(R, r->path, line, "%s", why) != 0 ? -1 : 0;
    for (int i = 0; i < F->n && i < MAX_FIELDS; i++) {
        F->f[i] = d->fb.p + fs[i];
        F->fl[i] = fn[i];
    }
    return 1;
}

/* Text and label of a row split at the first or last delimiter. */
static int split_row(delimited *d, runner_rows *R, const txt_reader *r, long line, const fields *F)
{
    const char *file = r->path;
    if (d->quote || F->n == 2) {
        if (F->n != 2)
            return rows_bad(R, file, line, "expected 2 fields (text and label), got %d", F->n);
        int t = d->split_first;
        return example(d, R, file, line, F->f[t], F->fl[t], F->f[!t], F->fl[!t]);
    }
    if (F->n < 2)
        return rows_bad(R, file, line, "no delimiter '%s': expected %s", d->delim,
                        d->split_first ? "label<delimiter>text" : "text<delimiter>label");
    if (d->split_first) { /* label = the first field, text = the rest of the line */
        const char *t = F->f[0] + F->fl[0] + d->dn;
        return example(d, R, file, line, t, (size_t)(r->s + r->len - t), F->f[0], F->fl[0]);
    }
    const char *l = F->f[F->n - 1];
    return example(d, R, file, line, r->s, (size_t)(l - d->dn - r->s), l, F->fl[F->n - 1]);
}

static int row(delimited *d, runner_rows *R, txt_reader *r, int tcol, int lcol)
{
    fields F;
    long line = r->line;
    int got = line_fields(d, R, r, &F);
    if (got <= 0)
        return got;
    if (tcol < 0)
        return split_row(d, R, r, line, &F);
    int need = (tcol > lcol ? tcol : lcol) + 1;
    if (F.n < need)
        return rows_bad(R, r->path, line, "missing column %d (%s): the row has %d field%s", need - 1,
                        need - 1 == tcol ? "text_column" : "label_column", F.n, F.n == 1 ? "" : "s");
    return example(d, R, r->path, line, F.f[tcol], F.fl[tcol], F.f[lcol], F.fl[lcol]);
}

/* The text and label columns (-1: split off), from the header line when
 * there is one. */
static int columns(delimited *d, runner_rows *R, txt_reader *r, int *tcol, int *lcol)
{
    fields F = {.n = 0};
    int got = 1;
    *tcol = *lcol = -1;
    if (d->header) {
        while ((got = txt_next(r)) == 1 && r->len == 0) {
        }
        if (got <= 0)
            return got < 0 ? -1 : d->h->error(d->h, "%s: empty file, expected a header line", r->path);
        if (line_fields(d, R, r, &F) <= 0)
            return -1;
    }
    if (!d->text_col)
        return 0;
    *tcol = column_of(d->text_col, d->header ? F.f : NULL, F.fl, F.n);
    *lcol = column_of(d->label_col, d->header ? F.f : NULL, F.fl, F.n);
    if (*tcol >= 0 && *lcol >= 0)
        return 0;
    const char *name = *tcol < 0 ? d->text_col : d->label_col;
    if (d->header)
        return d->h->error(d->h, "%s:%ld: no column '%s' in the header (%d columns)", r->path, r->line, name, F.n);
    return d->h->error(d->h, "%s: %s = \"%s\" is not a 0-based column index (header = true lets columns be named)",
                       r->path, *tcol < 0 ? "text_column" : "label_column", name);
}

static int read_one(delimited *d, const char *path, runner_rows *R)
{
    txt_reader r;
    int got = 0, tcol, lcol, rc = -1;
    if (txt_open(&r, path) != 0)
        return -1;
    if (columns(d, R, &r, &tcol, &lcol) != 0)
        goto done;
    while (!rows_full(R) && (got = txt_next(&r)) == 1)
        if (r.len && row(d, R, &r, tcol, lcol) < 0)
            goto done;
    rc = got < 0 ? -1 : 0;
done:
    txt_close(&r);
    return rc;
}

/* source + name: source/name when the source is a folder. */
static char *joined(const char *source, const char *name)
{
    struct stat st;
    int dir = stat(source, &st) == 0 && S_ISDIR(st.st_mode) && source[strlen(source) - 1] != '/';
    return str_printf("%s%s%s", source, dir ? "/" : "", name);
}

/* The aligned lines of the text and label files, example by example. */
static int read_aligned(delimited *d, runner_rows *R, txt_reader *t, txt_reader *l)
{
    int gt, gl;
    for (int first = d->header; !rows_full(R); first = 0) {
        if ((gt = txt_next(t)) < 0 || (gl = txt_next(l)) < 0)
            return -1;
        if (!gt && !gl)
            return 0;
        if (!gt || !gl) {
            txt_reader *s = gt ? l : t, *m = gt ? t : l;
            return d->h->error(d->h, "%s:%ld: %s file ends after %ld lines, but %s has line %ld: text_file and "
                               "label_file must align line by line", s->path, s->line + 1,
                               gt ? "the label" : "the text", s->line, m->path, m->line);
        }
        if (!first && example(d, R, t->path, t->line, t->s, t->len, l->s, l->len) != 0)
            return -1;
    }
    return 0;
}

static int read_two(delimited *d, const char *source, runner_rows *R)
{
    txt_reader t = {0}, l = {0};
    char *tp = joined(source, d->text_file), *lp = joined(source, d->label_file);
    int rc = -1;
    if (!tp || !lp)
        d->h->error(d->h, "out of memory");
    else if (txt_open(&t, tp) == 0 && txt_open(&l, lp) == 0 && rows_files(R, lp, NULL) == 0)
        rc = read_aligned(d, R, &t, &l);
    txt_close(&t);
    txt_close(&l);
    free(tp);
    free(lp);
    return rc;
}

static int read_delimited(void *self, const char *source, runner_rows *R)
{
    delimited *d = self;
    rows_kind(R, ROWS_LABELS);
    return d->text_file ? read_two(d, source, R) : read_one(d, source, R);
}

static const runner_dataset_ops ops = {.read = read_delimited};

RUNNER_DEFINE_PLUGIN(dataset, delimited,
    "delimited text: text and label split at any delimiter, by column (header names or indices, CSV quoting), "
    "or two aligned files; utf-8 or latin-1",
    keys, create, destroy, &ops)
