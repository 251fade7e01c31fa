/* drive_embed.c — `run = "embed"` (Task 1): sentences of `input` to
 * fixed-length embeddings. Writes embeddings.npy (float32 [N, D], input
 * order), ids.txt, tokens.txt, similarity.csv (header: id, then one column
 * per sentence) and, through gnuplot, similarity.png; prints each sentence
 * with its first dimensions and the cosine-similarity matrix, or with
 * output.stdout = "jsonl" (--jsonl) one {"id", "text", "embedding"} object
 * a line and nothing else. `input = "-"` reads stdin, before the model
 * loads. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "drivers.h"
#include "embed.h"
#include "runner/kit/npy.h"
#include "runner/kit/util.h"
#include "plot.h"
#include "run.h"
#include "shard.h"
#include "world.h"
#include "runner/kit/util.h"
#include "textout.h"

enum { SHOW_MAX = 24 }; /* print/plot the similarity matrix up to this many */

static void print_sentence(const lines *L, int i, const float *v, int dim, int show)
{
    double norm = 0;
    for (int c = 0; c < dim; c++)
        norm += (double)v[c] * v[c];
    const char *text = L->data + L->start[i];
    int len = (int)L->len[i];
    printf("[%2d] %.*s%s\n     [", i, len > 70 ? 67 : len, text, len > 70 ? "..." : "");
    for (int c = 0; c < show && c < dim; c++)
        printf("%s%+.4f", c ? ", " : "", v[c]);
    printf("%s]  (%d dims, |e| = %.4f)\n", dim > show ? ", ..." : "", dim, sqrt(norm));
}

struct sim_csv {
    int n;
    const double *m;
};

static int write_sim(FILE *f, void *ctx)
{
    const struct sim_csv *s = ctx;
    fprintf(f, "id");
    for (int j = 0; j < s->n; j++)
        fprintf(f, ",%d", j);
    fputc('\n', f);
    for (int i = 0; i < s->n; i++) {
        fprintf(f, "%d,", i);
        for (int j = 0; j < s->n; j++)
            fprintf(f, "%.6f%c", s->m[i * s->n + j], j + 1 < s->n ? ',' : '\n');
    }
    return ferror(f) ? err_set("write error") : 0;
}

/* similarity.png, rows and columns labelled with the sentences. */
static int draw_heatmap(pipeline *pl, const lines *L, int n, const double *sim)
{
    char **labels = calloc((size_t)n, sizeof *labels);
    int rc = -1;
    if (!labels)
        return err_set("out of memory");
    for (int i = 0; i < n; i++)
        if (!(labels[i] = str_printf("[%d] %.*s", i, (int)L->len[i], L->data + L->start[i]))) {
            err_set("out of memory");
            goto done;
        }
    rc = plot_heatmap(pl, "similarity.png", "cosine similarity of the sentences", n, sim,
                      (const char *const *)labels);
done:
    for (int i = 0; i < n; i++)
        free(labels[i]);
    free(labels);
    return rc;
}

/* One JSON object a line on stdout: id, text, embedding. */
static void print_jsonl(const lines *L, const float *emb, int dim)
{
    for (int i = 0; i < L->n; i++) {
        printf("{\"id\": %d, \"text\": ", i);
        json_text(stdout, L->data + L->start[i], L->len[i]);
        printf(", \"embedding\": [");
        for (int c = 0; c < dim; c++)
            printf("%s%.9g", c ? ", " : "", emb[(size_t)i * dim + c]);
        printf("]}\n");
    }
    fflush(stdout);
}

static void print_matrix(int n, const double *sim)
{
    printf("\ncosine similarity\n     ");
    for (int j = 0; j < n; j++)
        printf("  [%2d]", j);
    printf("\n");
    for (int i = 0; i < n; i++) {
        printf("[%2d] ", i);
        for (int j = 0; j < n; j++)
            printf(" %5.2f", sim[i * n + j]);
        printf("\n");
    }
}

