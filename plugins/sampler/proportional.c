/* proportional.c — the task of each batch drawn with p_t = n_t / sum n
 * (n_t: the task's training examples), one draw of the run's RNG per batch;
 * no other state, so runs are reproducible and resumable. */
#include "runner.h"
#include "sampling.h"

static int create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    return size_sampler_create(h, 1.0, self);
}

static const runner_sampler_ops ops = {
    .bind = size_sampler_bind,
    .next = size_sampler_next,
};

static const runner_plugin desc = {
    .abi_major = RUNNER_ABI_MAJOR,
    .abi_minor = RUNNER_ABI_MINOR,
    .kind = RUNNER_KIND_SAMPLER,
    .name = "proportional",
    .summary = "draws each batch's task with p proportional to its size",
    .keys = NULL,
    .create = create,
    .destroy = size_sampler_destroy,
    .ops = &ops,
};

RUNNER_PLUGIN(desc)
