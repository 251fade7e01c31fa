/* metrics.c — the metric plugins: accuracy, macro/micro F1, per-class
 * scores and the confusion matrix on small hand-computed cases (sklearn's
 * conventions, zero_division=0), and entity-level span F1 on seqeval's own
 * documented examples in IOB2 and IOB1, plus a differential check of the
 * span reader against a line-by-line transcription of seqeval's rules. */
#include <math.h>
#include <stdlib.h>

#include "runner/kit/classify.h"
#include "plugin_stage.h"
#include "tap.h"

/* ---- collecting what report() emits ---------------------------------------------- */

typedef struct emitted {
    int n;
    char name[256][64];
    double value[256];
} emitted;

static void collect(void *ctx, const char *name, double value)
{
    emitted *e = ctx;
    if (e->n < 256) {
        snprintf(e->name[e->n], sizeof e->name[0], "%s", name);
        e->value[e->n++] = value;
    }
}

/* The value emitted under name, NaN when absent. */
static double value_of(const emitted *e, const char *name)
{
    for (int i = 0; i < e->n; i++)
        if (strcmp(e->name[i], name) == 0)
            return e->value[i];
    return NAN;
}

#define near(got, want, ...) cmp_ok(fabs((got) - (want)), <, 1e-12, __VA_ARGS__)

static const runner_metric_ops *ops_of(const stage *st) { return st->desc->ops; }

/* reset, one add of n rows, report */
static int run_metric(stage *st, int K, const char *const *names, int n, const int32_t *gold,
                      const int32_t *pred, emitted *out)
{
    memset(out, 0, sizeof *out);
    if (!st || ops_of(st)->reset(st->self, K, names) != 0 ||
        ops_of(st)->add(st->self, n, gold, pred) != 0)
        return -1;
    return ops_of(st)->report(st->self, collect, out);
}

static const char *config_text =
    "run = \"tokenize\";\n"
    "tasks = (\n"
    "  { name = \"t\"; metrics = [\"accuracy\", \"macro_f1\", \"micro_f1\", \"per_class\", \"confusion\"]; },\n"
    "  { name = \"sparse\"; metrics = ( { plugin = \"confusion\"; skip_zero = true; } ); },\n"
    "  { name = \"ner\"; metrics = [\"span_f1\"]; },\n"
    "  { name = \"ner1\"; metrics = ( { plugin = \"span_f1\"; scheme = \"iob1\"; } ); },\n"
    "  { name = \"bad\"; metrics = ( { plugin = \"span_f1\"; scheme = \"iob2\"; } ); }\n"
    ");\n";

enum { ACC, MACRO, MICRO, PER_CLASS, CONFUSION };

/* Case 1 by hand. Rows (gold, pred), row 6 ignored (gold -1):
 *   (a,a) (a,b) (b,b) (b,b) (c,a) (c,c) (-1,c) (a,c)
 * confusion (gold-major): a: [1 1 1]  b: [0 2 0]  c: [1 0 1]
 * accuracy 4/7; a: P 1/2 R 1/3 F1 0.4; b: P 2/3 R 1 F1 0.8; c: P 1/2 R 1/2 F1 0.5
 * macro P (1/2+2/3+1/2)/3, R (1/3+1+1/2)/3, F1 (0.4+0.8+0.5)/3 = 17/30. */
