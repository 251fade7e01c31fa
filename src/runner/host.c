/* host.c — the services table each plugin instance is given: log, error,
 * memory, RNG, its configuration section, the parameter store. */
#include "pipeline.h"

#include <gsl/gsl_randist.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runner/kit/util.h"

/* ---- host services ---------------------------------------------------------- */

static stage *stage_of(const runner_host *h) { return (stage *)(uintptr_t)h; }

void pipeline_log(const pipeline *pl, int level, const char *fmt, ...)
{
    if (pl && pl->quiet && level > RUNNER_LOG_WARN)
        return;
    /* one write per line, so the lines of several ranks do not interleave */
    char line[4096];
    int at = snprintf(line, sizeof line, "%s",
                      level == RUNNER_LOG_ERROR ? "error: " : level == RUNNER_LOG_WARN ? "warning: " : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + at, sizeof line - (size_t)at - 1, fmt, ap);
    va_end(ap);
    size_t n = strlen(line);
    line[n] = '\n';
    fwrite(line, 1, n + 1, stderr);
}

static void host_log(const runner_host *h, int level, const char *fmt, ...)
{
    stage *st = stage_of(h);
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pipeline_log(st->pl, level, "%s/%s: %s", st->slot, st->desc->name, msg);
}

static int host_error(const runner_host *h, const char *fmt, ...)
{
    stage *st = stage_of(h);
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s/%s", st->slot, st->desc->name);
    va_list ap;
    va_start(ap, fmt);
    err_setv(prefix, fmt, ap);
    va_end(ap);
    return -1;
}

static uint64_t host_rng_u64(const runner_host *h)
{
    gsl_rng *r = stage_of(h)->pl->rng;
    return ((uint64_t)gsl_rng_get(r) << 32) ^ (uint64_t)gsl_rng_get(r);
}

static double host_rng_uniform(const runner_host *h) { return gsl_rng_uniform(stage_of(h)->pl->rng); }
static int host_threads(const runner_host *h) { return stage_of(h)->pl->threads; }
static int host_quiet(const runner_host *h) { return stage_of(h)->pl->quiet; }

/* A member of the section; 1 when absent. Keys a plugin reads must be in
 * its table (a plugin bug otherwise). */
static int cfg_member(const runner_cfg *c, const char *key, config_setting_t **out)
{
    const runner_key *k = c->st->desc->keys;
    while (k && k->name && strcmp(k->name, key) != 0)
        k++;
    if (!k || !k->name)
        return host_error(&c->st->host, "reads key '%s', which its key table lacks", key);
    *out = c->group ? config_setting_get_member(c->group, key) : NULL;
    return *out ? 0 : 1;
}

static int host_cfg_int(const runner_cfg *c, const char *key, long long *out)
{
    config_setting_t *s;
    int rc = cfg_member(c, key, &s);
    if (rc == 0)
        *out = config_setting_get_int64(s);
    return rc;
}

static double setting_number(const config_setting_t *s)
{
    return config_setting_type(s) == CONFIG_TYPE_FLOAT ? config_setting_get_float(s)
                                                       : (double)config_setting_get_int64(s);
}

static int host_cfg_float(const runner_cfg *c, const char *key, double *out)
{
    config_setting_t *s;
    int rc = cfg_member(c, key, &s);
    if (rc == 0)
        *out = setting_number(s);
    return rc;
}

static int host_cfg_bool(const runner_cfg *c, const char *key, int *out)
{
    config_setting_t *s;
    int rc = cfg_member(c, key, &s);
    if (rc == 0)
        *out = config_setting_get_bool(s);
    return rc;
}

static int host_cfg_string(const runner_cfg *c, const char *key, const char **out)
{
    config_setting_t *s;
    int rc = cfg_member(c, key, &s);
    if (rc == 0)
        *out = config_setting_get_string(s);
    return rc;
}

static int host_cfg_count(const runner_cfg *c, const char *key)
{
    config_setting_t *s;
    return cfg_member(c, key, &s) == 0 ? config_setting_length(s) : -1;
}

static int cfg_elem(const runner_cfg *c, const char *key, int i, config_setting_t **e)
{
    config_setting_t *s;
    int rc = cfg_member(c, key, &s);
    if (rc != 0)
        return rc;
    *e = config_setting_get_elem(s, (unsigned)i);
    return *e ? 0 : host_error(&c->st->host, "%s has no element %d", key, i);
}

static int host_cfg_int_at(const runner_cfg *c, const char *key, int i, long long *out)
{
    config_setting_t *e;
    int rc = cfg_elem(c, key, i, &e);
    if (rc == 0)
        *out = config_setting_get_int64(e);
    return rc;
}

static int host_cfg_float_at(const runner_cfg *c, const char *key, int i, double *out)
{
    config_setting_t *e;
    int rc = cfg_elem(c, key, i, &e);
    if (rc == 0)
        *out = setting_number(e);
    return rc;
}

static int host_cfg_string_at(const runner_cfg *c, const char *key, int i, const char **out)
{
    config_setting_t *e;
    int rc = cfg_elem(c, key, i, &e);
    if (rc == 0)
        *out = config_setting_get_string(e);
    return rc;
}

static const char *host_pipeline_string(const runner_host *h, const char *key)
{
    return cfg_str(stage_of(h)->pl, key);
}

static const uint16_t *host_param_bf16(const runner_host *h, int id)
{
    const params *P = &stage_of(h)->pl->P;
    return P->bf16 && id >= 0 && id < P->n ? P->bf16 + P->p[id].offset : NULL;
}

