/* head.h — the shared body of the head plugins (linear, mlp,
 * token_linear): a stack of fully connected layers
 *
 *   [input dropout] -> { Linear -> [LayerNorm] -> activation -> dropout } x H -> Linear
 *
 * with its parameters registered as a torch nn.Sequential names them (the
 * host prefixes "heads.<task>."): Linear i of the stack is "<k>.weight" and
 * "<k>.bias" with k = i*4 when the hidden layers have a LayerNorm (then
 * "<k+1>.weight/bias" is the LayerNorm), k = i*3 without. The input
 * dropout of the linear heads is functional and owns no index, so their
 * one Linear is "0". Forward keeps every activation (buffers sized for the
 * largest N seen, reused); backward adds into the parameters' gradients
 * (trainable ones only) and into dx. Dropout masks come from seeds drawn
 * with h->rng_u64 at each training forward (one per dropout site, in
 * stack order), so a run that restores the host RNG repeats them, and
 * from each row's key (forward_keyed), so an example gets the same mask
 * whichever rank or row holds it. Each plugin file only supplies its key
 * table and its ops (docs/heads.md). */
#ifndef HEAD_H
#define HEAD_H

#include "runner/runner.h"

typedef enum head_kind {
    HEAD_LINEAR = 0, /* keys: dropout (on the input) */
    HEAD_MLP         /* keys: hidden, activation, layer_norm, dropout (after each activation) */
} head_kind;

/* Read the plugin's keys (already type-checked, defaults filled) and make
 * an instance; nothing is registered before bind(). */
int head_create(const runner_host *h, const runner_cfg *cfg, head_kind kind, void **self);
void head_destroy(void *self);

/* runner_head_ops members */
int head_bind(void *self, int in_dim, int n_out);
int head_forward(void *self, int N, const float *x, float *logits, int train);
int head_backward(void *self, int N, const float *x, const float *dlogits, float *dx);
/* ABI 1.4 forward_keyed: dropout masks keyed by each row's key (see
 * runner_head_ops), so they follow the example; keys NULL: row i is key i. */
int head_forward_keyed(void *self, int N, const float *x, float *logits, int train,
                       const uint64_t *keys);

#endif
