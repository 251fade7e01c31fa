/* textio.c — reading text files for dataset plugins (see textio.h): lines
 * through zlib, CSV records, fields, words, valid UTF-8. */
#include "runner/kit/textio.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <utf8proc.h>
#include <zlib.h>

#include "runner/kit/util.h"

/* ---- buffer ------------------------------------------------------------------ */

int txt_buf_add(txt_buf *b, const void *s, size_t n)
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

void txt_buf_free(txt_buf *b)
{
    if (!b)
        return;
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---- words and fields ---------------------------------------------------------- */

int txt_is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

void txt_trim(const char **s, size_t *n)
{
    while (*n && txt_is_space(**s))
        (*s)++, (*n)--;
    while (*n && txt_is_space((*s)[*n - 1]))
        (*n)--;
}

int txt_next_word(const char **p, const char *end, const char **w, size_t *wn)
{
    const char *s = *p;
    while (s < end && txt_is_space(*s))
        s++;
    if (s == end)
        return 0;
    const char *e = s;
    while (e < end && !txt_is_space(*e))
        e++;
    *w = s;
    *wn = (size_t)(e - s);
    *p = e;
    return 1;
}

int txt_count_words(const char *s, size_t n)
{
    const char *p = s, *w;
    size_t wn;
    int k = 0;
    while (txt_next_word(&p, s + n, &w, &wn))
        k++;
    return k;
}

/* The next occurrence of delim in [s, end), or NULL. */
static const char *find_delim(const char *s, const char *end, const char *delim, size_t dn)
{
    if (dn == 1)
        return memchr(s, delim[0], (size_t)(end - s));
    return (size_t)(end - s) >= dn ? memmem(s, (size_t)(end - s), delim, dn) : NULL;
}

int txt_split(const char *s, size_t n, const char *delim, size_t dn, const char **f, size_t *fl, int max)
{
    int k = 0;
    const char *end = s + n;
    for (;;) {
        const char *e = dn ? find_delim(s, end, delim, dn) : NULL;
        if (!e)
            e = end;
        if (k < max) {
            f[k] = s;
            fl[k] = (size_t)(e - s);
        }
        k++;
        if (e == end)
            return k;
        s = e + dn;
    }
}

/* ---- lines through zlib ------------------------------------------------------- */

int txt_open(txt_reader *r, const char *path)
{
    struct stat st;
    memset(r, 0, sizeof *r);
    r->path = path;
    if (stat(path, &st) != 0)
        return err_set("%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return err_set("%s: is a folder, expected a file", path);
    gzFile f = gzopen(path, "rb");
    if (!f)
        return err_set("%s: %s", path, errno ? strerror(errno) : "cannot open");
    gzbuffer(f, 1u << 17);
    r->f = f;
    r->cap = 1u << 20;
    r->buf = malloc(r->cap + 1);
    if (!r->buf) {
        gzclose(f);
        r->f = NULL;
        return err_set("%s: out of memory", path);
    }
    return 0;
}

void txt_close(txt_reader *r)
{
    if (!r)
        return;
    if (r->f)
        gzclose((gzFile)r->f);
    free(r->buf);
    memset(r, 0, sizeof *r);
}

/* More bytes into the buffer (grown when full); 0, or -1 on an error. */
static int fill(txt_reader *r)
{
    if (r->pos) {
        memmove(r->buf, r->buf + r->pos, r->have - r->pos);
        r->have -= r->pos;
        r->pos = 0;
    }
    if (r->have == r->cap) {
        char *b = realloc(r->buf, 2 * r->cap + 1);
        if (!b)
            return err_set("%s:%ld: out of memory (a line of %zu bytes)", r->path, r->line + 1, r->have);
        r->buf = b;
        r->cap *= 2;
    }
    size_t room = r->cap - r->have;
    int got = gzread((gzFile)r->f, r->buf + r->have, room > INT_MAX ? INT_MAX : (unsigned)room);
    int zerr = Z_OK;
    const char *zmsg = gzerror((gzFile)r->f, &zerr);
    if (got < 0 || (zerr != Z_OK && zerr != Z_STREAM_END))
        return err_set("%s:%ld: %s", r->path, r->line + 1, zerr == Z_ERRNO ? strerror(errno) : zmsg);
    if (got == 0)
        r->eof = 1;
    r->have += (size_t)got;
    return 0;
}

int txt_next(txt_reader *r)
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
        if (fill(r) != 0)
            return -1;
    }
}

