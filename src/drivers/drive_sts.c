/* drive_sts.c — `run = "sts"`: compares pooling strategies on the STS
 * Benchmark. Both sentences of every pair are embedded (the backbone runs
 * once per batch; every pooler of `poolers` reads the same states), and
 * the Spearman correlation x100 between the pair's cosine similarity and
 * its gold score is reported per pooler and file: a table on stdout and
 * sts.csv in the run folder. */
#include <gsl/gsl_statistics_double.h>
#include <stdlib.h>
#include <string.h>

#include "drivers.h"
#include "embed.h"
#include "shard.h"
#include "world.h"
#include "run.h"
#include "runner/kit/util.h"

typedef struct sts_file {
    const char *path;
    lines L;
    int n;                  /* pairs */
    const char **text;      /* 2n: s1 of pair i at 2i, s2 at 2i+1 */
    size_t *len;
    double *gold;
} sts_file;

/* Split STS rows on tabs: genre, file, year, id, score, s1, s2[, ...]. */
static int sts_read(sts_file *f)
{
    if (lines_read(f->path, &f->L) != 0)
        return -1;
    f->text = malloc(((size_t)f->L.n * 2 + 1) * sizeof *f->text);
    f->len = malloc(((size_t)f->L.n * 2 + 1) * sizeof *f->len);
    f->gold = malloc(((size_t)f->L.n + 1) * sizeof *f->gold);
    if (!f->text || !f->len || !f->gold)
        return err_set("out of memory");
    for (int i = 0; i < f->L.n; i++) {
        char *row = f->L.data + f->L.start[i];
        size_t len = f->L.len[i];
        if (len == 0)
            continue;
        const char *field[9];
        size_t flen[9];
        int nf = 0;
        size_t at = 0;
        while (nf < 9) {
            const char *tab = memchr(row + at, '\t', len - at);
            size_t end = tab ? (size_t)(tab - row) : len;
            field[nf] = row + at;
            flen[nf++] = end - at;
            if (!tab)
                break;
            at = end + 1;
        }
        if (nf < 7)
            return err_set("%s:%d: expected at least 7 tab-separated fields, got %d", f->path, i + 1, nf);
        char score[32];
        snprintf(score, sizeof score, "%.*s", (int)(flen[4] < 31 ? flen[4] : 31), field[4]);
        char *end;
        double g = strtod(score, &end);
        if (end == score || *end || g < 0 || g > 5)
            return err_set("%s:%d: score '%s' is not a number from 0 to 5", f->path, i + 1, score);
        f->gold[f->n] = g;
        f->text[2 * f->n] = field[5];
        f->len[2 * f->n] = flen[5];
        f->text[2 * f->n + 1] = field[6];
        f->len[2 * f->n + 1] = flen[6];
        f->n++;
    }
    if (f->n < 2)
        return err_set("%s: fewer than 2 sentence pairs", f->path);
    return 0;
}

