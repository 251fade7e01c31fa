/* loss.c — the loss plugins (cross_entropy, bce): values and gradients
 * against PyTorch, gradients by central finite differences (the row math in
 * float64, the plugins' batch means from float32 logits), ignored rows,
 * all-ignored batches, predictions, and the errors they report. */
#include <math.h>
#include <stdlib.h>

#include "runner/kit/classify.h"
#include "plugin_stage.h"
#include "tap.h"

/* PyTorch 1.13 references, float64 (/usr/bin/python3):
 *   z = torch.tensor([[1.5,-0.3,0.2],[0.1,2.0,-1.0],[3.0,0.0,0.5],[-0.7,0.4,0.9]],
 *                    dtype=torch.float64, requires_grad=True)
 *   y = torch.tensor([0, 2, -1, 1]); w = torch.tensor([0.2, 1.0, 3.0], dtype=torch.float64)
 *   l = F.cross_entropy(z, y, ignore_index=-1, **kw); l.backward()
 * with kw = {}, {weight: w}, {label_smoothing: 0.1}, {weight: w, label_smoothing: 0.2}; and
 *   b = torch.tensor([0.8, -1.2, 5.0, -30.0, 30.0], dtype=torch.float64, requires_grad=True)
 *   t = torch.tensor([1, 0, -1, 1, 0]); m = t >= 0
 *   l = F.binary_cross_entropy_with_logits(b[m], t[m].double(), pos_weight=torch.tensor(pw))
 * with pw = 1.0, 2.5 (PyTorch has no ignore_index here: the mask does it). */
static const float ce_z[4][3] = {{1.5f, -0.3f, 0.2f}, {0.1f, 2.0f, -1.0f}, {3.0f, 0.0f, 0.5f},
                                 {-0.7f, 0.4f, 0.9f}};
static const int32_t ce_y[4] = {0, 2, -1, 1};
static const struct {
    const char *task;
    double loss, grad[4][3];
} ce_ref[] = {
    {"plain", 1.545792498959,
     {{-0.1015026055, 0.0383213616, 0.0631812439}, {0.0415691583, 0.2779270043, -0.3194961626},
      {0, 0, 0}, {0.0372140168, -0.2215362485, 0.1843222317}}},
    {"weights", 2.550104300705,
     {{-0.0145003722, 0.0054744802, 0.0090258920}, {0.0890767677, 0.5955578663, -0.6846346341},
      {0, 0, 0}, {0.0265814406, -0.1582401775, 0.1316587370}}},
    {"smooth", 1.541348054514,
     {{-0.0792803833, 0.0272102505, 0.0520701328}, {0.0304580472, 0.2668158932, -0.2972739403},
      {0, 0, 0}, {0.0261029057, -0.1993140263, 0.1732111206}}},
    {"both", 2.368289559403,
     {{0.0315912446, -0.0038291594, -0.0277620852}, {0.0764006427, 0.5161586781, -0.5925593207},
      {0, 0, 0}, {0.0255333526, -0.1201057409, 0.0945723883}}},
};
static const float bce_z[5] = {0.8f, -1.2f, 5.0f, -30.0f, 30.0f};
static const int32_t bce_y[5] = {1, 0, -1, 1, 0};
static const struct {
    const char *task;
    double loss, grad[5];
} bce_ref[] = {
    {"bce", 15.158595783321, {-0.0775063797, 0.0578688041, 0, -0.25, 0.25}},
    {"bce_pw", 26.547758533052, {-0.1937659493, 0.0578688041, 0, -0.625, 0.25}},
};

static const char *config_text =
    "run = \"tokenize\";\n"
    "tasks = (\n"
    "  { name = \"plain\";   loss = { plugin = \"cross_entropy\"; }; },\n"
    "  { name = \"weights\"; loss = { plugin = \"cross_entropy\"; class_weights = [0.2, 1.0, 3.0]; }; },\n"
    "  { name = \"smooth\";  loss = { plugin = \"cross_entropy\"; label_smoothing = 0.1; }; },\n"
    "  { name = \"both\";    loss = { plugin = \"cross_entropy\"; class_weights = [0.2, 1.0, 3.0];\n"
    "                                  label_smoothing = 0.2; }; },\n"
    "  { name = \"bce\";     loss = { plugin = \"bce\"; }; },\n"
    "  { name = \"bce_pw\";  loss = { plugin = \"bce\"; pos_weight = 2.5; }; },\n"
    "  { name = \"tokens\";  loss = { plugin = \"cross_entropy\"; label_smoothing = 0.05;\n"
    "                                  class_weights = [1.0, 2.0, 0.5, 1.0, 1.0]; }; },\n"
    "  { name = \"zero_weight\"; loss = { plugin = \"cross_entropy\"; class_weights = [0, 0]; }; }\n"
    ");\n";

