/* rows.h — the row sink a dataset plugin's read() fills (runner_rows of
 * runner.h). A plugin adds sentence rows (text and a raw label string),
 * tagged rows (tags pushed one per word, then the words joined by single
 * spaces, with an optional sentence label), and bad rows (an error when
 * on_error = "stop", counted and noted when "skip"). Texts are made valid
 * UTF-8 (invalid bytes become U+FFFD, counted and noted). Raw labels and
 * tags are interned as strings; the host maps them to ids (`labels`, or
 * the training source's sorted set), splits and limits the rows.
 *
 * The struct is the host's: a plugin uses only the functions. Failures
 * return -1 with the message in the kit's error (err_get()). */
#ifndef RUNNER_KIT_ROWS_H
#define RUNNER_KIT_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "runner/kit/textio.h"
#include "runner/runner.h"

/* What a plugin's rows carry (rows_kind). */
enum {
    ROWS_LABELS = 1u << 0,    /* a sentence label per row */
    ROWS_TAGS = 1u << 1,      /* a tag per word */
    ROWS_TAG_TARGET = 1u << 2, /* the task predicts the tags (else the label) */
    ROWS_PAIRS = 1u << 3       /* sentence pairs with a score (rows_add_pair) */
};

#define ROWS_MAX_NOTES 10

/* Interned strings: s[i] (len[i] bytes, NUL-terminated) has id i. */
typedef struct rows_strtab {
    char **s;
    size_t *len;
    int n, cap;
    int *slot;
    size_t nslot;
} rows_strtab;

struct runner_rows {
    txt_buf text;     /* row texts, each followed by a NUL */
    size_t *start, *len;
    long *line;       /* line the row starts on */
    int32_t *label;   /* raw label id in labtab, per row */
    int64_t *tag_off; /* raw tag ids of row i: tags[tag_off[i] .. tag_off[i+1]) */
    int32_t *tags;
    size_t ntags, tagcap;
    txt_buf text2;    /* ROWS_PAIRS: the second sentence of row i: text2.p + start2[i] */
    size_t *start2, *len2;
    double *score;    /* ROWS_PAIRS: the pair's score */
    int n, cap;
    unsigned what;    /* ROWS_* */
    rows_strtab labtab, tagtab;
    char *label_file, *tag_file; /* named in messages about labels, tags */
    char **classes;   /* fixed class names (rows_classes), numeric labels from class_base */
    int n_classes, class_base;
    /* set by the host */
    int skip;         /* on_error = "skip" */
    long long left;   /* rows still wanted, -1: no cap */
    int (*accept)(void *ctx); /* keep this row? (held-out draws), NULL: all */
    void *accept_ctx;
    /* bad rows, repaired rows, the first notes "file:line: ..." */
    int bad, repaired, n_notes;
    char *notes[ROWS_MAX_NOTES];
};

/* Host side. */
void rows_init(runner_rows *R, int skip);
void rows_free(runner_rows *R); /* NULL: no-op */

/* What the rows carry; call before adding rows. */
void rows_kind(runner_rows *R, unsigned what);
/* The file named by messages about labels (default: the row's file) and
 * about tags. */
int rows_files(runner_rows *R, const char *label_file, const char *tag_file);
/* Fixed class names: the raw label "k" (a number) means names[k - base],
 * and so does the name itself; `labels` in the configuration renames them. */
int rows_classes(runner_rows *R, const char *const *names, int n, int base);

/* A row: its text (n bytes, made valid UTF-8) and raw label (label_len
 * bytes; ignored unless ROWS_LABELS); the tags pushed since the previous
 * row are its tags. line: where the row starts, for messages. */
int rows_add(runner_rows *R, const char *file, long line, const char *text, size_t n, const char *label,
             size_t label_len);
/* A sentence pair (ROWS_PAIRS) with its score, e.g. STS: a and b made
 * valid UTF-8. */
int rows_add_pair(runner_rows *R, const char *file, long line, const char *a, size_t an, const char *b, size_t bn,
                  double score);
/* Push the tag of the next word of the row being built. */
int rows_tag(runner_rows *R, const char *tag, size_t n);
/* Drop the tags pushed for the row being built (a bad row). */
void rows_drop_tags(runner_rows *R);
/* A bad row at file:line: with on_error = "stop" -1 and the error
 * "file:line: message"; with "skip" it is counted and noted, 0. */
int rows_bad(runner_rows *R, const char *file, long line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A note (kept among the first ROWS_MAX_NOTES). */
void rows_note(runner_rows *R, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* 1 when the host wants no more rows (`limit` reached): stop reading. */
int rows_full(const runner_rows *R);

#endif
