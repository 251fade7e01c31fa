/* textio.h — reading text files for dataset plugins: a line reader that
 * reads plain or gzip'd files alike (zlib), CSV records (RFC 4180 quotes,
 * a record may span lines), field splitting at any delimiter, whitespace
 * words, and text made valid UTF-8 (invalid bytes -> U+FFFD) or converted
 * from ISO-8859-1. Failures: -1 with the message ("file:line: ...") in the
 * kit's error (err_get()). */
#ifndef RUNNER_KIT_TEXTIO_H
#define RUNNER_KIT_TEXTIO_H

#include <stddef.h>

/* A growable byte buffer; p[n] is 0 once anything was added. */
typedef struct txt_buf {
    char *p;
    size_t n, cap;
} txt_buf;

int txt_buf_add(txt_buf *b, const void *s, size_t n);
void txt_buf_free(txt_buf *b);

/* Lines of a file through zlib. */
typedef struct txt_reader {
    void *f; /* gzFile */
    const char *path;
    char *buf;
    size_t cap, pos, have;
    long line; /* number of the current line, from 1 */
    int eof;
    char *s;   /* the current line, NUL-terminated, without "\r\n" */
    size_t len;
} txt_reader;

/* Open path (a file, not a folder); the reader keeps the pointer. */
int txt_open(txt_reader *r, const char *path);
/* 1: a line is in r->s, r->len; 0: end of file; -1: read error. */
int txt_next(txt_reader *r);
void txt_close(txt_reader *r); /* a closed or zeroed reader: no-op */

/* Leading and trailing blanks (space, \t, \r, \v, \f) off [*s, *s + *n). */
void txt_trim(const char **s, size_t *n);
int txt_is_space(char c);
/* Next whitespace-separated word of [*p, end); 0 when there is none. */
int txt_next_word(const char **p, const char *end, const char **w, size_t *wn);
int txt_count_words(const char *s, size_t n);

/* Fields of s (n bytes) split at the delimiter (dn bytes, any string):
 * returns how many there are; the first max go to f[], fl[]. */
int txt_split(const char *s, size_t n, const char *delim, size_t dn, const char **f, size_t *fl, int max);

/* One CSV record from the reader's current line on: fields separated by
 * delim (dn bytes), a field in double quotes may hold delimiters, line
 * breaks (the record then spans lines) and "" for a quote. Field i is
 * fb->p + fs[i], fn[i] bytes (not NUL-terminated); *nf counts them all, the
 * first max are stored. Returns 1; 0 for a malformed record (*why says
 * how); -1 on a read error. */
int txt_csv_record(txt_reader *r, const char *delim, size_t dn, txt_buf *fb, size_t *fs, size_t *fn,
                   int max, int *nf, const char **why);

/* Offset of the first byte of s that does not start a valid UTF-8
 * character, or n when s is valid. */
size_t txt_utf8_bad_at(const char *s, size_t n);
/* Append s to b, every invalid byte replaced by U+FFFD; *repaired gets the
 * first bad byte's value (0x80..0xFF), else it is left alone. */
int txt_utf8_append(txt_buf *b, const char *s, size_t n, int *repaired);
/* Append ISO-8859-1 bytes to b as UTF-8. */
int txt_latin1_append(txt_buf *b, const char *s, size_t n);

#endif
