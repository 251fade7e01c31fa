/* pool.h — token states to one vector per sentence: mean, cls, max,
 * mean_sqrt_len and SGPT's position-weighted mean, over one hidden state
 * or the average of several, masks respected, optional L2 normalisation;
 * forward and backward. Also the shared body of the pooler plugins (each
 * plugin file only names its kind). */
#ifndef POOL_H
#define POOL_H

#include <stdint.h>

#include "runner/runner.h"

typedef enum pool_kind {
    POOL_MEAN = 0,      /* sum over mask=1 tokens / count */
    POOL_CLS,           /* token 0 */
    POOL_MAX,           /* per-dimension max over mask=1 tokens */
    POOL_MEAN_SQRT_LEN, /* sum over mask=1 tokens / sqrt(count) */
    POOL_WEIGHTED_MEAN  /* sum of (t+1) h_t over mask=1 tokens / sum of (t+1) (SGPT) */
} pool_kind;

typedef struct pool_spec {
    pool_kind kind;
    int nlayers;
    const int *layers; /* indices into states->hidden (0 = embeddings .. L) */
    int normalize;     /* L2, as torch.nn.functional.normalize (eps 1e-12) */
} pool_spec;

/* A layer setting (-1 last, -2 second to last, ..., or 0..L counting the
 * embedding output as 0) to an index into hidden; -1 when out of range. */
int pool_layer_index(long long layer, int L);

/* out (B,C) from s->hidden[layers] (B,T,C) and mask (B,T). Rows without a
 * token pool to zeros. */
void pool_forward(const pool_spec *p, const runner_states *s, const uint8_t *mask, float *out);
/* s->dhidden[layers] (B,T,C) += d out / d hidden . dout (B,C).
 * scratch: (B,C) floats. */
void pool_backward(const pool_spec *p, const runner_states *s, const uint8_t *mask,
                   const float *dout, float *scratch);

/* The pooler plugins' common body: keys `layer`, `layers`, `normalize`. */
extern const runner_key pooler_keys[];
extern const runner_pooler_ops pooler_ops;
int pooler_create(const runner_host *h, const runner_cfg *cfg, pool_kind kind, void **self);
void pooler_destroy(void *self);

#endif
