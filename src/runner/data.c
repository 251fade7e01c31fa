/* data.c — dataset readers. Each format reader turns a file (or the
 * SNIPS/ATIS folder) into rows: text, the line the row starts on, and raw
 * label strings interned in a table. Label maps then fix the ids (from
 * `labels`, or from the training source), unknown labels become bad rows,
 * and a deterministic shuffle (GSL's MT19937, split_seed) picks the
 * held-out share and the `limit` subsample. All reads go through zlib.
 * The rules are written up in docs/data.md. */
#include "data.h"

#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <utf8proc.h>
#include <zlib.h>

#include "config.h"
#include "runner/kit/util.h"

/* ---- small containers ------------------------------------------------------ */

typedef struct buf {
    char *p;
    size_t n, cap; /* p[n] is always 0 once allocated */
} buf;

static int buf_add(buf *b, const void *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return err_set("out of memory (%zu bytes of text)", cap);
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

static int grow_array(void **p, size_t n, size_t elem)
{
    void *q = realloc(*p, (n ? n : 1) * elem);
    if (!q)
        return err_set("out of memory (%zu entries)", n);
    *p = q;
    return 0;
}
#define GROW(ptr, n) grow_array((void **)&(ptr), (n), sizeof *(ptr))

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

static void trim(const char **s, size_t *n)
{
    while (*n && is_space(**s))
        (*s)++, (*n)--;
    while (*n && is_space((*s)[*n - 1]))
        (*n)--;
}

/* Next whitespace-separated word of [*p, end), or 0 when there is none. */
static int next_word(const char **p, const char *end, const char **w, size_t *wn)
{
    const char *s = *p;
    while (s < end && is_space(*s))
        s++;
    if (s == end)
        return 0;
    const char *e = s;
    while (e < end && !is_space(*e))
        e++;
    *w = s;
    *wn = (size_t)(e - s);
    *p = e;
    return 1;
}

static int count_words(const char *s, size_t n)
{
    const char *p = s, *w;
    size_t wn;
    int k = 0;
    while (next_word(&p, s + n, &w, &wn))
        k++;
    return k;
}

/* Interned strings with an open-addressing index. */
typedef struct strtab {
    char **s;
    int n, cap;
    int *slot;
    size_t nslot; /* power of two, > 2n */
} strtab;

static size_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return (size_t)h;
}

static int strtab_find(const strtab *t, const char *s, size_t n)
{
    if (!t->nslot)
        return -1;
    size_t m = t->nslot - 1;
    for (size_t h = hash_bytes(s, n) & m; t->slot[h] >= 0; h = (h + 1) & m) {
        const char *c = t->s[t->slot[h]];
        /* s may hold NUL bytes: never read c past its own end */
        if (strnlen(c, n + 1) == n && memcmp(c, s, n) == 0)
            return t->slot[h];
    }
    return -1;
}

