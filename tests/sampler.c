/* sampler.c — the sampler plugins: round-robin order, the frequencies of
 * proportional and temperature sampling over many draws, one RNG draw per
 * batch and no other state (same seed, same tasks; a run resumed from the
 * RNG's state continues the same sequence), joint batches, and errors. */
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdlib.h>

#include "plugin_stage.h"
#include "tap.h"

/* A pipeline whose only plugin section is `sampler = <section>;`, its RNG
 * seeded, and the sampler's stage (NULL on failure). */
static stage *sampler_stage(pipeline *pl, const char *section, unsigned long seed)
{
    char text[512];
    snprintf(text, sizeof text, "run = \"tokenize\";\nsampler = %s;\n", section);
    if (pipeline_from_text(pl, text) != 0)
        return NULL;
    gsl_rng_set(pl->rng, seed);
    return pipeline_stage(pl, "sampler", "sampler.", RUNNER_KIND_SAMPLER,
                          config_lookup(&pl->cfg, "sampler"));
}

static const runner_sampler_ops *ops_of(const stage *st) { return st->desc->ops; }

static int draw(stage *st, int64_t step, int *task)
{
    runner_train_pos pos = {.step = step, .steps_total = 1000000, .epochs = 1,
                            .steps_per_epoch = 1000000};
    return ops_of(st)->next(st->self, &pos, task);
}

/* Draw n tasks; counts[t] gets how often t came. -1 on an error. */
static int draw_many(stage *st, int n_tasks, int n, int64_t *counts, int *seq)
{
    memset(counts, 0, (size_t)n_tasks * sizeof *counts);
    for (int i = 0; i < n; i++) {
        int t = -2;
        if (draw(st, i, &t) != 0 || t < 0 || t >= n_tasks)
            return -1;
        counts[t]++;
        if (seq)
            seq[i] = t;
    }
    return 0;
}

/* Every frequency within 5 standard deviations of its probability. The
 * draws are seeded, so the result is the same on every run. */
static void check_freq(const char *what, int n_tasks, const int64_t *counts, int n, const double *p)
{
    double worst = 0;
    int within = 1;
    for (int t = 0; t < n_tasks; t++) {
        double f = (double)counts[t] / n, sd = sqrt(p[t] * (1 - p[t]) / n);
        worst = fmax(worst, fabs(f - p[t]));
        within &= fabs(f - p[t]) <= 5 * sd + 1e-12;
    }
    ok(within, "%s: frequencies over %d draws within 5 sd of p (max |f - p| = %.4f)", what, n, worst);
}

static void test_round_robin(void)
{
    pipeline pl;
    stage *st = sampler_stage(&pl, "{ plugin = \"round_robin\"; }", 1);
    if (!ok(st != NULL, "round_robin built")) {
        diag("%s", err_get());
        pipeline_close(&pl);
        return;
    }
    const int64_t sizes[3] = {10, 5000, 3};
    ok(ops_of(st)->bind(st->self, 3, sizes) == 0, "round_robin: bind 3 tasks");
    int order_ok = 1, t;
    for (int s = 0; s < 9; s++)
        order_ok &= draw(st, s, &t) == 0 && t == s % 3;
    ok(order_ok, "round_robin: steps 0..8 give 0 1 2 0 1 2 0 1 2 (sizes do not matter)");
    ok(draw(st, 7, &t) == 0 && t == 1, "round_robin: a resumed run at step 7 gets task 1 (no state)");
    ok(draw(st, 3000000001LL, &t) == 0 && t == 3000000001LL % 3, "round_robin: 64-bit steps");
    gsl_rng *copy = gsl_rng_clone(pl.rng);
    gsl_rng_set(copy, 1);
    ok(gsl_rng_get(pl.rng) == gsl_rng_get(copy), "round_robin draws nothing from the RNG");
    gsl_rng_free(copy);
    pipeline_close(&pl);
}

static void test_proportional(void)
{
    pipeline pl;
    stage *st = sampler_stage(&pl, "{ plugin = \"proportional\"; }", 7);
    if (!ok(st != NULL, "proportional built")) {
        diag("%s", err_get());
        pipeline_close(&pl);
        return;
    }
    const int64_t sizes[4] = {100, 300, 0, 600};
    const double p[4] = {0.1, 0.3, 0, 0.6};
    int64_t counts[4];
    enum { N = 200000 };
    ok(ops_of(st)->bind(st->self, 4, sizes) == 0, "proportional: bind");
    ok(draw_many(st, 4, N, counts, NULL) == 0, "proportional: %d draws", N);
    check_freq("proportional 100:300:0:600", 4, counts, N, p);
    is(counts[2], 0, "proportional: the empty task never comes");
    pipeline_close(&pl);
}