static void test_classes(pipeline *pl)
{
    stage *st[5];
    for (int m = 0; m < 5; m++)
        st[m] = stage_of_task(pl, "t", "metrics", m, RUNNER_KIND_METRIC);
    ok(st[0] && st[1] && st[2] && st[3] && st[4], "the five class metrics are built");
    const char *names[3] = {"a", "b", "c"};
    const int32_t gold[8] = {0, 0, 1, 1, 2, 2, -1, 0}, pred[8] = {0, 1, 1, 1, 0, 2, 2, 2};
    emitted e;

    ok(run_metric(st[ACC], 3, names, 8, gold, pred, &e) == 0, "accuracy runs");
    is_str(e.name[0], "accuracy", "accuracy: headline 'accuracy'");
    near(e.value[0], 4.0 / 7, "accuracy = 4/7 (the gold -1 row is not counted)");

    ok(run_metric(st[MACRO], 3, names, 8, gold, pred, &e) == 0, "macro_f1 runs");
    is_str(e.name[0], "macro_f1", "macro_f1: headline 'macro_f1'");
    near(e.value[0], 1.7 / 3, "macro F1 = (0.4 + 0.8 + 0.5) / 3");
    near(value_of(&e, "macro_precision"), (0.5 + 2.0 / 3 + 0.5) / 3, "macro precision");
    near(value_of(&e, "macro_recall"), (1.0 / 3 + 1 + 0.5) / 3, "macro recall");

    ok(run_metric(st[MICRO], 3, names, 8, gold, pred, &e) == 0, "micro_f1 runs");
    is_str(e.name[0], "micro_f1", "micro_f1: headline 'micro_f1'");
    near(e.value[0], 4.0 / 7, "micro F1 = accuracy for single-label multi-class");
    near(value_of(&e, "micro_precision"), 4.0 / 7, "micro precision = accuracy");
    near(value_of(&e, "micro_recall"), 4.0 / 7, "micro recall = accuracy");

    ok(run_metric(st[PER_CLASS], 3, names, 8, gold, pred, &e) == 0, "per_class runs");
    is_str(e.name[0], "macro_f1", "per_class: headline macro F1");
    near(e.value[0], 1.7 / 3, "... its value");
    is(e.n, 1 + 3 * 4, "per_class emits precision, recall, f1, support for 3 classes");
    near(value_of(&e, "precision.a"), 0.5, "precision.a = 1/2");
    near(value_of(&e, "recall.a"), 1.0 / 3, "recall.a = 1/3");
    near(value_of(&e, "f1.a"), 0.4, "f1.a = 0.4");
    near(value_of(&e, "precision.b"), 2.0 / 3, "precision.b = 2/3");
    near(value_of(&e, "recall.b"), 1, "recall.b = 1");
    near(value_of(&e, "f1.b"), 0.8, "f1.b = 0.8");
    near(value_of(&e, "f1.c"), 0.5, "f1.c = 0.5");
    near(value_of(&e, "support.a"), 3, "support.a = 3");

    ok(run_metric(st[CONFUSION], 3, names, 8, gold, pred, &e) == 0, "confusion runs");
    is_str(e.name[0], "accuracy", "confusion: headline accuracy");
    is(e.n, 1 + 9, "confusion emits all 9 cells");
    const double want[3][3] = {{1, 1, 1}, {0, 2, 0}, {1, 0, 1}};
    int cells_ok = 1;
    for (int g = 0; g < 3; g++)
        for (int p = 0; p < 3; p++) {
            char name[64];
            snprintf(name, sizeof name, "confusion.%s.%s", names[g], names[p]);
            cells_ok &= value_of(&e, name) == want[g][p];
        }
    ok(cells_ok, "confusion.<gold>.<pred> = the hand-counted matrix");
    is_str(e.name[2], "confusion.a.b", "cells in gold-major order");

    stage *sparse = stage_of_task(pl, "sparse", "metrics", 0, RUNNER_KIND_METRIC);
    ok(run_metric(sparse, 3, names, 8, gold, pred, &e) == 0, "confusion with skip_zero runs");
    is(e.n, 1 + 6, "skip_zero: only the 6 non-zero cells");
    ok(isnan(value_of(&e, "confusion.b.a")), "... confusion.b.a (0) left out");

    /* without label names the classes are named by index */
    ok(run_metric(st[PER_CLASS], 3, NULL, 8, gold, pred, &e) == 0, "per_class without label names");
    near(value_of(&e, "f1.1"), 0.8, "... names classes by index (f1.1)");

    /* reset starts over */
    const int32_t g2[2] = {1, 2}, p2[2] = {1, 2};
    ok(run_metric(st[ACC], 3, names, 2, g2, p2, &e) == 0 && e.value[0] == 1.0,
       "after reset only the new rows count (accuracy 1)");
    ok(run_metric(st[ACC], 3, names, 0, g2, p2, &e) == 0 && e.value[0] == 0,
       "no rows: accuracy 0");
    ok(run_metric(st[MACRO], 3, names, 0, g2, p2, &e) == 0 && e.value[0] == 0,
       "no rows: macro F1 0");
    /* several add() calls accumulate */
    ops_of(st[ACC])->reset(st[ACC]->self, 3, names);
    ops_of(st[ACC])->add(st[ACC]->self, 4, gold, pred);
    ops_of(st[ACC])->add(st[ACC]->self, 4, gold + 4, pred + 4);
    memset(&e, 0, sizeof e);
    ops_of(st[ACC])->report(st[ACC]->self, collect, &e);
    near(e.value[0], 4.0 / 7, "two add() calls = one add() of all rows");
}

