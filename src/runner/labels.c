/* labels.c — label maps: raw label (or tag) strings of a dataset's rows to
 * ids, from `labels`, a plugin's fixed classes or the training source's
 * sorted set; rows with an unknown label or tag are bad rows. */
#include "labels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "runner/kit/util.h"


void map_free(labelmap *M)
{
    for (int i = 0; i < M->n; i++)
        free(M->names[i]);
    free(M->names);
    memset(M, 0, sizeof *M);
}

int map_set(labelmap *M, const char *const *names, int n)
{
    if (!(M->names = calloc((size_t)n + 1, sizeof *M->names)))
        return err_set("out of memory");
    for (M->n = 0; M->n < n; M->n++)
        if (!(M->names[M->n] = str_dup(names[M->n])))
            return err_set("out of memory");
    return 0;
}

int map_from_config(const config_setting_t *labels, labelmap *M)
{
    int n = config_setting_length(labels);
    const char **names = malloc((size_t)n * sizeof *names);
    if (!names)
        return err_set("out of memory");
    for (int i = 0; i < n; i++) {
        names[i] = config_setting_get_string_elem(labels, i);
        for (int j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0) {
                char where[512], path[512];
                err_set("%s: %s: '%s' is listed twice", setting_where(labels, where, sizeof where),
                        setting_path(labels, path, sizeof path), names[i]);
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
int map_from_table(const rows_strtab *t, int tags, labelmap *M)
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
static int *map_table(const labelmap *M, const rows_strtab *t)
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
int rows_map(runner_rows *R, const labelmap *LM, const labelmap *TM, char *keep)
{
    char known[1024];
    int rc = -1, *lm = NULL, *tm = NULL;
    if ((LM && !(lm = map_table(LM, &R->labtab))) || (TM && !(tm = map_table(TM, &R->tagtab))))
        goto done;
    for (int i = 0; i < R->n; i++) {
        keep[i] = 1;
        if (lm && lm[R->label[i]] < 0) {
            keep[i] = 0;
            if (rows_bad(R, R->label_file, R->line[i], "unknown label '%s' (known: %s)",
                        R->labtab.s[R->label[i]], known_names(LM, known, sizeof known)) != 0)
                goto done;
            continue;
        }
        for (int64_t j = R->tag_off[i]; tm && j < R->tag_off[i + 1]; j++)
            if (tm[R->tags[j]] < 0) {
                keep[i] = 0;
                if (rows_bad(R, R->tag_file, R->line[i],
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