static const runner_loss_ops *ops_of(const stage *st) { return st->desc->ops; }

static double max_abs_diff(int n, const float *a, const double *b)
{
    double m = 0;
    for (int i = 0; i < n; i++)
        m = fmax(m, fabs(a[i] - b[i]));
    return m;
}

/* ||a - b|| / max(||a||, ||b||), the relative error of a gradient. */
static double rel_error(int n, const double *a, const double *b)
{
    double d = 0, na = 0, nb = 0;
    for (int i = 0; i < n; i++) {
        d += (a[i] - b[i]) * (a[i] - b[i]);
        na += a[i] * a[i];
        nb += b[i] * b[i];
    }
    double scale = sqrt(fmax(na, nb));
    return scale > 0 ? sqrt(d) / scale : sqrt(d);
}

/* ---- float64 finite differences of the row math ---------------------------------- */

static double xent_fd_error(int K, const double *z0, int y, const double *w, double eps)
{
    double z[8], dz[8], fd[8], w_sum = 0;
    for (int c = 0; c < K; c++)
        w_sum += w ? w[c] : 1.0;
    memcpy(z, z0, (size_t)K * sizeof *z);
    xent_row(K, z, y, w, w_sum, eps, dz);
    const double h = 1e-6;
    for (int c = 0; c < K; c++) {
        z[c] = z0[c] + h;
        double up = xent_row(K, z, y, w, w_sum, eps, NULL);
        z[c] = z0[c] - h;
        double down = xent_row(K, z, y, w, w_sum, eps, NULL);
        z[c] = z0[c];
        fd[c] = (up - down) / (2 * h);
    }
    return rel_error(K, dz, fd);
}

static void test_row_gradients(void)
{
    const double z[5] = {0.3, -1.7, 2.2, 0.05, -0.4};
    const double w[5] = {0.5, 2.0, 1.0, 0.1, 3.0};
    const struct {
        const char *what;
        const double *w;
        double eps;
    } opts[] = {{"plain", NULL, 0}, {"class weights", w, 0}, {"label smoothing 0.1", NULL, 0.1},
                {"weights + smoothing 0.3", w, 0.3}, {"smoothing 1.0", NULL, 1.0}};
    for (size_t o = 0; o < sizeof opts / sizeof *opts; o++) {
        double worst = 0;
        for (int y = 0; y < 5; y++)
            worst = fmax(worst, xent_fd_error(5, z, y, opts[o].w, opts[o].eps));
        cmp_ok(worst, <=, 1e-7, "xent_row gradient, %s: float64 FD relative error %.2e over 5 labels",
               opts[o].what, worst);
    }
    /* large logits: the log-sum-exp must not overflow */
    const double big[3] = {800.0, -600.0, 790.0};
    double dz[3];
    double l = xent_row(3, big, 2, NULL, 3, 0, dz);
    cmp_ok(fabs(l - (10 + log1p(exp(-10)))), <, 1e-9, "xent_row with logits ~800 is finite and right");
    cmp_ok(xent_fd_error(3, big, 2, NULL, 0.2), <=, 1e-7, "... and its gradient matches FD");

    double worst = 0;
    const double zs[] = {-30, -3, -0.5, 0, 0.7, 4, 30};
    for (int pw = 0; pw < 2; pw++)
        for (int y = 0; y < 2; y++)
            for (size_t i = 0; i < sizeof zs / sizeof *zs; i++) {
                double pos_weight = pw ? 2.5 : 1.0, dz1, h = 1e-6;
                bce_row(zs[i], y, pos_weight, &dz1);
                double fd = (bce_row(zs[i] + h, y, pos_weight, NULL) -
                             bce_row(zs[i] - h, y, pos_weight, NULL)) / (2 * h);
                worst = fmax(worst, rel_error(1, &dz1, &fd));
            }
    cmp_ok(worst, <=, 1e-6, "bce_row gradient, pos_weight 1 and 2.5, z in [-30, 30]: float64 FD "
                            "relative error %.2e", worst);
    cmp_ok(fabs(bce_row(-800, 1, 1, NULL) - 800), <, 1e-9, "bce_row(-800, y=1) = 800, no overflow");
    cmp_ok(bce_row(-800, 0, 1, NULL), <, 1e-300, "bce_row(-800, y=0) = 0");
}

