/* data.h — the examples of a task: dataset readers for the formats of
 * ../shared/datasets (GLUE TSV, AG News CSV, TREC, the SNIPS/ATIS folder
 * layout, CoNLL-2003) and unlabeled text for MLM pre-training (`lines`),
 * with label maps, deterministic train/dev splits and the bad-row policy.
 * Every file is read through zlib, so any input may be gzip'd.
 * See docs/data.md for the formats and rules. */
#ifndef DATA_H
#define DATA_H

#include <libconfig.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { SPLIT_TRAIN, SPLIT_DEV } data_split;

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
    char **names;           /* label (or tag) names in id order; NULL for `lines` */
    int n_names;
    int skipped;            /* bad rows skipped (on_error = "skip") */
    int repaired;           /* rows whose invalid UTF-8 bytes were replaced by U+FFFD */
    char **notes;           /* the first DATASET_MAX_NOTES messages, "file:line: ..." */
    int n_notes;
    char *source;           /* what was read, for messages: "../shared/datasets/sst2/train.tsv" */
} dataset;

/* Load one split of a task's dataset group (the `dataset` section; keys
 * absent from it take the schema's defaults). -1 with err_set("file:line:
 * ...") on a missing file, a bad setting, or a bad row when on_error is
 * "stop". With on_error = "skip" bad rows are counted in `skipped` and the
 * first ones kept in `notes`: the caller logs them. */
int dataset_load(const config_setting_t *ds, data_split split, dataset *out);
void dataset_free(dataset *d);

/* Id of a label name, or -1. */
int dataset_label_id(const dataset *d, const char *name);

#endif
