/* span_f1.c — entity-level F1 of a token task, seqeval's default
 * (non-strict) mode: entities are (type, first word, last word) read from
 * word-level IOB tags with conlleval's rules, a predicted entity counts
 * only when type and both ends match a gold one. add() takes one sentence.
 * Emits f1 (headline, micro over all entities), precision, recall,
 * f1.<TYPE> for every type in the tag set (sorted), then invalid.gold and
 * invalid.pred: tags that break the declared scheme (they are still read as
 * seqeval reads them). See docs/metrics.md. */
#include <stdio.h>
#include <string.h>

#include "runner/kit/classify.h"
#include "runner/runner.h"

typedef struct span_f1 {
    const runner_host *h;
    int iob1;
    iob_tags tags;
    int64_t *tp, *n_gold, *n_pred; /* (tags.n_types) */
    int64_t invalid_gold, invalid_pred;
    int warned;
    span *gold_spans, *pred_spans; /* (cap) one sentence */
    int cap;
} span_f1;

/* the key table's default and the value when the section lacks the key */
#define DEFAULT_SCHEME "iob2"

static const runner_key keys[] = {
    {"scheme", RUNNER_T_STRING, "\"" DEFAULT_SCHEME "\"",
     "iob2 (BIO: every entity starts with B-) | iob1 (B- only between adjacent entities of one "
     "type); both are read with seqeval's default rules, the scheme decides what invalid.* count", "iob2|iob1"},
    {0},
};

static void counts_free(span_f1 *s)
{
    const runner_host *h = s->h;
    h->free(s->tp);
    h->free(s->n_gold);
    h->free(s->n_pred);
    s->tp = s->n_gold = s->n_pred = NULL;
    iob_free(&s->tags);
}

static void destroy(void *self)
{
    span_f1 *s = self;
    if (!s)
        return;
    counts_free(s);
    s->h->free(s->gold_spans);
    s->h->free(s->pred_spans);
    s->h->free(s);
}

static int create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    span_f1 *s = h->calloc(1, sizeof *s);
    if (!s)
        return h->error(h, "out of memory");
    s->h = h;
    const char *scheme = DEFAULT_SCHEME;
    if (h->cfg_string(cfg, "scheme", &scheme) < 0)
        goto fail;
    if (strcmp(scheme, "iob1") != 0 && strcmp(scheme, "iob2") != 0) {
        h->error(h, "scheme = \"%s\": expected \"iob2\" or \"iob1\"", scheme);
        goto fail;
    }
    s->iob1 = strcmp(scheme, "iob1") == 0;
    *self = s;
    return 0;
fail:
    destroy(s);
    return -1;
}

static int reset(void *self, int n_labels, const char *const *label_names)
{
    span_f1 *s = self;
    const runner_host *h = s->h;
    int bad;
    counts_free(s);
    s->invalid_gold = s->invalid_pred = 0;
    if (!label_names)
        return h->error(h, "needs the tag names (O, B-PER, I-PER, ...) of the %d labels",
                        n_labels);
    if (iob_parse(n_labels, label_names, &s->tags, &bad) != 0)
        return bad < 0 ? h->error(h, "out of memory")
                       : h->error(h, "label %d '%s' is not an IOB tag: expected O, B-<type> "
                                     "or I-<type>", bad, label_names[bad]);
    size_t n = (size_t)s->tags.n_types + 1;
    s->tp = h->calloc(n, sizeof *s->tp);
    s->n_gold = h->calloc(n, sizeof *s->n_gold);
    s->n_pred = h->calloc(n, sizeof *s->n_pred);
    if (!s->tp || !s->n_gold || !s->n_pred) {
        counts_free(s);
        return h->error(h, "out of memory");
    }
    return 0;
}

static int add(void *self, int n, const int32_t *gold, const int32_t *pred)
{
    span_f1 *s = self;
    const runner_host *h = s->h;
    if (!s->tp)
        return h->error(h, "add() before reset()");
    for (int i = 0; i < n; i++)
        if (gold[i] >= s->tags.n_labels || pred[i] >= s->tags.n_labels)
            return h->error(h, "word %d: gold %d / predicted %d outside [0, %d)", i, gold[i],
                            pred[i], s->tags.n_labels);
    if (n > s->cap) {
        h->free(s->gold_spans);
        h->free(s->pred_spans);
        s->gold_spans = h->alloc((size_t)n * sizeof *s->gold_spans);
        s->pred_spans = h->alloc((size_t)n * sizeof *s->pred_spans);
        s->cap = s->gold_spans && s->pred_spans ? n : 0;
        if (!s->cap)
            return h->error(h, "out of memory");
    }
    int ng = iob_spans(&s->tags, n, gold, s->gold_spans);
    int np = iob_spans(&s->tags, n, pred, s->pred_spans);
    for (int i = 0; i < ng; i++)
        s->n_gold[s->gold_spans[i].type]++;
    for (int j = 0; j < np; j++)
        s->n_pred[s->pred_spans[j].type]++;
    /* both lists are in increasing order of begin, without overlaps */
    for (int i = 0, j = 0; i < ng && j < np;) {
        const span *g = &s->gold_spans[i], *p = &s->pred_spans[j];
        if (g->begin < p->begin) {
            i++;
        } else if (p->begin < g->begin) {
            j++;
        } else {
            if (g->end == p->end && g->type == p->type)
                s->tp[g->type]++;
            i++;
            j++;
        }
    }
    s->invalid_gold += iob_violations(&s->tags, n, gold, s->iob1);
    s->invalid_pred += iob_violations(&s->tags, n, pred, s->iob1);
    return 0;
}

static int report(void *self, runner_emit_fn emit, void *ctx)
{
    span_f1 *s = self;
    int64_t tp = 0, n_gold = 0, n_pred = 0;
    for (int t = 0; s->tp && t < s->tags.n_types; t++) {
        tp += s->tp[t];
        n_gold += s->n_gold[t];
        n_pred += s->n_pred[t];
    }
    double precision = n_pred ? (double)tp / (double)n_pred : 0;
    double recall = n_gold ? (double)tp / (double)n_gold : 0;
    emit(ctx, "f1", f1_of(precision, recall));
    emit(ctx, "precision", precision);
    emit(ctx, "recall", recall);
    for (int t = 0; s->tp && t < s->tags.n_types; t++) {
        char name[512];
        double p = s->n_pred[t] ? (double)s->tp[t] / (double)s->n_pred[t] : 0;
        double r = s->n_gold[t] ? (double)s->tp[t] / (double)s->n_gold[t] : 0;
        snprintf(name, sizeof name, "f1.%s", s->tags.types[t]);
        emit(ctx, name, f1_of(p, r));
    }
    emit(ctx, "invalid.gold", (double)s->invalid_gold);
    emit(ctx, "invalid.pred", (double)s->invalid_pred);
    if (s->invalid_gold && !s->warned) {
        s->warned = 1;
        s->h->log(s->h, RUNNER_LOG_WARN,
                  "%lld gold tags break %s (%s); is the data in %s?",
                  (long long)s->invalid_gold, s->iob1 ? "iob1" : "iob2",
                  s->iob1 ? "B- not after a tag of its type" : "I- not after B-/I- of its type",
                  s->iob1 ? "iob2" : "iob1");
    }
    return 0;
}

static const runner_metric_ops ops = {
    .reset = reset,
    .add = add,
    .report = report,
};

RUNNER_DEFINE_PLUGIN(metric, span_f1,
    "entity-level F1 of IOB2/IOB1 word tags with seqeval's default rules; also "
    "precision, recall, f1.<TYPE>",
    keys, create, destroy, &ops)
