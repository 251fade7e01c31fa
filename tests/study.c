/* study.c — the study instruments of the training loop (src/train/study.c)
 * on the tiny BERT: train.grad_cosine_every (the pairwise gradient cosine
 * on the backbone: 1 for two identical tasks with identical heads, the
 * gradient block and the run's random stream left as they were, training
 * bit-identical with it on or off, the column and picture, single task
 * and frozen backbone without it, a resumed run keeps its history), and
 * uncertainty weighting (loss_weight.<task>, train.loss_weight_lr_scale
 * moving s_t, no weight decay on s_t), both keys' bounds at --check; and
 * predictions_<task>_test.csv (the best checkpoint on the test source). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model.h"
#include "plugin_stage.h"
#include "shell.h"
#include "tap.h"
#include "runner/kit/util.h"

#define DATA "../shared/datasets"

static char dir[] = "/tmp/runner-study-XXXXXX";

static const char *task_text =
    "  { name = \"%s\";\n"
    "    dataset = { plugin = \"%s\"; %s limit = 64; dev_limit = 24; };\n"
    "    head = { plugin = \"mlp\"; hidden = [16]; dropout = 0.1; };\n"
    "    loss = { plugin = \"cross_entropy\"; }; metrics = [ \"accuracy\" ]; }";

static char *task_of(const char *name, int agnews)
{
    return str_printf(task_text, name, agnews ? "agnews_csv" : "tsv",
                      agnews ? "path = \"" DATA "/ag_news/test.csv\"; dev_ratio = 0.1;"
                             : "train = \"" DATA "/sst2/train.tsv\"; dev = \"" DATA "/sst2/dev.tsv\"; "
                               "test = \"" DATA "/sst2/dev.tsv\"; "
                               "text_field = \"sentence\"; label_field = \"label\"; labels = [\"neg\", \"pos\"];");
}

/* A training pipeline on the tiny BERT: tasks a (ag_news) and b (a: ag_news
 * again when same, else SST-2; none when single), then train keys. */
static char *pipeline_text(int ntasks, int same, const char *train_extra, const char *freeze)
{
    char *a = task_of("topic", 1), *b = ntasks > 1 ? task_of(same ? "topic2" : "sentiment", same) : NULL;
    char *text = str_printf(
        "name = \"study\";\nrun = \"train\";\nmodel = \"tests/goldens/tiny-bert\";\n"
        "tokenizer = { plugin = \"wordpiece\"; max_len = 32; };\n"
        "backbone = { plugin = \"bert\"; };\npooler = { plugin = \"mean\"; };\n"
        "tasks = (\n%s%s%s );\n%s\nfreeze = { plugin = \"%s\"; };\n"
        "train = { batch = 8; lr = 1e-3; warmup = 0.1; log_every = 1; max_steps = 12; eval_every = 6; %s };\n",
        a, b ? ",\n" : "", b ? b : "", ntasks > 1 ? "sampler = { plugin = \"round_robin\"; };" : "", freeze,
        train_extra);
    free(a);
    free(b);
    return text;
}

/* Run a pipeline into dir/name; the exit status, stderr in dir/name.err. */
static int run(const char *name, const char *text, const char *args)
{
    char *cfg = str_printf("%s/%s.cfg", dir, name);
    if (file_write_atomic(cfg, text, strlen(text)) != 0) {
        free(cfg);
        return -1;
    }
    int rc = sh("%s --threads 2 %s --out %s/%s %s >/dev/null 2>%s/%s.err", RUNNER, cfg, dir, name, args, dir,
                name);
    free(cfg);
    return rc;
}

/* The values of column col in dir/name/metrics.csv (non-empty cells, in
 * row order) into v (at most cap); the count, -1 without the column. */
