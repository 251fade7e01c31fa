/* discriminative_lr.c — freeze policy `discriminative_lr`: layer-wise learning-rate decay: each layer below the top gets decay times the rate of the one above */
#include <stdio.h>

#include "freeze.h"
#include "runner.h"

static const runner_key keys[] = {
    {"decay", RUNNER_T_FLOAT, "0.8", "factor between the lr of a layer and the layer above (xi)"},
    {0},
};

static int create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    if (freeze_policy_create(h, self) != 0)
        return -1;
    freeze_policy *p = *self;
    if (h->cfg_float(cfg, "decay", &p->decay) != 0)
        return freeze_policy_fail(self);
    if (p->decay <= 0 || p->decay > 1)
        return h->error(h, "decay %g: expected 0 < decay <= 1", p->decay), freeze_policy_fail(self);
    return 0;
}

static int apply(void *self, const runner_train_pos *pos, int *changed)
{
    freeze_policy *p = self;
    const runner_host *h = p->h;
    if (freeze_stage(p, 0, changed))
        return 0;
    if (h->param_set(h, "*", 1, 1.0) < 0)
        return -1;
    return freeze_decay(h, p->L, p->decay);
}

static const runner_freeze_ops ops = {.apply = apply};

static const runner_plugin desc = {
    .abi_major = RUNNER_ABI_MAJOR,
    .abi_minor = RUNNER_ABI_MINOR,
    .kind = RUNNER_KIND_FREEZE,
    .name = "discriminative_lr",
    .summary = "layer-wise learning-rate decay: each layer below the top gets decay times the rate of the one above",
    .keys = keys,
    .create = create,
    .destroy = freeze_policy_destroy,
    .ops = &ops,
};

RUNNER_PLUGIN(desc)