/* ---- the plugins -------------------------------------------------------------------- */

/* Central differences of the plugin's mean loss from float32 logits. The
 * step is taken in float and the actual difference of the perturbed
 * floats is the divisor; the loss itself is computed in double. */
static double plugin_fd_error(const stage *st, int N, int K, const float *z0, const int32_t *y,
                              int *ignored_zero)
{
    int n = N * K;
    float *z = malloc((size_t)n * sizeof *z), *dz = malloc((size_t)n * sizeof *dz);
    double *a = malloc((size_t)n * sizeof *a), *fd = malloc((size_t)n * sizeof *fd);
    double loss, up, down, err = INFINITY;
    memcpy(z, z0, (size_t)n * sizeof *z);
    if (ops_of(st)->forward(st->self, N, K, z, y, &loss, dz) != 0)
        goto done;
    *ignored_zero = 1;
    for (int i = 0; i < n; i++) {
        a[i] = dz[i];
        if (y[i / K] < 0 && dz[i] != 0)
            *ignored_zero = 0;
        float zu = z0[i] + 1e-3f, zd = z0[i] - 1e-3f;
        z[i] = zu;
        ops_of(st)->forward(st->self, N, K, z, y, &up, NULL);
        z[i] = zd;
        ops_of(st)->forward(st->self, N, K, z, y, &down, NULL);
        z[i] = z0[i];
        fd[i] = (up - down) / ((double)zu - (double)zd);
    }
    err = rel_error(n, a, fd);
done:
    free(z);
    free(dz);
    free(a);
    free(fd);
    return err;
}

static void test_against_torch(pipeline *pl)
{
    for (size_t r = 0; r < sizeof ce_ref / sizeof *ce_ref; r++) {
        stage *st = stage_of_task(pl, ce_ref[r].task, "loss", -1, RUNNER_KIND_LOSS);
        if (!ok(st != NULL, "%s: cross_entropy stage built", ce_ref[r].task)) {
            diag("%s", err_get());
            skip(4, "no stage");
            continue;
        }
        int n_out = 0;
        is(ops_of(st)->outputs(st->self, 3, &n_out) == 0 ? n_out : -1, 3, "%s: 3 outputs for 3 labels",
           ce_ref[r].task);
        double loss = -1;
        float dz[12];
        ok(ops_of(st)->forward(st->self, 4, 3, &ce_z[0][0], ce_y, &loss, dz) == 0, "%s: forward",
           ce_ref[r].task);
        cmp_ok(fabs(loss - ce_ref[r].loss), <, 1e-6, "%s: loss %.9f = PyTorch's %.9f", ce_ref[r].task,
               loss, ce_ref[r].loss);
        double d = max_abs_diff(12, dz, &ce_ref[r].grad[0][0]);
        cmp_ok(d, <, 1e-6, "%s: dlogits = PyTorch's (max diff %.1e)", ce_ref[r].task, d);
        int zero = 0;
        double e = plugin_fd_error(st, 4, 3, &ce_z[0][0], ce_y, &zero);
        cmp_ok(e, <=, 1e-3, "%s: gradient vs FD of the batch mean, relative error %.2e", ce_ref[r].task, e);
        ok(zero, "%s: the ignored row's dlogits are 0", ce_ref[r].task);
    }
    for (size_t r = 0; r < sizeof bce_ref / sizeof *bce_ref; r++) {
        stage *st = stage_of_task(pl, bce_ref[r].task, "loss", -1, RUNNER_KIND_LOSS);
        if (!ok(st != NULL, "%s: bce stage built", bce_ref[r].task)) {
            diag("%s", err_get());
            skip(4, "no stage");
            continue;
        }
        int n_out = 0;
        is(ops_of(st)->outputs(st->self, 2, &n_out) == 0 ? n_out : -1, 1, "%s: 1 output for 2 labels",
           bce_ref[r].task);
        double loss = -1;
        float dz[5];
        ok(ops_of(st)->forward(st->self, 5, 1, bce_z, bce_y, &loss, dz) == 0, "%s: forward",
           bce_ref[r].task);
        cmp_ok(fabs(loss - bce_ref[r].loss), <, 1e-6, "%s: loss %.9f = PyTorch's %.9f", bce_ref[r].task,
               loss, bce_ref[r].loss);
        double d = max_abs_diff(5, dz, bce_ref[r].grad);
        cmp_ok(d, <, 1e-6, "%s: dlogits = PyTorch's (max diff %.1e)", bce_ref[r].task, d);
        int zero = 0;
        double e = plugin_fd_error(st, 5, 1, bce_z, bce_y, &zero);
        cmp_ok(e, <=, 1e-3, "%s: gradient vs FD of the batch mean, relative error %.2e", bce_ref[r].task, e);
        ok(zero, "%s: the ignored row's dlogit is 0", bce_ref[r].task);
    }
}

