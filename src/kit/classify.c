/* classify.c — row losses, confusion-matrix scores and IOB spans for the
 * loss and metric plugins (see classify.h and docs/metrics.md). */
#include "runner/kit/classify.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- losses ------------------------------------------------------------------ */

double xent_row(int K, const double *z, int y, const double *w, double w_sum, double eps,
                double *dz)
{
    double m = z[0];
    for (int c = 1; c < K; c++)
        m = z[c] > m ? z[c] : m;
    double s = 0;
    for (int c = 0; c < K; c++)
        s += exp(z[c] - m);
    double lse = m + log(s);
    double wy = w ? w[y] : 1.0;
    double loss = (1 - eps) * wy * (lse - z[y]);
    if (eps > 0) {
        double smooth = 0;
        for (int c = 0; c < K; c++)
            smooth += (w ? w[c] : 1.0) * (lse - z[c]);
        loss += eps / K * smooth;
    }
    if (dz)
        for (int c = 0; c < K; c++) {
            double p = exp(z[c] - lse);
            dz[c] = (1 - eps) * wy * (p - (c == y)) + eps / K * (w_sum * p - (w ? w[c] : 1.0));
        }
    return loss;
}

int xent_argmax(int K, const float *z, float *prob)
{
    int best = 0;
    for (int c = 1; c < K; c++)
        if (z[c] > z[best])
            best = c;
    double s = 0;
    for (int c = 0; c < K; c++)
        s += exp((double)z[c] - z[best]);
    *prob = (float)(1.0 / s);
    return best;
}

static double softplus(double x) { return (x > 0 ? x : 0) + log1p(exp(-fabs(x))); }

double sigmoid(double z)
{
    if (z >= 0)
        return 1 / (1 + exp(-z));
    double e = exp(z);
    return e / (1 + e);
}

double bce_row(double z, int y, double pos_weight, double *dz)
{
    if (y) {
        if (dz)
            *dz = -pos_weight * sigmoid(-z);
        return pos_weight * softplus(-z);
    }
    if (dz)
        *dz = sigmoid(z);
    return softplus(z);
}

/* ---- confusion matrix ----------------------------------------------------------- */

int confusion_reset(confusion *c, int K)
{
    if (K != c->K || !c->cell) {
        confusion_free(c);
        c->cell = calloc((size_t)K * (size_t)K, sizeof *c->cell);
        c->missed = calloc((size_t)K, sizeof *c->missed);
        if (!c->cell || !c->missed) {
            confusion_free(c);
            return -1;
        }
        c->K = K;
    } else {
        memset(c->cell, 0, (size_t)K * (size_t)K * sizeof *c->cell);
        memset(c->missed, 0, (size_t)K * sizeof *c->missed);
    }
    c->n = 0;
    return 0;
}

void confusion_free(confusion *c)
{
    free(c->cell);
    free(c->missed);
    memset(c, 0, sizeof *c);
}

int confusion_add(confusion *c, int n, const int32_t *gold, const int32_t *pred, int *bad)
{
    for (int i = 0; i < n; i++)
        if (gold[i] >= c->K || (gold[i] >= 0 && pred[i] >= c->K)) {
            *bad = i;
            return -1;
        }
    for (int i = 0; i < n; i++) {
        if (gold[i] < 0)
            continue;
        if (pred[i] < 0)
            c->missed[gold[i]]++;
        else
            c->cell[(int64_t)gold[i] * c->K + pred[i]]++;
        c->n++;
    }
    return 0;
}

double f1_of(double precision, double recall)
{
    return precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0;
}

void confusion_class(const confusion *c, int k, class_scores *out)
{
    int64_t support = c->missed[k], predicted = 0;
    for (int j = 0; j < c->K; j++) {
        support += c->cell[(int64_t)k * c->K + j];
        predicted += c->cell[(int64_t)j * c->K + k];
    }
    out->tp = c->cell[(int64_t)k * c->K + k];
    out->support = support;
    out->predicted = predicted;
    out->precision = predicted ? (double)out->tp / (double)predicted : 0;
    out->recall = support ? (double)out->tp / (double)support : 0;
    out->f1 = f1_of(out->precision, out->recall);
}

double confusion_accuracy(const confusion *c)
{
    int64_t right = 0;
    for (int k = 0; k < c->K; k++)
        right += c->cell[(int64_t)k * c->K + k];
    return c->n ? (double)right / (double)c->n : 0;
}

void confusion_macro(const confusion *c, double *precision, double *recall, double *f1)
{
    double sp = 0, sr = 0, sf = 0;
    int seen = 0;
    for (int k = 0; k < c->K; k++) {
        class_scores s;
        confusion_class(c, k, &s);
        if (s.support == 0 && s.predicted == 0)
            continue;
        sp += s.precision;
        sr += s.recall;
        sf += s.f1;
        seen++;
    }
    *precision = seen ? sp / seen : 0;
    *recall = seen ? sr / seen : 0;
    *f1 = seen ? sf / seen : 0;
}

void confusion_micro(const confusion *c, double *precision, double *recall, double *f1)
{
    int64_t tp = 0, missed = 0;
    for (int k = 0; k < c->K; k++) {
        tp += c->cell[(int64_t)k * c->K + k];
        missed += c->missed[k];
    }
    int64_t predicted = c->n - missed;
    *precision = predicted ? (double)tp / (double)predicted : 0;
    *recall = c->n ? (double)tp / (double)c->n : 0;
    *f1 = f1_of(*precision, *recall);
}

