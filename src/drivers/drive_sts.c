/* drive_sts.c — `run = "sts"`: compares pooling strategies on the STS
 * Benchmark. Both sentences of every pair are embedded (the backbone runs
 * once per batch; every pooler of `poolers` reads the same states), and
 * the Spearman correlation x100 between the pair's cosine similarity and
 * its gold score is reported per pooler and file: a table on stdout and
 * sts.csv in the run folder. */
#include <gsl/gsl_statistics_double.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "drivers.h"
#include "embed.h"
#include "plot.h"
#include "shard.h"
#include "world.h"
#include "run.h"
#include "runner/kit/util.h"

typedef struct sts_file {
    const char *path;
    dataset ds;             /* scored pairs (text, text2, score) */
    int n;                  /* pairs */
    const char **text;      /* 2n: s1 of pair i at 2i, s2 at 2i+1 */
    size_t *len;
    double *gold;
} sts_file;

/* sts.dataset: the section (added as { plugin = "sts"; } when absent). */
static config_setting_t *sts_section(pipeline *pl)
{
    config_setting_t *sts = config_lookup(&pl->cfg, "sts"), *ds = sts ? config_setting_get_member(sts, "dataset") : NULL;
    if (sts && !ds && (ds = config_setting_add(sts, "dataset", CONFIG_TYPE_GROUP))) {
        config_setting_t *p = config_setting_add(ds, "plugin", CONFIG_TYPE_STRING);
        if (!p || !config_setting_set_string(p, "sts"))
            return NULL;
    }
    return ds;
}

/* The pairs of one file through the dataset plugin. */
static int sts_read(pipeline *pl, sts_file *f)
{
    config_setting_t *ds = sts_section(pl);
    if (!ds)
        return err_set("%s: no `sts` group (files and their reader)", pl->file);
    if (dataset_load_source(pl, "sts.dataset", ds, f->path, &f->ds) != 0)
        return -1;
    if (!f->ds.score)
        return err_set("%s: the dataset plugin gives no scored sentence pairs", f->path);
    f->n = f->ds.n;
    f->text = malloc(((size_t)f->n * 2 + 1) * sizeof *f->text);
    f->len = malloc(((size_t)f->n * 2 + 1) * sizeof *f->len);
    if (!f->text || !f->len)
        return err_set("out of memory");
    for (int i = 0; i < f->n; i++) {
        f->text[2 * i] = f->ds.text + f->ds.start[i];
        f->len[2 * i] = f->ds.len[i];
        f->text[2 * i + 1] = f->ds.text2 + f->ds.start2[i];
        f->len[2 * i + 1] = f->ds.len2[i];
    }
    f->gold = f->ds.score;
    if (f->n < 2)
        return err_set("%s: fewer than 2 sentence pairs", f->path);
    return 0;
}

static void sts_free(sts_file *f)
{
    dataset_free(&f->ds);
    free(f->text);
    free(f->len);
}

/* "max layer=-2 normalize=true": the plugin and the keys the user set. */
static void pooler_label(config_setting_t *sec, char *buf, size_t size)
{
    const char *name = "?";
    if (config_setting_type(sec) == CONFIG_TYPE_GROUP)
        config_setting_lookup_string(sec, "plugin", &name);
    size_t used = (size_t)snprintf(buf, size, "%s", name);
    for (int i = 0; config_setting_type(sec) == CONFIG_TYPE_GROUP && i < config_setting_length(sec); i++) {
        config_setting_t *m = config_setting_get_elem(sec, (unsigned)i);
        const char *hook = config_setting_get_hook(m);
        if (strcmp(config_setting_name(m), "plugin") == 0 || (hook && hook[0] == '<'))
            continue;
        char val[64];
        switch (config_setting_type(m)) {
        case CONFIG_TYPE_BOOL: snprintf(val, sizeof val, "%s", config_setting_get_bool(m) ? "true" : "false"); break;
        case CONFIG_TYPE_INT:
        case CONFIG_TYPE_INT64: snprintf(val, sizeof val, "%lld", config_setting_get_int64(m)); break;
        case CONFIG_TYPE_FLOAT: snprintf(val, sizeof val, "%g", config_setting_get_float(m)); break;
        case CONFIG_TYPE_STRING: snprintf(val, sizeof val, "%s", config_setting_get_string(m)); break;
        default: {
            size_t u = 0;
            val[0] = 0;
            for (int j = 0; j < config_setting_length(m) && u < sizeof val; j++)
                u += (size_t)snprintf(val + u, sizeof val - u, "%s%lld", j ? "," : "[",
                                      config_setting_get_int64(config_setting_get_elem(m, (unsigned)j)));
            if (u < sizeof val)
                snprintf(val + u, sizeof val - u, "]");
        }
        }
        if (used < size)
            used += (size_t)snprintf(buf + used, size - used, " %s=%s", config_setting_name(m), val);
    }
}

