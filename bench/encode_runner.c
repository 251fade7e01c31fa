/* encode_runner.c — sentences/s of the bert backbone + a pooler on a file
 * of sentences, without the runner's drivers: model load, tokenization and
 * encoding (batches sorted by length) timed apart, best of --rounds.
 *
 *   build/bench/encode_runner [--threads N] [--batch 32] [--rounds 5]
 *       [--model ../shared/models/minilm-l6-random]
 *       [--tsv ../shared/datasets/sst2/dev.tsv | --input FILE]
 *       [--pooler mean] [--precision f32]
 *
 * Like the runner, it sizes the one OpenMP pool to --threads and, after
 * loading, has the backbone pack its weights (prepare, ABI 1.7) before
 * the timing. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "pipeline.h"
#include "text.h"
#include "threads.h"
#include "runner/kit/util.h"

/* First tab-separated column of every line after the header. */
static int read_tsv_column(const char *path, lines *L)
{
    if (lines_read(path, L) != 0)
        return -1;
    if (L->n < 1)
        return err_set("%s: empty", path);
    for (int i = 1; i < L->n; i++) {
        const char *s = L->data + L->start[i];
        const char *tab = memchr(s, '\t', L->len[i]);
        L->start[i - 1] = L->start[i];
        L->len[i - 1] = tab ? (size_t)(tab - s) : L->len[i];
    }
    L->n--;
    return 0;
}

int main(int argc, char **argv)
{
    int threads = 2, bsize = 32, rounds = 5;
    const char *model = "../shared/models/minilm-l6-random", *tsv = "../shared/datasets/sst2/dev.tsv";
    const char *input = NULL, *pooler = "mean", *precision = "f32";
    static const struct option opts[] = {
        {"threads", required_argument, 0, 't'}, {"batch", required_argument, 0, 'b'},
        {"rounds", required_argument, 0, 'r'},  {"model", required_argument, 0, 'm'},
        {"tsv", required_argument, 0, 's'},     {"input", required_argument, 0, 'i'},
        {"pooler", required_argument, 0, 'p'},  {"precision", required_argument, 0, 'x'},
        {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 't': threads = atoi(optarg); break;
        case 'b': bsize = atoi(optarg); break;
        case 'r': rounds = atoi(optarg); break;
        case 'm': model = optarg; break;
        case 's': tsv = optarg; break;
        case 'i': input = optarg; break;
        case 'p': pooler = optarg; break;
        case 'x': precision = optarg; break;
        default: fprintf(stderr, "usage: see the header of bench/encode_runner.c\n"); return 2;
        }
    }
    if (threads < 1 || bsize < 1 || rounds < 1) {
        fprintf(stderr, "encode_runner: --threads, --batch and --rounds must be positive\n");
        return 2;
    }
    threads_setup(threads, argv);
    double t_start = time_now();

    pipeline pl;
    lines L = {0};
    encoded e = {0};
    batch bt = {0};
    int *order = NULL, status = 1;
    float *out = NULL;
    char text[1024];
    snprintf(text, sizeof text,
             "run = \"embed\";\nmodel = \"%s\";\ntokenizer = { plugin = \"wordpiece\"; };\n"
             "backbone = { plugin = \"bert\"; precision = \"%s\"; };\n"
             "pooler = { plugin = \"%s\"; normalize = true; };\n",
             model, precision, pooler);
    if (pipeline_open(&pl, NULL, RUNNER_BUILD_DIR "/plugins") != 0)
        goto fail;
    pl.threads = threads;
    pl.quiet = 1;
    if (!config_read_string(&pl.cfg, text)) {
        err_set("config: %s", config_error_text(&pl.cfg));
        goto fail;
    }
    diags d;
    diag_init(&d);
    int bad = pipeline_validate(&pl, &d);
    if (bad)
        err_set("%s", d.n ? d.msg[0] : "invalid pipeline");
    diag_free(&d);
    if (bad)
        goto fail;
    stage *tok = pipeline_stage(&pl, "tokenizer", "tokenizer.", RUNNER_KIND_TOKENIZER,
                                config_lookup(&pl.cfg, "tokenizer"));
    stage *bb = tok ? pipeline_stage(&pl, "backbone", "backbone.", RUNNER_KIND_BACKBONE,
                                     config_lookup(&pl.cfg, "backbone")) : NULL;
    stage *pool = bb ? pipeline_stage(&pl, "pooler", "pooler.", RUNNER_KIND_POOLER,
                                      config_lookup(&pl.cfg, "pooler")) : NULL;
    if (!pool || pipeline_alloc_params(&pl, 0) != 0)
        goto fail;
    const runner_backbone_ops *bops = bb->desc->ops;
    const runner_pooler_ops *pops = pool->desc->ops;
    if (bops->load(bb->self) != 0 || (bops->prepare && bops->prepare(bb->self) != 0))
        goto fail;
    double t_loaded = time_now();
    if ((input ? lines_read(input, &L) : read_tsv_column(tsv, &L)) != 0)
        goto fail;
    double t0 = time_now();
    if (encode_lines(tok, &L, &e) != 0)
        goto fail;
    double t_tok = time_now() - t0;
    order = encoded_order(&e, 1);
    runner_backbone_info info;
    bops->info(bb->self, &info);
    out = malloc((size_t)bsize * (size_t)info.dim * sizeof *out);
    if (!order || !out) {
        err_set("out of memory");
        goto fail;
    }
    /* the lowest hidden state the pooler reads, as the runner passes it (ABI 1.7) */
    const int lowest = pops->lowest_layer ? pops->lowest_layer(pool->self, info.layers) : 0;
    double best = 1e30, sum = 0;
    for (int r = 0; r < rounds; r++) {
        double t1 = time_now();
        for (int i = 0; i < e.n; i += bsize) {
            int n = e.n - i < bsize ? e.n - i : bsize;
            const runner_states *st;
            if (batch_fill(&bt, &e, order + i, n) != 0)
                goto fail;
            bt.b.lowest_read = lowest;
            if (bops->forward(bb->self, &bt.b, 0, &st) != 0 ||
                pops->forward(pool->self, &bt.b, st, out) != 0)
                goto fail;
        }
        double dt = time_now() - t1;
        best = dt < best ? dt : best;
        sum += dt;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%d sentences (%lld tokens), batch %d, %d threads, pooler %s, precision %s\n", e.n,
           (long long)e.off[e.n], bsize, threads, pooler, precision);
    printf("load %.3f s, tokenize %.3f s (%.0f sentences/s)\n", t_loaded - t_start, t_tok, e.n / t_tok);
    printf("encode: best %.3f s = %.1f sentences/s, mean %.3f s = %.1f sentences/s over %d rounds\n",
           best, e.n / best, sum / rounds, e.n * rounds / sum, rounds);
    printf("first round as a whole process (load + tokenize + encode): %.1f sentences/s\n",
           e.n / (t_loaded - t_start + t_tok + sum / rounds));
    printf("peak RSS %ld MB\n", ru.ru_maxrss / 1024);
    status = 0;
fail:
    if (status)
        fprintf(stderr, "encode_runner: %s\n", err_get());
    free(out);
    free(order);
    batch_free(&bt);
    encoded_free(&e);
    lines_free(&L);
    pipeline_close(&pl);
    return status;
}
