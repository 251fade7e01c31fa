/* discriminative_lr.c — freeze policy `discriminative_lr`: layer-wise learning-rate decay: each layer below the top gets decay times the rate of the one above */
#include <stdio.h>

#include "runner/kit/freeze.h"
#include "runner/runner.h"

static const runner_key keys[] = {
    {"decay", RUNNER_T_FLOAT, "0.8", "factor between the lr of a layer and the layer above (xi)", "(0, 1]"},
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

RUNNER_DEFINE_PLUGIN(freeze, discriminative_lr,
    "layer-wise learning-rate decay: each layer below the top gets decay times the rate of the one above",
    keys, create, freeze_policy_destroy, &ops)