/* Case 2, zero division (sklearn zero_division=0, labels=None). 4 classes:
 *   gold w w x x, pred w y w x
 * w: P 1/2 R 1/2 F1 1/2; x: P 1 R 1/2 F1 2/3; y (predicted, never gold):
 * P 0/1 = 0, R 0/0 -> 0, F1 0; z (never seen): left out of the macro mean.
 * macro F1 = (1/2 + 2/3 + 0) / 3, macro P = (1/2 + 1 + 0) / 3, R = (1/2 + 1/2 + 0) / 3. */
static void test_zero_division(pipeline *pl)
{
    stage *macro = stage_of_task(pl, "t", "metrics", MACRO, RUNNER_KIND_METRIC);
    stage *per = stage_of_task(pl, "t", "metrics", PER_CLASS, RUNNER_KIND_METRIC);
    const char *names[4] = {"w", "x", "y", "z"};
    const int32_t gold[4] = {0, 0, 1, 1}, pred[4] = {0, 2, 0, 1};
    emitted e;
    ok(run_metric(macro, 4, names, 4, gold, pred, &e) == 0, "macro_f1 on the zero-division case");
    near(e.value[0], (0.5 + 2.0 / 3) / 3, "macro F1 over the 3 classes seen (z left out, y counts 0)");
    near(value_of(&e, "macro_precision"), 1.5 / 3, "macro precision (y: 0)");
    near(value_of(&e, "macro_recall"), 1.0 / 3, "macro recall (y: 0/0 -> 0)");
    ok(run_metric(per, 4, names, 4, gold, pred, &e) == 0, "per_class on the zero-division case");
    ok(value_of(&e, "precision.y") == 0 && value_of(&e, "recall.y") == 0 && value_of(&e, "f1.y") == 0,
       "y: precision 0/1, recall 0/0 -> 0, F1 0");
    ok(value_of(&e, "precision.z") == 0 && value_of(&e, "recall.z") == 0 && value_of(&e, "f1.z") == 0 &&
           value_of(&e, "support.z") == 0, "z (never seen): all 0, support 0");
}

/* Case 3, missing predictions (-1): a wrong answer that predicts nothing.
 *   gold a b, pred a -1: accuracy 1/2, micro P 1/1, R 1/2, F1 2/3. */
static void test_missing(pipeline *pl)
{
    stage *micro = stage_of_task(pl, "t", "metrics", MICRO, RUNNER_KIND_METRIC);
    stage *conf = stage_of_task(pl, "t", "metrics", CONFUSION, RUNNER_KIND_METRIC);
    const char *names[2] = {"a", "b"};
    const int32_t gold[2] = {0, 1}, pred[2] = {0, -1};
    emitted e;
    ok(run_metric(micro, 2, names, 2, gold, pred, &e) == 0, "micro_f1 with a missing prediction");
    near(e.value[0], 2.0 / 3, "micro F1 = 2/3 (P 1, R 1/2)");
    ok(run_metric(conf, 2, names, 2, gold, pred, &e) == 0, "confusion with a missing prediction");
    near(e.value[0], 0.5, "accuracy 1/2: a missing prediction is wrong");
    near(value_of(&e, "missed.b"), 1, "missed.b = 1");
    ok(isnan(value_of(&e, "missed.a")), "missed.a not emitted (0)");
}

