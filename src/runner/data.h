/* data.h — the examples of a task. A dataset section names a dataset
 * plugin (`plugin = "tsv"`, plugins/dataset/NAME.c: tsv, agnews_csv, trec,
 * slots, conll, lines, delimited, or one out of tree) that reads sources
 * into rows; the host keeps which sources (path | train, dev, test), label
 * maps (`labels`), deterministic train/dev splits, limits and the bad-row
 * policy (on_error) with its notes. Every file is read through zlib, so
 * any input may be gzip'd. See docs/data.md for the formats and rules. */
#ifndef DATA_H
#define DATA_H

#include <libconfig.h>
#include <stddef.h>
#include <stdint.h>

#include "pipeline.h"

typedef enum { SPLIT_TRAIN, SPLIT_DEV, SPLIT_TEST } data_split;

/* Messages kept per load (bad rows, repaired bytes), each "file:line: ...". */
#define DATASET_MAX_NOTES 10

typedef struct dataset {
    int n;                  /* examples */
    char *text;             /* text of example i: text + start[i], len[i] bytes, NUL-terminated,
                               valid UTF-8; token tasks: the words joined by single spaces */
    size_t *start, *len;
    int32_t *label;         /* sentence label per example; NULL for token tasks and `lines` */
    int64_t *tag_off;       /* token tasks: the word-level tag ids of example i are */
    int32_t *tags;          /*   tags[tag_off[i] .. tag_off[i+1]), one per word; else NULL */
    char *text2;            /* sentence pairs (STS): the second sentence of pair i at text2 + start2[i], */
    size_t *start2, *len2;  /*   len2[i] bytes; its score in score[i]; else NULL */
    double *score;
    char **names;           /* label (or tag) names in id order; NULL for `lines` */
    int n_names;
    int skipped;            /* bad rows skipped (on_error = "skip") */
    int repaired;           /* rows whose invalid UTF-8 bytes were replaced by U+FFFD */
    char **notes;           /* the first DATASET_MAX_NOTES messages, "file:line: ..." */
    int n_notes;
    char *source;           /* what was read, for messages: "../shared/datasets/sst2/train.tsv" */
} dataset;

/* Load one split of a dataset section (validated: defaults filled in) with
 * its plugin, instantiated once per section as a stage of pl named slot
 * ("tasks.topic.dataset"). Returns 0; 1 for SPLIT_TEST when the section
 * has no test source; -1 with err_set("file:line: ...") on a missing file,
 * a bad setting, or a bad row when on_error is "stop". With on_error =
 * "skip" bad rows are counted in `skipped` and the first ones kept in
 * `notes`: the caller logs them. */
int dataset_load(pipeline *pl, const char *slot, config_setting_t *ds, data_split split, dataset *out);
/* Every row of one source (a file or folder) read by the section's plugin,
 * in file order: no split, no limit (drive_sts reads its files so). */
int dataset_load_source(pipeline *pl, const char *slot, config_setting_t *ds, const char *source, dataset *out);
void dataset_free(dataset *d);

/* Id of a label name, or -1. */
int dataset_label_id(const dataset *d, const char *name);

/* `format = "tsv"` (deprecated) becomes `plugin = "tsv"` in the section.
 * Returns 1 when it rewrote the section, else 0. */
int dataset_format_alias(config_setting_t *ds);

#endif