static void test_temperature(void)
{
    const int64_t sizes[3] = {100, 400, 1600};
    /* T = 2 (the default): p ∝ sqrt(n) = 10 : 20 : 40 */
    const double p2[3] = {1.0 / 7, 2.0 / 7, 4.0 / 7};
    /* T = 1: proportional, 100 : 400 : 1600 */
    const double p1[3] = {100.0 / 2100, 400.0 / 2100, 1600.0 / 2100};
    /* T = 1000: nearly uniform, n^(1/1000) */
    double pu[3], s = 0;
    for (int t = 0; t < 3; t++)
        s += pu[t] = pow((double)sizes[t], 1.0 / 1000);
    for (int t = 0; t < 3; t++)
        pu[t] /= s;
    const struct {
        const char *section, *what;
        const double *p;
    } cases[] = {
        {"{ plugin = \"temperature\"; }", "temperature T = 2 (default) 100:400:1600", p2},
        {"{ plugin = \"temperature\"; T = 1; }", "temperature T = 1 (= proportional)", p1},
        {"{ plugin = \"temperature\"; T = 1000.0; }", "temperature T = 1000 (~uniform)", pu},
    };
    enum { N = 200000 };
    for (int c = 0; c < 3; c++) {
        pipeline pl;
        int64_t counts[3];
        stage *st = sampler_stage(&pl, cases[c].section, 11 + (unsigned long)c);
        if (!ok(st && ops_of(st)->bind(st->self, 3, sizes) == 0 &&
                    draw_many(st, 3, N, counts, NULL) == 0,
                "%s: built, bound, drawn", cases[c].what)) {
            diag("%s", err_get());
            skip(1, "no sampler");
        } else {
            check_freq(cases[c].what, 3, counts, N, cases[c].p);
        }
        pipeline_close(&pl);
    }
    /* a tiny T: n^(1/T) overflows a double, the log-space weights do not */
    pipeline pl;
    int64_t counts[3];
    stage *st = sampler_stage(&pl, "{ plugin = \"temperature\"; T = 0.001; }", 5);
    ok(st && ops_of(st)->bind(st->self, 3, sizes) == 0 && draw_many(st, 3, 1000, counts, NULL) == 0 &&
           counts[2] == 1000, "temperature T = 0.001: only the largest task (no overflow)");
    pipeline_close(&pl);
    /* a stage made from a plain name (no section, no validation) keeps the default T */
    pipeline_open(&pl, NULL, RUNNER_BUILD_DIR "/plugins");
    config_setting_t *name = config_setting_add(config_root_setting(&pl.cfg), "s", CONFIG_TYPE_STRING);
    config_setting_set_string(name, "temperature");
    st = pipeline_stage(&pl, "sampler", "sampler.", RUNNER_KIND_SAMPLER, name);
    gsl_rng_set(pl.rng, 3);
    ok(st && ops_of(st)->bind(st->self, 3, sizes) == 0 && draw_many(st, 3, N, counts, NULL) == 0,
       "temperature from a bare name: built, bound, drawn");
    if (st)
        check_freq("temperature from a bare name: T = 2", 3, counts, N, p2);
    else
        skip(1, "no sampler");
    pipeline_close(&pl);
}

