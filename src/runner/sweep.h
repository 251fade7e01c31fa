/* sweep.h — a pipeline run over a grid of settings (docs/experiments.md).
 * The axes come from `--sweep PATH=[v1,v2,...]` options and from the
 * pipeline's `sweep = { axes = ( { set = "PATH"; values = [...]; }, ... ); }`
 * section; the points are their Cartesian product. Each point runs as a
 * child `runner` process (posix_spawn, no shell) into its own sub-folder
 * of the sweep folder; a point whose run.json says "ok" is skipped, so a
 * sweep resumes where it stopped. The axis `seed` holds replicates (the
 * tables average over it); the axis `pipeline` swaps the pipeline file
 * (paths relative to the sweep file's folder). */
#ifndef SWEEP_H
#define SWEEP_H

#include <libconfig.h>

#include "config.h"

typedef struct sweep_axis {
    char *path;     /* dotted setting path, "seed" or "pipeline" */
    char **values;  /* libconfig texts ("\"mean\"", "3", "{ plugin = \"x\"; }") */
    char **labels;  /* for folder names and tables ("mean", "3", "task3_full") */
    int n;
} sweep_axis;

typedef struct sweep {
    sweep_axis *axes;
    int naxes;
    char *name; /* sweep.name, or NULL */
    char **sets; /* sweep.set: "PATH=VALUE" overrides of every point */
    int nsets;
    char **columns; /* sweep.columns: the summary's metric columns, in order (NULL: all) */
    int ncolumns;
} sweep;

/* Add one --sweep PATH=[v1,v2,...] axis (bare words are strings). */
int sweep_add_arg(sweep *s, const char *arg);
/* Take the `sweep` section out of cfg (so that the pipeline validates
 * without it) and add its axes; file names the pipeline for messages and
 * relative `pipeline` values. */
int sweep_take_section(sweep *s, config_t *cfg, const char *file);
void sweep_free(sweep *s);

typedef struct sweep_opts {
    const char *file, *out, *name;
    const char **sets;
    int nsets, threads, jobs, quiet;
    long long seed; /* -1: none */
} sweep_opts;

/* Run every point not finished yet, then collect the tables. Returns the
 * exit status: 0 when every point succeeded, 1 otherwise. */
int sweep_run(const sweep *s, const sweep_opts *o);
/* Print the points' folder names (--check). */
void sweep_list(const sweep *s);

/* collect.c: read the points of sweep folder dir and write its tables
 * (summary.md; tables/<metric>.md, .csv, .json, .png). summary.md shows
 * the columns named in dir/sweep.json (written by sweep_run from
 * sweep.columns), else every metric. 0, or 1 with a message on stderr. */
int sweep_collect(const char *dir, int quiet);

#endif
