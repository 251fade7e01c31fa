/* freeze.c — helpers of the freeze-policy plugins (see freeze.h). */
#include "runner/kit/freeze.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int freeze_layers(const runner_host *h)
{
    int n = h->layer_groups(h);
    return n > 0 ? n - 1 : 0;
}

void freeze_group_glob(const runner_host *h, int g, int L, char *buf, size_t size)
{
    /* g counts from the top: 0 the last layer ... L the embeddings */
    if (h->layer_group(h, L - g, buf, size) != 0)
        snprintf(buf, size, "backbone.%s", g >= L ? "embeddings.*" : "encoder.layer.?.*");
}

int freeze_groups(const runner_host *h, int L, int from, int to, int trainable)
{
    char glob[64];
    for (int g = from; g < to && g <= L; g++) {
        freeze_group_glob(h, g, L, glob, sizeof glob);
        if (h->param_set(h, glob, trainable, -1) < 0)
            return -1;
    }
    return 0;
}

int freeze_decay(const runner_host *h, int L, double decay)
{
    char glob[64];
    for (int g = 0; g <= L; g++) {
        freeze_group_glob(h, g, L, glob, sizeof glob);
        if (h->param_set(h, glob, -1, pow(decay, g)) < 0)
            return -1;
    }
    return 0;
}

int freeze_non_backbone(const runner_host *h, int trainable)
{
    static const char *const globs[] = {"heads.*", "pooler.*", "combiner.*", "loss.*"};
    for (size_t i = 0; i < sizeof globs / sizeof *globs; i++)
        if (h->param_set(h, globs[i], trainable, -1) < 0)
            return -1;
    return 0;
}

int freeze_policy_create(const runner_host *h, void **self)
{
    freeze_policy *p = h->calloc(1, sizeof *p);
    if (!p)
        return h->error(h, "out of memory");
    p->h = h;
    p->stage = -1;
    p->decay = 1.0;
    p->L = freeze_layers(h);
    *self = p;
    return 0;
}

void freeze_policy_destroy(void *self)
{
    freeze_policy *p = self;
    if (!p)
        return;
    p->h->free(p->freeze);
    p->h->free(p->unfreeze);
    p->h->free(p);
}

int freeze_policy_fail(void **self)
{
    freeze_policy_destroy(*self);
    *self = NULL;
    return -1;
}

int freeze_read_globs(freeze_policy *p, const runner_cfg *cfg, const char *key, const char ***out, int *n)
{
    const runner_host *h = p->h;
    int count = h->cfg_count(cfg, key);
    *n = count > 0 ? count : 0;
    *out = h->calloc((size_t)*n + 1, sizeof **out);
    if (!*out)
        return h->error(h, "out of memory");
    for (int i = 0; i < *n; i++)
        if (h->cfg_string_at(cfg, key, i, &(*out)[i]) != 0)
            return -1;
    return 0;
}

int freeze_stage(freeze_policy *p, int stage, int *changed)
{
    *changed = stage != p->stage;
    if (!*changed)
        return 1;
    p->stage = stage;
    return 0;
}

int freeze_read_period(freeze_policy *p, const runner_cfg *cfg)
{
    const runner_host *h = p->h;
    if (h->cfg_int(cfg, "every_epochs", &p->every_epochs) != 0 || h->cfg_int(cfg, "every_steps", &p->every_steps) != 0)
        return -1;
    if (p->every_epochs < 1 && p->every_steps < 1)
        return h->error(h, "every_epochs or every_steps must be at least 1");
    return 0;
}

long long freeze_periods(const freeze_policy *p, const runner_train_pos *pos)
{
    return p->every_steps > 0 ? pos->step / p->every_steps : pos->epoch / p->every_epochs;
}
