/* labels.h — label maps of datasets (labels.c), private to data.c. */
#ifndef LABELS_H
#define LABELS_H

#include <libconfig.h>

#include "runner/kit/rows.h"

typedef struct labelmap {
    char **names;
    int n;
    int base;    /* numeric labels k name names[k - base] ... */
    int numeric; /* ... when set (fixed classes, or `labels` given) */
} labelmap;

void map_free(labelmap *M);
int map_set(labelmap *M, const char *const *names, int n);
/* `labels` of the configuration (names listed twice are an error). */
int map_from_config(const config_setting_t *labels, labelmap *M);
/* The raw labels (tags: "O" first) of the training source, sorted: numbers
 * as numbers, others by bytes. */
int map_from_table(const rows_strtab *t, int tags, labelmap *M);
/* Map the rows' raw ids in place (LM, TM may be NULL); rows with an
 * unknown label or tag are bad rows (keep[i] = 0). */
int rows_map(runner_rows *R, const labelmap *LM, const labelmap *TM, char *keep);

#endif