static void test_class_errors(pipeline *pl)
{
    stage *acc = stage_of_task(pl, "t", "metrics", ACC, RUNNER_KIND_METRIC);
    const int32_t gold[2] = {0, 3}, pred[2] = {0, 1}, g1[1] = {0}, p1[1] = {7};
    ops_of(acc)->reset(acc->self, 3, NULL);
    ok(ops_of(acc)->add(acc->self, 2, gold, pred) == -1, "a gold label >= K refused");
    like(err_get(), "tasks.t.metrics/accuracy: row 1: gold 3 / predicted 1 outside [0, 3)",
         "... naming slot, plugin and row");
    ok(ops_of(acc)->add(acc->self, 1, g1, p1) == -1, "a predicted label >= K refused");
    ok(ops_of(acc)->reset(acc->self, 0, NULL) == -1, "reset with 0 labels refused");
}

/* ---- span F1 ----------------------------------------------------------------------- */

/* seqeval 1.2.2's default rules, transcribed from
 * seqeval/metrics/sequence_labeling.py (end_of_chunk, start_of_chunk,
 * get_entities, prefix style) over tag strings, as the oracle of the
 * differential test below. The same rules in Python gave the expected
 * values of the hand cases:
 *   def end_of_chunk(pt, t, pty, ty):
 *       return (pt == 'B' and t in 'BO') or (pt == 'I' and t in 'BO') or (pt != 'O' and pty != ty)
 *   def start_of_chunk(pt, t, pty, ty):
 *       return t == 'B' or (pt == 'O' and t == 'I') or (t != 'O' and pty != ty)
 *   def get_entities(seq):
 *       prev_tag, prev_type, begin, chunks = 'O', '', 0, []
 *       for i, chunk in enumerate(seq + ['O']):
 *           tag, type_ = chunk[0], chunk[1:].split('-', maxsplit=1)[-1] or '_'
 *           if end_of_chunk(prev_tag, tag, prev_type, type_): chunks.append((prev_type, begin, i - 1))
 *           if start_of_chunk(prev_tag, tag, prev_type, type_): begin = i
 *           prev_tag, prev_type = tag, type_
 *       return chunks
 * (the E/S and '.' clauses of seqeval never fire on B/I/O tags). */
static int oracle_entities(int n, const char *const *seq, char types[][16], int *begin, int *end)
{
    char prev_tag = 'O', prev_type[16] = "";
    int b = 0, count = 0;
    for (int i = 0; i <= n; i++) {
        const char *chunk = i < n ? seq[i] : "O";
        char tag = chunk[0], type[16];
        const char *dash = strchr(chunk + 1, '-');
        snprintf(type, sizeof type, "%s", dash ? dash + 1 : chunk + 1);
        if (!type[0])
            strcpy(type, "_");
        int differ = strcmp(prev_type, type) != 0;
        int chunk_end = (prev_tag == 'B' && (tag == 'B' || tag == 'O')) ||
                        (prev_tag == 'I' && (tag == 'B' || tag == 'O')) ||
                        (prev_tag != 'O' && prev_tag != '.' && differ);
        int chunk_start = tag == 'B' || (prev_tag == 'O' && tag == 'I') ||
                          (tag != 'O' && tag != '.' && differ);
        if (chunk_end) {
            strcpy(types[count], prev_type);
            begin[count] = b;
            end[count++] = i - 1;
        }
        if (chunk_start)
            b = i;
        prev_tag = tag;
        strcpy(prev_type, type);
    }
    return count;
}