static void sts_free(sts_file *f)
{
    lines_free(&f->L);
    free(f->text);
    free(f->len);
    free(f->gold);
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

int drive_sts(pipeline *pl)
{
    encoder enc;
    int rc = -1, npool = 0, nfiles = 0;
    stage **pool = NULL;
    char(*label)[128] = NULL;
    sts_file *files = NULL;
    double *rho = NULL;
    float **emb = NULL;
    encoded e = {0};
    char *path = NULL;
    if (encoder_open(pl, &enc) != 0)
        return -1;
    config_setting_t *list = config_lookup(&pl->cfg, "poolers");
    config_setting_t *single = config_lookup(&pl->cfg, "pooler");
    npool = list ? config_setting_length(list) : single ? 1 : 0;
    if (npool == 0)
        return err_set("%s: set `poolers` (a list) or `pooler` to compare", pl->file);
    pool = calloc((size_t)npool, sizeof *pool);
    label = calloc((size_t)npool, sizeof *label);
    emb = calloc((size_t)npool, sizeof *emb);
    if (!pool || !label || !emb) {
        err_set("out of memory");
        goto done;
    }
    for (int k = 0; k < npool; k++) {
        config_setting_t *sec = list ? config_setting_get_elem(list, (unsigned)k) : single;
        char slot[32];
        snprintf(slot, sizeof slot, "poolers.[%d]", k);
        pool[k] = pipeline_stage(pl, slot, "pooler.", RUNNER_KIND_POOLER, sec);
        if (!pool[k])
            goto done;
        pooler_label(sec, label[k], sizeof label[k]);
    }
    if (encoder_load(pl, &enc, 0) != 0)
        goto done;
    const config_setting_t *fl = config_lookup(&pl->cfg, "sts.files");
    nfiles = fl ? config_setting_length(fl) : 0;
    if (nfiles == 0) {
        err_set("%s: sts.files lists no file", pl->file);
        goto done;
    }
    files = calloc((size_t)nfiles, sizeof *files);
    rho = calloc((size_t)npool * (size_t)nfiles, sizeof *rho);
    if (!files || !rho) {
        err_set("out of memory");
        goto done;
    }
    for (int j = 0; j < nfiles; j++) {
        files[j].path = config_setting_get_string_elem(fl, j);
        if (sts_read(&files[j]) != 0)
            goto done;
        if (encode_texts(enc.tok, 2 * files[j].n, files[j].text, files[j].len, &e) != 0)
            goto done;
        for (int k = 0; k < npool; k++) {
            free(emb[k]);
            emb[k] = malloc((size_t)e.n * (size_t)pooler_dim(&enc, pool[k]) * sizeof(float));
            if (!emb[k]) {
                err_set("out of memory");
                goto done;
            }
        }
        double t0 = time_now();
        if (shard_embed(&enc, &e, pool, npool, emb, 0) != 0) /* rank 0 gets every row */
            goto done;
        if (!world_is_root()) {
            encoded_free(&e);
            continue;
        }
        pipeline_log(pl, RUNNER_LOG_INFO, "%s: %d pairs embedded in %.2f s", files[j].path,
                     files[j].n, time_now() - t0);
        double *cos = malloc((size_t)files[j].n * sizeof *cos);
        double *work = malloc(2 * (size_t)files[j].n * sizeof *work);
        if (!cos || !work) {
            free(cos);
            free(work);
            err_set("out of memory");
            goto done;
        }
        for (int k = 0; k < npool; k++) {
            int dim = pooler_dim(&enc, pool[k]);
            for (int i = 0; i < files[j].n; i++)
                cos[i] = cosine(emb[k] + (size_t)(2 * i) * dim, emb[k] + (size_t)(2 * i + 1) * dim, dim);
            rho[k * nfiles + j] = 100.0 * gsl_stats_spearman(cos, 1, files[j].gold, 1,
                                                             (size_t)files[j].n, work);
        }
        free(cos);
        free(work);
        encoded_free(&e);
    }
    if (!world_is_root()) {
        rc = 0;
        goto done;
    }
    printf("STS Benchmark: Spearman correlation x100 of cosine similarity with the gold score\n");
    printf("%-40s", "pooler");
    for (int j = 0; j < nfiles; j++) {
        const char *base = strrchr(files[j].path, '/');
        printf(" %12.12s", base ? base + 1 : files[j].path);
    }
    printf("\n");
    for (int k = 0; k < npool; k++) {
        printf("%-40s", label[k]);
        for (int j = 0; j < nfiles; j++)
            printf(" %12.2f", rho[k * nfiles + j]);
        printf("\n");
    }
    path = run_path(pl, "sts.csv");
    struct sts_csv c = {npool, nfiles, label, files, rho};
    if (!path || file_write_atomic_with(path, write_sts, &c) != 0)
        goto done;
    rc = 0;
done:
    free(path);
    encoded_free(&e);
    for (int j = 0; files && j < nfiles; j++)
        sts_free(&files[j]);
    for (int k = 0; emb && k < npool; k++)
        free(emb[k]);
    free(emb);
    free(files);
    free(rho);
    free(pool);
    free(label);
    return rc;
}
