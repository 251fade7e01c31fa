/* rows.c — the row sink of dataset plugins (see rows.h): texts made valid
 * UTF-8, raw labels and tags interned, bad rows and notes. */
#include "runner/kit/rows.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner/kit/util.h"

static int grow_array(void **p, size_t n, size_t elem)
{
    void *q = realloc(*p, (n ? n : 1) * elem);
    if (!q)
        return err_set("out of memory (%zu entries)", n);
    *p = q;
    return 0;
}
#define GROW(ptr, n) grow_array((void **)&(ptr), (n), sizeof *(ptr))

/* ---- interned strings --------------------------------------------------------- */

static size_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return (size_t)h;
}

/* Lengths are compared first: a string with NUL bytes never reads past an
 * entry. */
static int strtab_find(const rows_strtab *t, const char *s, size_t n)
{
    if (!t->nslot)
        return -1;
    size_t m = t->nslot - 1;
    for (size_t h = hash_bytes(s, n) & m; t->slot[h] >= 0; h = (h + 1) & m) {
        int i = t->slot[h];
        if (t->len[i] == n && memcmp(t->s[i], s, n) == 0)
            return i;
    }
    return -1;
}

static int strtab_rehash(rows_strtab *t, size_t nslot)
{
    int *slot = malloc(nslot * sizeof *slot);
    if (!slot)
        return err_set("out of memory");
    for (size_t i = 0; i < nslot; i++)
        slot[i] = -1;
    for (int i = 0; i < t->n; i++) {
        size_t h = hash_bytes(t->s[i], t->len[i]) & (nslot - 1);
        while (slot[h] >= 0)
            h = (h + 1) & (nslot - 1);
        slot[h] = i;
    }
    free(t->slot);
    t->slot = slot;
    t->nslot = nslot;
    return 0;
}

/* Id of s, added when new; -1 on failure. */
static int strtab_intern(rows_strtab *t, const char *s, size_t n)
{
    int id = strtab_find(t, s, n);
    if (id >= 0)
        return id;
    if ((size_t)(t->n + 1) * 2 > t->nslot && strtab_rehash(t, t->nslot ? 2 * t->nslot : 64) != 0)
        return -1;
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 16;
        if (GROW(t->s, (size_t)cap) != 0 || GROW(t->len, (size_t)cap) != 0)
            return -1;
        t->cap = cap;
    }
    char *c = malloc(n + 1);
    if (!c)
        return err_set("out of memory");
    memcpy(c, s, n);
    c[n] = 0;
    t->s[t->n] = c;
    t->len[t->n] = n;
    size_t h = hash_bytes(s, n) & (t->nslot - 1);
    while (t->slot[h] >= 0)
        h = (h + 1) & (t->nslot - 1);
    t->slot[h] = t->n;
    return t->n++;
}

static void strtab_free(rows_strtab *t)
{
    for (int i = 0; i < t->n; i++)
        free(t->s[i]);
    free(t->s);
    free(t->len);
    free(t->slot);
    memset(t, 0, sizeof *t);
}

/* ---- the sink --------------------------------------------------------------------- */

void rows_init(runner_rows *R, int skip)
{
    memset(R, 0, sizeof *R);
    R->skip = skip;
    R->left = -1;
}

void rows_free(runner_rows *R)
{
    if (!R)
        return;
    free(R->text.p);
    free(R->start);
    free(R->len);
    free(R->line);
    free(R->label);
    free(R->tag_off);
    free(R->tags);
    free(R->text2.p);
    free(R->start2);
    free(R->len2);
    free(R->score);
    strtab_free(&R->labtab);
    strtab_free(&R->tagtab);
    free(R->label_file);
    free(R->tag_file);
    for (int i = 0; i < R->n_classes; i++)
        free(R->classes[i]);
    free(R->classes);
    for (int i = 0; i < R->n_notes; i++)
        free(R->notes[i]);
    memset(R, 0, sizeof *R);
}

void rows_kind(runner_rows *R, unsigned what) { R->what = what; }

static int set_name(char **dst, const char *src)
{
    if (!src || (*dst && strcmp(*dst, src) == 0))
        return 0;
    free(*dst);
    return (*dst = str_dup(src)) ? 0 : err_set("out of memory");
}

int rows_files(runner_rows *R, const char *label_file, const char *tag_file)
{
    return set_name(&R->label_file, label_file) || set_name(&R->tag_file, tag_file) ? -1 : 0;
}

