/* run.h — a run's results folder: config.cfg (the resolved pipeline),
 * run.json (version, commit, seed, threads, times, CPU), and helpers the
 * drivers share to write outputs atomically. */
#ifndef RUN_H
#define RUN_H

#include <stdio.h>

#include <jansson.h>

#include "pipeline.h"

#define RUNNER_VERSION "0.1.0"

/* Create the results folder (out, or results/<name>/<run-id>) and write
 * config.cfg. */
int run_begin(pipeline *pl, const char *out);
/* The results folder's lock file; run_begin takes it (flock, exclusive),
 * refusing a folder another run holds. */
#define RUN_LOCK_FILE ".runner.lock"
int run_lock(const char *out_dir);
/* Write run.json with start/end times and status. */
int run_end(pipeline *pl, int status, double seconds);
/* Path of a file in the run folder (caller frees). */
char *run_path(const pipeline *pl, const char *file);
/* j (consumed) as file in the run folder, written atomically, with a final
 * newline; flags are jansson's dump flags. */
int run_write_json(const pipeline *pl, const char *file, json_t *j, size_t flags);
/* j (consumed) written atomically to path (NULL: out of memory), final newline. */
int json_write_atomic(const char *path, json_t *j, size_t flags);
/* The CPU model from /proc/cpuinfo (static buffer). */
const char *host_cpu(void);

#endif
