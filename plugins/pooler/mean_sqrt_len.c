/* mean_sqrt_len.c — pooler: sum of the token states where mask = 1, divided by sqrt(token count).
 * Keys and math are shared by every pooler (core/pool.c): `layer`,
 * `layers` (average of hidden states), `normalize` (L2). */
#include "pool.h"
#include "runner.h"

static int create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    return pooler_create(h, cfg, POOL_MEAN_SQRT_LEN, self);
}

static const runner_plugin desc = {
    .abi_major = RUNNER_ABI_MAJOR,
    .abi_minor = RUNNER_ABI_MINOR,
    .kind = RUNNER_KIND_POOLER,
    .name = "mean_sqrt_len",
    .summary = "sum of the token states where mask = 1, divided by sqrt(token count)",
    .keys = pooler_keys,
    .create = create,
    .destroy = pooler_destroy,
    .ops = &pooler_ops,
};

RUNNER_PLUGIN(desc)