static int host_param_add(const runner_host *h, const char *name, int ndim,
                          const int64_t *shape, unsigned flags, runner_init init, float std,
                          float **data, float **grad)
{
    stage *st = stage_of(h);
    char *full = str_printf("%s%s", st->prefix, name);
    if (!full)
        return host_error(h, "out of memory");
    int id = params_add(&st->pl->P, full, ndim, shape, flags, init, std, data, grad);
    free(full);
    if (id < 0)
        return host_error(h, "%s", err_get());
    return id;
}

static int host_param_trainable(const runner_host *h, int id)
{
    const params *P = &stage_of(h)->pl->P;
    if (P->watch)
        P->watch(P->watch_ctx, id);
    return id >= 0 && id < P->n && P->p[id].trainable && P->grad != NULL;
}

static int host_param_set(const runner_host *h, const char *glob, int trainable, double lr_scale)
{
    return params_set(&stage_of(h)->pl->P, glob, trainable, lr_scale);
}

static int64_t host_param_count(const runner_host *h, const char *glob)
{
    return params_count(&stage_of(h)->pl->P, glob, 0);
}

static int host_param_ref(const runner_host *h, const char *name, float **data, float **grad)
{
    params *P = &stage_of(h)->pl->P;
    int id = params_find(P, name);
    if (id < 0 || !P->allocated)
        return host_error(h, "no parameter %s%s", name, P->allocated ? "" : " (the store is not allocated yet)");
    *data = P->data + P->p[id].offset;
    *grad = P->grad ? P->grad + P->p[id].offset : NULL;
    return id;
}

static int host_eval_only(const runner_host *h)
{
    const char *run = cfg_str(stage_of(h)->pl, "run");
    static const char *const eval[] = {"embed", "sts", "predict"};
    for (size_t i = 0; run && i < sizeof eval / sizeof *eval; i++)
        if (strcmp(run, eval[i]) == 0)
            return 1;
    return 0;
}

static int host_param_release(const runner_host *h, int id)
{
    params *P = &stage_of(h)->pl->P;
    if (!host_eval_only(h))
        return host_error(h, "param_release: only in a run that evaluates (embed, sts, predict)");
    if (id < 0 || id >= P->n || !P->allocated)
        return host_error(h, "param_release: no parameter %d", id);
    return params_release(P, id) == 0 ? 0 : host_error(h, "%s", err_get());
}

/* The pipeline's backbone stage, or NULL. */
static stage *backbone_stage(const pipeline *pl)
{
    for (int i = 0; i < pl->nstages; i++)
        if (pl->stages[i]->desc->kind == RUNNER_KIND_BACKBONE)
            return pl->stages[i];
    return NULL;
}

/* Group g (0 the embeddings, 1..L the layers) as the backbone names it;
 * BERT's names for a backbone built before ABI 1.2. */
static int host_layer_group(const runner_host *h, int g, char *buf, size_t size)
{
    stage *b = backbone_stage(stage_of(h)->pl);
    if (g < 0 || g >= h->layer_groups(h))
        return -1;
    const runner_backbone_ops *ops = b ? b->desc->ops : NULL;
    char rel[256];
    if (b && b->desc->abi_minor >= 2 && ops->group) {
        if (ops->group(b->self, g, rel, sizeof rel) != 0)
            return -1;
    } else if (g == 0) {
        snprintf(rel, sizeof rel, "embeddings.*");
    } else {
        snprintf(rel, sizeof rel, "encoder.layer.%d.*", g - 1);
    }
    return snprintf(buf, size, "%s%s", b ? b->prefix : "backbone.", rel) < (int)size ? 0 : -1;
}

/* Without a backbone stage (a store filled by hand): BERT's layer names
 * counted in the store. */
static int host_layer_groups(const runner_host *h)
{
    stage *b = backbone_stage(stage_of(h)->pl);
    if (!b) {
        char glob[64];
        int L = 0;
        for (;; L++) {
            snprintf(glob, sizeof glob, "backbone.encoder.layer.%d.*", L);
            if (params_count(&stage_of(h)->pl->P, glob, 0) == 0)
                break;
        }
        return L + 1;
    }
    runner_backbone_info info;
    ((const runner_backbone_ops *)b->desc->ops)->info(b->self, &info);
    return info.layers + 1;
}

const runner_host host_template = {
    .abi_major = RUNNER_ABI_MAJOR,
    .abi_minor = RUNNER_ABI_MINOR,
    .log = host_log,
    .error = host_error,
    .alloc = mem_alloc,
    .calloc = mem_calloc,
    .free = mem_free,
    .rng_u64 = host_rng_u64,
    .rng_uniform = host_rng_uniform,
    .threads = host_threads,
    .quiet = host_quiet,
    .cfg_int = host_cfg_int,
    .cfg_float = host_cfg_float,
    .cfg_bool = host_cfg_bool,
    .cfg_string = host_cfg_string,
    .cfg_count = host_cfg_count,
    .cfg_int_at = host_cfg_int_at,
    .cfg_float_at = host_cfg_float_at,
    .cfg_string_at = host_cfg_string_at,
    .pipeline_string = host_pipeline_string,
    .param_add = host_param_add,
    .param_trainable = host_param_trainable,
    .param_set = host_param_set,
    .param_count = host_param_count,
    .param_ref = host_param_ref,
    .layer_groups = host_layer_groups,
    .layer_group = host_layer_group,
    .param_bf16 = host_param_bf16,
    .eval_only = host_eval_only,
    .param_release = host_param_release,
};
