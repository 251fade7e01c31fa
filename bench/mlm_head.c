/* mlm_head.c — time of the MLM head (head/mlm, decoder tied to a (V,C)
 * word-embedding matrix) and the masked_lm loss on N masked rows: forward,
 * loss with its gradient, backward (into the transform, the bias, the tied
 * matrix and dx), each the median of --rounds after one warm-up.
 *
 *   build/bench/mlm_head [--threads 2] [--rows 1000] [--dim 256]
 *       [--vocab 30522] [--rounds 5]
 *
 * Like the runner, it sets OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and
 * OPENBLAS_CORETYPE=SkylakeX (AVX-512 CPUs) and re-executes itself, since
 * OpenBLAS reads them when it loads. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline.h"
#include "threads.h"
#include "runner/kit/util.h"

#define EMB "backbone.embeddings.word_embeddings.weight"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static stage *task_stage(pipeline *pl, const char *member, runner_kind kind)
{
    config_setting_t *t = config_setting_get_elem(config_lookup(&pl->cfg, "tasks"), 0);
    char slot[64];
    snprintf(slot, sizeof slot, "tasks.mlm.%s", member);
    return pipeline_stage(pl, slot, "heads.mlm.", kind, config_setting_get_member(t, member));
}

int main(int argc, char **argv)
{
    int threads = 2, N = 1000, C = 256, V = 30522, rounds = 5;
    static const struct option opts[] = {{"threads", required_argument, 0, 't'}, {"rows", required_argument, 0, 'n'},
                                         {"dim", required_argument, 0, 'c'},     {"vocab", required_argument, 0, 'v'},
                                         {"rounds", required_argument, 0, 'r'},  {0, 0, 0, 0}};
    for (int o; (o = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        int v = o == '?' ? 0 : atoi(optarg);
        if (o == '?' || v < 1) {
            fprintf(stderr, "usage: mlm_head [--threads N] [--rows N] [--dim C] [--vocab V] [--rounds R]\n");
            return 2;
        }
        *(o == 't' ? &threads : o == 'n' ? &N : o == 'c' ? &C : o == 'v' ? &V : &rounds) = v;
    }
    threads_setup(threads, argv);

    pipeline pl;
    int rc = 1;
    float *x = NULL, *logits = NULL, *dlogits = NULL, *dx = NULL;
    int32_t *labels = NULL;
    double *t_fwd = calloc((size_t)rounds, sizeof *t_fwd), *t_loss = calloc((size_t)rounds, sizeof *t_loss);
    double *t_bwd = calloc((size_t)rounds, sizeof *t_bwd);
    if (pipeline_open(&pl, NULL, RUNNER_BUILD_DIR "/plugins") != 0 ||
        !config_read_string(&pl.cfg, "run = \"tokenize\"; tasks = ( { name = \"mlm\"; head = { plugin = \"mlm\"; };"
                                     " loss = { plugin = \"masked_lm\"; }; } );")) {
        fprintf(stderr, "mlm_head: %s\n", err_get());
        goto done;
    }
    pl.quiet = 1;
    pl.threads = threads;
    diags d;
    diag_init(&d);
    int bad = pipeline_validate(&pl, &d);
    for (int i = 0; i < d.n; i++)
        fprintf(stderr, "mlm_head: %s\n", d.msg[i]);
    diag_free(&d);
    const int64_t shape[2] = {V, C};
    stage *head = NULL, *loss = NULL;
    if (bad || params_add(&pl.P, EMB, 2, shape, 0, RUNNER_INIT_NORMAL, 0.02f, NULL, NULL) < 0 ||
        !(head = task_stage(&pl, "head", RUNNER_KIND_HEAD)) || !(loss = task_stage(&pl, "loss", RUNNER_KIND_LOSS))) {
        fprintf(stderr, "mlm_head: %s\n", err_get());
        goto done;
    }
    const runner_head_ops *hops = head->desc->ops;
    const runner_loss_ops *lops = loss->desc->ops;
    if (hops->bind(head->self, C, V) != 0 || pipeline_alloc_params(&pl, 1) != 0) {
        fprintf(stderr, "mlm_head: %s\n", err_get());
        goto done;
    }
    x = malloc((size_t)N * C * sizeof *x);
    dx = calloc((size_t)N * C, sizeof *dx);
    logits = malloc((size_t)N * V * sizeof *logits);
    dlogits = malloc((size_t)N * V * sizeof *dlogits);
    labels = malloc((size_t)N * sizeof *labels);
    if (!x || !dx || !logits || !dlogits || !labels || !t_fwd || !t_loss || !t_bwd) {
        fprintf(stderr, "mlm_head: out of memory\n");
        goto done;
    }
    for (int64_t i = 0; i < (int64_t)N * C; i++)
        x[i] = (float)(gsl_rng_uniform(pl.rng) * 2 - 1);
    for (int i = 0; i < N; i++)
        labels[i] = (int32_t)gsl_rng_uniform_int(pl.rng, (unsigned long)V);
    for (int r = -1; r < rounds; r++) {
        double l, t0 = time_now();
        if (hops->forward(head->self, N, x, logits, 1) != 0)
            break;
        double t1 = time_now();
        if (lops->forward(loss->self, N, V, logits, labels, &l, dlogits) != 0)
            break;
        double t2 = time_now();
        params_zero_grad(&pl.P);
        double t3 = time_now();
        if (hops->backward(head->self, N, x, dlogits, dx) != 0)
            break;
        double t4 = time_now();
        if (r >= 0) {
            t_fwd[r] = t1 - t0;
            t_loss[r] = t2 - t1;
            t_bwd[r] = t4 - t3;
        }
        if (r == rounds - 1)
            rc = 0;
    }
    if (rc != 0) {
        fprintf(stderr, "mlm_head: %s\n", err_get());
        goto done;
    }
    qsort(t_fwd, (size_t)rounds, sizeof *t_fwd, cmp_double);
    qsort(t_loss, (size_t)rounds, sizeof *t_loss, cmp_double);
    qsort(t_bwd, (size_t)rounds, sizeof *t_bwd, cmp_double);
    const double f = t_fwd[rounds / 2], lo = t_loss[rounds / 2], b = t_bwd[rounds / 2];
    const double gflop = 2.0 * N * (double)C * V * 1e-9; /* one (N,C)x(C,V) GEMM */
    printf("mlm head: N = %d rows, C = %d, V = %d, %d threads, median of %d\n", N, C, V, threads, rounds);
    printf("  head forward   %8.1f ms  (%.0f GFLOP/s in the decoder GEMM)\n", f * 1e3, gflop / f);
    printf("  masked_lm loss %8.1f ms\n", lo * 1e3);
    printf("  head backward  %8.1f ms  (dE and dh: %.0f GFLOP/s)\n", b * 1e3, 2 * gflop / b);
    printf("  head forward + backward %.1f ms; with the loss %.1f ms\n", (f + b) * 1e3, (f + lo + b) * 1e3);
done:
    free(x);
    free(dx);
    free(logits);
    free(dlogits);
    free(labels);
    free(t_fwd);
    free(t_loss);
    free(t_bwd);
    pipeline_close(&pl);
    return rc;
}