struct sts_csv {
    int npool, nfiles;
    char (*label)[128];
    const sts_file *files;
    const double *rho; /* (npool, nfiles) */
};

static int write_sts(FILE *f, void *ctx)
{
    const struct sts_csv *c = ctx;
    fprintf(f, "pooler,file,pairs,spearman_x100\n");
    for (int k = 0; k < c->npool; k++)
        for (int j = 0; j < c->nfiles; j++)
            fprintf(f, "\"%s\",%s,%d,%.2f\n", c->label[k], c->files[j].path, c->files[j].n,
                    c->rho[k * c->nfiles + j]);
    return ferror(f) ? err_set("write error") : 0;
}

/* poolers.png: Spearman x100 per pooler (bars), one bar per file. */
static int draw_poolers(pipeline *pl, const struct sts_csv *c)
{
    static const char *const colors[] = {"1f77b4", "ff7f0e", "2ca02c", "d62728"};
    double w = 0.8 / c->nfiles;
    sbuf s = {0}, plot = {0};
    sb_printf(&s, "set title 'STS Benchmark: Spearman x100 of cosine similarity vs gold, per pooler'\n"
                  "set ylabel 'Spearman x100'\nset grid ytics\nset key outside right top\nset style fill solid 0.85\n"
                  "set boxwidth %.4f\nset xrange [-0.6:%d.6]\nset yrange [*:*]\nset offsets 0, 0, graph 0.1, 0\n"
                  "set xtics rotate by 30 right\nset bmargin 9\nset xtics (",
              w, c->npool - 1);
    for (int k = 0; k < c->npool; k++) {
        sb_printf(&s, "%s", k ? ", " : "");
        sb_quote(&s, c->label[k], 40);
        sb_printf(&s, " %d", k);
    }
    sb_printf(&s, ")\n");
    for (int j = 0; j < c->nfiles; j++) {
        sb_printf(&s, "$f%d << EOD\n", j);
        for (int k = 0; k < c->npool; k++)
            sb_printf(&s, "%.4f %.4f\n", k + (j - (c->nfiles - 1) / 2.0) * w, c->rho[k * c->nfiles + j]);
        sb_printf(&s, "EOD\n");
        const char *base = strrchr(c->files[j].path, '/');
        sb_printf(&plot, "%s$f%d using 1:2 with boxes lc rgb '#%s' title ", j ? ", " : "", j, colors[j % 4]);
        sb_quote(&plot, base ? base + 1 : c->files[j].path, 40);
        sb_printf(&plot, ", $f%d using 1:2:(sprintf('%%.1f', $2)) with labels offset 0,0.7 font ',8' notitle", j);
    }
    sb_printf(&s, "plot %s\n", plot.s ? plot.s : "");
    int rc = s.failed || plot.failed ? err_set("out of memory") : plot_script(pl, "poolers.png", 1100, 700, s.s);
    sb_free(&s);
    sb_free(&plot);
    return rc;
}

/* The poolers being compared: stages and labels. */
typedef struct sts_poolers {
    int n;
    stage **pool;
    char (*label)[128];
    float **emb; /* per pooler: (2 pairs, dim) embeddings of the current file */
} sts_poolers;

/* Spearman x100 of each pooler on file f into rho[k * stride]. */
static int sts_score(pipeline *pl, encoder *enc, sts_poolers *P, const sts_file *f, double *rho, int stride)
{
    encoded e = {0};
    double *cos = malloc(((size_t)f->n + 1) * sizeof *cos), *work = malloc((2 * (size_t)f->n + 1) * sizeof *work);
    int rc = -1;
    if (!cos || !work) {
        err_set("out of memory");
        goto done;
    }
    if (encode_texts(enc->tok, 2 * f->n, f->text, f->len, &e) != 0)
        goto done;
    for (int k = 0; k < P->n; k++) {
        free(P->emb[k]);
        if (!(P->emb[k] = malloc((size_t)e.n * (size_t)pooler_dim(enc, P->pool[k]) * sizeof(float)))) {
            err_set("out of memory");
            goto done;
        }
    }
    double t0 = time_now();
    if (shard_embed(enc, &e, P->pool, P->n, P->emb, 0) != 0) /* each rank a share; rank 0 gets every row */
        goto done;
    pipeline_log(pl, RUNNER_LOG_INFO, "%s: %d pairs embedded in %.2f s", f->path, f->n, time_now() - t0);
    for (int k = 0; world_is_root() && k < P->n; k++) {
        int dim = pooler_dim(enc, P->pool[k]);
        for (int i = 0; i < f->n; i++)
            cos[i] = cosine(P->emb[k] + (size_t)(2 * i) * dim, P->emb[k] + (size_t)(2 * i + 1) * dim, dim);
        rho[k * stride] = 100.0 * gsl_stats_spearman(cos, 1, f->gold, 1, (size_t)f->n, work);
    }
    rc = 0;
done:
    encoded_free(&e);
    free(cos);
    free(work);
    return rc;
}

