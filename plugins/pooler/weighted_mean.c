/* weighted_mean.c — pooler: position-weighted mean (SGPT): token t weighs t+1, over tokens where mask = 1.
 * Keys and math are shared by every pooler (core/pool.c): `layer`,
 * `layers` (average of hidden states), `normalize` (L2). */
#include "pool.h"
#include "runner.h"

static int create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    return pooler_create(h, cfg, POOL_WEIGHTED_MEAN, self);
}

static const runner_plugin desc = {
    .abi_major = RUNNER_ABI_MAJOR,
    .abi_minor = RUNNER_ABI_MINOR,
    .kind = RUNNER_KIND_POOLER,
    .name = "weighted_mean",
    .summary = "position-weighted mean (SGPT): token t weighs t+1, over tokens where mask = 1",
    .keys = pooler_keys,
    .create = create,
    .destroy = pooler_destroy,
    .ops = &pooler_ops,
};

RUNNER_PLUGIN(desc)
