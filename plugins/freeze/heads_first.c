/* heads_first.c — freeze policy `heads_first`: LP-FT (Kumar et al. 2022): the heads alone on the frozen backbone first (linear probing), then everything (fine-tuning) */
#include <stdio.h>

#include "runner/kit/freeze.h"
#include "runner/runner.h"

static const runner_key keys[] = {
    {"every_epochs", RUNNER_T_INT, "1", "epochs of heads-only training before everything trains", "[0, 100000]"},
    {"every_steps", RUNNER_T_INT, "0", "steps of heads-only training; overrides every_epochs when > 0", "[0, inf)"},
    {0},
};

static int create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    if (freeze_policy_create(h, self) != 0)
        return -1;
    return freeze_read_period(*self, cfg) != 0 ? freeze_policy_fail(self) : 0;
}

static int apply(void *self, const runner_train_pos *pos, int *changed)
{
    freeze_policy *p = self;
    const runner_host *h = p->h;
    /* stage 0: heads only; stage 1: every group, embeddings included */
    int stage = freeze_periods(p, pos) > 0;
    if (freeze_stage(p, stage, changed))
        return 0;
    return h->param_set(h, "*", 1, 1.0) < 0 || (!stage && h->param_set(h, "backbone.*", 0, -1) < 0) ? -1 : 0;
}

static const runner_freeze_ops ops = {.apply = apply};

RUNNER_DEFINE_PLUGIN(freeze, heads_first,
    "LP-FT: the heads alone on the frozen backbone first (linear probing), then everything (fine-tuning)",
    keys, create, freeze_policy_destroy, &ops)
