/* conll.c — dataset: CoNLL-2003, "word POS chunk NER" per line, a blank
 * line after each sentence, -DOCSTART- lines between documents; target =
 * "ner", "pos" or "chunk" (the word tags the task predicts). */
#include <string.h>

#include "runner/kit/rows.h"
#include "runner/runner.h"

typedef struct conll {
    const runner_host *h;
    int column; /* of the target's tags */
} conll;

static const runner_key keys[] = {
    {"target", RUNNER_T_STRING, "\"ner\"", "which tags: ner, pos or chunk", "ner|pos|chunk"},
    {0},
};

static int create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    const char *target = "ner";
    if (h->cfg_string(cfg, "target", &target) < 0)
        return -1;
    conll *t = h->calloc(1, sizeof *t);
    if (!t)
        return h->error(h, "out of memory");
    t->h = h;
    t->column = strcmp(target, "pos") == 0 ? 1 : strcmp(target, "chunk") == 0 ? 2 : 3;
    *self = t;
    return 0;
}

static void destroy(void *self)
{
    conll *t = self;
    if (t)
        t->h->free(t);
}

/* One word line into the open sentence; 1 when the line is bad. */
static int word_line(const conll *c, runner_rows *R, const txt_reader *r, const char *p, size_t n,
                     txt_buf *text)
{
    size_t wn[5];
    const char *w[5], *q = p;
    int nf = 0;
    while (nf < 5 && txt_next_word(&q, p + n, &w[nf], &wn[nf]))
        nf++;
    if (nf != 4)
        return rows_bad(R, r->path, r->line, "expected 4 space-separated columns (word POS chunk NER), got %d%s",
                        nf, nf == 5 ? " or more" : "") != 0 ? -1 : 1;
    if ((text->n && txt_buf_add(text, " ", 1) != 0) || txt_buf_add(text, w[0], wn[0]) != 0 ||
        rows_tag(R, w[c->column], wn[c->column]) != 0)
        return -1;
    return 0;
}

static int read_conll(void *self, const char *path, runner_rows *R)
{
    txt_reader r;
    txt_buf text = {0};
    long first = 0; /* line of the sentence's first word, 0: no sentence open */
    int got, bad = 0, rc = -1;
    rows_kind(R, ROWS_TAGS | ROWS_TAG_TARGET);
    if (txt_open(&r, path) != 0 || txt_buf_add(&text, "", 0) != 0)
        goto done;
    do {
        if ((got = txt_next(&r)) < 0)
            goto done;
        const char *p = got ? r.s : "";
        size_t n = got ? r.len : 0;
        txt_trim(&p, &n);
        int docstart = n >= 10 && strncmp(p, "-DOCSTART-", 10) == 0 && (n == 10 || txt_is_space(p[10]));
        if (n == 0 || docstart) { /* end of a sentence */
            if (first && !bad && rows_add(R, path, first, text.p, text.n, NULL, 0) != 0)
                goto done;
            if (bad)
                rows_drop_tags(R);
            first = 0;
            bad = 0;
            text.n = 0;
            continue;
        }
        if (!first)
            first = r.line;
        if (!bad && (bad = word_line(self, R, &r, p, n, &text)) < 0)
            goto done;
    } while (got);
    rc = 0;
done:
    txt_buf_free(&text);
    txt_close(&r);
    return rc;
}

static const runner_dataset_ops ops = {.read = read_conll};

RUNNER_DEFINE_PLUGIN(dataset, conll,
    "CoNLL-2003: word POS chunk NER per line, blank line between sentences; target ner, pos or chunk",
    keys, create, destroy, &ops)
