/* sampling.c — task probabilities p_t ∝ n_t^(1/T) and the pick of one task
 * from a uniform draw (see sampling.h). */
#include "runner/kit/sampling.h"

#include <math.h>

int sampling_cdf(int n, const int64_t *sizes, double T, double *cdf, int *bad)
{
    *bad = -1;
    int64_t largest = 0;
    for (int t = 0; t < n; t++) {
        if (sizes[t] < 0) {
            *bad = t;
            return -1;
        }
        largest = sizes[t] > largest ? sizes[t] : largest;
    }
    if (largest == 0)
        return -1;
    /* n^(1/T) / max^(1/T) in log space: no overflow for small T */
    double total = 0;
    int last = 0;
    for (int t = 0; t < n; t++) {
        double p = sizes[t] ? exp((log((double)sizes[t]) - log((double)largest)) / T) : 0;
        if (p > 0)
            last = t;
        total += p;
        cdf[t] = total;
    }
    for (int t = 0; t < n; t++)
        cdf[t] = t >= last ? 1.0 : cdf[t] / total;
    return 0;
}

int sampling_pick(int n, const double *cdf, double u)
{
    int t = 0;
    while (t < n - 1 && u >= cdf[t])
        t++;
    return t;
}

/* ---- sampler plugins drawing by size ------------------------------------------- */

int size_sampler_create(const runner_host *h, double T, void **self)
{
    if (!(T > 0) || isinf(T))
        return h->error(h, "T = %g: the temperature must be finite and > 0", T);
    size_sampler *s = h->calloc(1, sizeof *s);
    if (!s)
        return h->error(h, "out of memory");
    s->h = h;
    s->T = T;
    *self = s;
    return 0;
}

void size_sampler_destroy(void *self)
{
    size_sampler *s = self;
    if (!s)
        return;
    s->h->free(s->cdf);
    s->h->free(s);
}

int size_sampler_bind(void *self, int n_tasks, const int64_t *sizes)
{
    size_sampler *s = self;
    const runner_host *h = s->h;
    int bad;
    if (n_tasks < 1)
        return h->error(h, "bound to %d tasks", n_tasks);
    h->free(s->cdf);
    s->n_tasks = 0;
    s->cdf = h->alloc((size_t)n_tasks * sizeof *s->cdf);
    if (!s->cdf)
        return h->error(h, "out of memory");
    if (sampling_cdf(n_tasks, sizes, s->T, s->cdf, &bad) != 0)
        return bad >= 0 ? h->error(h, "task %d has size %lld", bad, (long long)sizes[bad])
                        : h->error(h, "every task has 0 training examples");
    s->n_tasks = n_tasks;
    return 0;
}

int size_sampler_next(void *self, const runner_train_pos *pos, int *task)
{
    size_sampler *s = self;
    if (s->n_tasks < 1)
        return s->h->error(s->h, "next() before bind()");
    *task = sampling_pick(s->n_tasks, s->cdf, s->h->rng_uniform(s->h));
    return 0;
}