/* Token cross-entropy: a per-token head's (B*T, K) logits with -1 on
 * padding and on word pieces after the first. */
static void test_tokens(pipeline *pl)
{
    enum { B = 3, T = 7, K = 5, N = B * T };
    stage *st = stage_of_task(pl, "tokens", "loss", -1, RUNNER_KIND_LOSS);
    if (!ok(st != NULL, "tokens: cross_entropy stage built")) {
        diag("%s", err_get());
        skip(4, "no stage");
        return;
    }
    const int32_t y[N] = {-1, 0, 1, -1, 2, -1, -1, /* [CLS] w w ## w [SEP] pad */
                          -1, 4, 3, 3, 0, 1, -1,   -1, 2, -1, -1, -1, -1, -1};
    float z[N * K];
    unsigned s = 12345;
    for (int i = 0; i < N * K; i++) {
        s = s * 1103515245u + 12345u;
        z[i] = (float)((int)(s >> 16 & 0x7fff) - 16384) / 4096.0f;
    }
    int zero = 0;
    double e = plugin_fd_error(st, N, K, z, y, &zero);
    cmp_ok(e, <=, 1e-3, "tokens (B*T = %d rows, 10 counted, weights + smoothing): gradient vs FD, "
                        "relative error %.2e", N, e);
    ok(zero, "tokens: every ignored row's dlogits are 0");
    /* the mean is over counted rows only: the same rows alone give the same loss */
    float zc[10 * K];
    int32_t yc[10];
    int m = 0;
    for (int i = 0; i < N; i++)
        if (y[i] >= 0) {
            memcpy(zc + m * K, z + i * K, K * sizeof *z);
            yc[m++] = y[i];
        }
    double all = -1, counted = -2;
    ops_of(st)->forward(st->self, N, K, z, y, &all, NULL);
    ops_of(st)->forward(st->self, m, K, zc, yc, &counted, NULL);
    cmp_ok(fabs(all - counted), <, 1e-12, "tokens: ignored rows change nothing (%.9f = %.9f)", all,
           counted);
}

static void test_all_ignored(pipeline *pl)
{
    const char *tasks[] = {"plain", "both", "bce_pw"};
    for (int t = 0; t < 3; t++) {
        stage *st = stage_of_task(pl, tasks[t], "loss", -1, RUNNER_KIND_LOSS);
        int K = t == 2 ? 1 : 3;
        const int32_t y[4] = {-1, -1, -1, -1};
        float dz[12];
        for (int i = 0; i < 12; i++)
            dz[i] = 7.0f;
        double loss = 99;
        int rc = st ? ops_of(st)->forward(st->self, 4, K, &ce_z[0][0], y, &loss, dz) : -1;
        int zero = 1;
        for (int i = 0; i < 4 * K; i++)
            zero &= dz[i] == 0.0f;
        ok(rc == 0 && loss == 0 && zero, "%s: all rows ignored: loss 0 and dlogits written 0", tasks[t]);
        rc = st ? ops_of(st)->forward(st->self, 0, K, NULL, NULL, &loss, NULL) : -1;
        ok(rc == 0 && loss == 0, "%s: an empty batch: loss 0", tasks[t]);
    }
}

static void test_predict(pipeline *pl)
{
    stage *ce = stage_of_task(pl, "plain", "loss", -1, RUNNER_KIND_LOSS);
    stage *bce = stage_of_task(pl, "bce", "loss", -1, RUNNER_KIND_LOSS);
    if (!ce || !bce) {
        skip(5, "no stage");
        return;
    }
    int32_t label = -1;
    float prob = 0;
    ops_of(ce)->predict(ce->self, 3, ce_z[3], &label, &prob);
    /* softmax([-0.7, 0.4, 0.9])[2] = 1 / (1 + e^-0.5 + e^-1.6) */
    double want = 1 / (1 + exp(-0.5) + exp(-1.6));
    ok(label == 2 && fabs(prob - want) < 1e-6, "cross_entropy predict: argmax 2, softmax %.6f (%.6f)",
       prob, want);
    const float tie[3] = {1.0f, 4.0f, 4.0f};
    ops_of(ce)->predict(ce->self, 3, tie, &label, &prob);
    ok(label == 1 && fabs(prob - 1 / (2 + exp(-3.0))) < 1e-6, "cross_entropy predict: first of tied maxima");
    const float z1 = 0.8f, z2 = -1.2f, z3 = 0.0f;
    ops_of(bce)->predict(bce->self, 1, &z1, &label, &prob);
    ok(label == 1 && fabs(prob - 1 / (1 + exp(-0.8))) < 1e-6, "bce predict z=0.8: 1, p = sigmoid(0.8)");
    ops_of(bce)->predict(bce->self, 1, &z2, &label, &prob);
    ok(label == 0 && fabs(prob - (1 - 1 / (1 + exp(1.2)))) < 1e-6, "bce predict z=-1.2: 0, prob 1 - sigmoid");
    ops_of(bce)->predict(bce->self, 1, &z3, &label, &prob);
    ok(label == 1 && prob == 0.5f, "bce predict z=0: p = 0.5 >= 0.5 gives 1");
}

