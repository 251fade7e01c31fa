/* patterns.c — freeze policy `patterns`: glob lists of parameters to freeze, then to unfreeze (e.g. embeddings and layers 0-3) */
#include <stdio.h>

#include "runner/kit/freeze.h"
#include "runner/runner.h"

static const runner_key keys[] = {
    {"freeze", RUNNER_T_STRING_LIST, "[]", "globs of parameters to freeze, e.g. \"backbone.encoder.layer.[0-3].*\""},
    {"unfreeze", RUNNER_T_STRING_LIST, "[]", "globs unfrozen after `freeze` is applied"},
    {0},
};

static int create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    if (freeze_policy_create(h, self) != 0)
        return -1;
    freeze_policy *p = *self;
    if (freeze_read_globs(p, cfg, "freeze", &p->freeze, &p->nfreeze) != 0 ||
        freeze_read_globs(p, cfg, "unfreeze", &p->unfreeze, &p->nunfreeze) != 0)
        return freeze_policy_fail(self);
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
    for (int i = 0; i < p->nfreeze; i++)
        if (h->param_set(h, p->freeze[i], 0, -1) == 0)
            return h->error(h, "freeze pattern \"%s\" matches no parameter", p->freeze[i]);
    for (int i = 0; i < p->nunfreeze; i++)
        if (h->param_set(h, p->unfreeze[i], 1, -1) == 0)
            return h->error(h, "unfreeze pattern \"%s\" matches no parameter", p->unfreeze[i]);
    return 0;
}

static const runner_freeze_ops ops = {.apply = apply};

RUNNER_DEFINE_PLUGIN(freeze, patterns,
    "glob lists of parameters to freeze, then to unfreeze (e.g. embeddings and layers 0-3)",
    keys, create, freeze_policy_destroy, &ops)