int drive_embed(pipeline *pl)
{
    encoder enc;
    lines L = {0};
    encoded e = {0};
    float *emb = NULL;
    double *sim = NULL;
    char *path = NULL;
    int rc = -1;
    const char *input = cfg_str(pl, "input");
    if (!input)
        return err_set("%s: `input` (a file of sentences) is not set", pl->file);
    int jsonl = stdout_jsonl(pl);
    if (lines_read(input, &L) != 0) /* before the model: a bad input fails at once */
        return -1;
    if (encoder_open(pl, &enc) != 0)
        goto done;
    stage *pooler = pipeline_stage(pl, "pooler", "pooler.", RUNNER_KIND_POOLER,
                                   config_lookup(&pl->cfg, "pooler"));
    if (!pooler || encoder_load(pl, &enc, 0) != 0 || encoder_prepare(&enc) != 0 ||
        encode_lines(enc.tok, &L, &e) != 0)
        goto done;
    int dim = pooler_dim(&enc, pooler);
    emb = malloc(((size_t)e.n + 1) * (size_t)dim * sizeof *emb);
    if (!emb) {
        err_set("out of memory for %d embeddings", e.n);
        goto done;
    }
    (void)mem_populate(emb, (size_t)e.n * (size_t)dim * sizeof *emb, 1); /* advice: all written */
    double t0 = time_now();
    if (shard_embed(&enc, &e, &pooler, 1, &emb, 0) != 0) /* each rank a share; rank 0 has them all */
        goto done;
    double dt = time_now() - t0;
    if (!world_is_root()) {
        rc = 0;
        goto done;
    }
    pipeline_log(pl, RUNNER_LOG_INFO, "embedded %d sentences in %.3f s (%.1f sentences/s, %d rank%s x %d threads)",
                 e.n, dt, dt > 0 ? e.n / dt : 0.0, world_size(), world_size() > 1 ? "s" : "", pl->threads);
    path = run_path(pl, "embeddings.npy");
    if (!path || npy_write_f32(path, e.n, dim, emb) != 0 || write_token_files(pl, enc.tok, &e) != 0)
        goto done;

    if (jsonl)
        print_jsonl(&L, emb, dim);
    else if (!pl->quiet || e.n <= SHOW_MAX) {
        int shown = e.n <= SHOW_MAX ? e.n : SHOW_MAX;
        printf("%d sentences -> %d-dimensional embeddings (%s pooling)\n", e.n, dim,
               pooler->desc->name);
        for (int i = 0; i < shown; i++)
            print_sentence(&L, i, emb + (size_t)i * dim, dim, (int)cfg_int(pl, "show_dims", 6));
        if (shown < e.n)
            printf("... (%d more in embeddings.npy)\n", e.n - shown);
    }
    if (e.n <= SHOW_MAX && e.n > 1) {
        sim = malloc((size_t)e.n * (size_t)e.n * sizeof *sim);
        if (!sim) {
            err_set("out of memory");
            goto done;
        }
        for (int i = 0; i < e.n; i++)
            for (int j = 0; j < e.n; j++)
                sim[i * e.n + j] = cosine(emb + (size_t)i * dim, emb + (size_t)j * dim, dim);
        if (!jsonl)
            print_matrix(e.n, sim);
        free(path);
        path = run_path(pl, "similarity.csv");
        struct sim_csv sc = {e.n, sim};
        if (!path || file_write_atomic_with(path, write_sim, &sc) != 0)
            goto done;
        if (draw_heatmap(pl, &L, e.n, sim) != 0)
            goto done;
    }
    if (!jsonl)
        printf("\nwrote %s/embeddings.npy [%d, %d]; encoded at %.1f sentences/s\n", pl->out_dir, e.n, dim,
               dt > 0 ? e.n / dt : 0.0);
    rc = 0;
done:
    free(path);
    free(sim);
    free(emb);
    encoded_free(&e);
    lines_free(&L);
    return rc;
}