static int column(const char *name, const char *col, double *v, int cap)
{
    char *path = str_printf("%s/metrics.csv", name), *csv = slurp(dir, path), *save = NULL;
    int at = -1, n = 0;
    free(path);
    for (char *line = csv ? strtok_r(csv, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
        int c = 0;
        for (char *cell = strsep(&line, ","); cell; cell = strsep(&line, ","), c++) {
            if (at < 0 && strcmp(cell, col) == 0)
                at = c;
            else if (at >= 0 && c == at && *cell && n < cap)
                v[n++] = atof(cell);
        }
        if (at < 0) /* the header names no such column */
            break;
    }
    free(csv);
    return at < 0 ? -1 : n;
}

static int exists(const char *name, const char *file)
{
    char *p = str_printf("%s/%s/%s", dir, name, file);
    int e = p && access(p, F_OK) == 0;
    free(p);
    return e;
}

static int same_file(const char *a, const char *b, const char *file)
{
    return sh("cmp -s %s/%s/%s %s/%s/%s", dir, a, file, dir, b, file) == 0;
}

/* Copy every heads.<from>.* tensor into heads.<to>.*. */
static int copy_head(params *P, const char *from, const char *to)
{
    char prefix[64];
    int copied = 0;
    snprintf(prefix, sizeof prefix, "heads.%s.", from);
    for (int i = 0; i < P->n; i++) {
        if (strncmp(P->p[i].name, prefix, strlen(prefix)) != 0)
            continue;
        char *other = str_printf("heads.%s.%s", to, P->p[i].name + strlen(prefix));
        int j = params_find(P, other);
        free(other);
        if (j < 0 || P->p[j].numel != P->p[i].numel)
            return -1;
        memcpy(P->data + P->p[j].offset, P->data + P->p[i].offset, (size_t)P->p[i].numel * sizeof(float));
        copied++;
    }
    return copied;
}

/* In process: two identical tasks (same data, head copied) have cosine 1;
 * the gradient block and the run's random stream are as they were. */
static void identical_tasks(void)
{
    pipeline pl;
    model m;
    char *text = pipeline_text(2, 1, "", "none");
    int built = pipeline_from_text(&pl, text) == 0 && (pl.quiet = 1) && model_open(&pl, &m, 1, NULL) == 0 &&
                encoder_load(&pl, &m.enc, 1) == 0 && copy_head(&pl.P, "topic", "topic2") > 0;
    ok(built, "in process: two identical tasks, the second head a copy of the first%s%s", built ? "" : ": ",
       built ? "" : err_get());
    free(text);
    if (!built) {
        skip(6, "no model");
        return;
    }
    for (int64_t i = 0; i < pl.P.total; i++)
        pl.P.grad[i] = (float)(i % 97) * 0.25f;
    gsl_rng *before = gsl_rng_clone(pl.rng);
    double cos = NAN;
    is(model_grad_cosines(&m, 8, 99, &cos), 0, "model_grad_cosines runs");
    ok(fabs(cos - 1.0) < 1e-5, "identical tasks: cosine 1 within 1e-5 (%.9f)", cos);
    int restored = 1;
    for (int64_t i = 0; i < pl.P.total && restored; i++)
        restored = pl.P.grad[i] == (float)(i % 97) * 0.25f;
    ok(restored, "the gradient block holds what it held before");
    ok(gsl_rng_get(before) == gsl_rng_get(pl.rng), "the run's random stream did not move");
    gsl_rng_free(before);
    int lv = params_find(&pl.P, "combiner.log_var");
    ok(lv < 0, "fixed weights: no combiner.log_var");
    params_set(&pl.P, "backbone.*", 0, -1);
    is(model_grad_cosines(&m, 8, 99, &cos), -1, "frozen backbone: refused (%s)", err_get());
    model_close(&m);
    pipeline_close(&pl);
}

/* s_t gets no weight decay. */
static void no_decay(void)
{
    pipeline pl;
    model m;
    char *text = pipeline_text(2, 0, "combine = \"uncertainty\";", "none");
    int built = pipeline_from_text(&pl, text) == 0 && (pl.quiet = 1) && model_open(&pl, &m, 1, NULL) == 0;
    int lv = built ? params_find(&pl.P, "combiner.log_var") : -1;
    ok(lv >= 0 && (pl.P.p[lv].flags & RUNNER_PARAM_NO_DECAY), "uncertainty: combiner.log_var has the no-decay flag");
    if (built)
        model_close(&m);
    pipeline_close(&pl);
    free(text);
}

/* Two tasks, with and without the measurement: identical training. */
static void grad_cosine_runs(void)
{
    char *off = pipeline_text(2, 0, "", "none"), *on = pipeline_text(2, 0, "grad_cosine_every = 4;", "none");
    is(run("off", off, ""), 0, "two tasks, grad_cosine_every = 0: trains");
    is(run("on", on, ""), 0, "two tasks, grad_cosine_every = 4: trains");
    double v[64];
    int n = column("on", "grad_cosine.topic.sentiment", v, 64), good = n > 0;
    for (int i = 0; i < n; i++)
        good &= isfinite(v[i]) && v[i] >= -1 && v[i] <= 1;
    is(n, 4, "metrics.csv: grad_cosine.topic.sentiment at steps 1, 4, 8, 12");
    ok(good, "... every value finite, within [-1, 1]");
    is(column("off", "grad_cosine.topic.sentiment", v, 64), -1, "off: no such column");
    ok(same_file("off", "on", "best/model.safetensors") && same_file("off", "on", "best/heads.safetensors") &&
           same_file("off", "on", "last/model.safetensors") && same_file("off", "on", "last/heads.safetensors"),
       "on and off: bit-identical weights and heads (best/ and last/)");
    static const char *const cols[] = {"topic.train_loss", "sentiment.train_loss", "topic.dev_loss",
                                       "sentiment.accuracy"};
    static const int want[] = {6, 6, 2, 2};
    for (int c = 0; c < 4; c++) {
        double a[64], b[64];
        int na = column("off", cols[c], a, 64), nb = column("on", cols[c], b, 64);
        ok(na == want[c] && nb == na && memcmp(a, b, (size_t)na * sizeof *a) == 0, "on and off: the same %s (%d values)",
           cols[c], na);
    }
    ok(exists("on", "grad_cosine.png"), "grad_cosine.png drawn");
    char *err = slurp(dir, "on.err");
    ok(err && strstr(err, "step 4: gradient cosine on the backbone: topic/sentiment"), "a log line per measurement");
    free(err);

    /* an interrupted run resumed keeps the cosines measured before */
    char *part = pipeline_text(2, 0, "grad_cosine_every = 4; stop_after = 6;", "none");
    is(run("part", part, ""), 0, "grad_cosine_every = 4, stopped after step 6");
    char *resume = str_printf("--resume %s/part/last", dir);
    is(run("resumed", on, resume), 0, "... resumed to the end");
    double r[64];
    int nr = column("resumed", "grad_cosine.topic.sentiment", r, 64);
    n = column("on", "grad_cosine.topic.sentiment", v, 64);
    ok(n > 0 && nr == n && memcmp(r, v, (size_t)n * sizeof *v) == 0, "... the same cosines as the uninterrupted run");
    free(resume);
    free(part);
    free(off);
    free(on);
}

/* One task: nothing to compare; frozen backbone: skipped, said once. */
static void grad_cosine_without_pairs(void)
{
    char *one = pipeline_text(1, 0, "grad_cosine_every = 2;", "none");
    double v[64];
    is(run("single", one, ""), 0, "one task, grad_cosine_every = 2: trains");
    is(column("single", "grad_cosine.topic.sentiment", v, 64), -1, "... no grad_cosine column");
    ok(!exists("single", "grad_cosine.png"), "... no grad_cosine.png");
    char *frozen = pipeline_text(2, 0, "grad_cosine_every = 2;", "backbone");
    is(run("frozen", frozen, ""), 0, "frozen backbone, grad_cosine_every = 2: trains");
    is(column("frozen", "grad_cosine.topic.sentiment", v, 64), -1, "... no grad_cosine column");
    char *err = slurp(dir, "frozen.err");
    const char *said = err ? strstr(err, "the backbone does not train: no gradient cosine") : NULL;
    ok(said && !strstr(said + 1, "the backbone does not train: no gradient cosine"), "... one info line says why");
    free(err);
    free(one);
    free(frozen);
}

/* |s_t| after the run from exp(-s_t) (s starts at 0). */
static double moved(const char *name, const char *tname)
{
    double v[64];
    char *col = str_printf("loss_weight.%s", tname);
    int n = column(name, col, v, 64);
    free(col);
    return n > 0 ? fabs(log(v[n - 1])) : -1;
}

static void loss_weights(void)
{
    char *x1 = pipeline_text(2, 0, "combine = \"uncertainty\";", "none");
    char *x100 = pipeline_text(2, 0, "combine = \"uncertainty\"; loss_weight_lr_scale = 100.0;", "none");
    is(run("lw1", x1, "--set train.lr=1e-4"), 0, "uncertainty, loss_weight_lr_scale = 1: trains");
    is(run("lw100", x100, "--set train.lr=1e-4"), 0, "uncertainty, loss_weight_lr_scale = 100: trains");
    double v[64];
    is(column("lw1", "loss_weight.topic", v, 64), 12, "metrics.csv: loss_weight.topic at every logged step");
    for (int k = 0; k < 2; k++) {
        const char *t = k ? "sentiment" : "topic";
        double d1 = moved("lw1", t), d100 = moved("lw100", t);
        ok(d1 > 0 && d100 > 10 * d1, "%s: |s| after 12 steps %.4g with scale 100 > 10 x %.4g with scale 1", t, d100, d1);
    }
    ok(exists("lw1", "loss_weights.png"), "loss_weights.png drawn");
    ok(!exists("off", "loss_weights.png") && column("off", "loss_weight.topic", v, 64) == -1,
       "fixed weights: no loss_weight column, no loss_weights.png");
    free(x1);
    free(x100);
}

/* The test source's predictions: sentiment's test file is its dev file,
 * so the best checkpoint's test predictions are its dev predictions. */
static void test_predictions(void)
{
    char *dev = slurp(dir, "off/predictions_sentiment.csv"), *test = slurp(dir, "off/predictions_sentiment_test.csv");
    int nl = 0;
    for (const char *c = test; c && *c; c++)
        nl += *c == '\n';
    ok(test && strncmp(test, "id,text,gold,predicted,probability\r\n", 36) == 0 && nl == 25,
       "predictions_sentiment_test.csv: the dev file's header and one row per test example (%d lines)", nl);
    ok(dev && test && strcmp(dev, test) == 0, "... test source = dev source: the same predictions as the dev file");
    ok(!exists("off", "predictions_topic_test.csv"), "a task without a test source: no test predictions");
    free(dev);
    free(test);
}

/* Out-of-range values: exit 2 at --check, naming the key. */
static void bounds(void)
{
    static const char *const bad[] = {"train.loss_weight_lr_scale=0.0", "train.loss_weight_lr_scale=-1.0",
                                      "train.grad_cosine_every=-1"};
    char *text = pipeline_text(2, 0, "", "none");
    for (int i = 0; i < 3; i++) {
        char *args = str_printf("--check --set %s", bad[i]);
        is(run("check", text, args), 2, "--check --set %s: exit 2", bad[i]);
        char *err = slurp(dir, "check.err");
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)(strchr(bad[i], '=') - bad[i] - 6), bad[i] + 6);
        ok(err && strstr(err, key), "... the message names %s", key);
        free(err);
        free(args);
    }
    is(run("check", text, "--check --set train.grad_cosine_every=3 --set train.loss_weight_lr_scale=50.0"), 0,
       "--check: in-range values pass");
    free(text);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    identical_tasks();
    no_decay();
    grad_cosine_runs();
    test_predictions();
    grad_cosine_without_pairs();
    loss_weights();
    bounds();
    if (!getenv("STUDY_KEEP") && sh("rm -rf %s", dir) != 0)
        diag("could not remove %s", dir);
    return done_testing(46);
}
