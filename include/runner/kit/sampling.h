/* sampling.h — categorical choice of the task of the next batch, shared by
 * the proportional and temperature sampler plugins. No state: a choice is a
 * function of the task sizes, T and one uniform draw from the run's RNG. */
#ifndef SAMPLING_H
#define SAMPLING_H

#include <stdint.h>

#include "runner/runner.h"

/* Cumulative probabilities cdf[0..n-1] with p_t proportional to
 * sizes[t]^(1/T) (T = 1: proportional to size; T -> inf: uniform over the
 * non-empty tasks). Returns -1 with *bad = the task of a negative size, or
 * *bad = -1 when every size is 0. */
int sampling_cdf(int n, const int64_t *sizes, double T, double *cdf, int *bad);
/* The task t with cdf[t-1] <= u < cdf[t] (cdf[-1] = 0), for u in [0, 1). */
int sampling_pick(int n, const double *cdf, double u);

/* The sampler plugins drawing by size: an instance with exponent 1/T whose
 * bind()/next() are the plugin's callbacks. next() makes exactly one draw
 * from h->rng_uniform per call and keeps no other state, so a run resumed
 * with the RNG's state makes the same choices. */
typedef struct size_sampler {
    const runner_host *h;
    double T;
    int n_tasks;
    double *cdf; /* (n_tasks) */
} size_sampler;

int size_sampler_create(const runner_host *h, double T, void **self);
void size_sampler_destroy(void *self);
int size_sampler_bind(void *self, int n_tasks, const int64_t *sizes);
int size_sampler_next(void *self, const runner_train_pos *pos, int *task);

#endif
