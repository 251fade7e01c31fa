/* weighted_mean.c — pooler: position-weighted mean (SGPT): token t weighs t+1, over tokens where mask = 1.
 * Keys and math are shared by every pooler (core/pool.c): `layer`,
 * `layers` (average of hidden states), `normalize` (L2). */
#include "runner/kit/pool.h"
#include "runner/runner.h"

static int create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    return pooler_create(h, cfg, POOL_WEIGHTED_MEAN, self);
}

RUNNER_DEFINE_PLUGIN(pooler, weighted_mean,
    "position-weighted mean (SGPT): token t weighs t+1, over tokens where mask = 1",
    pooler_keys, create, pooler_destroy, &pooler_ops)