static int strtab_rehash(strtab *t, size_t nslot)
{
    int *slot = malloc(nslot * sizeof *slot);
    if (!slot)
        return err_set("out of memory");
    for (size_t i = 0; i < nslot; i++)
        slot[i] = -1;
    for (int i = 0; i < t->n; i++) {
        size_t h = hash_bytes(t->s[i], strlen(t->s[i])) & (nslot - 1);
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
static int strtab_intern(strtab *t, const char *s, size_t n)
{
    int id = strtab_find(t, s, n);
    if (id >= 0)
        return id;
    if ((size_t)(t->n + 1) * 2 > t->nslot && strtab_rehash(t, t->nslot ? 2 * t->nslot : 64) != 0)
        return -1;
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 16;
        if (GROW(t->s, (size_t)cap) != 0)
            return -1;
        t->cap = cap;
    }
    char *c = malloc(n + 1);
    if (!c)
        return err_set("out of memory");
    memcpy(c, s, n);
    c[n] = 0;
    t->s[t->n] = c;
    size_t h = hash_bytes(s, n) & (t->nslot - 1);
    while (t->slot[h] >= 0)
        h = (h + 1) & (t->nslot - 1);
    t->slot[h] = t->n;
    return t->n++;
}

static void strtab_free(strtab *t)
{
    for (int i = 0; i < t->n; i++)
        free(t->s[i]);
    free(t->s);
    free(t->slot);
    memset(t, 0, sizeof *t);
}

/* ---- messages ----------------------------------------------------------------- */

typedef struct notes {
    char *msg[DATASET_MAX_NOTES];
    int n, bad, repaired;
} notes;

static void note_add(notes *N, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note_add(notes *N, const char *fmt, ...)
{
    if (N->n == DATASET_MAX_NOTES)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    N->msg[N->n] = str_dup(msg); /* a note lost to memory pressure only drops its text */
    if (N->msg[N->n])
        N->n++;
}

static void notes_free(notes *N)
{
    for (int i = 0; i < N->n; i++)
        free(N->msg[i]);
    memset(N, 0, sizeof *N);
}

/* ---- reading lines through zlib -------------------------------------------- */

typedef struct reader {
    gzFile f;
    const char *path;
    char *buf;
    size_t cap, pos, have;
    long line;    /* number of the current line, from 1 */
    int eof;
    char *s;      /* the current line, NUL-terminated, without "\r\n" */
    size_t len;
} reader;

static int reader_open(reader *r, const char *path)
{
    struct stat st;
    memset(r, 0, sizeof *r);
    r->path = path;
    if (stat(path, &st) != 0)
        return err_set("%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return err_set("%s: is a folder, expected a file", path);
    r->f = gzopen(path, "rb");
    if (!r->f)
        return err_set("%s: %s", path, errno ? strerror(errno) : "cannot open");
    gzbuffer(r->f, 1u << 17);
    r->cap = 1u << 20;
    r->buf = malloc(r->cap + 1);
    if (!r->buf) {
        gzclose(r->f);
        r->f = NULL;
        return err_set("%s: out of memory", path);
    }
    return 0;
}

static void reader_close(reader *r)
{
    if (r->f)
        gzclose(r->f);
    free(r->buf);
    memset(r, 0, sizeof *r);
}

/* 1: a line is in r->s; 0: end of file; -1: read error. */
static int reader_next(reader *r)
{
    size_t scanned = r->pos;
    for (;;) {
        char *nl = r->have > scanned ? memchr(r->buf + scanned, '\n', r->have - scanned) : NULL;
        if (nl || (r->eof && r->pos < r->have)) {
            size_t end = nl ? (size_t)(nl - r->buf) : r->have;
            r->s = r->buf + r->pos;
            r->len = end - r->pos;
            if (r->len && r->s[r->len - 1] == '\r')
                r->len--;
            r->s[r->len] = 0;
            r->pos = nl ? end + 1 : r->have;
            r->line++;
            return 1;
        }
        if (r->eof)
            return 0;
        scanned = r->have - r->pos;
        if (r->pos) {
            memmove(r->buf, r->buf + r->pos, r->have - r->pos);
            r->have -= r->pos;
            r->pos = 0;
        }
        if (r->have == r->cap) {
            char *b = realloc(r->buf, 2 * r->cap + 1);
            if (!b)
                return err_set("%s:%ld: out of memory (a line of %zu bytes)", r->path,
                               r->line + 1, r->have);
            r->buf = b;
            r->cap *= 2;
        }
        size_t room = r->cap - r->have;
        int got = gzread(r->f, r->buf + r->have, room > INT_MAX ? INT_MAX : (unsigned)room);
        int zerr = Z_OK;
        const char *zmsg = gzerror(r->f, &zerr);
        if (got < 0 || (zerr != Z_OK && zerr != Z_STREAM_END))
            return err_set("%s:%ld: %s", r->path, r->line + 1,
                           zerr == Z_ERRNO ? strerror(errno) : zmsg);
        if (got == 0)
            r->eof = 1;
        r->have += (size_t)got;
    }
}

/* ---- valid UTF-8 ---------------------------------------------------------------- */

static size_t ascii_run(const char *s, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (w & 0x8080808080808080ull)
            break;
    }
    while (i < n && !(s[i] & 0x80))
        i++;
    return i;
}

/* Offset of the first byte that does not start a valid UTF-8 character,
 * or n when s is valid. */
static size_t utf8_bad_at(const char *s, size_t n)
{
    size_t i = 0;
    while ((i += ascii_run(s + i, n - i)) < n) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i,
                                              (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0)
            return i;
        i += (size_t)k;
    }
    return n;
}

/* Append s to b, every byte that is not part of valid UTF-8 replaced by
 * U+FFFD. *repaired: the first bad byte (0x80..0xFF), else left alone. */
static int utf8_append(buf *b, const char *s, size_t n, int *repaired)
{
    size_t bad = utf8_bad_at(s, n);
    if (bad == n)
        return buf_add(b, s, n);
    *repaired = (unsigned char)s[bad];
    size_t i = 0;
    while (i < n) {
        size_t ok = bad - i;
        if (buf_add(b, s + i, ok) != 0 || buf_add(b, "\xEF\xBF\xBD", 3) != 0)
            return -1;
        i = bad + 1;
        bad = i + utf8_bad_at(s + i, n - i);
        if (bad == n)
            return buf_add(b, s + i, n - i);
    }
    return 0;
}

/* ---- what the dataset group asks for ------------------------------------ */

enum { F_TSV, F_AGNEWS, F_TREC, F_SLOTS, F_CONLL, F_LINES };
static const char *const format_names[] = {"tsv", "agnews_csv", "trec", "slots", "conll", "lines", NULL};
/* targets per format, the first is the default */
static const char *const targets[][4] = {
    {NULL}, {NULL}, {"coarse", "fine", NULL}, {"intent", "slots", NULL},
    {"ner", "pos", "chunk", NULL}, {NULL},
};
static const char *const agnews_classes[] = {"World", "Sports", "Business", "Sci/Tech"};

typedef struct spec {
    const config_setting_t *ds;
    int format, target; /* target: index into targets[format] */
    const char *text_field, *label_field;
    const config_setting_t *labels, *files, *sources;
    char *train, *dev;  /* resolved training and development sources; dev NULL: split train */
    double dev_ratio;
    unsigned long seed;
    long long limit, dev_limit;
    int skip;
} spec;

static int cfg_fail(const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int cfg_fail(const config_setting_t *s, const char *fmt, ...)
{
    char where[512], path[512], msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return err_set("%s: %s: %s", setting_where(s, where, sizeof where),
                   setting_path(s, path, sizeof path), msg);
}

/* 0 absent, 1 found; -1 with a message when it has the wrong type. */
static int get_str(const config_setting_t *ds, const char *key, const char **out)
{
    const config_setting_t *s = config_setting_get_member(ds, key);
    *out = NULL;
    if (!s)
        return 0;
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return cfg_fail(s, "expected a string");
    *out = config_setting_get_string(s);
    return 1;
}

static int get_int(const config_setting_t *ds, const char *key, long long def, long long *out)
{
    const config_setting_t *s = config_setting_get_member(ds, key);
    *out = def;
    if (!s)
        return 0;
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
        return cfg_fail(s, "expected an integer");
    *out = config_setting_get_int64(s);
    return 1;
}

static int get_num(const config_setting_t *ds, const char *key, double def, double *out)
{
    const config_setting_t *s = config_setting_get_member(ds, key);
    *out = def;
    if (!s)
        return 0;
    int t = config_setting_type(s);
    if (t == CONFIG_TYPE_FLOAT)
        *out = config_setting_get_float(s);
    else if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64)
        *out = (double)config_setting_get_int64(s);
    else
        return cfg_fail(s, "expected a number");
    return 1;
}

static int get_list(const config_setting_t *ds, const char *key, int of_groups,
                    const config_setting_t **out)
{
    const config_setting_t *s = config_setting_get_member(ds, key);
    *out = NULL;
    if (!s)
        return 0;
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST)
        return cfg_fail(s, "expected a list");
    for (int i = 0; i < config_setting_length(s); i++) {
        int et = config_setting_type(config_setting_get_elem(s, (unsigned)i));
        if (et != (of_groups ? CONFIG_TYPE_GROUP : CONFIG_TYPE_STRING))
            return cfg_fail(s, "expected a list of %s", of_groups ? "groups" : "strings");
    }
    *out = s;
    return 1;
}

