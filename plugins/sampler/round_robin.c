/* round_robin.c — tasks in turn: the batch of step s comes from task
 * s mod n_tasks. The choice is a function of the step alone (no state, no
 * RNG), so a resumed run continues the cycle where it stopped. */
#include "runner/runner.h"

typedef struct round_robin {
    const runner_host *h;
    int n_tasks;
} round_robin;

static void destroy(void *self)
{
    round_robin *r = self;
    if (r)
        r->h->free(r);
}

static int create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    round_robin *r = h->calloc(1, sizeof *r);
    if (!r)
        return h->error(h, "out of memory");
    r->h = h;
    *self = r;
    return 0;
}

static int bind(void *self, int n_tasks, const int64_t *sizes)
{
    round_robin *r = self;
    if (n_tasks < 1)
        return r->h->error(r->h, "bound to %d tasks", n_tasks);
    r->n_tasks = n_tasks;
    return 0;
}

static int next(void *self, const runner_train_pos *pos, int *task)
{
    round_robin *r = self;
    if (r->n_tasks < 1)
        return r->h->error(r->h, "next() before bind()");
    if (!pos || pos->step < 0)
        return r->h->error(r->h, "next() needs the training position (step >= 0)");
    *task = (int)(pos->step % r->n_tasks);
    return 0;
}

static const runner_sampler_ops ops = {
    .bind = bind,
    .next = next,
};

RUNNER_DEFINE_PLUGIN(sampler, round_robin,
    "tasks in turn: step s takes task s mod n_tasks",
    NULL, create, destroy, &ops)
