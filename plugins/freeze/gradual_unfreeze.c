/* gradual_unfreeze.c — freeze policy `gradual_unfreeze`: ULMFiT: heads first, then one encoder layer more from the top every k epochs (or steps), down to the embeddings; with decay < 1 also discriminative learning rates */
#include <stdio.h>

#include "runner/kit/freeze.h"
#include "runner/runner.h"

static const runner_key keys[] = {
    {"every_epochs", RUNNER_T_INT, "1", "epochs between two unfreezing steps (the first stage trains heads only)", "[0, 100000]"},
    {"every_steps", RUNNER_T_INT, "0", "steps between two unfreezing steps; overrides every_epochs when > 0", "[0, inf)"},
    {"decay", RUNNER_T_FLOAT, "1.0", "layer-wise lr decay xi (1: off); e.g. 0.8 for discriminative rates", "(0, 1]"},
    {0},
};

static int create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    if (freeze_policy_create(h, self) != 0)
        return -1;
    freeze_policy *p = *self;
    if (freeze_read_period(p, cfg) != 0 || h->cfg_float(cfg, "decay", &p->decay) != 0)
        return freeze_policy_fail(self);
    if (p->decay <= 0 || p->decay > 1)
        return h->error(h, "decay %g: expected 0 < decay <= 1", p->decay), freeze_policy_fail(self);
    return 0;
}

static int apply(void *self, const runner_train_pos *pos, int *changed)
{
    freeze_policy *p = self;
    const runner_host *h = p->h;
    /* stage s: the heads and the top s backbone groups (layers from the
     * top, then the embeddings) train */
    long long s = freeze_periods(p, pos);
    int stage = s > p->L + 1 ? p->L + 1 : (int)s;
    if (freeze_stage(p, stage, changed))
        return 0;
    if (freeze_non_backbone(h, 1) != 0 || h->param_set(h, "backbone.*", 0, -1) < 0 ||
        freeze_groups(h, p->L, 0, stage, 1) != 0)
        return -1;
    return freeze_decay(h, p->L, p->decay);
}

static const runner_freeze_ops ops = {.apply = apply};

RUNNER_DEFINE_PLUGIN(freeze, gradual_unfreeze,
    "ULMFiT: heads first, then one encoder layer more from the top every k epochs (or steps), down to the embeddings; with decay < 1 also discriminative learning rates",
    keys, create, freeze_policy_destroy, &ops)