int rows_classes(runner_rows *R, const char *const *names, int n, int base)
{
    if (R->classes)
        return 0;
    if (!(R->classes = calloc((size_t)n + 1, sizeof *R->classes)))
        return err_set("out of memory");
    for (R->n_classes = 0; R->n_classes < n; R->n_classes++)
        if (!(R->classes[R->n_classes] = str_dup(names[R->n_classes])))
            return err_set("out of memory");
    R->class_base = base;
    return 0;
}

static void note_v(runner_rows *R, const char *fmt, va_list ap)
{
    if (R->n_notes == ROWS_MAX_NOTES)
        return;
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    R->notes[R->n_notes] = str_dup(msg); /* a note lost to memory pressure only drops its text */
    if (R->notes[R->n_notes])
        R->n_notes++;
}

void rows_note(runner_rows *R, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    note_v(R, fmt, ap);
    va_end(ap);
}

int rows_bad(runner_rows *R, const char *file, long line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!R->skip)
        return err_set("%s:%ld: %s", file, line, msg);
    R->bad++;
    rows_note(R, "%s:%ld: %s", file, line, msg);
    return 0;
}

int rows_full(const runner_rows *R) { return R->left == 0; }

int rows_tag(runner_rows *R, const char *tag, size_t n)
{
    int id = strtab_intern(&R->tagtab, tag, n);
    if (id < 0)
        return -1;
    if (R->ntags == R->tagcap) {
        size_t cap = R->tagcap ? 2 * R->tagcap : 4096;
        if (GROW(R->tags, cap) != 0)
            return -1;
        R->tagcap = cap;
    }
    R->tags[R->ntags++] = id;
    return 0;
}

void rows_drop_tags(runner_rows *R) { R->ntags = R->tag_off ? (size_t)R->tag_off[R->n] : 0; }

static int rows_grow(runner_rows *R, const char *file)
{
    size_t cap = R->cap ? 2 * (size_t)R->cap : 1024;
    if (cap > INT_MAX)
        return err_set("%s: more than %d rows", file, INT_MAX);
    if (GROW(R->start, cap) || GROW(R->len, cap) || GROW(R->line, cap) || GROW(R->label, cap) ||
        GROW(R->tag_off, cap + 1) || GROW(R->start2, cap) || GROW(R->len2, cap) || GROW(R->score, cap))
        return -1;
    if (!R->cap)
        R->tag_off[0] = 0;
    R->cap = (int)cap;
    return 0;
}

/* Text made valid UTF-8 (a repaired byte counted and noted) and
 * NUL-terminated into b at *start, *len bytes. */
static int text_add(runner_rows *R, txt_buf *b, const char *file, long line, const char *s, size_t n, size_t *start,
                    size_t *len)
{
    size_t at = b->n;
    int repaired = 0;
    if (txt_utf8_append(b, s, n, &repaired) != 0 || txt_buf_add(b, "", 1) != 0)
        return -1;
    if (repaired) {
        R->repaired++;
        rows_note(R, "%s:%ld: invalid UTF-8 byte 0x%02X replaced by U+FFFD", file, line, repaired);
    }
    *start = at;
    *len = b->n - at - 1;
    return 0;
}

int rows_add(runner_rows *R, const char *file, long line, const char *text, size_t n, const char *label,
             size_t label_len)
{
    if (R->n == R->cap && rows_grow(R, file) != 0)
        return -1;
    if (R->left == 0 || (R->accept && !R->accept(R->accept_ctx))) {
        rows_drop_tags(R);
        return 0;
    }
    int id = 0;
    if ((R->what & ROWS_LABELS) && (id = strtab_intern(&R->labtab, label ? label : "", label ? label_len : 0)) < 0)
        return -1;
    if (text_add(R, &R->text, file, line, text, n, &R->start[R->n], &R->len[R->n]) != 0)
        return -1;
    R->line[R->n] = line;
    R->label[R->n] = id;
    R->tag_off[R->n + 1] = (int64_t)R->ntags;
    R->n++;
    if (R->left > 0)
        R->left--;
    return 0;
}

int rows_add_pair(runner_rows *R, const char *file, long line, const char *a, size_t an, const char *b, size_t bn,
                  double score)
{
    int i = R->n;
    if (rows_add(R, file, line, a, an, NULL, 0) != 0)
        return -1;
    if (R->n == i) /* not taken: limit reached or held out */
        return 0;
    R->score[i] = score;
    return text_add(R, &R->text2, file, line, b, bn, &R->start2[i], &R->len2[i]);
}
