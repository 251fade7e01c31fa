/* pipeline.h — a loaded pipeline: its configuration (validated against the
 * core schema and every plugin's key table, all errors reported at once),
 * the plugin loader, the parameter store, the RNG, and the stages (plugin
 * instances) with the host services each one is given. */
#ifndef PIPELINE_H
#define PIPELINE_H

#include <gsl/gsl_rng.h>
#include <libconfig.h>

#include "config.h"
#include "loader.h"
#include "params.h"
#include "runner/runner.h"

struct pipeline;

struct runner_cfg {
    config_setting_t *group;
    struct stage *st;
};

typedef struct stage {
    runner_host host; /* first member: a host pointer is a stage pointer */
    struct pipeline *pl;
    char *slot;        /* "backbone", "pooler", "tasks.topic.head", ... */
    char *prefix;      /* parameter name prefix: "backbone.", "heads.topic." */
    const runner_plugin *desc;
    struct runner_cfg cfg;
    void *self;
} stage;

/* Core schema of pipeline files. */
typedef enum schema_shape {
    S_VALUE = 0, /* a scalar or list of scalars, of schema.type */
    S_SECTION,   /* a plugin section: { plugin = "name"; its keys... } */
    S_SECTIONS,  /* a list of plugin names or plugin sections */
    S_GROUP,     /* a group with sub keys */
    S_GROUPS     /* a list of groups with sub keys */
} schema_shape;

typedef struct schema {
    const char *name;
    runner_type type;
    const char *def, *doc;
    schema_shape shape;
    runner_kind kind;          /* S_SECTION(S) */
    const struct schema *sub;  /* S_GROUP(S); extra core keys of S_SECTION */
    const char *limits;        /* as runner_key.limits: "[0, 1)", "a|b|c" */
} schema;

typedef struct driver {
    const char *name, *summary;
    int (*run)(struct pipeline *pl);
} driver;

typedef struct pipeline {
    config_t cfg;
    diags origins;       /* "--set PATH" strings the config points to */
    loader L;
    params P;
    gsl_rng *rng;
    unsigned long seed;
    int threads, quiet;
    char *file;         /* the pipeline file */
    char *name;         /* its name (setting or file stem) */
    char *out_dir;      /* this run's results folder */
    const char *resume; /* --resume DIR, or NULL */
    stage **stages;
    int nstages;
} pipeline;

extern const schema pipeline_schema[];
/* host.c: the table each stage's host starts as (then given its stage). */
extern const runner_host host_template;
extern const driver drivers[];

int pipeline_open(pipeline *pl, const char *file, const char *build_plugins);
void pipeline_close(pipeline *pl);
/* Check the whole configuration; every problem goes into d. Fills in
 * plugin and core defaults so the resolved config is complete. */
int pipeline_validate(pipeline *pl, diags *d);
/* Instantiate the plugin of a section (a group with `plugin`, or a string
 * naming the plugin) into slot. prefix: parameter names' prefix. */
stage *pipeline_stage(pipeline *pl, const char *slot, const char *prefix,
                      runner_kind kind, config_setting_t *section);
/* Allocate the parameter store (grads if with_grad). */
int pipeline_alloc_params(pipeline *pl, int with_grad);

/* Typed lookups into the resolved configuration (defaults filled in). */
const char *cfg_str(const pipeline *pl, const char *path);
long long cfg_int(const pipeline *pl, const char *path, long long fallback);
double cfg_num(const pipeline *pl, const char *path, double fallback);
int cfg_bool(const pipeline *pl, const char *path, int fallback);

void pipeline_log(const pipeline *pl, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