static void test_span_reader(void)
{
    const char *tagset[] = {"O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B", "I"};
    enum { NT = 7 };
    iob_tags t;
    int bad;
    ok(iob_parse(NT, tagset, &t, &bad) == 0 && t.n_types == 3, "iob_parse: 3 types (LOC, PER, _)");
    is_str(t.types[0], "LOC", "types sorted: LOC first");
    is_str(t.types[2], "_", "bare B / I have type '_' (as seqeval)");

    /* get_entities docstring: ['B-PER', 'I-PER', 'O', 'B-LOC'] -> [('PER', 0, 1), ('LOC', 3, 3)] */
    const int32_t doc[4] = {1, 2, 0, 3};
    span s[8];
    int n = iob_spans(&t, 4, doc, s);
    ok(n == 2 && s[0].type == 1 && s[0].begin == 0 && s[0].end == 1 && s[1].type == 0 &&
           s[1].begin == 3 && s[1].end == 3, "seqeval's get_entities docstring example");

    /* random sequences against the transcription of seqeval's rules */
    unsigned r = 2024;
    int mismatches = 0, total = 0;
    for (int trial = 0; trial < 3000; trial++) {
        r = r * 1103515245u + 12345u;
        int len = (int)(r >> 16) % 13;
        int32_t ids[12];
        const char *strs[12];
        for (int i = 0; i < len; i++) {
            r = r * 1103515245u + 12345u;
            ids[i] = (int32_t)((r >> 16) % NT);
            strs[i] = tagset[ids[i]];
        }
        char types[13][16];
        int begin[13], end[13];
        int want = oracle_entities(len, strs, types, begin, end);
        span got[12];
        int have = iob_spans(&t, len, ids, got);
        total += want;
        if (have != want) {
            mismatches++;
            continue;
        }
        for (int k = 0; k < have; k++)
            if (got[k].begin != begin[k] || got[k].end != end[k] ||
                strcmp(t.types[got[k].type], types[k]) != 0) {
                mismatches++;
                break;
            }
    }
    is(mismatches, 0, "3000 random B/I/O sequences (%d entities): spans = seqeval's rules", total);
    iob_free(&t);

    const char *bad_tags[] = {"O", "B-PER", "E-PER"};
    ok(iob_parse(3, bad_tags, &t, &bad) == -1 && bad == 2, "iob_parse refuses E-PER (label 2)");
    const char *no_dash[] = {"O", "BPER"};
    ok(iob_parse(2, no_dash, &t, &bad) == -1 && bad == 1, "iob_parse refuses BPER");
}

/* Tags as ids of names[]. */
static void tag_ids(int K, const char *const *names, int n, const char *const *tags, int32_t *ids)
{
    for (int i = 0; i < n; i++) {
        ids[i] = -1;
        for (int k = 0; k < K; k++)
            if (strcmp(names[k], tags[i]) == 0)
                ids[i] = k;
    }
}

