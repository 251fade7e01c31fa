/* params.h — the parameter store: named float32 tensors whose values,
 * gradients and AdamW moments each live in one contiguous block (llm.c),
 * with a trainable flag, a learning-rate scale and a weight-decay flag per
 * tensor. Stages register tensors by name; freeze policies flip flags by
 * glob; the optimizer walks contiguous ranges. */
#ifndef PARAMS_H
#define PARAMS_H

#include <gsl/gsl_rng.h>
#include <stdint.h>

#include "runner/runner.h"

typedef struct param {
    char *name;
    int ndim;
    int64_t shape[4];
    int64_t numel, offset; /* in floats, within each block */
    unsigned flags;        /* RUNNER_PARAM_* */
    int trainable;
    double lr_scale;
    runner_init init;
    float std;
    float **data_slot, **grad_slot; /* the owner's pointers, set on alloc */
} param;

typedef struct params {
    param *p;
    int n, cap;
    int64_t total;               /* floats in each block */
    float *data, *grad, *m, *v;  /* grad, m, v NULL until allocated */
    int allocated;
    int *slot;                   /* name index: open addressing, -1 empty */
    size_t nslot;                /* power of two, > 2n (0: none yet) */
    /* Called with a tensor's id whenever a stage asks whether it trains
     * (backward passes ask right before writing its gradient): the data
     * parallel trainer's per-layer signal (src/train/ddp.c). NULL: none. */
    void (*watch)(void *ctx, int id);
    void *watch_ctx;
    /* train.precision = "bf16": every value rounded to bfloat16, at the
     * values' offsets; refreshed by the optimizer's pass (trainable
     * tensors) and by params_refresh_bf16 (all). NULL: float32 training. */
    uint16_t *bf16;
    /* Set before params_alloc: the gradient block is this rank's segment of
     * a shared-memory window over the node's ranks (train.allreduce =
     * "shared", src/train/ddp.c); grad_win is that window. */
    int grad_shared; /* 1: if there is room (else grad_note says why); 2: required */
    struct world_shm *grad_win;
    char grad_note[320];
    /* params_share_values: values, moments and bf16 copy are one copy for
     * the node's ranks (each rank's optimizer updates its share). */
    int values_shared;
    /* tensors whose values were given back (params_release): they read as
     * zeros, so nothing may save the store any more */
    int released;
} params;

/* At most 2^40 floats (4 TiB) in one store: sizes stay far from overflow. */
#define PARAMS_MAX_FLOATS ((int64_t)1 << 40)

void params_init(params *s);
void params_free(params *s);
/* Register a tensor; returns its id or -1. Fails once allocated. */
int params_add(params *s, const char *name, int ndim, const int64_t *shape,
               unsigned flags, runner_init init, float std, float **data,
               float **grad);
/* Allocate the value block (and gradients when with_grad), initialise
 * every tensor from rng, and fill the owners' pointers. With grad_shared
 * it is collective over the node's ranks, and so is params_free. */
int params_alloc(params *s, int with_grad, gsl_rng *rng);
/* Allocate AdamW's moments (zeroed). */
int params_alloc_moments(params *s);
int params_find(const params *s, const char *name);
/* trainable: 0/1 or -1 keep; lr_scale < 0 keeps. Returns matches. */
int params_set(params *s, const char *glob, int trainable, double lr_scale);
/* Floats in tensors matching glob; only trainable ones if trainable_only. */
int64_t params_count(const params *s, const char *glob, int trainable_only);
/* Allocate the bfloat16 copy of the values (when missing) and fill it from
 * the values: at the start of bf16 training, and after anything other
 * than the optimizer changed values. */
int params_refresh_bf16(params *s);
/* Give the memory of tensor id's values back to the kernel (the whole
 * pages inside it): its owner keeps its own copy and the run only
 * evaluates. The values read as zeros afterwards. -1 with err_set when the
 * values are shared by the node's ranks. */
int params_release(params *s, int id);
/* Make the values, moments (allocate them first) and bf16 copy one copy
 * shared by the node's ranks, at the same addresses (world_pages_share):
 * collective, for data-parallel training on one node, where each rank's
 * optimizer then updates its own share of them. On failure (-1 on every
 * rank) each rank keeps its own copy. params_private_values: back to a
 * copy per rank (before anything other than the sharded optimizer writes
 * values, e.g. loading the best checkpoint); no-op when not shared. */
int params_share_values(params *s);
int params_private_values(params *s);
/* Zero every gradient. */
void params_zero_grad(params *s);

#endif
