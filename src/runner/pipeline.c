/* pipeline.c — a pipeline's life: open, stages (plugin instances), the
 * parameter store, close. */
#include "pipeline.h"

#include <gsl/gsl_randist.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gslerr.h"
#include "runner/kit/util.h"

/* ---- lifecycle -------------------------------------------------------------- */

int pipeline_open(pipeline *pl, const char *file, const char *build_plugins)
{
    memset(pl, 0, sizeof *pl);
    gsl_errors_return();
    config_init(&pl->cfg);
    diag_init(&pl->origins);
    params_init(&pl->P);
    pl->threads = 1;
    pl->file = str_dup(file);
    if (file && !pl->file)
        return err_set("out of memory");
    if (loader_init(&pl->L, build_plugins) != 0)
        return -1;
    pl->rng = gsl_rng_alloc(gsl_rng_mt19937);
    if (!pl->rng)
        return err_set("out of memory");
    return file ? config_load(&pl->cfg, file) : 0;
}

void pipeline_close(pipeline *pl)
{
    if (!pl)
        return;
    for (int i = pl->nstages - 1; i >= 0; i--) {
        stage *st = pl->stages[i];
        st->desc->destroy(st->self);
        free(st->slot);
        free(st->prefix);
        free(st);
    }
    free(pl->stages);
    params_free(&pl->P);
    config_destroy(&pl->cfg);
    diag_free(&pl->origins);
    loader_free(&pl->L);
    if (pl->rng)
        gsl_rng_free(pl->rng);
    free(pl->file);
    free(pl->name);
    free(pl->out_dir);
    memset(pl, 0, sizeof *pl);
}

stage *pipeline_stage(pipeline *pl, const char *slot, const char *prefix, runner_kind kind,
                      config_setting_t *section)
{
    const char *name = NULL;
    if (!section)
        return err_set("%s: missing from the pipeline", slot), NULL;
    if (config_setting_type(section) == CONFIG_TYPE_STRING)
        name = config_setting_get_string(section);
    else
        config_setting_lookup_string(section, "plugin", &name);
    if (!name)
        return err_set("%s: no plugin named", slot), NULL;
    const runner_plugin *desc;
    if (loader_get(&pl->L, kind, name, &desc) != 0)
        return NULL;
    stage **grown = realloc(pl->stages, (size_t)(pl->nstages + 1) * sizeof *grown);
    if (!grown)
        return err_set("out of memory"), NULL;
    pl->stages = grown;
    stage *st = calloc(1, sizeof *st);
    if (!st)
        return err_set("out of memory"), NULL;
    st->host = host_template;
    st->pl = pl;
    st->slot = str_dup(slot);
    st->prefix = str_dup(prefix ? prefix : "");
    st->desc = desc;
    st->cfg.group = config_setting_type(section) == CONFIG_TYPE_GROUP ? section : NULL;
    st->cfg.st = st;
    if (!st->slot || !st->prefix) {
        free(st->slot);
        free(st->prefix);
        free(st);
        return err_set("out of memory"), NULL;
    }
    err_clear();
    if (desc->create(&st->host, &st->cfg, &st->self) != 0) {
        if (!err_get()[0] || strcmp(err_get(), "unknown error") == 0)
            err_set("%s/%s: create failed without a message", slot, name);
        free(st->slot);
        free(st->prefix);
        free(st);
        return NULL;
    }
    pl->stages[pl->nstages++] = st;
    return st;
}

int pipeline_alloc_params(pipeline *pl, int with_grad)
{
    return params_alloc(&pl->P, with_grad, pl->rng);
}