static int is_folder(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void spec_free(spec *S)
{
    free(S->train);
    free(S->dev);
    memset(S, 0, sizeof *S);
}

/* Where the training and development rows of a labeled format come from. */
static int spec_sources(spec *S, const char *path, const char *train, const char *dev)
{
    const config_setting_t *ds = S->ds;
    if (path && train)
        return cfg_fail(ds, "set `path` (one source to split) or `train`, not both");
    if (!path && !train)
        return cfg_fail(ds, "no `path` or `train`: where are the examples?");
    if (path && dev)
        return cfg_fail(ds, "`dev` goes with `train`; `path` is split by dev_ratio");
    if (S->format == F_SLOTS && path) {
        /* the SNIPS/ATIS layout: path/{train,valid}/{seq.in,seq.out,label};
         * a folder holding seq.in itself is one source to split */
        char *in = str_printf("%s/seq.in", path);
        int flat = in && path_exists(in);
        free(in);
        if (flat) {
            S->train = str_dup(path);
        } else {
            S->train = str_printf("%s/train", path);
            char *valid = str_printf("%s/valid", path);
            if (valid && is_folder(valid))
                S->dev = valid;
            else
                free(valid);
        }
    } else {
        S->train = str_dup(path ? path : train);
        S->dev = dev ? str_dup(dev) : NULL;
    }
    if (!S->train || (dev && !S->dev))
        return err_set("out of memory");
    return 0;
}

static int spec_read(const config_setting_t *ds, spec *S)
{
    const char *format, *target, *on_error, *path, *train, *dev;
    long long seed;
    memset(S, 0, sizeof *S);
    S->ds = ds;
    if (!ds || config_setting_type(ds) != CONFIG_TYPE_GROUP)
        return err_set("dataset: expected a group { format = ...; ... }");
    if (get_str(ds, "format", &format) < 0 || get_str(ds, "target", &target) < 0 ||
        get_str(ds, "on_error", &on_error) < 0 || get_str(ds, "path", &path) < 0 ||
        get_str(ds, "train", &train) < 0 || get_str(ds, "dev", &dev) < 0 ||
        get_str(ds, "text_field", &S->text_field) < 0 ||
        get_str(ds, "label_field", &S->label_field) < 0 ||
        get_list(ds, "labels", 0, &S->labels) < 0 || get_list(ds, "files", 0, &S->files) < 0 ||
        get_list(ds, "train_text_from", 1, &S->sources) < 0 ||
        get_num(ds, "dev_ratio", 0.1, &S->dev_ratio) < 0 ||
        get_int(ds, "split_seed", 1234, &seed) < 0 || get_int(ds, "limit", 0, &S->limit) < 0 ||
        get_int(ds, "dev_limit", 0, &S->dev_limit) < 0)
        return -1;
    if (!format)
        return cfg_fail(ds, "no `format` (%s)", "tsv | agnews_csv | trec | slots | conll | lines");
    for (S->format = 0; format_names[S->format]; S->format++)
        if (strcmp(format_names[S->format], format) == 0)
            break;
    if (!format_names[S->format])
        return cfg_fail(config_setting_get_member(ds, "format"),
                        "unknown format '%s' (known: tsv, agnews_csv, trec, slots, conll, lines)",
                        format);
    const char *const *tg = targets[S->format];
    if (target) {
        for (S->target = 0; tg[S->target]; S->target++)
            if (strcmp(tg[S->target], target) == 0)
                break;
        if (!tg[0])
            return cfg_fail(config_setting_get_member(ds, "target"),
                            "format %s has no targets", format);
        if (!tg[S->target])
            return cfg_fail(config_setting_get_member(ds, "target"),
                            "unknown target '%s' for format %s (known: %s%s%s%s%s)", target, format,
                            tg[0], tg[1] ? ", " : "", tg[1] ? tg[1] : "", tg[2] ? ", " : "",
                            tg[2] ? tg[2] : "");
    }
    if (S->format != F_TSV && (S->text_field || S->label_field))
        return cfg_fail(config_setting_get_member(ds, S->text_field ? "text_field" : "label_field"),
                        "only format tsv has named columns");
    if (S->format != F_LINES && (S->files || S->sources))
        return cfg_fail(config_setting_get_member(ds, S->files ? "files" : "train_text_from"),
                        "only format lines reads a list of files and other datasets' text");
    if (S->format == F_LINES && S->labels)
        return cfg_fail(config_setting_get_member(ds, "labels"), "format lines has no labels");
    if (S->labels && config_setting_length(S->labels) == 0)
        return cfg_fail(S->labels, "is empty");
    if (S->files && config_setting_length(S->files) == 0)
        return cfg_fail(S->files, "is empty");
    if (!S->text_field)
        S->text_field = "sentence";
    if (!S->label_field)
        S->label_field = "label";
    if (on_error && strcmp(on_error, "stop") != 0 && strcmp(on_error, "skip") != 0)
        return cfg_fail(config_setting_get_member(ds, "on_error"),
                        "is '%s', expected \"stop\" or \"skip\"", on_error);
    S->skip = on_error && strcmp(on_error, "skip") == 0;
    if (!(S->dev_ratio >= 0 && S->dev_ratio < 1))
        return cfg_fail(config_setting_get_member(ds, "dev_ratio"), "is %g, expected 0 <= dev_ratio < 1",
                        S->dev_ratio);
    if (S->limit < 0 || S->limit > INT_MAX || S->dev_limit < 0 || S->dev_limit > INT_MAX)
        return cfg_fail(config_setting_get_member(ds, S->limit < 0 || S->limit > INT_MAX ? "limit" : "dev_limit"),
                        "expected 0 (all) or a positive count");
    if (seed < 0)
        return cfg_fail(config_setting_get_member(ds, "split_seed"), "expected a seed >= 0");
    S->seed = (unsigned long)seed;
    if (S->format == F_LINES) {
        if (!S->files && !path && !train)
            return cfg_fail(ds, "no `files` (text files or globs, one example per line)");
        if (path && train)
            return cfg_fail(ds, "set `path` (one source to split) or `train`, not both");
        if ((S->files && (path || train)))
            return cfg_fail(ds, "set `files` or `%s`, not both", path ? "path" : "train");
        S->train = str_dup(path ? path : train);
        S->dev = str_dup(dev);
        if ((path || train) && !S->train)
            return err_set("out of memory");
        if (dev && !S->dev)
            return err_set("out of memory");
        return 0;
    }
    return spec_sources(S, path, train, dev);
}

/* A bad row: an error when stopping, else counted and noted. */
static int bad_row(const spec *S, notes *N, const char *file, long line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int bad_row(const spec *S, notes *N, const char *file, long line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!S->skip)
        return err_set("%s:%ld: %s", file, line, msg);
    N->bad++;
    note_add(N, "%s:%ld: %s", file, line, msg);
    return 0;
}

/* ---- rows of one source ----------------------------------------------------- */

typedef struct rows {
    buf text;         /* row texts, each followed by a NUL */
    size_t *start, *len;
    long *line;       /* line the row starts on */
    int32_t *label;   /* raw label id in labtab, per row */
    int64_t *tag_off; /* raw tag ids of row i: tags[tag_off[i] .. tag_off[i+1]) */
    int32_t *tags;
    size_t ntags, tagcap;
    int n, cap, has_label, has_tags;
    strtab labtab, tagtab;
    char *label_file, *tag_file; /* named in messages about labels, tags */
    notes N;
} rows;

static void rows_free(rows *R)
{
    free(R->text.p);
    free(R->start);
    free(R->len);
    free(R->line);
    free(R->label);
    free(R->tag_off);
    free(R->tags);
    strtab_free(&R->labtab);
    strtab_free(&R->tagtab);
    free(R->label_file);
    free(R->tag_file);
    notes_free(&R->N);
    memset(R, 0, sizeof *R);
}

static int tag_push(rows *R, const char *s, size_t n)
{
    int id = strtab_intern(&R->tagtab, s, n);
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

/* Append text (made valid UTF-8, NUL-terminated) to t; a repaired byte is
 * counted and noted with its file:line. *start, *len locate it in t. */
static int text_append(buf *t, notes *N, const char *file, long line, const char *s, size_t n,
                       size_t *start, size_t *len)
{
    size_t at = t->n;
    int repaired = 0;
    if (utf8_append(t, s, n, &repaired) != 0 || buf_add(t, "", 1) != 0)
        return -1;
    if (repaired) {
        N->repaired++;
        note_add(N, "%s:%ld: invalid UTF-8 byte 0x%02X replaced by U+FFFD", file, line, repaired);
    }
    *start = at;
    *len = t->n - at - 1;
    return 0;
}

/* Add a row: its text (made valid UTF-8) and raw label; its tags were
 * pushed since the previous row. */
static int row_add(rows *R, const char *file, long line, const char *text, size_t n,
                   const char *label, size_t label_len)
{
    if (R->n == R->cap) {
        size_t cap = R->cap ? 2 * (size_t)R->cap : 1024;
        if (cap > INT_MAX)
            return err_set("%s: more than %d rows", file, INT_MAX);
        if (GROW(R->start, cap) || GROW(R->len, cap) || GROW(R->line, cap) ||
            GROW(R->label, cap) || GROW(R->tag_off, cap + 1))
            return -1;
        R->cap = (int)cap;
    }
    int id = 0;
    if (R->has_label && (id = strtab_intern(&R->labtab, label, label_len)) < 0)
        return -1;
    if (text_append(&R->text, &R->N, file, line, text, n, &R->start[R->n], &R->len[R->n]) != 0)
        return -1;
    R->line[R->n] = line;
    R->label[R->n] = id;
    R->tag_off[0] = 0;
    R->tag_off[R->n + 1] = (int64_t)R->ntags;
    R->n++;
    return 0;
}

/* ---- the formats ------------------------------------------------------------- */

/* Fields of s split at sep: count them all, keep the first max. */
static int split_fields(const char *s, size_t n, char sep, const char **f, size_t *fl, int max)
{
    int k = 0;
    const char *end = s + n;
    for (;;) {
        const char *e = memchr(s, sep, (size_t)(end - s));
        if (!e)
            e = end;
        if (k < max) {
            f[k] = s;
            fl[k] = (size_t)(e - s);
        }
        k++;
        if (e == end)
            return k;
        s = e + 1;
    }
}

#define MAX_FIELDS 64

/* GLUE-style TSV: a header naming the columns, then one row per line. */
static int read_tsv(const spec *S, const char *path, rows *R)
{
    reader r;
    const char *f[MAX_FIELDS];
    size_t fl[MAX_FIELDS];
    int got, tcol = -1, lcol = -1, rc = -1;
    R->has_label = 1;
    if (reader_open(&r, path) != 0)
        return -1;
    if (!(R->label_file = str_dup(path))) {
        err_set("out of memory");
        goto done;
    }
    while ((got = reader_next(&r)) == 1 && r.len == 0) {
    }
    if (got <= 0) {
        if (got == 0)
            err_set("%s: empty file, expected a header line naming the columns", path);
        goto done;
    }
    int ncol = split_fields(r.s, r.len, '\t', f, fl, MAX_FIELDS);
    if (ncol > MAX_FIELDS) {
        err_set("%s:%ld: %d columns; at most %d are read", path, r.line, ncol, MAX_FIELDS);
        goto done;
    }
    for (int i = 0; i < ncol; i++) {
        const char *c = f[i];
        size_t cn = fl[i];
        trim(&c, &cn);
        if (strlen(S->text_field) == cn && strncmp(c, S->text_field, cn) == 0)
            tcol = i;
        if (strlen(S->label_field) == cn && strncmp(c, S->label_field, cn) == 0)
            lcol = i;
    }
    if (tcol < 0 || lcol < 0) {
        char cols[512] = "";
        size_t used = 0;
        for (int i = 0; i < ncol && used < sizeof cols; i++)
            used += (size_t)snprintf(cols + used, sizeof cols - used, "%s'%.*s'", i ? ", " : "",
                                     (int)fl[i], f[i]);
        err_set("%s:%ld: no column '%s' in the header (columns: %s)", path, r.line,
                tcol < 0 ? S->text_field : S->label_field, cols);
        goto done;
    }
    while ((got = reader_next(&r)) == 1) {
        if (r.len == 0)
            continue;
        int nf = split_fields(r.s, r.len, '\t', f, fl, MAX_FIELDS);
        if (nf != ncol) {
            if (bad_row(S, &R->N, path, r.line, "expected %d tab-separated fields, got %d", ncol,
                        nf) != 0)
                goto done;
            continue;
        }
        const char *t = f[tcol], *l = f[lcol];
        size_t tn = fl[tcol], ln = fl[lcol];
        trim(&t, &tn);
        trim(&l, &ln);
        if (!tn || !ln) {
            if (bad_row(S, &R->N, path, r.line, "missing %s (column '%s' is empty)",
                        !tn ? "text" : "label", !tn ? S->text_field : S->label_field) != 0)
                goto done;
            continue;
        }
        if (row_add(R, path, r.line, t, tn, l, ln) != 0)
            goto done;
    }
    rc = got < 0 ? -1 : 0;
done:
    reader_close(&r);
    return rc;
}

/* One CSV record from the reader's current line on (a quoted field may
 * span lines; "" inside quotes is a quote). Fields go to fb; returns 1,
 * 0 for a malformed record (*why says how), -1 on a read error. */
static int csv_record(reader *r, buf *fb, size_t *fs, size_t *fn, int max, int *nf,
                      const char **why)
{
    const char *p = r->s, *end = r->s + r->len;
    fb->n = 0;
    *nf = 0;
    for (;;) {
        size_t st = fb->n;
        if (p < end && *p == '"') {
            p++;
            for (;;) {
                if (p == end) {
                    if (buf_add(fb, "\n", 1) != 0)
                        return -1;
                    int got = reader_next(r);
                    if (got < 0)
                        return -1;
                    if (got == 0) {
                        *why = "unterminated quoted field";
                        return 0;
                    }
                    p = r->s;
                    end = r->s + r->len;
                    continue;
                }
                if (*p == '"') {
                    if (p + 1 < end && p[1] == '"') {
                        if (buf_add(fb, "\"", 1) != 0)
                            return -1;
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                const char *q = memchr(p, '"', (size_t)(end - p));
                if (!q)
                    q = end;
                if (buf_add(fb, p, (size_t)(q - p)) != 0)
                    return -1;
                p = q;
            }
            if (p < end && *p != ',') {
                *why = "unexpected character after a closing quote";
                return 0;
            }
        } else {
            const char *q = memchr(p, ',', (size_t)(end - p));
            if (!q)
                q = end;
            if (buf_add(fb, p, (size_t)(q - p)) != 0)
                return -1;
            p = q;
        }
        if (*nf < max) {
            fs[*nf] = st;
            fn[*nf] = fb->n - st;
        }
        (*nf)++;
        if (p == end)
            return 1;
        p++; /* the comma */
    }
}

/* AG News text: a backslash stands for a line break of the original
 * ("a second\team" is "a second" / "team"; "\\" ends a paragraph), except
 * "\$" which is a dollar sign. Line breaks (and newlines inside a quoted
 * field) become one space. */
static int agnews_append(buf *b, const char *s, size_t n)
{
    const char *p = s, *end;
    trim(&p, &n);
    end = p + n;
    while (p < end) {
        const char *q = p;
        while (q < end && *q != '\\' && *q != '\n')
            q++;
        if (buf_add(b, p, (size_t)(q - p)) != 0)
            return -1;
        p = q;
        if (p == end)
            break;
        if (*p == '\\' && p + 1 < end && p[1] == '$') {
            if (buf_add(b, "$", 1) != 0)
                return -1;
            p += 2;
            continue;
        }
        while (p < end && (*p == '\\' || *p == '\n'))
            p++;
        if (b->n && b->p[b->n - 1] != ' ' && p < end && *p != ' ' && buf_add(b, " ", 1) != 0)
            return -1;
    }
    return 0;
}

/* AG News: "class","title","description"; the text is title + " " + description. */
static int read_agnews(const spec *S, const char *path, rows *R)
{
    reader r;
    buf fb = {0}, text = {0}, desc = {0};
    size_t fs[4], fn[4];
    int got, nf, rc = -1;
    R->has_label = 1;
    if (reader_open(&r, path) != 0)
        return -1;
    if (!(R->label_file = str_dup(path))) {
        err_set("out of memory");
        goto done;
    }
    while ((got = reader_next(&r)) == 1) {
        if (r.len == 0)
            continue;
        long line = r.line;
        const char *why = NULL;
        int rec = csv_record(&r, &fb, fs, fn, 4, &nf, &why);
        if (rec < 0)
            goto done;
        if (rec == 0 || nf != 3) {
            if (rec == 0 ? bad_row(S, &R->N, path, line, "%s", why)
                         : bad_row(S, &R->N, path, line,
                                   "expected 3 comma-separated fields (class, title, description), got %d",
                                   nf))
                goto done;
            continue;
        }
        const char *cls = fb.p + fs[0];
        size_t cn = fn[0];
        trim(&cls, &cn);
        text.n = desc.n = 0;
        if (agnews_append(&text, fb.p + fs[1], fn[1]) != 0 ||
            agnews_append(&desc, fb.p + fs[2], fn[2]) != 0 ||
            (text.n && desc.n && buf_add(&text, " ", 1) != 0) || buf_add(&text, desc.p, desc.n) != 0)
            goto done;
        const char *t = text.p;
        size_t tn = text.n;
        if (!cn || !tn) {
            if (bad_row(S, &R->N, path, line, "missing %s", !cn ? "class" : "text (title and description are empty)") != 0)
                goto done;
            continue;
        }
        if (row_add(R, path, line, t, tn, cls, cn) != 0)
            goto done;
    }
    rc = got < 0 ? -1 : 0;
done:
    free(fb.p);
    free(text.p);
    free(desc.p);
    reader_close(&r);
    return rc;
}

/* TREC: "COARSE:fine question" per line. */
static int read_trec(const spec *S, const char *path, rows *R)
{
    reader r;
    int got, rc = -1;
    R->has_label = 1;
    if (reader_open(&r, path) != 0)
        return -1;
    if (!(R->label_file = str_dup(path))) {
        err_set("out of memory");
        goto done;
    }
    while ((got = reader_next(&r)) == 1) {
        if (r.len == 0)
            continue;
        const char *sp = memchr(r.s, ' ', r.len);
        const char *colon = sp ? memchr(r.s, ':', (size_t)(sp - r.s)) : NULL;
        const char *q = sp ? sp + 1 : r.s + r.len;
        size_t qn = (size_t)(r.s + r.len - q);
        trim(&q, &qn);
        if (!sp || !colon || colon == r.s || colon + 1 == sp || !qn) {
            if (bad_row(S, &R->N, path, r.line, "expected 'COARSE:fine question', got '%.60s'",
                        r.s) != 0)
                goto done;
            continue;
        }
        size_t ln = S->target == 0 ? (size_t)(colon - r.s) : (size_t)(sp - r.s);
        if (row_add(R, path, r.line, q, qn, r.s, ln) != 0)
            goto done;
    }
    rc = got < 0 ? -1 : 0;
done:
    reader_close(&r);
    return rc;
}

/* SNIPS/ATIS folder: seq.in (words), seq.out (one tag per word), label
 * (intent), line by line. Intents and tags are both kept, whatever the
 * target, so both targets keep the same rows. */
static int read_slots(const spec *S, const char *dir, rows *R)
{
    static const char *const names[3] = {"seq.in", "seq.out", "label"};
    reader r[3];
    char *path[3] = {0};
    buf text = {0};
    int rc = -1, got[3];
    R->has_label = R->has_tags = 1;
    memset(r, 0, sizeof r);
    for (int k = 0; k < 3; k++)
        if (!(path[k] = str_printf("%s/%s", dir, names[k]))) {
            err_set("out of memory");
            goto done;
        }
    for (int k = 0; k < 3; k++)
        if (reader_open(&r[k], path[k]) != 0)
            goto done;
    R->tag_file = path[1];
    R->label_file = path[2];
    path[1] = path[2] = NULL;
    for (;;) {
        for (int k = 0; k < 3; k++)
            if ((got[k] = reader_next(&r[k])) < 0)
                goto done;
        if (!got[0] && !got[1] && !got[2])
            break;
        if (!got[0] || !got[1] || !got[2]) {
            int short_k = !got[0] ? 0 : !got[1] ? 1 : 2, long_k = got[0] ? 0 : got[1] ? 1 : 2;
            err_set("%s/%s has %ld lines but %s has more: the files must align line by line", dir,
                    names[short_k], r[short_k].line, names[long_k]);
            goto done;
        }
        long line = r[0].line;
        int nw = count_words(r[0].s, r[0].len), nt = count_words(r[1].s, r[1].len);
        const char *intent = r[2].s;
        size_t in = r[2].len;
        trim(&intent, &in);
        int bad = 0;
        if (nw == 0)
            bad = bad_row(S, &R->N, r[0].path, line, "empty sentence") ? -1 : 1;
        else if (nw != nt)
            bad = bad_row(S, &R->N, R->tag_file, line, "seq.in has %d words but seq.out has %d tags",
                          nw, nt) ? -1 : 1;
        else if (!in)
            bad = bad_row(S, &R->N, R->label_file, line, "missing intent label") ? -1 : 1;
        if (bad < 0)
            goto done;
        if (bad)
            continue;
        const char *p = r[0].s, *w, *t = r[1].s;
        size_t wn, tn;
        text.n = 0;
        while (next_word(&p, r[0].s + r[0].len, &w, &wn)) {
            if ((text.n && buf_add(&text, " ", 1) != 0) || buf_add(&text, w, wn) != 0)
                goto done;
        }
        while (next_word(&t, r[1].s + r[1].len, &w, &tn))
            if (tag_push(R, w, tn) != 0)
                goto done;
        if (row_add(R, r[0].path, line, text.p, text.n, intent, in) != 0)
            goto done;
    }
    rc = 0;
done:
    for (int k = 0; k < 3; k++) {
        reader_close(&r[k]);
        free(path[k]);
    }
    free(text.p);
    return rc;
}

/* CoNLL-2003: "word POS chunk NER" per line, a blank line after each
 * sentence, -DOCSTART- lines between documents. */
static int read_conll(const spec *S, const char *path, rows *R)
{
    static const int column[] = {3, 1, 2}; /* ner, pos, chunk */
    reader r;
    buf text = {0};
    long first = 0; /* line of the sentence's first word, 0: no sentence open */
    int got, bad = 0, rc = -1;
    size_t tag_mark = R->ntags;
    R->has_tags = 1;
    if (reader_open(&r, path) != 0)
        return -1;
    if (!(R->tag_file = str_dup(path))) {
        err_set("out of memory");
        goto done;
    }
    do {
        got = reader_next(&r);
        if (got < 0)
            goto done;
        const char *p = got ? r.s : "";
        size_t n = got ? r.len : 0;
        trim(&p, &n);
        int docstart = n >= 10 && strncmp(p, "-DOCSTART-", 10) == 0 && (n == 10 || is_space(p[10]));
        if (n == 0 || docstart) { /* end of a sentence */
            if (first && !bad && row_add(R, path, first, text.p, text.n, NULL, 0) != 0)
                goto done;
            if (bad)
                R->ntags = tag_mark;
            tag_mark = R->ntags;
            first = 0;
            bad = 0;
            text.n = 0;
            continue;
        }
        if (!first)
            first = r.line;
        if (bad)
            continue;
        size_t wn[5];
        const char *w[5], *q = p;
        int nf = 0;
        while (nf < 5 && next_word(&q, p + n, &w[nf], &wn[nf]))
            nf++;
        if (nf != 4) {
            if (bad_row(S, &R->N, path, r.line,
                        "expected 4 space-separated columns (word POS chunk NER), got %d%s", nf,
                        nf == 5 ? " or more" : "") != 0)
                goto done;
            bad = 1;
            continue;
        }
        int c = column[S->target];
        if ((text.n && buf_add(&text, " ", 1) != 0) || buf_add(&text, w[0], wn[0]) != 0 ||
            tag_push(R, w[c], wn[c]) != 0)
            goto done;
    } while (got);
    rc = 0;
done:
    free(text.p);
    reader_close(&r);
    return rc;
}

static int read_source(const spec *S, const char *src, rows *R)
{
    switch (S->format) {
    case F_TSV: return read_tsv(S, src, R);
    case F_AGNEWS: return read_agnews(S, src, R);
    case F_TREC: return read_trec(S, src, R);
    case F_SLOTS: return read_slots(S, src, R);
    case F_CONLL: return read_conll(S, src, R);
    }
    return err_set("%s: format %s has no row reader", src, format_names[S->format]);
}

/* ---- label maps ------------------------------------------------------------------ */

typedef struct labelmap {
    char **names;
    int n;
    int base;    /* numeric labels k name names[k - base] ... */
    int numeric; /* ... when set (AG News classes, or `labels` given) */
} labelmap;

static void map_free(labelmap *M)
{
    for (int i = 0; i < M->n; i++)
        free(M->names[i]);
    free(M->names);
    memset(M, 0, sizeof *M);
}

static int map_set(labelmap *M, const char *const *names, int n)
{
    if (!(M->names = calloc((size_t)n + 1, sizeof *M->names)))
        return err_set("out of memory");
    for (M->n = 0; M->n < n; M->n++)
        if (!(M->names[M->n] = str_dup(names[M->n])))
            return err_set("out of memory");
    return 0;
}

static int map_from_config(const config_setting_t *labels, labelmap *M)
{
    int n = config_setting_length(labels);
    const char **names = malloc((size_t)n * sizeof *names);
    if (!names)
        return err_set("out of memory");
    for (int i = 0; i < n; i++) {
        names[i] = config_setting_get_string_elem(labels, i);
        for (int j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0) {
                cfg_fail(labels, "'%s' is listed twice", names[i]);
                free(names);
                return -1;
            }
    }
    int rc = map_set(M, names, n);
    free(names);
    M->numeric = 1;
    return rc;
}

static int is_number(const char *s)
{
    if (!*s || strlen(s) > 9)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

static int by_string(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int by_number(const void *a, const void *b)
{
    long x = atol(*(const char *const *)a), y = atol(*(const char *const *)b);
    return x < y ? -1 : x > y ? 1 : by_string(a, b);
}

/* "O" first, then byte order. */
static int by_tag(const void *a, const void *b)
{
    int ao = strcmp(*(const char *const *)a, "O") == 0, bo = strcmp(*(const char *const *)b, "O") == 0;
    return ao != bo ? bo - ao : by_string(a, b);
}

/* Names of the raw labels (or tags) of the training source, in order. */
static int map_from_table(const strtab *t, int tags, labelmap *M)
{
    if (map_set(M, (const char *const *)t->s, t->n) != 0)
        return -1;
    int numbers = 1;
    for (int i = 0; i < M->n; i++)
        numbers &= is_number(M->names[i]);
    qsort(M->names, (size_t)M->n, sizeof *M->names, tags ? by_tag : numbers ? by_number : by_string);
    return 0;
}

static int map_lookup(const labelmap *M, const char *raw)
{
    for (int i = 0; i < M->n; i++)
        if (strcmp(M->names[i], raw) == 0)
            return i;
    if (M->numeric && is_number(raw)) {
        long k = atol(raw) - M->base;
        if (k >= 0 && k < M->n)
            return (int)k;
    }
    return -1;
}

static const char *known_names(const labelmap *M, char *out, size_t size)
{
    size_t used = 0;
    out[0] = 0;
    for (int i = 0; i < M->n && used + 1 < size; i++) {
        if (i == 12) {
            snprintf(out + used, size - used, ", ... (%d in all)", M->n);
            break;
        }
        used += (size_t)snprintf(out + used, size - used, "%s%s", i ? ", " : "", M->names[i]);
    }
    return out;
}

/* Raw id -> label id for every entry of t (-1: unknown). */
static int *map_table(const labelmap *M, const strtab *t)
{
    int *m = malloc(((size_t)t->n + 1) * sizeof *m);
    if (!m) {
        err_set("out of memory");
        return NULL;
    }
    for (int i = 0; i < t->n; i++)
        m[i] = map_lookup(M, t->s[i]);
    return m;
}

/* Map the rows' raw ids in place; rows with an unknown label or tag are
 * bad rows (keep[i] = 0). */
static int rows_map(const spec *S, rows *R, const labelmap *LM, const labelmap *TM, char *keep)
{
    char known[1024];
    int rc = -1, *lm = NULL, *tm = NULL;
    if ((LM && !(lm = map_table(LM, &R->labtab))) || (TM && !(tm = map_table(TM, &R->tagtab))))
        goto done;
    for (int i = 0; i < R->n; i++) {
        keep[i] = 1;
        if (lm && lm[R->label[i]] < 0) {
            keep[i] = 0;
            if (bad_row(S, &R->N, R->label_file, R->line[i], "unknown label '%s' (known: %s)",
                        R->labtab.s[R->label[i]], known_names(LM, known, sizeof known)) != 0)
                goto done;
            continue;
        }
        for (int64_t j = R->tag_off[i]; tm && j < R->tag_off[i + 1]; j++)
            if (tm[R->tags[j]] < 0) {
                keep[i] = 0;
                if (bad_row(S, &R->N, R->tag_file, R->line[i],
                            "unknown tag '%s' at word %d (known: %s)", R->tagtab.s[R->tags[j]],
                            (int)(j - R->tag_off[i]) + 1, known_names(TM, known, sizeof known)) != 0)
                    goto done;
                break;
            }
    }
    for (int i = 0; i < R->n; i++) {
        if (lm)
            R->label[i] = lm[R->label[i]];
        for (int64_t j = R->tag_off[i]; tm && j < R->tag_off[i + 1]; j++)
            R->tags[j] = tm[R->tags[j]];
    }
    rc = 0;
done:
    free(lm);
    free(tm);
    return rc;
}

/* ---- splits -------------------------------------------------------------------- */

static int by_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Which of m good rows this split keeps, in file order. Without a dev
 * source the rows are shuffled with the seed: the first round(m*ratio) are
 * dev, the rest train. `limit` keeps the first rows of the (shuffled) part. */
static int *split_rows(const spec *S, data_split split, int m, int separate, int *count)
{
    long long limit = split == SPLIT_TRAIN ? S->limit : S->dev_limit;
    if (m == 0) {
        err_set("%s: no usable row (empty, header only, or every row skipped)",
                separate && split == SPLIT_DEV ? S->dev : S->train);
        return NULL;
    }
    int *idx = malloc(((size_t)m + 1) * sizeof *idx);
    if (!idx) {
        err_set("out of memory");
        return NULL;
    }
    for (int i = 0; i < m; i++)
        idx[i] = i;
    int from = 0, n = m;
    if (!separate) {
        int n_dev = (int)((double)m * S->dev_ratio + 0.5);
        if (split == SPLIT_DEV)
            n = n_dev;
        else
            from = n_dev, n = m - n_dev;
    }
    if (m > 1 && (!separate || (limit > 0 && limit < n))) {
        gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
        if (!rng) {
            free(idx);
            err_set("out of memory");
            return NULL;
        }
        gsl_rng_set(rng, S->seed);
        gsl_ran_shuffle(rng, idx, (size_t)m, sizeof *idx);
        gsl_rng_free(rng);
    }
    if (limit > 0 && limit < n)
        n = (int)limit;
    memmove(idx, idx + from, (size_t)n * sizeof *idx);
    qsort(idx, (size_t)n, sizeof *idx, by_int);
    *count = n;
    return idx;
}

/* ---- the dataset ---------------------------------------------------------------- */

void dataset_free(dataset *d)
{
    if (!d)
        return;
    free(d->text);
    free(d->start);
    free(d->len);
    free(d->label);
    free(d->tag_off);
    free(d->tags);
    for (int i = 0; i < d->n_names; i++)
        free(d->names[i]);
    free(d->names);
    for (int i = 0; i < d->n_notes; i++)
        free(d->notes[i]);
    free(d->notes);
    free(d->source);
    memset(d, 0, sizeof *d);
}

int dataset_label_id(const dataset *d, const char *name)
{
    for (int i = 0; i < d->n_names; i++)
        if (strcmp(d->names[i], name) == 0)
            return i;
    return -1;
}

static int take_notes(dataset *d, notes *N)
{
    d->skipped += N->bad;
    d->repaired += N->repaired;
    if (N->n) {
        char **m = realloc(d->notes, (size_t)(d->n_notes + N->n) * sizeof *m);
        if (!m)
            return err_set("out of memory");
        d->notes = m;
        for (int i = 0; i < N->n && d->n_notes < DATASET_MAX_NOTES; i++) {
            d->notes[d->n_notes++] = N->msg[i];
            N->msg[i] = NULL;
        }
    }
    notes_free(N);
    return 0;
}

/* Copy rows sel[0..n) of R into d. */
static int build(rows *R, const int *sel, int n, int with_label, int with_tags, dataset *d)
{
    size_t bytes = 0, ntags = 0;
    for (int i = 0; i < n; i++) {
        bytes += R->len[sel[i]] + 1;
        ntags += (size_t)(R->tag_off[sel[i] + 1] - R->tag_off[sel[i]]);
    }
    d->n = n;
    d->text = malloc(bytes + 1);
    d->start = malloc(((size_t)n + 1) * sizeof *d->start);
    d->len = malloc(((size_t)n + 1) * sizeof *d->len);
    if (!d->text || !d->start || !d->len)
        return err_set("out of memory");
    if (with_label && !(d->label = malloc(((size_t)n + 1) * sizeof *d->label)))
        return err_set("out of memory");
    if (with_tags && (!(d->tag_off = malloc(((size_t)n + 1) * sizeof *d->tag_off)) ||
                      !(d->tags = malloc((ntags + 1) * sizeof *d->tags))))
        return err_set("out of memory");
    size_t at = 0, t = 0;
    for (int i = 0; i < n; i++) {
        int r = sel[i];
        memcpy(d->text + at, R->text.p + R->start[r], R->len[r] + 1);
        d->start[i] = at;
        d->len[i] = R->len[r];
        at += R->len[r] + 1;
        if (with_label)
            d->label[i] = R->label[r];
        if (with_tags) {
            d->tag_off[i] = (int64_t)t;
            for (int64_t j = R->tag_off[r]; j < R->tag_off[r + 1]; j++)
                d->tags[t++] = R->tags[j];
        }
    }
    if (with_tags)
        d->tag_off[n] = (int64_t)t;
    d->text[at] = 0;
    return 0;
}

static int names_to(dataset *d, labelmap *M)
{
    d->names = M->names;
    d->n_names = M->n;
    M->names = NULL;
    M->n = 0;
    return 0;
}

/* The label map of one kind: `labels` for the target, else the fixed AG
 * News classes, else the training source's labels. */
static int make_map(const spec *S, const rows *T, int tags, int is_target, labelmap *M)
{
    if (is_target && S->labels) {
        M->base = S->format == F_AGNEWS; /* AG News classes count from 1 */
        return map_from_config(S->labels, M);
    }
    if (S->format == F_AGNEWS) {
        M->numeric = 1;
        M->base = 1;
        return map_set(M, agnews_classes, 4);
    }
    return map_from_table(tags ? &T->tagtab : &T->labtab, tags, M);
}

static int load_labeled(const spec *S, data_split split, dataset *out)
{
    rows T = {0}, D = {0};
    labelmap LM = {0}, TM = {0};
    char *keep = NULL;
    int *good = NULL, *sel = NULL, rc = -1, m = 0, n = 0;
    int separate = S->dev != NULL;
    int tags_target = S->format == F_CONLL || (S->format == F_SLOTS && S->target == 1);
    int uses_label = S->format != F_CONLL, uses_tags = S->format == F_SLOTS || S->format == F_CONLL;
    int dev_file = split == SPLIT_DEV && separate;
    int need_train = !dev_file || S->format == F_SLOTS || !S->labels;
    if (need_train && read_source(S, S->train, &T) != 0)
        goto done;
    if (dev_file && read_source(S, S->dev, &D) != 0)
        goto done;
    rows *R = dev_file ? &D : &T;
    if (uses_label && make_map(S, &T, 0, !tags_target, &LM) != 0)
        goto done;
    if (uses_tags && make_map(S, &T, 1, tags_target, &TM) != 0)
        goto done;
    keep = malloc((size_t)R->n + 1);
    good = malloc(((size_t)R->n + 1) * sizeof *good);
    if (!keep || !good) {
        err_set("out of memory");
        goto done;
    }
    if (rows_map(S, R, uses_label ? &LM : NULL, uses_tags ? &TM : NULL, keep) != 0)
        goto done;
    for (int i = 0; i < R->n; i++)
        if (keep[i])
            good[m++] = i;
    if (!(sel = split_rows(S, split, m, separate, &n)))
        goto done;
    for (int i = 0; i < n; i++)
        sel[i] = good[sel[i]];
    if (build(R, sel, n, !tags_target, tags_target, out) != 0)
        goto done;
    names_to(out, tags_target ? &TM : &LM);
    if (!(out->source = str_dup(dev_file ? S->dev : S->train))) {
        err_set("out of memory");
        goto done;
    }
    if (take_notes(out, &R->N) != 0)
        goto done;
    rc = 0;
done:
    rows_free(&T);
    rows_free(&D);
    map_free(&LM);
    map_free(&TM);
    free(keep);
    free(good);
    free(sel);
    return rc;
}

/* ---- unlabeled text ---------------------------------------------------------------- */

typedef struct text_out {
    dataset *d;
    buf text;
    int cap;
    notes N;
} text_out;

static int text_add(text_out *o, const char *file, long line, const char *s, size_t n)
{
    dataset *d = o->d;
    if (d->n == o->cap) {
        size_t cap = o->cap ? 2 * (size_t)o->cap : 4096;
        if (cap > INT_MAX)
            return err_set("%s: more than %d lines", file, INT_MAX);
        if (GROW(d->start, cap) != 0 || GROW(d->len, cap) != 0)
            return -1;
        o->cap = (int)cap;
    }
    if (text_append(&o->text, &o->N, file, line, s, n, &d->start[d->n], &d->len[d->n]) != 0)
        return -1;
    d->n++;
    return 0;
}

/* Lines of the files matching one pattern (a path or a glob), sorted. */
static int expand(const char *pattern, glob_t *g)
{
    int rc = glob(pattern, 0, NULL, g);
    if (rc == 0)
        return 0;
    globfree(g);
    if (rc == GLOB_NOMATCH && !strpbrk(pattern, "*?["))
        return 1; /* a plain path: the reader says why it cannot be opened */
    if (rc == GLOB_NOMATCH)
        return err_set("%s: no file matches", pattern);
    return err_set("%s: cannot list the files (glob error %d)", pattern, rc);
}

/* One pattern's lines into o; *left: lines still wanted (-1: no cap).
 * draw: hold out lines with the RNG (u < ratio goes to dev). */
static int lines_from(const spec *S, const char *pattern, gsl_rng *draw, data_split split,
                      long long *left, text_out *o)
{
    glob_t g;
    memset(&g, 0, sizeof g);
    int e = expand(pattern, &g), rc = -1;
    if (e < 0)
        return -1;
    size_t nfiles = e ? 1 : g.gl_pathc;
    for (size_t k = 0; k < nfiles && *left != 0; k++) {
        const char *file = e ? pattern : g.gl_pathv[k];
        reader r;
        int got = 0;
        if (reader_open(&r, file) != 0)
            goto done;
        while (*left != 0 && (got = reader_next(&r)) == 1) {
            const char *s = r.s;
            size_t n = r.len;
            trim(&s, &n);
            if (!n || (n >= 5 && strncmp(s, "<doc ", 5) == 0) || strcmp(s, "</doc>") == 0)
                continue;
            if (draw && (gsl_rng_uniform(draw) < S->dev_ratio) != (split == SPLIT_DEV))
                continue;
            if (text_add(o, file, r.line, s, n) != 0) {
                got = -1;
                break;
            }
            if (*left > 0)
                (*left)--;
        }
        reader_close(&r);
        if (got < 0)
            goto done;
    }
    rc = 0;
done:
    if (!e)
        globfree(&g);
    return rc;
}

/* Texts of the training split of another dataset (never its dev rows). */
static int lines_of_dataset(const config_setting_t *src, text_out *o)
{
    dataset sub;
    if (dataset_load(src, SPLIT_TRAIN, &sub) != 0)
        return -1;
    int rc = 0;
    for (int i = 0; i < sub.n && rc == 0; i++)
        rc = text_add(o, sub.source, 0, sub.text + sub.start[i], sub.len[i]);
    o->N.bad += sub.skipped;
    o->N.repaired += sub.repaired;
    for (int i = 0; i < sub.n_notes; i++)
        note_add(&o->N, "%s", sub.notes[i]);
    dataset_free(&sub);
    return rc;
}

static int load_lines(const spec *S, data_split split, dataset *out)
{
    text_out o = {.d = out};
    gsl_rng *draw = NULL;
    buf source = {0};
    int rc = -1;
    long long left = split == SPLIT_TRAIN ? S->limit : S->dev_limit;
    if (left == 0)
        left = -1;
    int n_patterns = S->files ? config_setting_length(S->files) : 1;
    int dev_file = split == SPLIT_DEV && S->dev;
    if (!dev_file && S->dev_ratio > 0 && !S->dev) {
        if (!(draw = gsl_rng_alloc(gsl_rng_mt19937))) {
            err_set("out of memory");
            goto done;
        }
        gsl_rng_set(draw, S->seed);
    }
    if (dev_file) {
        if (lines_from(S, S->dev, NULL, split, &left, &o) != 0 || buf_add(&source, S->dev, strlen(S->dev)))
            goto done;
    } else if (split == SPLIT_TRAIN || draw) {
        for (int i = 0; i < n_patterns; i++) {
            const char *p = S->files ? config_setting_get_string_elem(S->files, i) : S->train;
            if (lines_from(S, p, draw, split, &left, &o) != 0 ||
                (source.n && buf_add(&source, ", ", 2) != 0) || buf_add(&source, p, strlen(p)) != 0)
                goto done;
        }
    }
    for (int i = 0; split == SPLIT_TRAIN && S->sources && i < config_setting_length(S->sources); i++) {
        const config_setting_t *src = config_setting_get_elem(S->sources, (unsigned)i);
        if (lines_of_dataset(src, &o) != 0)
            goto done;
        const char *name = NULL;
        if (!config_setting_lookup_string(src, "train", &name))
            config_setting_lookup_string(src, "path", &name);
        if ((source.n && buf_add(&source, ", ", 2) != 0) ||
            buf_add(&source, name ? name : "?", strlen(name ? name : "?")) != 0)
            goto done;
    }
    out->text = o.text.p ? o.text.p : str_dup("");
    o.text.p = NULL;
    out->source = source.p ? source.p : str_dup("");
    source.p = NULL;
    if (!out->text || !out->source) {
        err_set("out of memory");
        goto done;
    }
    rc = take_notes(out, &o.N);
done:
    gsl_rng_free(draw);
    free(o.text.p);
    free(source.p);
    notes_free(&o.N);
    return rc;
}

/* ---- entry --------------------------------------------------------------------- */

int dataset_load(const config_setting_t *ds, data_split split, dataset *out)
{
    spec S;
    memset(out, 0, sizeof *out);
    int rc = spec_read(ds, &S);
    if (rc == 0)
        rc = S.format == F_LINES ? load_lines(&S, split, out) : load_labeled(&S, split, out);
    spec_free(&S);
    if (rc != 0)
        dataset_free(out);
    return rc;
}
