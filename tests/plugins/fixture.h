/* fixture.h — one configurable pooler used to build the deliberately
 * broken plugins the loader tests need. Each fixture .c sets the macros
 * and includes this file. */
#include <stdlib.h>

#include "runner/runner.h"

#ifndef FIX_MAJOR
#define FIX_MAJOR RUNNER_ABI_MAJOR
#endif
#ifndef FIX_MINOR
#define FIX_MINOR RUNNER_ABI_MINOR
#endif
#ifndef FIX_KIND
#define FIX_KIND RUNNER_KIND_POOLER
#endif
#ifndef FIX_CREATE_FAILS
#define FIX_CREATE_FAILS 0
#endif

static int fix_create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    if (FIX_CREATE_FAILS)
        return h->error(h, "refusing to start, as this fixture always does");
    long long n;
    double x;
    int b;
    const char *s;
    if (h->cfg_int(cfg, "count", &n) < 0 || h->cfg_float(cfg, "ratio", &x) < 0 ||
        h->cfg_bool(cfg, "flag", &b) < 0 || h->cfg_string(cfg, "label", &s) < 0)
        return -1;
    *self = h->calloc(1, 16);
    return *self ? 0 : h->error(h, "out of memory");
}

static void fix_destroy(void *self) { free(self); }
static int fix_out_dim(void *self, const runner_states *s) { return s->C; }

static const runner_pooler_ops fix_ops = {.out_dim = fix_out_dim};

static const runner_key fix_keys[] = {
    {"count", RUNNER_T_INT, "3", "an integer"},
    {"ratio", RUNNER_T_FLOAT, "0.5", "a number"},
    {"flag", RUNNER_T_BOOL, "false", "a boolean"},
    {"label", RUNNER_T_STRING, "\"x\"", "a string"},
    {"sizes", RUNNER_T_INT_LIST, "[1, 2]", "integers"},
    {"required", RUNNER_T_STRING, NULL, "no default"},
    {0},
};

static const runner_plugin fix_plugin = {
    .abi_major = FIX_MAJOR,
    .abi_minor = FIX_MINOR,
    .kind = FIX_KIND,
    .name = FIX_NAME,
    .summary = "loader test fixture",
    .keys = fix_keys,
    .create = fix_create,
    .destroy = fix_destroy,
    .ops = &fix_ops,
};
