/* text.c — sentence files, token ids and padded batches. */
#include "text.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runner/kit/util.h"
#include "signals.h"

/* All of stdin (NUL appended, not counted). Waits in poll() so that a
 * SIGINT/SIGTERM (handled with SA_RESTART) still ends a blocked read. */
static int stdin_read(char **data, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (!buf)
            return err_set("stdin: out of memory");
        struct pollfd pfd = {0, POLLIN, 0};
        if (signals_caught()) {
            free(buf);
            return err_set("stdin: stopped by %s while reading", signal_label(signals_caught()));
        }
        int ready = poll(&pfd, 1, 200);
        if (ready < 0 && errno != EINTR) {
            free(buf);
            return err_set("stdin: %s", strerror(errno));
        }
        if (ready <= 0)
            continue;
        ssize_t got = read(0, buf + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            free(buf);
            return err_set("stdin: %s", strerror(errno));
        }
        if (got == 0)
            break;
        n += (size_t)got;
        if (n == cap) {
            char *more = realloc(buf, 2 * cap + 1);
            if (!more)
                free(buf);
            buf = more;
            cap *= 2;
        }
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return 0;
}

int lines_read(const char *path, lines *out)
{
    memset(out, 0, sizeof *out);
    size_t size;
    if (strcmp(path, "-") == 0 ? stdin_read(&out->data, &size) != 0 : file_read(path, &out->data, &size) != 0)
        return -1;
    int cap = 0;
    size_t at = 0;
    while (at < size) {
        const char *nl = memchr(out->data + at, '\n', size - at);
        size_t end = nl ? (size_t)(nl - out->data) : size;
        size_t len = end - at;
        if (len && out->data[at + len - 1] == '\r')
            len--;
        if (out->n == cap) {
            cap = cap ? 2 * cap : 1024;
            size_t *s = realloc(out->start, (size_t)cap * sizeof *s);
            size_t *l = s ? realloc(out->len, (size_t)cap * sizeof *l) : NULL;
            if (s)
                out->start = s;
            if (!l) {
                lines_free(out);
                return err_set("%s: out of memory", path);
            }
            out->len = l;
        }
        out->start[out->n] = at;
        out->len[out->n] = len;
        out->n++;
        at = end + 1;
    }
    return 0;
}

void lines_free(lines *L)
{
    free(L->data);
    free(L->start);
    free(L->len);
    memset(L, 0, sizeof *L);
}

void encoded_free(encoded *e)
{
    free(e->off);
    free(e->ids);
    free(e->word);
    memset(e, 0, sizeof *e);
}

int encode_texts(stage *tok, int n, const char *const *text, const size_t *len, encoded *out)
{
    const runner_tokenizer_ops *ops = tok->desc->ops;
    memset(out, 0, sizeof *out);
    ops->info(tok->self, &out->info);
    int cap = out->info.max_len;
    size_t total_cap = (size_t)n * 16 + 64, used = 0;
    out->n = n;
    out->off = malloc(((size_t)n + 1) * sizeof *out->off);
    out->ids = malloc(total_cap * sizeof *out->ids);
    out->word = malloc(total_cap * sizeof *out->word);
    if (!out->off || !out->ids || !out->word)
        goto oom;
    for (int i = 0; i < n; i++) {
        if (used + (size_t)cap > total_cap) {
            total_cap = 2 * total_cap + (size_t)cap;
            int32_t *a = realloc(out->ids, total_cap * sizeof *a);
            if (a)
                out->ids = a;
            int32_t *w = a ? realloc(out->word, total_cap * sizeof *w) : NULL;
            if (!w)
                goto oom;
            out->word = w;
        }
        out->off[i] = (int64_t)used;
        int got = 0;
        if (ops->encode(tok->self, text[i], len[i], out->ids + used, out->word + used, cap,
                        &got) != 0) {
            encoded_free(out);
            return err_set("sentence %d: %s", i + 1, err_get());
        }
        used += (size_t)got;
    }
    out->off[n] = (int64_t)used;
    return 0;
oom:
    encoded_free(out);
    return err_set("out of memory encoding %d sentences", n);
}