/* Same seed, same sequence; the sequence depends on the RNG only. */
static void test_determinism(void)
{
    enum { N = 2000 };
    const int64_t sizes[3] = {50, 20, 30};
    int a[N], b[N], c[N];
    int64_t counts[3];
    const char *section = "{ plugin = \"temperature\"; T = 1.5; }";
    pipeline p1, p2, p3;
    stage *s1 = sampler_stage(&p1, section, 42), *s2 = sampler_stage(&p2, section, 42),
          *s3 = sampler_stage(&p3, section, 43);
    if (!ok(s1 && s2 && s3, "three temperature samplers")) {
        pipeline_close(&p1);
        pipeline_close(&p2);
        pipeline_close(&p3);
        return;
    }
    ops_of(s1)->bind(s1->self, 3, sizes);
    ops_of(s2)->bind(s2->self, 3, sizes);
    ops_of(s3)->bind(s3->self, 3, sizes);
    draw_many(s1, 3, N, counts, a);
    draw_many(s2, 3, N, counts, b);
    draw_many(s3, 3, N, counts, c);
    ok(memcmp(a, b, sizeof a) == 0, "same seed: the same %d tasks", N);
    ok(memcmp(a, c, sizeof a) != 0, "another seed: another sequence");

    /* exactly one uniform draw per batch: the RNG ends where N draws end */
    gsl_rng *ref = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(ref, 42);
    for (int i = 0; i < N; i++)
        gsl_rng_uniform(ref);
    ok(gsl_rng_get(ref) == gsl_rng_get(p1.rng), "one RNG draw per batch, nothing else");

    /* resume: a new sampler with the RNG's state after N/2 draws continues
     * exactly where the first run went on */
    gsl_rng_set(p2.rng, 42);
    for (int i = 0; i < N / 2; i++)
        draw(s2, i, &b[i]);
    gsl_rng *saved = gsl_rng_clone(p2.rng);
    pipeline p4;
    stage *s4 = sampler_stage(&p4, section, 999);
    ok(s4 && ops_of(s4)->bind(s4->self, 3, sizes) == 0, "a fresh sampler for the resumed run");
    gsl_rng_memcpy(p4.rng, saved);
    int same = 1;
    for (int i = N / 2; s4 && i < N; i++) {
        int t;
        same &= draw(s4, i, &t) == 0 && t == a[i];
    }
    ok(same, "resumed with the RNG's state: draws %d..%d equal the uninterrupted run", N / 2, N - 1);
    gsl_rng_free(saved);
    gsl_rng_free(ref);
    pipeline_close(&p1);
    pipeline_close(&p2);
    pipeline_close(&p3);
    pipeline_close(&p4);
}

static void test_joint(void)
{
    pipeline pl;
    stage *st = sampler_stage(&pl, "{ plugin = \"joint\"; }", 1);
    if (!ok(st != NULL, "joint built")) {
        pipeline_close(&pl);
        return;
    }
    int t = 0;
    ok(draw(st, 0, &t) == -1, "joint: next() before bind() refused");
    const int64_t sizes[2] = {13084, 13084};
    ok(ops_of(st)->bind(st->self, 2, sizes) == 0, "joint: bind intent + slots");
    int all = 1;
    for (int s = 0; s < 50; s++)
        all &= draw(st, s, &t) == 0 && t == -1;
    ok(all, "joint: every batch is -1 (all tasks)");
    pipeline_close(&pl);
}

static void test_errors(void)
{
    pipeline pl;
    stage *st = sampler_stage(&pl, "{ plugin = \"temperature\"; T = 0; }", 1);
    ok(!st, "temperature T = 0 refused");
    char *why = validate_errors("run = \"tokenize\";\nsampler = { plugin = \"temperature\"; T = 0; };\n");
    ok(why && strstr(why, "sampler.T: 0 is out of range: must be in (0, inf)"),
       "... by its key table, before create, saying why: %s", why ? why : "(did not parse)");
    free(why);
    pipeline_close(&pl);

    st = sampler_stage(&pl, "{ plugin = \"proportional\"; }", 1);
    const int64_t negative[2] = {5, -1}, zeros[2] = {0, 0};
    int t;
    ok(st && draw(st, 0, &t) == -1, "proportional: next() before bind() refused");
    ok(st && ops_of(st)->bind(st->self, 2, negative) == -1, "a negative size refused");
    like(err_get(), "task 1 has size -1", "... naming the task");
    ok(st && ops_of(st)->bind(st->self, 2, zeros) == -1, "all sizes 0 refused");
    like(err_get(), "every task has 0 training examples", "... saying so");
    ok(st && ops_of(st)->bind(st->self, 0, zeros) == -1, "0 tasks refused");
    pipeline_close(&pl);

    st = sampler_stage(&pl, "{ plugin = \"round_robin\"; }", 1);
    const int64_t one[1] = {1};
    ok(st && ops_of(st)->bind(st->self, 1, one) == 0 && ops_of(st)->next(st->self, NULL, &t) == -1,
       "round_robin without a position refused");
    like(err_get(), "sampler/round_robin: next() needs the training position", "... saying so");
    pipeline_close(&pl);
}

int main(void)
{
    test_round_robin();
    test_proportional();
    test_temperature();
    test_determinism();
    test_joint();
    test_errors();
    return done_testing(40);
}
