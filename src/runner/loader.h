/* loader.h — finds plugins by kind and name on the search path, opens them
 * with libdl, and checks the descriptor (entry symbol, ABI, kind, name). */
#ifndef LOADER_H
#define LOADER_H

#include "runner/runner.h"

typedef struct loaded_plugin {
    runner_kind kind;
    char *name, *path;
    void *dl;
    const runner_plugin *desc;
    /* a plugin built for ABI < 1.2: its descriptor with the key table
     * converted to the current runner_key layout (desc points here) */
    runner_plugin *upgraded;
    runner_key *keys;
} loaded_plugin;

typedef struct loader {
    char **dirs;       /* search path, in order */
    int ndirs;
    loaded_plugin *p;  /* cache: each .so opened once */
    int n, cap;
} loader;

const char *kind_name(runner_kind k);
int kind_from_name(const char *s, runner_kind *k);

/* Search path: builtin_dir (NULL: the built-in plugins beside the
 * executable, <bin>/plugins or <bin>/../lib/runner/plugins), then
 * $RUNNER_PLUGIN_PATH (colon-separated), then the pipeline's plugin_path. */
int loader_init(loader *L, const char *builtin_dir);
int loader_add_dir(loader *L, const char *dir);
void loader_free(loader *L);
/* The search path as "a:b:c" (for messages). */
const char *loader_path_string(const loader *L, char *buf, size_t size);
/* Find and check a plugin by name (never a path): <kind>_<name>.so, then
 * the bundle <kind>.so, in each folder of the search path. */
int loader_get(loader *L, runner_kind kind, const char *name, const runner_plugin **desc);
/* Open one file and check it against kind (and name, if not NULL). */
/* 0 when path is a 64-bit x86-64 ELF shared object (checked before dlopen). */
int loader_check_elf(const char *path);
int loader_open_file(const char *path, runner_kind kind, const char *name, void **dl,
                     const runner_plugin **desc);
/* Names of the plugins of a kind on the search path (malloc'ed, at most
 * max), for suggestions; returns the count. */
int loader_kind_names(loader *L, runner_kind kind, char **out, int max);
/* Print every plugin on the search path. */
int loader_list(loader *L, int verbose);

#endif