int encode_lines(stage *tok, const lines *L, encoded *out)
{
    const char **text = malloc(((size_t)L->n + 1) * sizeof *text);
    if (!text)
        return err_set("out of memory");
    for (int i = 0; i < L->n; i++)
        text[i] = L->data + L->start[i];
    int rc = encode_texts(tok, L->n, text, L->len, out);
    free(text);
    return rc;
}

static const encoded *sort_e;
static int by_length_desc(const void *a, const void *b)
{
    int i = *(const int *)a, j = *(const int *)b;
    int64_t li = sort_e->off[i + 1] - sort_e->off[i];
    int64_t lj = sort_e->off[j + 1] - sort_e->off[j];
    if (li != lj)
        return li > lj ? -1 : 1;
    return (i > j) - (i < j); /* stable */
}

int *encoded_order(const encoded *e, int sort)
{
    int *order = malloc(((size_t)e->n + 1) * sizeof *order);
    if (!order)
        return NULL;
    for (int i = 0; i < e->n; i++)
        order[i] = i;
    if (sort) {
        sort_e = e;
        qsort(order, (size_t)e->n, sizeof *order, by_length_desc);
    }
    return order;
}

int batch_fill(batch *bt, const encoded *e, const int *rows, int n)
{
    int T = 1;
    for (int i = 0; i < n; i++) {
        int l = (int)(e->off[rows[i] + 1] - e->off[rows[i]]);
        if (l > T)
            T = l;
    }
    size_t need = (size_t)n * (size_t)T;
    if (need > bt->cap_tokens) {
        free(bt->ids);
        free(bt->type_ids);
        free(bt->word);
        free(bt->mask);
        bt->ids = malloc(need * sizeof *bt->ids);
        bt->type_ids = calloc(need, sizeof *bt->type_ids);
        bt->word = malloc(need * sizeof *bt->word);
        bt->mask = malloc(need);
        bt->cap_tokens = need;
        if (!bt->ids || !bt->type_ids || !bt->word || !bt->mask) {
            bt->cap_tokens = 0;
            return err_set("out of memory for a batch of %d x %d", n, T);
        }
    }
    if (n > bt->cap_rows) {
        free(bt->len);
        free(bt->rows);
        bt->len = malloc((size_t)n * sizeof *bt->len);
        bt->rows = malloc((size_t)n * sizeof *bt->rows);
        bt->cap_rows = n;
        if (!bt->len || !bt->rows) {
            bt->cap_rows = 0;
            return err_set("out of memory for a batch of %d", n);
        }
    }
    for (int i = 0; i < n; i++) {
        int r = rows[i];
        int l = (int)(e->off[r + 1] - e->off[r]);
        int32_t *ids = bt->ids + (size_t)i * T, *word = bt->word + (size_t)i * T;
        uint8_t *mask = bt->mask + (size_t)i * T;
        memcpy(ids, e->ids + e->off[r], (size_t)l * sizeof *ids);
        memcpy(word, e->word + e->off[r], (size_t)l * sizeof *word);
        memset(mask, 1, (size_t)l);
        for (int t = l; t < T; t++) {
            ids[t] = e->info.pad_id;
            word[t] = -1;
            mask[t] = 0;
        }
        bt->len[i] = l;
        bt->rows[i] = r;
    }
    bt->b = (runner_batch){n, T, bt->ids, bt->type_ids, bt->mask, bt->word, bt->len};
    return 0;
}

void batch_free(batch *bt)
{
    free(bt->ids);
    free(bt->type_ids);
    free(bt->word);
    free(bt->mask);
    free(bt->len);
    free(bt->rows);
    memset(bt, 0, sizeof *bt);
}
