/* backbone.c — freeze policy `backbone`: the backbone frozen, the heads train (feature extraction) */
#include <stdio.h>

#include "runner/kit/freeze.h"
#include "runner/runner.h"

static int create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    return freeze_policy_create(h, self);
}

static int apply(void *self, const runner_train_pos *pos, int *changed)
{
    freeze_policy *p = self;
    const runner_host *h = p->h;
    if (freeze_stage(p, 0, changed))
        return 0;
    return h->param_set(h, "*", 1, -1) < 0 || h->param_set(h, "backbone.*", 0, -1) < 0 ? -1 : 0;
}

static const runner_freeze_ops ops = {.apply = apply};

RUNNER_DEFINE_PLUGIN(freeze, backbone,
    "the backbone frozen, the heads train (feature extraction)",
    NULL, create, freeze_policy_destroy, &ops)
