/* textout.c — CSV fields, JSON strings, output settings (see textout.h). */
#include "textout.h"

#include <string.h>

void csv_field(FILE *f, const char *s, size_t n)
{
    int quote = n && (s[0] == ' ' || s[n - 1] == ' ');
    for (size_t i = 0; i < n && !quote; i++)
        quote = s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r';
    if (!quote) {
        fwrite(s, 1, n, f);
        return;
    }
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            fputc('"', f);
        fputc(s[i], f);
    }
    fputc('"', f);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len = s[0] < 0x80 ? 1 : (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3 : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (!len || len > n || (len == 2 && s[0] < 0xC2) || (len == 4 && s[0] > 0xF4))
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if ((len == 3 && s[0] == 0xE0 && s[1] < 0xA0) || (len == 3 && s[0] == 0xED && s[1] >= 0xA0) ||
        (len == 4 && s[0] == 0xF0 && s[1] < 0x90) || (len == 4 && s[0] == 0xF4 && s[1] >= 0x90))
        return 0; /* overlong, surrogate, past U+10FFFF */
    return len;
}

void json_text(FILE *f, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        size_t len = utf8_len(u + i, n - i);
        if (!len) {
            fputs("\\ufffd", f);
            i++;
        } else if (u[i] == '"' || u[i] == '\\') {
            fputc('\\', f);
            fputc(u[i++], f);
        } else if (u[i] < 0x20) {
            fprintf(f, "\\u%04x", u[i++]);
        } else {
            fwrite(u + i, 1, len, f);
            i += len;
        }
    }
    fputc('"', f);
}

/* key's value (its default when the `output` group is absent) is value */
static int is(const pipeline *pl, const char *key, const char *value)
{
    const char *v = cfg_str(pl, key);
    if (!v)
        v = strcmp(key, "output.format") == 0 ? "csv" : "text";
    return strcmp(v, value) == 0;
}

int output_jsonl(const pipeline *pl)
{
    return is(pl, "output.format", "jsonl");
}

int stdout_jsonl(const pipeline *pl)
{
    return is(pl, "output.stdout", "jsonl");
}