/* ---- CSV ------------------------------------------------------------------------- */

/* The rest of a quoted field (after its opening quote) into fb; *pp, *endp
 * move on, to the next line when the field spans lines. 1, 0 (*why), -1. */
static int csv_quoted(txt_reader *r, txt_buf *fb, const char **pp, const char **endp, const char **why)
{
    const char *p = *pp, *end = *endp;
    for (;;) {
        if (p == end) {
            if (txt_buf_add(fb, "\n", 1) != 0)
                return -1;
            int got = txt_next(r);
            if (got <= 0) {
                *why = "unterminated quoted field";
                return got;
            }
            p = r->s;
            end = r->s + r->len;
            continue;
        }
        if (*p == '"') {
            if (p + 1 < end && p[1] == '"') {
                if (txt_buf_add(fb, "\"", 1) != 0)
                    return -1;
                p += 2;
                continue;
            }
            *pp = p + 1;
            *endp = end;
            return 1;
        }
        const char *q = memchr(p, '"', (size_t)(end - p));
        if (!q)
            q = end;
        if (txt_buf_add(fb, p, (size_t)(q - p)) != 0)
            return -1;
        p = q;
    }
}

int txt_csv_record(txt_reader *r, const char *delim, size_t dn, txt_buf *fb, size_t *fs, size_t *fn,
                   int max, int *nf, const char **why)
{
    const char *p = r->s, *end = r->s + r->len;
    fb->n = 0;
    *nf = 0;
    if (txt_buf_add(fb, "", 0) != 0)
        return -1;
    for (;;) {
        size_t st = fb->n;
        if (p < end && *p == '"') {
            p++;
            int q = csv_quoted(r, fb, &p, &end, why);
            if (q <= 0)
                return q;
            if (p < end && !(dn && (size_t)(end - p) >= dn && memcmp(p, delim, dn) == 0)) {
                *why = "unexpected character after a closing quote";
                return 0;
            }
        } else {
            const char *q = dn ? find_delim(p, end, delim, dn) : NULL;
            if (!q)
                q = end;
            if (txt_buf_add(fb, p, (size_t)(q - p)) != 0)
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
        p += dn; /* the delimiter */
    }
}

/* ---- valid UTF-8 ----------------------------------------------------------------- */

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

size_t txt_utf8_bad_at(const char *s, size_t n)
{
    size_t i = 0;
    while ((i += ascii_run(s + i, n - i)) < n) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0)
            return i;
        i += (size_t)k;
    }
    return n;
}

int txt_utf8_append(txt_buf *b, const char *s, size_t n, int *repaired)
{
    size_t bad = txt_utf8_bad_at(s, n);
    if (bad == n)
        return txt_buf_add(b, s, n);
    *repaired = (unsigned char)s[bad];
    size_t i = 0;
    while (i < n) {
        size_t ok = bad - i;
        if (txt_buf_add(b, s + i, ok) != 0 || txt_buf_add(b, "\xEF\xBF\xBD", 3) != 0)
            return -1;
        i = bad + 1;
        bad = i + txt_utf8_bad_at(s + i, n - i);
        if (bad == n)
            return txt_buf_add(b, s + i, n - i);
    }
    return 0;
}

int txt_latin1_append(txt_buf *b, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t run = ascii_run(s + i, n - i);
        if (txt_buf_add(b, s + i, run) != 0)
            return -1;
        i += run;
        if (i == n)
            break;
        unsigned char c = (unsigned char)s[i++];
        char two[2] = {(char)(0xC0 | (c >> 6)), (char)(0x80 | (c & 0x3F))};
        if (txt_buf_add(b, two, 2) != 0)
            return -1;
    }
    return 0;
}
