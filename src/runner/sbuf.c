/* sbuf.c — growing strings (see sbuf.h). */
#include "sbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int sb_reserve(sbuf *b, size_t more)
{
    if (b->failed)
        return -1;
    if (b->n + more + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + more + 1)
        cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
        b->failed = 1;
        return -1;
    }
    b->s = s;
    b->cap = cap;
    return 0;
}

void sb_append(sbuf *b, const char *text, size_t len)
{
    if (sb_reserve(b, len) != 0)
        return;
    memcpy(b->s + b->n, text, len);
    b->n += len;
    b->s[b->n] = 0;
}

void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need < 0 || sb_reserve(b, (size_t)need) != 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, (size_t)need + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)need;
}

void sb_free(sbuf *b)
{
    free(b->s);
    memset(b, 0, sizeof *b);
}

void sb_quote(sbuf *b, const char *text, int max_chars)
{
    sb_append(b, "'", 1);
    int chars = 0;
    for (const unsigned char *p = (const unsigned char *)(text ? text : ""); *p; p++) {
        if ((*p & 0xC0) != 0x80 && max_chars > 0 && chars++ >= max_chars) {
            sb_append(b, "...", 3);
            break;
        }
        if (*p == '\'')
            sb_append(b, "''", 2);
        else if (*p < 0x20 || *p == 0x7f)
            sb_append(b, " ", 1);
        else
            sb_append(b, (const char *)p, 1);
    }
    sb_append(b, "'", 1);
}
