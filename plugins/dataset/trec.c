/* trec.c — dataset: TREC question classification, "COARSE:fine question"
 * per line; target = "coarse" (6 classes) or "fine" (COARSE:fine). */
#include <string.h>

#include "runner/kit/rows.h"
#include "runner/runner.h"

typedef struct trec {
    const runner_host *h;
    int fine;
} trec;

static const runner_key keys[] = {
    {"target", RUNNER_T_STRING, "\"coarse\"", "which labels: coarse (ABBR, DESC, ...) or fine (DESC:def, ...)",
     "coarse|fine"},
    {0},
};

static int create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    const char *target = "coarse";
    if (h->cfg_string(cfg, "target", &target) < 0)
        return -1;
    trec *t = h->calloc(1, sizeof *t);
    if (!t)
        return h->error(h, "out of memory");
    t->h = h;
    t->fine = strcmp(target, "fine") == 0;
    *self = t;
    return 0;
}

static void destroy(void *self)
{
    trec *t = self;
    if (t)
        t->h->free(t);
}

static int line_row(const trec *t, runner_rows *R, const txt_reader *r)
{
    const char *sp = memchr(r->s, ' ', r->len);
    const char *colon = sp ? memchr(r->s, ':', (size_t)(sp - r->s)) : NULL;
    const char *q = sp ? sp + 1 : r->s + r->len;
    size_t qn = (size_t)(r->s + r->len - q);
    txt_trim(&q, &qn);
    if (!sp || !colon || colon == r->s || colon + 1 == sp || !qn)
        return rows_bad(R, r->path, r->line, "expected 'COARSE:fine question', got '%.60s'", r->s);
    size_t ln = t->fine ? (size_t)(sp - r->s) : (size_t)(colon - r->s);
    return rows_add(R, r->path, r->line, q, qn, r->s, ln);
}

static int read_trec(void *self, const char *path, runner_rows *R)
{
    txt_reader r;
    int got, rc = -1;
    rows_kind(R, ROWS_LABELS);
    if (txt_open(&r, path) != 0)
        return -1;
    while ((got = txt_next(&r)) == 1)
        if (r.len && line_row(self, R, &r) != 0)
            goto done;
    rc = got < 0 ? -1 : 0;
done:
    txt_close(&r);
    return rc;
}

static const runner_dataset_ops ops = {.read = read_trec};

RUNNER_DEFINE_PLUGIN(dataset, trec,
    "TREC questions: \"COARSE:fine question\" per line, target coarse or fine",
    keys, create, destroy, &ops)
