/* fuzz.h — shared by the libFuzzer harnesses of tests/fuzz/ (make fuzz) and
 * by their replay in make test (tests/fuzz_replay.c, built with
 * -DFUZZ_REPLAY: each harness's entry is then fuzz_one_<name>). */
#ifndef FUZZ_H
#define FUZZ_H

#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runner/kit/util.h"

#ifdef FUZZ_REPLAY
#define FUZZ_TARGET(name) int fuzz_one_##name(const uint8_t *data, size_t size)
#else
#define FUZZ_TARGET(name) int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
#endif

/* The tree's root (the harnesses read small fixtures from tests/). */
#define FUZZ_ROOT RUNNER_BUILD_DIR "/.."
#define FUZZ_PLUGINS RUNNER_BUILD_DIR "/plugins"

/* A private scratch folder for this process (created on first use). */
static inline const char *fuzz_dir(void)
{
    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/runner-fuzz-XXXXXX");
        if (!mkdtemp(dir))
            abort(); /* the harness cannot run at all */
    }
    return dir;
}

/* Write size bytes to <scratch>/<name>; the path (static buffer per call
 * site is the caller's business: this one is malloc'ed). */
static inline char *fuzz_file(const char *name, const void *data, size_t size)
{
    char *path = str_printf("%s/%s", fuzz_dir(), name);
    FILE *f = path ? fopen(path, "wb") : NULL;
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0)
        abort();
    return path;
}

/* Keep the plugin bundles mapped across inputs: pipeline_close dlcloses
 * them, and loading them again for every input would dominate the run. */
static inline void fuzz_pin_bundles(void)
{
    static int done;
    static const char *const kinds[] = {"backbone", "tokenizer", "pooler", "head", "loss",
                                        "metric", "sampler", "freeze", "dataset"};
    if (done)
        return;
    done = 1;
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) {
        char *p = str_printf("%s/%s.so", FUZZ_PLUGINS, kinds[i]);
        if (p && !dlopen(p, RTLD_NOW | RTLD_NODELETE))
            fprintf(stderr, "fuzz: %s\n", dlerror());
        free(p);
    }
}

/* The input split at the first occurrence of sep: part 0 before, part 1
 * after (empty if absent). */
static inline void fuzz_split(const uint8_t *data, size_t size, const char *sep, size_t *n0,
                              const uint8_t **p1, size_t *n1)
{
    size_t k = strlen(sep);
    const uint8_t *at = k && size >= k ? memmem(data, size, sep, k) : NULL;
    *n0 = at ? (size_t)(at - data) : size;
    *p1 = at ? at + k : data + size;
    *n1 = at ? size - *n0 - k : 0;
}

#endif
