/* ddp.h — data-parallel training over the ranks of the world (as PyTorch
 * DDP): every rank runs forward/backward on its share of the global batch;
 * the gradient block is summed over ranks in buckets (runs of trainable
 * tensors, frozen ones never sent) taken in reverse order of the store, as
 * backward produces them. A bucket's all-reduce starts as soon as backward
 * is past its layer — the backbone asks the host whether each tensor
 * trains right before writing its gradient, and a question about a lower
 * layer means the layer above is done — so communication overlaps the rest
 * of backward. On one node the gradient block can instead be each rank's
 * segment of an MPI shared-memory window (train.allreduce, gradshm.c):
 * after backward every rank sums its share of the buckets over the
 * segments. Ranks stay identical; ddp_check compares checksums. */
#ifndef DDP_H
#define DDP_H

#include <gsl/gsl_rng.h>
#include <stdint.h>

#include "params.h"
#include "world.h"

typedef struct ddp {
    params *P;
    world_grad g;
    int *level;        /* per bucket: its layer (heads above every layer) */
    int *plevel;       /* per tensor: its layer (-1 embeddings, 0.. layers, heads INT_MAX) */
    int cap_level;
    int overlap;       /* start buckets during backward */
    int layered;       /* the backbone's questions come layer by layer (bert) */
    int watching, prev, done_above;
    int64_t bucket_floats, floats; /* bucket size; floats sent per step */
    int rows_id; /* the word-embedding table, summed by touched rows, or -1 */
    int early; /* buckets of the last step released before backward ended */
    /* seconds over the steps: backbone backward (with the buckets started
     * during it), then waiting for the all-reduces after it */
    double t_begin, t_backward, t_wait;
    double t_step; /* the optimizer step (gradient norm and AdamW), timed by the trainer */
    int64_t steps;
    /* values shared by the node's ranks (P->values_shared): the store
     * offsets this rank sums and updates, sorted [lo, hi) pairs */
    int64_t *share;
    int nshare;
} ddp;

/* train.allreduce (choice; NULL: "auto"): *shared (P->grad_shared, before
 * params_alloc) = 2 to keep the gradient block in a shared-memory window
 * ("shared": params_alloc fails if Open MPI's folder for it has no room),
 * 1 to keep it there if there is room ("auto" with every rank on one node;
 * else the MPI all-reduce, P->grad_note saying why); 0 for "mpi", several
 * nodes under "auto", or a world of one. "shared" over several nodes: -1,
 * naming the hosts. */
int ddp_shared(const char *choice, const char *file, int *shared);
/* h: the backbone's host (its layer groups give each tensor's layer).
 * P->grad_win set: sums through it after backward (no overlap). */
int ddp_open(ddp *d, params *P, int overlap, double bucket_mb, int layered, const runner_host *h);
void ddp_close(ddp *d);
/* Shared mode: one copy of the values, moments and bf16 copy for the
 * node's ranks (params_share_values), each rank's optimizer updating its
 * share of the sum (ddp_plan lists it in d->share). 1: shared; 0: each
 * rank keeps its copy and updates all of it (not shared mode, or sharing
 * failed: err_get says why, for the caller's log); -1: no memory for the
 * moments (err_set). Collective. */
int ddp_share_values(ddp *d);
/* After the optimizer's step, before anything reads the values: every
 * rank's share written (shared values; else nothing). */
int ddp_step_done(ddp *d);
/* Buckets of the tensors that train now (call whenever that may change). */
int ddp_plan(ddp *d);
/* The heads' (and pooler's) gradients are final; the backbone's backward
 * is next. */
int ddp_backward_begin(ddp *d);
/* Backward is over: start what is left, wait for every bucket. */
int ddp_backward_end(ddp *d);
/* The global norm of P's trainable gradients: in shared mode from the
 * step's sum (ddp_backward_end computed it), else grad_norm(P). */
double ddp_grad_norm(const ddp *d, const params *P);
/* Same parameters, moments and RNG on every rank? -1 naming the rank
 * that differs. */
int ddp_check(const ddp *d, const gsl_rng *rng, const char *when);

#endif
