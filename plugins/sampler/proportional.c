/* proportional.c — the task of each batch drawn with p_t = n_t / sum n
 * (n_t: the task's training examples), one draw of the run's RNG per batch;
 * no other state, so runs are reproducible and resumable. */
#include "runner/runner.h"
#include "runner/kit/sampling.h"

static int create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    return size_sampler_create(h, 1.0, self);
}

static const runner_sampler_ops ops = {
    .bind = size_sampler_bind,
    .next = size_sampler_next,
};

RUNNER_DEFINE_PLUGIN(sampler, proportional,
    "draws each batch's task with p proportional to its size",
    NULL, create, size_sampler_destroy, &ops)
