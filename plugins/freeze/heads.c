/* heads.c — freeze policy `heads`: the heads of the listed tasks frozen; the rest, backbone included, trains */
#include <stdio.h>

#include "runner/kit/freeze.h"
#include "runner/runner.h"

static const runner_key keys[] = {
    {"tasks", RUNNER_T_STRING_LIST, NULL, "names of the tasks whose heads stay frozen"},
    {0},
};

static int create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    if (freeze_policy_create(h, self) != 0)
        return -1;
    freeze_policy *p = *self;
    if (freeze_read_globs(p, cfg, "tasks", &p->freeze, &p->nfreeze) != 0)
        return freeze_policy_fail(self);
    if (p->nfreeze == 0)
        return h->error(h, "`tasks` lists no task whose head to freeze"), freeze_policy_fail(self);
    return 0;
}

static int apply(void *self, const runner_train_pos *pos, int *changed)
{
    freeze_policy *p = self;
    const runner_host *h = p->h;
    if (freeze_stage(p, 0, changed))
        return 0;
    if (h->param_set(h, "*", 1, -1) < 0)
        return -1;
    for (int i = 0; i < p->nfreeze; i++) {
        char glob[300];
        snprintf(glob, sizeof glob, "heads.%s.*", p->freeze[i]);
        int n = h->param_set(h, glob, 0, -1);
        if (n <= 0)
            return h->error(h, "no head of a task named %s (its parameters would be %s)", p->freeze[i], glob);
    }
    return 0;
}

static const runner_freeze_ops ops = {.apply = apply};

RUNNER_DEFINE_PLUGIN(freeze, heads,
    "the heads of the listed tasks frozen; the rest, backbone included, trains",
    keys, create, freeze_policy_destroy, &ops)
