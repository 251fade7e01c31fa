/* classify.h — shared math of the loss and metric plugins:
 * softmax cross-entropy and binary cross-entropy of one row (double, with
 * their gradients), a confusion matrix with per-class / macro / micro
 * scores (sklearn's conventions, zero_division=0), and IOB entity spans with
 * seqeval's default (conlleval) rules.
 *
 * Part of the kit (librunner.so.1). They never write an error message of
 * their own: they return a status and say which element was bad, and the
 * plugin turns that into a message with h->error(). docs/metrics.md has the
 * formulas. */
#ifndef CLASSIFY_H
#define CLASSIFY_H

#include <stddef.h>
#include <stdint.h>

#include "runner/runner.h"

/* ---- losses: one row ------------------------------------------------------ */

/* Cross-entropy of one row of K logits z against label y (0 <= y < K), with
 * PyTorch's semantics for class weights w (NULL: all 1; w_sum = their sum,
 * K without weights) and label smoothing eps:
 *   loss = (1-eps) w_y (lse - z_y) + eps/K sum_c w_c (lse - z_c)
 * dz (may be NULL) is written with d loss / d z:
 *   dz_c = (1-eps) w_y (p_c - [c=y]) + eps/K (w_sum p_c - w_c).
 * A batch's mean divides the sum of rows by sum_i w_{y_i}. */
double xent_row(int K, const double *z, int y, const double *w, double w_sum, double eps,
                double *dz);
/* Index of the largest logit (the first on ties) and its softmax probability. */
int xent_argmax(int K, const float *z, float *prob);

/* Binary cross-entropy with logits of one row, label y in {0, 1}:
 *   loss = pos_weight y softplus(-z) + (1-y) softplus(z)
 * dz (may be NULL) gets pos_weight y (sigmoid(z)-1) + (1-y) sigmoid(z). */
double bce_row(double z, int y, double pos_weight, double *dz);
double sigmoid(double z);

/* ---- confusion matrix ----------------------------------------------------- */

typedef struct confusion {
    int K;
    int64_t *cell;   /* (K,K) counts, gold-major: cell[g*K + p] */
    int64_t *missed; /* (K) rows of gold g without a prediction (pred < 0) */
    int64_t n;       /* counted rows (gold >= 0) */
} confusion;

/* Zero the counts for K classes (reallocating when K changes); -1 when out
 * of memory. */
int confusion_reset(confusion *c, int K);
void confusion_free(confusion *c);
/* Count n rows. gold < 0: ignored. pred < 0: no prediction (a wrong answer).
 * Returns -1 with *bad = the row when gold or pred is >= K. */
int confusion_add(confusion *c, int n, const int32_t *gold, const int32_t *pred, int *bad);

typedef struct class_scores {
    double precision, recall, f1;
    int64_t tp, support, predicted; /* support: gold rows of the class */
} class_scores;

/* Scores of class k; 0 where a denominator is 0 (sklearn zero_division=0). */
void confusion_class(const confusion *c, int k, class_scores *out);
/* Correct rows / counted rows (0 with none counted). */
double confusion_accuracy(const confusion *c);
/* Unweighted means of the per-class scores over the classes that occur in
 * gold or predictions (sklearn's labels=None); 0 when none occurs. */
void confusion_macro(const confusion *c, double *precision, double *recall, double *f1);
/* Global counts: sum tp / sum predicted, sum tp / sum support, and their F1.
 * Equal to accuracy when every counted row has a prediction. */
void confusion_micro(const confusion *c, double *precision, double *recall, double *f1);

/* F1 from precision and recall, 0 when both are 0. */
double f1_of(double precision, double recall);

/* The common part of the metric plugins built on a confusion matrix: an
 * instance starts with this struct; create/destroy/reset/add are the
 * plugin's own callbacks, only report() differs between plugins. */
typedef struct confusion_metric {
    const runner_host *h;
    confusion c;
    char **names; /* (c.K) label names from reset(), or "0", "1", ... */
} confusion_metric;

/* Allocate a zeroed instance of size bytes (>= sizeof(confusion_metric)). */
int cm_create(const runner_host *h, size_t size, void **self);
void cm_destroy(void *self);
int cm_reset(void *self, int n_labels, const char *const *label_names);
/* Rows with gold -1 are skipped; pred -1 is a missing (wrong) prediction. */
int cm_add(void *self, int n, const int32_t *gold, const int32_t *pred);

/* ---- IOB entity spans ----------------------------------------------------- */

enum { IOB_O = 0, IOB_B, IOB_I };

typedef struct iob_tags {
    int n_labels;
    unsigned char *kind; /* (n_labels) IOB_O | IOB_B | IOB_I */
    int *type;           /* (n_labels) entity type index, -1 for O */
    char **types;        /* (n_types) type names, sorted ("_" for bare B / I) */
    int n_types;
} iob_tags;

/* Parse tag names ("O", "B-PER", "I-PER", bare "B" / "I" of type "_", as
 * seqeval reads them). Returns -1 with *bad = the label index for a name of
 * another shape, or *bad = -1 when out of memory. */
int iob_parse(int n_labels, const char *const *names, iob_tags *out, int *bad);
void iob_free(iob_tags *t);

typedef struct span {
    int type, begin, end; /* end inclusive, as seqeval's get_entities */
} span;

/* Entities of one sentence of n tag ids with seqeval's default rules:
 * an entity ends before B, O, or a tag of another type; it starts at B, at
 * I after O, and at I whose type differs from the previous tag's. The same
 * rules read IOB1 (B only separates adjacent entities of one type) and IOB2.
 * Ids outside [0, n_labels) read as O. out has room for n; returns the
 * count, spans in increasing order. */
int iob_spans(const iob_tags *t, int n, const int32_t *seq, span *out);
/* Tags that break a scheme (counted per tag): IOB2: an I-X not after B-X
 * or I-X; IOB1: a B-X not after I-X or B-X. */
int iob_violations(const iob_tags *t, int n, const int32_t *seq, int iob1);

#endif
