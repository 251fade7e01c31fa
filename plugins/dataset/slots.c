/* slots.c — dataset: the SNIPS/ATIS folder layout, seq.in (words),
 * seq.out (one tag per word) and label (the intent), line by line. A
 * `path` folder with train/, valid/ (and test/) holds the splits.
 * target = "intent" (sentence label) or "slots" (word tags); intents and
 * tags are both kept whatever the target, so both targets keep the same
 * rows. */
#include <stdlib.h>
#include <string.h>

#include "runner/kit/rows.h"
#include "runner/kit/util.h"
#include "runner/runner.h"

typedef struct slots {
    const runner_host *h;
    int tags;
} slots;

static const char *const names[3] = {"seq.in", "seq.out", "label"};
static const char *const folders[] = {"train", "valid", "test", NULL};

static const runner_key keys[] = {
    {"target", RUNNER_T_STRING, "\"intent\"", "which labels: intent (per sentence) or slots (per word)",
     "intent|slots"},
    {0},
};

static int create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    const char *target = "intent";
    if (h->cfg_string(cfg, "target", &target) < 0)
        return -1;
    slots *t = h->calloc(1, sizeof *t);
    if (!t)
        return h->error(h, "out of memory");
    t->h = h;
    t->tags = strcmp(target, "slots") == 0;
    *self = t;
    return 0;
}

static void destroy(void *self)
{
    slots *t = self;
    if (t)
        t->h->free(t);
}

/* The aligned lines of the three files into one row (or a bad row). */
static int aligned_row(runner_rows *R, txt_reader *r, txt_buf *text)
{
    long line = r[0].line;
    int nw = txt_count_words(r[0].s, r[0].len), nt = txt_count_words(r[1].s, r[1].len);
    const char *intent = r[2].s;
    size_t in = r[2].len;
    txt_trim(&intent, &in);
    if (nw == 0)
        return rows_bad(R, r[0].path, line, "empty sentence");
    if (nw != nt)
        return rows_bad(R, r[1].path, line, "seq.in has %d words but seq.out has %d tags", nw, nt);
    if (!in)
        return rows_bad(R, r[2].path, line, "missing intent label");
    const char *p = r[0].s, *w, *t = r[1].s;
    size_t wn, tn;
    text->n = 0;
    if (txt_buf_add(text, "", 0) != 0)
        return -1;
    while (txt_next_word(&p, r[0].s + r[0].len, &w, &wn))
        if ((text->n && txt_buf_add(text, " ", 1) != 0) || txt_buf_add(text, w, wn) != 0)
            return -1;
    while (txt_next_word(&t, r[1].s + r[1].len, &w, &tn))
        if (rows_tag(R, w, tn) != 0)
            return -1;
    return rows_add(R, r[0].path, line, text->p, text->n, intent, in);
}

static int read_slots(void *self, const char *dir, runner_rows *R)
{
    const slots *s = self;
    txt_reader r[3];
    char *path[3] = {0};
    txt_buf text = {0};
    int rc = -1, got[3];
    rows_kind(R, ROWS_LABELS | ROWS_TAGS | (s->tags ? ROWS_TAG_TARGET : 0));
    memset(r, 0, sizeof r);
    for (int k = 0; k < 3; k++)
        if (!(path[k] = str_printf("%s/%s", dir, names[k]))) {
            s->h->error(s->h, "out of memory");
            goto done;
        }
    for (int k = 0; k < 3; k++)
        if (txt_open(&r[k], path[k]) != 0)
            goto done;
    if (rows_files(R, path[2], path[1]) != 0)
        goto done;
    for (;;) {
        for (int k = 0; k < 3; k++)
            if ((got[k] = txt_next(&r[k])) < 0)
                goto done;
        if (!got[0] && !got[1] && !got[2])
            break;
        if (!got[0] || !got[1] || !got[2]) {
            int short_k = !got[0] ? 0 : !got[1] ? 1 : 2, long_k = got[0] ? 0 : got[1] ? 1 : 2;
            s->h->error(s->h, "%s/%s has %ld lines but %s has more: the files must align line by line", dir,
                        names[short_k], r[short_k].line, names[long_k]);
            goto done;
        }
        if (aligned_row(R, r, &text) != 0)
            goto done;
    }
    rc = 0;
done:
    for (int k = 0; k < 3; k++) {
        txt_close(&r[k]);
        free(path[k]);
    }
    txt_buf_free(&text);
    return rc;
}

static const runner_dataset_ops ops = {.read = read_slots, .folders = folders};

RUNNER_DEFINE_PLUGIN(dataset, slots,
    "SNIPS/ATIS folders: seq.in, seq.out, label; target intent or slots",
    keys, create, destroy, &ops)