static void test_errors(pipeline *pl)
{
    /* value errors are caught by validation (--check), all at once */
    char *e = validate_errors("run = \"train\"; tasks = (\n"
                              "  { name = \"a\"; loss = { plugin = \"cross_entropy\"; label_smoothing = 1.5; }; },\n"
                              "  { name = \"b\"; loss = { plugin = \"cross_entropy\"; class_weights = [1, -1]; }; },\n"
                              "  { name = \"c\"; loss = { plugin = \"bce\"; pos_weight = -2; }; });\n");
    like(e, "tasks.[0].loss.label_smoothing: 1.5 is out of range: must be in [0, 1)", "label_smoothing = 1.5 refused at --check");
    like(e, "tasks.[1].loss.class_weights.[1]: -1 is out of range: must be in [0, inf)", "a negative class weight refused, naming it");
    like(e, "tasks.[2].loss.pos_weight: -2 is out of range", "a negative pos_weight refused, naming it");
    free(e);
    stage *st = stage_of_task(pl, "zero_weight", "loss", -1, RUNNER_KIND_LOSS);
    ok(!st, "all-zero class weights refused");
    stage *bce = stage_of_task(pl, "bce", "loss", -1, RUNNER_KIND_LOSS);
    stage *w = stage_of_task(pl, "weights", "loss", -1, RUNNER_KIND_LOSS);
    stage *plain = stage_of_task(pl, "plain", "loss", -1, RUNNER_KIND_LOSS);
    int n_out;
    ok(ops_of(bce)->outputs(bce->self, 3, &n_out) == -1, "bce refuses 3 labels");
    like(err_get(), "bce is for 2 labels (one logit), the task has 3", "... clearly");
    ok(ops_of(w)->outputs(w->self, 4, &n_out) == -1, "3 class weights for 4 labels refused");
    like(err_get(), "class_weights has 3 entries for 4 classes", "... clearly");
    ok(ops_of(plain)->outputs(plain->self, 1, &n_out) == -1, "cross_entropy refuses 1 label");
    like(err_get(), "tasks.plain.loss/cross_entropy: ", "errors carry the slot and plugin");

    double loss;
    const int32_t y_bad[4] = {0, 3, -1, 1};
    ok(ops_of(plain)->forward(plain->self, 4, 3, &ce_z[0][0], y_bad, &loss, NULL) == -1,
       "a label >= K refused");
    like(err_get(), "labels[1] = 3 is outside [0, 3)", "... naming the row");
    const int32_t yb[5] = {1, 0, -1, 2, 0};
    ok(ops_of(bce)->forward(bce->self, 5, 1, bce_z, yb, &loss, NULL) == -1, "bce refuses label 2");
    ok(ops_of(bce)->forward(bce->self, 5, 2, bce_z, bce_y, &loss, NULL) == -1, "bce refuses 2 columns");
    float nan_z[3] = {1.0f, NAN, 0.0f};
    const int32_t y0[1] = {0};
    ok(ops_of(plain)->forward(plain->self, 1, 3, nan_z, y0, &loss, NULL) == -1, "NaN logits refused");
    like(err_get(), "NaN or Inf", "... saying so");
}

int main(void)
{
    test_row_gradients();
    pipeline pl;
    if (!ok(pipeline_from_text(&pl, config_text) == 0, "the test pipeline validates")) {
        pipeline_close(&pl);
        return done_testing(84);
    }
    test_against_torch(&pl);
    test_tokens(&pl);
    test_all_ignored(&pl);
    test_predict(&pl);
    test_errors(&pl);
    pipeline_close(&pl);
    return done_testing(84);
}