static void sts_print(const sts_poolers *P, const sts_file *files, int nfiles, const double *rho)
{
    printf("STS Benchmark: Spearman correlation x100 of cosine similarity with the gold score\n");
    printf("%-40s", "pooler");
    for (int j = 0; j < nfiles; j++) {
        const char *base = strrchr(files[j].path, '/');
        printf(" %12.12s", base ? base + 1 : files[j].path);
    }
    printf("\n");
    for (int k = 0; k < P->n; k++) {
        printf("%-40s", P->label[k]);
        for (int j = 0; j < nfiles; j++)
            printf(" %12.2f", rho[k * nfiles + j]);
        printf("\n");
    }
}

/* The poolers of `poolers` (or the one `pooler`) as stages. */
static int sts_open_poolers(pipeline *pl, sts_poolers *P)
{
    config_setting_t *list = config_lookup(&pl->cfg, "poolers");
    config_setting_t *single = config_lookup(&pl->cfg, "pooler");
    P->n = list ? config_setting_length(list) : single ? 1 : 0;
    if (P->n == 0)
        return err_set("%s: set `poolers` (a list) or `pooler` to compare", pl->file);
    P->pool = calloc((size_t)P->n, sizeof *P->pool);
    P->label = calloc((size_t)P->n, sizeof *P->label);
    P->emb = calloc((size_t)P->n, sizeof *P->emb);
    if (!P->pool || !P->label || !P->emb)
        return err_set("out of memory");
    for (int k = 0; k < P->n; k++) {
        config_setting_t *sec = list ? config_setting_get_elem(list, (unsigned)k) : single;
        char slot[32];
        snprintf(slot, sizeof slot, "poolers.[%d]", k);
        if (!(P->pool[k] = pipeline_stage(pl, slot, "pooler.", RUNNER_KIND_POOLER, sec)))
            return -1;
        pooler_label(sec, P->label[k], sizeof P->label[k]);
    }
    return 0;
}

int drive_sts(pipeline *pl)
{
    encoder enc;
    sts_poolers P = {0};
    int rc = -1, nfiles = 0;
    sts_file *files = NULL;
    double *rho = NULL;
    char *path = NULL;
    if (encoder_open(pl, &enc) != 0)
        return -1;
    if (sts_open_poolers(pl, &P) != 0 || encoder_load(pl, &enc, 0) != 0 || encoder_prepare(&enc) != 0)
        goto done;
    const config_setting_t *fl = config_lookup(&pl->cfg, "sts.files");
    nfiles = fl ? config_setting_length(fl) : 0;
    if (nfiles == 0) {
        err_set("%s: sts.files lists no file", pl->file);
        goto done;
    }
    files = calloc((size_t)nfiles, sizeof *files);
    rho = calloc((size_t)P.n * (size_t)nfiles, sizeof *rho);
    if (!files || !rho) {
        err_set("out of memory");
        goto done;
    }
    for (int j = 0; j < nfiles; j++) {
        files[j].path = config_setting_get_string_elem(fl, j);
        if (sts_read(pl, &files[j]) != 0 || sts_score(pl, &enc, &P, &files[j], rho + j, nfiles) != 0)
            goto done;
    }
    if (!world_is_root()) { /* rank 0 reports and writes */
        rc = 0;
        goto done;
    }
    sts_print(&P, files, nfiles, rho);
    path = run_path(pl, "sts.csv");
    struct sts_csv c = {P.n, nfiles, P.label, files, rho};
    if (!path || file_write_atomic_with(path, write_sts, &c) != 0 || draw_poolers(pl, &c) != 0)
        goto done;
    rc = 0;
done:
    free(path);
    for (int j = 0; files && j < nfiles; j++)
        sts_free(&files[j]);
    for (int k = 0; P.emb && k < P.n; k++)
        free(P.emb[k]);
    free(P.emb);
    free(files);
    free(rho);
    free(P.pool);
    free(P.label);
    return rc;
}
