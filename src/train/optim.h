/* optim.h — AdamW over the parameter store (decoupled weight decay, none
 * on tensors flagged NO_DECAY, per-tensor lr scale, frozen tensors left
 * bit-identical), the learning-rate schedule (linear warm-up, then linear,
 * cosine or constant), and global-norm gradient clipping. */
#ifndef OPTIM_H
#define OPTIM_H

#include <stdint.h>

#include "params.h"

typedef struct adamw {
    double lr, beta1, beta2, eps, weight_decay;
    int64_t t; /* steps taken */
    /* Data parallel with the values shared by the node's ranks: the sorted
     * [lo, hi) store offsets (nonly pairs) this rank updates; NULL: all. */
    const int64_t *only;
    int nonly;
} adamw;

typedef enum { SCHED_LINEAR, SCHED_COSINE, SCHED_CONSTANT } sched_kind;

int sched_parse(const char *name, sched_kind *out);
/* Learning rate at step (0-based) of total, warmup steps of linear rise. */
double sched_lr(sched_kind k, double peak, int64_t step, int64_t total, int64_t warmup);
/* Global L2 norm of the trainable gradients. */
double grad_norm(const params *P);
/* The factor that brings a gradient of this norm to at most max_norm
 * (1 when max_norm <= 0 or the norm is below it). */
double clip_scale(double norm, double max_norm);
/* One AdamW step at learning rate lr on every trainable tensor, with its
 * gradient multiplied by scale (clipping) first; in the same pass the
 * trainable gradients are zeroed for the next step. Frozen tensors are
 * not touched (their gradients are cleared when the freeze policy changes
 * what trains: params_zero_grad). */
int adamw_step(adamw *o, params *P, double lr, double scale);

/* train.precision: "bf16" gives P a bfloat16 copy of its values (filled
 * now, refreshed by each adamw_step) for the backbone's matmuls, when
 * oneDNN has bf16 matmuls on this CPU. 1: bf16; 0: float32 (asked, or no
 * bf16 here); -1 with err_set (out of memory). */
int optim_precision(params *P, const char *precision);

#endif