/* ---- IOB entity spans --------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int iob_parse(int n_labels, const char *const *names, iob_tags *out, int *bad)
{
    memset(out, 0, sizeof *out);
    *bad = -1;
    out->n_labels = n_labels;
    out->kind = calloc((size_t)n_labels + 1, 1);
    out->type = calloc((size_t)n_labels + 1, sizeof *out->type);
    out->types = calloc((size_t)n_labels + 1, sizeof *out->types);
    if (!out->kind || !out->type || !out->types)
        goto fail;
    /* kinds, and the type name of each label ("" for O) */
    for (int i = 0; i < n_labels; i++) {
        const char *s = names[i];
        if (strcmp(s, "O") == 0) {
            out->kind[i] = IOB_O;
            out->type[i] = -1;
            continue;
        }
        if ((s[0] != 'B' && s[0] != 'I') || (s[1] != '\0' && s[1] != '-')) {
            *bad = i;
            goto fail;
        }
        out->kind[i] = s[0] == 'B' ? IOB_B : IOB_I;
        const char *type = s[1] && s[2] ? s + 2 : "_";
        int t = 0;
        while (t < out->n_types && strcmp(out->types[t], type) != 0)
            t++;
        if (t == out->n_types) {
            out->types[t] = strdup(type);
            if (!out->types[t])
                goto fail;
            out->n_types++;
        }
    }
    qsort(out->types, (size_t)out->n_types, sizeof *out->types, cmp_str);
    for (int i = 0; i < n_labels; i++) {
        if (out->kind[i] == IOB_O)
            continue;
        const char *type = names[i][1] && names[i][2] ? names[i] + 2 : "_";
        char *const *hit = bsearch(&type, out->types, (size_t)out->n_types, sizeof *out->types,
                                   cmp_str);
        out->type[i] = (int)(hit - out->types);
    }
    return 0;
fail:
    iob_free(out);
    return -1;
}

void iob_free(iob_tags *t)
{
    for (int i = 0; t->types && i < t->n_types; i++)
        free(t->types[i]);
    free(t->types);
    free(t->kind);
    free(t->type);
    memset(t, 0, sizeof *t);
}

/* Kind and type of position i (O outside the sentence or the label range). */
static void tag_at(const iob_tags *t, int n, const int32_t *seq, int i, int *kind, int *type)
{
    if (i < 0 || i >= n || seq[i] < 0 || seq[i] >= t->n_labels) {
        *kind = IOB_O;
        *type = -1;
    } else {
        *kind = t->kind[seq[i]];
        *type = t->type[seq[i]];
    }
}

int iob_spans(const iob_tags *t, int n, const int32_t *seq, span *out)
{
    int count = 0, begin = 0, prev = IOB_O, prev_type = -1;
    for (int i = 0; i <= n; i++) { /* i == n: the trailing O of get_entities */
        int kind, type;
        tag_at(t, n, seq, i, &kind, &type);
        if (prev != IOB_O && (kind != IOB_I || type != prev_type))
            out[count++] = (span){prev_type, begin, i - 1};
        if (kind == IOB_B || (kind == IOB_I && (prev == IOB_O || type != prev_type)))
            begin = i;
        prev = kind;
        prev_type = type;
    }
    return count;
}

int iob_violations(const iob_tags *t, int n, const int32_t *seq, int iob1)
{
    int count = 0;
    for (int i = 0; i < n; i++) {
        int kind, type, pk, pt;
        tag_at(t, n, seq, i, &kind, &type);
        tag_at(t, n, seq, i - 1, &pk, &pt);
        if (kind == (iob1 ? IOB_B : IOB_I) && (pk == IOB_O || pt != type))
            count++;
    }
    return count;
}

/* ---- metric plugins on a confusion matrix ---------------------------------------- */

int cm_create(const runner_host *h, size_t size, void **self)
{
    confusion_metric *m = h->calloc(1, size);
    if (!m)
        return h->error(h, "out of memory");
    m->h = h;
    *self = m;
    return 0;
}

static void names_free(confusion_metric *m)
{
    for (int k = 0; m->names && k < m->c.K; k++)
        free(m->names[k]);
    free(m->names);
    m->names = NULL;
}

void cm_destroy(void *self)
{
    confusion_metric *m = self;
    if (!m)
        return;
    names_free(m);
    confusion_free(&m->c);
    m->h->free(m);
}

int cm_reset(void *self, int n_labels, const char *const *label_names)
{
    confusion_metric *m = self;
    const runner_host *h = m->h;
    if (n_labels < 1)
        return h->error(h, "reset with %d labels", n_labels);
    names_free(m);
    if (confusion_reset(&m->c, n_labels) != 0)
        return h->error(h, "out of memory");
    m->names = calloc((size_t)n_labels, sizeof *m->names);
    for (int k = 0; m->names && k < n_labels; k++) {
        char num[16];
        snprintf(num, sizeof num, "%d", k);
        m->names[k] = strdup(label_names && label_names[k] ? label_names[k] : num);
        if (!m->names[k]) {
            names_free(m);
            break;
        }
    }
    return m->names ? 0 : h->error(h, "out of memory");
}

int cm_add(void *self, int n, const int32_t *gold, const int32_t *pred)
{
    confusion_metric *m = self;
    int bad;
    if (confusion_add(&m->c, n, gold, pred, &bad) != 0)
        return m->h->error(m->h, "row %d: gold %d / predicted %d outside [0, %d)", bad,
                           gold[bad], pred[bad], m->c.K);
    return 0;
}
