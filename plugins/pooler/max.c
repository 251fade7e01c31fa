/* max.c — pooler: per-dimension max over the tokens where mask = 1 (padding never wins).
 * Keys and math are shared by every pooler (core/pool.c): `layer`,
 * `layers` (average of hidden states), `normalize` (L2). */
#include "pool.h"
#include "runner.h"

static int create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    return pooler_create(h, cfg, POOL_MAX, self);
}

static const runner_plugin desc = {
    .abi_major = RUNNER_ABI_MAJOR,
    .abi_minor = RUNNER_ABI_MINOR,
    .kind = RUNNER_KIND_POOLER,
    .name = "max",
    .summary = "per-dimension max over the tokens where mask = 1 (padding never wins)",
    .keys = pooler_keys,
    .create = create,
    .destroy = pooler_destroy,
    .ops = &pooler_ops,
};

RUNNER_PLUGIN(desc)
