/* joint.c — every batch is joint (-1): its sentences carry labels for all
 * tasks (e.g. SNIPS intent + slots of the same sentences) and every head
 * that has labels in the batch gets its loss. No state, no RNG. */
#include "runner/runner.h"

typedef struct joint {
    const runner_host *h;
    int bound;
} joint;

static void destroy(void *self)
{
    joint *j = self;
    if (j)
        j->h->free(j);
}

static int create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    joint *j = h->calloc(1, sizeof *j);
    if (!j)
        return h->error(h, "out of memory");
    j->h = h;
    *self = j;
    return 0;
}

static int bind(void *self, int n_tasks, const int64_t *sizes)
{
    joint *j = self;
    if (n_tasks < 1)
        return j->h->error(j->h, "bound to %d tasks", n_tasks);
    j->bound = 1;
    return 0;
}

static int next(void *self, const runner_train_pos *pos, int *task)
{
    joint *j = self;
    if (!j->bound)
        return j->h->error(j->h, "next() before bind()");
    *task = -1;
    return 0;
}

static const runner_sampler_ops ops = {
    .bind = bind,
    .next = next,
    .joint = 1,
};

RUNNER_DEFINE_PLUGIN(sampler, joint,
    "joint batches (-1): each batch carries the labels of every task",
    NULL, create, destroy, &ops)