static void test_span_f1(pipeline *pl)
{
    stage *iob2 = stage_of_task(pl, "ner", "metrics", 0, RUNNER_KIND_METRIC);
    stage *iob1 = stage_of_task(pl, "ner1", "metrics", 0, RUNNER_KIND_METRIC);
    if (!ok(iob2 && iob1, "span_f1 built (iob2 default, iob1)")) {
        diag("%s", err_get());
        return;
    }
    const char *names[] = {"O", "B-MISC", "I-MISC", "B-PER", "I-PER", "B-NP", "I-NP", "B-LOC", "I-LOC",
                           "I-ORG", "B-ORG"};
    enum { K = 11 };
    const runner_metric_ops *ops = ops_of(iob2);
    emitted e;
    int32_t g[8], p[8];

    /* seqeval README: y_true = [['O','O','O','B-MISC','I-MISC','I-MISC','O'], ['B-PER','I-PER','O']]
     *                 y_pred = [['O','O','B-MISC','I-MISC','I-MISC','I-MISC','O'], ['B-PER','I-PER','O']]
     * f1_score = 0.50; report: MISC 0.00 0.00 0.00, PER 1.00 1.00 1.00, micro avg 0.50 0.50 0.50 */
    const char *t1[] = {"O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"};
    const char *p1[] = {"O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"};
    const char *t2[] = {"B-PER", "I-PER", "O"};
    ok(ops->reset(iob2->self, K, names) == 0, "span_f1 reset with tag names");
    tag_ids(K, names, 7, t1, g);
    tag_ids(K, names, 7, p1, p);
    ok(ops->add(iob2->self, 7, g, p) == 0, "add sentence 1");
    tag_ids(K, names, 3, t2, g);
    ok(ops->add(iob2->self, 3, g, g) == 0, "add sentence 2");
    memset(&e, 0, sizeof e);
    ops->report(iob2->self, collect, &e);
    is_str(e.name[0], "f1", "span_f1: headline 'f1'");
    near(e.value[0], 0.5, "seqeval README example: f1 0.50");
    near(value_of(&e, "precision"), 0.5, "... precision 0.50");
    near(value_of(&e, "recall"), 0.5, "... recall 0.50");
    near(value_of(&e, "f1.MISC"), 0, "... f1.MISC 0.00");
    near(value_of(&e, "f1.PER"), 1, "... f1.PER 1.00");
    near(value_of(&e, "f1.LOC"), 0, "... f1.LOC (in the tag set, never seen) 0");
    near(value_of(&e, "invalid.gold"), 0, "... gold is valid IOB2");

    /* seqeval README, default vs strict: y_true [['B-NP','I-NP','O']], y_pred [['I-NP','I-NP','O']]:
     * default mode NP 1.00 1.00 1.00 (an I- after O starts an entity) */
    const char *t3[] = {"B-NP", "I-NP", "O"}, *p3[] = {"I-NP", "I-NP", "O"};
    tag_ids(K, names, 3, t3, g);
    tag_ids(K, names, 3, p3, p);
    ok(run_metric(iob2, K, names, 3, g, p, &e) == 0, "README default-mode example");
    near(e.value[0], 1, "I-NP I-NP O matches B-NP I-NP O: f1 1.00 (seqeval default, non-strict)");
    near(value_of(&e, "invalid.pred"), 1, "... but the prediction breaks IOB2 once (invalid.pred 1)");

    /* IOB1 (CoNLL-2003's original files): I- throughout, B- only where two
     * entities of one type touch. gold I-PER I-PER B-PER I-PER O I-LOC:
     * get_entities -> PER(0,1), PER(2,3), LOC(5,5); pred I-PER x4 O I-LOC ->
     * PER(0,3), LOC(5,5). tp 1: P 1/2, R 1/3, F1 0.4; f1.LOC 1, f1.PER 0. */
    const char *t4[] = {"I-PER", "I-PER", "B-PER", "I-PER", "O", "I-LOC"};
    const char *p4[] = {"I-PER", "I-PER", "I-PER", "I-PER", "O", "I-LOC"};
    tag_ids(K, names, 6, t4, g);
    tag_ids(K, names, 6, p4, p);
    ok(run_metric(iob1, K, names, 6, g, p, &e) == 0, "IOB1 example");
    near(e.value[0], 0.4, "IOB1: B-PER splits the adjacent PER entities: f1 0.4");
    near(value_of(&e, "precision"), 0.5, "... precision 1/2");
    near(value_of(&e, "recall"), 1.0 / 3, "... recall 1/3");
    near(value_of(&e, "f1.LOC"), 1, "... f1.LOC 1");
    near(value_of(&e, "f1.PER"), 0, "... f1.PER 0");
    near(value_of(&e, "invalid.gold"), 0, "... valid IOB1 gold (invalid.gold 0)");
    ok(run_metric(iob2, K, names, 6, g, p, &e) == 0, "the same under scheme iob2");
    near(e.value[0], 0.4, "... the same entities (seqeval's default rules read both)");
    near(value_of(&e, "invalid.gold"), 2, "... but 2 gold tags break IOB2 (I-PER, I-LOC after O)");

    /* IOB1 with adjacent entities of different types: no B- needed.
     * U.N. official Ekeus heads for Baghdad: I-ORG O I-PER O O I-LOC (3 entities) */
    const char *t5[] = {"I-ORG", "O", "I-PER", "O", "O", "I-LOC"};
    const char *p5[] = {"I-ORG", "I-PER", "I-PER", "O", "O", "I-LOC"};
    tag_ids(K, names, 6, t5, g);
    tag_ids(K, names, 6, p5, p);
    ok(run_metric(iob1, K, names, 6, g, p, &e) == 0, "IOB1 CoNLL example");
    /* pred: ORG(0,0), PER(1,2), LOC(5,5): tp 2 of 3 and 3 -> f1 2/3 */
    near(e.value[0], 2.0 / 3, "ORG and LOC match, PER(1,2) != PER(2,2): f1 2/3");

    /* a type change inside a run ends one entity and starts another;
     * B-PER B-PER are two entities */
    const char *t6[] = {"B-PER", "I-LOC", "B-PER", "B-PER"};
    const char *p6[] = {"B-PER", "I-PER", "B-PER", "I-PER"};
    tag_ids(K, names, 4, t6, g);
    tag_ids(K, names, 4, p6, p);
    ok(run_metric(iob2, K, names, 4, g, p, &e) == 0, "type changes and B-B");
    /* gold PER(0,0) LOC(1,1) PER(2,2) PER(3,3); pred PER(0,1) PER(2,3): tp 0 */
    near(e.value[0], 0, "gold 4 entities, pred 2, none match: f1 0");
    near(value_of(&e, "recall"), 0, "... recall 0");

    /* no entities at all: 0 by zero_division, and empty sentences are fine */
    const int32_t none[3] = {0, 0, 0};
    ok(run_metric(iob2, K, names, 3, none, none, &e) == 0 && e.value[0] == 0, "no entities: f1 0");
    ok(run_metric(iob2, K, names, 0, none, none, &e) == 0 && e.value[0] == 0, "an empty sentence");

    /* a negative id reads as O (a word without a prediction) */
    const int32_t g7[2] = {3, 4}, p7[2] = {3, -1};
    ok(run_metric(iob2, K, names, 2, g7, p7, &e) == 0, "a missing prediction (-1)");
    near(value_of(&e, "precision"), 0, "... reads as O: PER(0,0) != PER(0,1)");

    /* errors */
    const int32_t big[1] = {K};
    ops->reset(iob2->self, K, names);
    ok(ops->add(iob2->self, 1, big, big) == -1, "a tag id >= K refused");
    like(err_get(), "word 0: gold 11 / predicted 11 outside [0, 11)", "... naming the word");
    ok(ops->reset(iob2->self, K, NULL) == -1, "reset without tag names refused");
    like(err_get(), "needs the tag names", "... saying so");
    const char *bad[] = {"O", "PER"};
    ok(ops->reset(iob2->self, 2, bad) == -1, "a tag that is not IOB refused");
    like(err_get(), "label 1 'PER' is not an IOB tag", "... naming it");
    ok(ops->add(iob2->self, 1, g, p) == -1, "add after a failed reset refused");
    char *errs = validate_errors("run = \"tokenize\"; tasks = ({ name = \"bad\"; metrics = ( { plugin = \"span_f1\"; scheme = \"bilou\"; } ); });");
    like(errs, "tasks.[0].metrics.[0].scheme: 'bilou' is not one of iob2|iob1", "scheme = \"bilou\" refused at --check, listing the schemes");
    free(errs);
}

int main(void)
{
    test_span_reader();
    pipeline pl;
    if (!ok(pipeline_from_text(&pl, config_text) == 0, "the test pipeline validates")) {
        pipeline_close(&pl);
        return done_testing(107);
    }
    test_classes(&pl);
    test_zero_division(&pl);
    test_missing(&pl);
    test_class_errors(&pl);
    test_span_f1(&pl);
    pipeline_close(&pl);
    return done_testing(107);
}
