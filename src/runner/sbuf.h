/* sbuf.h — a growing string with bounded appends (no fixed buffers to
 * overflow), and gnuplot's single-quoted string literal of any text. */
#ifndef SBUF_H
#define SBUF_H

#include <stddef.h>

typedef struct sbuf {
    char *s;
    size_t n, cap;
    int failed; /* an allocation failed: s holds what fitted */
} sbuf;

void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_append(sbuf *b, const char *text, size_t len);
void sb_free(sbuf *b);
/* 'text' as a gnuplot single-quoted string: ' doubled (the only escape
 * inside single quotes: no backslash escapes, no `command` or @macro
 * substitution there), control characters as spaces, cut to max_chars
 * characters (UTF-8 sequences kept whole) with "..." (0: no limit). */
void sb_quote(sbuf *b, const char *text, int max_chars);

#endif
