/* A head built for ABI 1.3: its ops table has the 1.3 layout and ends
 * before forward_keyed (ABI 1.4), so the runner must not read that member
 * (under SAN=1 AddressSanitizer would report the read past this global).
 * One trainable bias per output; the logits are the bias. */
#include <string.h>

#include "runner/runner.h"

typedef struct head_ops_v1_3 {
    int per_token;
    int (*bind)(void *self, int in_dim, int n_out);
    int (*forward)(void *self, int N, const float *x, float *logits, int train);
    int (*backward)(void *self, int N, const float *x, const float *dlogits, float *dx);
} head_ops_v1_3;

typedef struct old_head {
    const runner_host *h;
    int K, forwards;
    float *b, *db;
} old_head;

static int create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    (void)cfg;
    old_head *o = h->calloc(1, sizeof *o);
    if (!o)
        return h->error(h, "out of memory");
    o->h = h;
    *self = o;
    return 0;
}

static void destroy(void *self)
{
    old_head *o = self;
    if (o)
        o->h->free(o);
}

static int bind(void *self, int in_dim, int n_out)
{
    old_head *o = self;
    (void)in_dim;
    int64_t shape[1] = {n_out};
    o->K = n_out;
    return o->h->param_add(o->h, "bias", 1, shape, RUNNER_PARAM_NO_DECAY, RUNNER_INIT_ZERO, 0, &o->b,
                           &o->db) < 0 ? -1 : 0;
}

static int forward(void *self, int N, const float *x, float *logits, int train)
{
    old_head *o = self;
    (void)x;
    o->forwards += train;
    for (int i = 0; i < N; i++)
        memcpy(logits + (size_t)i * o->K, o->b, (size_t)o->K * sizeof *logits);
    return 0;
}

static int backward(void *self, int N, const float *x, const float *dlogits, float *dx)
{
    old_head *o = self;
    (void)x;
    (void)dx;
    for (int i = 0; o->db && i < N; i++)
        for (int k = 0; k < o->K; k++)
            o->db[k] += dlogits[(size_t)i * o->K + k];
    return 0;
}

static const runner_key keys[] = {{0}};
static const head_ops_v1_3 ops = {0, bind, forward, backward};
static const runner_plugin desc = {
    .abi_major = 1, .abi_minor = 3, .kind = RUNNER_KIND_HEAD, .name = "abi13",
    .summary = "loader test fixture: a head of ABI 1.3", .keys = keys,
    .create = create, .destroy = destroy, .ops = &ops,
};
RUNNER_PLUGIN(desc)
