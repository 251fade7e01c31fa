/* temperature.c — the task of each batch drawn with p_t ∝ n_t^(1/T):
 * T = 1 is proportional, larger T flattens towards uniform (T = 2: square
 * root of the sizes). One draw of the run's RNG per batch; no other state,
 * so runs are reproducible and resumable. */
#include "runner/runner.h"
#include "runner/kit/sampling.h"

/* the key table's default and the value when the section lacks the key */
#define STR_(x) #x
#define STR(x) STR_(x)
#define DEFAULT_T 2.0

static const runner_key keys[] = {
    {"T", RUNNER_T_FLOAT, STR(DEFAULT_T), "temperature > 0: p_t proportional to size^(1/T)", "(0, inf)"},
    {0},
};

static int create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    double T = DEFAULT_T;
    if (h->cfg_float(cfg, "T", &T) < 0)
        return -1;
    return size_sampler_create(h, T, self);
}

static const runner_sampler_ops ops = {
    .bind = size_sampler_bind,
    .next = size_sampler_next,
};

RUNNER_DEFINE_PLUGIN(sampler, temperature,
    "draws each batch's task with p proportional to size^(1/T) (T = 2.0)",
    keys, create, size_sampler_destroy, &ops)
