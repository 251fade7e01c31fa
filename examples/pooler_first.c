/* pooler_first.c — a complete minimal plugin, built outside the tree:
 *
 *   cc -shared -fPIC -fvisibility=hidden -I core -o myplugins/pooler_first.so examples/pooler_first.c
 *   RUNNER_PLUGIN_PATH=myplugins ./runner pipelines/task1.cfg --set 'pooler={ plugin = "first"; }'
 *
 * It pools a sentence into the state of its first token of one layer
 * (what `cls` does), to show the whole ABI: the descriptor, a key table,
 * create/destroy, the kind-specific ops and the host's services. */
#include <stdlib.h>
#include <string.h>

#include "runner/runner.h"

typedef struct first {
    const runner_host *h;
    int layer; /* -1 = last */
} first;

static int first_create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    long long layer;
    if (h->cfg_int(cfg, "layer", &layer) != 0)
        return h->error(h, "no layer");
    first *p = h->calloc(1, sizeof *p);
    if (!p)
        return h->error(h, "out of memory");
    p->h = h;
    p->layer = (int)layer;
    *self = p;
    return 0;
}

static void first_destroy(void *self)
{
    first *p = self;
    if (p)
        p->h->free(p);
}

static int first_layer(const first *p, int L) { return p->layer < 0 ? L + 1 + p->layer : p->layer; }

static int first_out_dim(void *self, const runner_states *s) { return s->C; }
static int first_lowest_layer(void *self, int L) { return first_layer(self, L); }

static int first_forward(void *self, const runner_batch *b, const runner_states *s, float *out)
{
    first *p = self;
    int l = first_layer(p, s->L);
    if (l < 0 || l > s->L)
        return p->h->error(p->h, "layer %d: the backbone has layers 0..%d", p->layer, s->L);
    for (int i = 0; i < b->B; i++) /* out (B,C) <- hidden[l] (B,T,C) at t = 0 */
        memcpy(out + (size_t)i * s->C, s->hidden[l] + (size_t)i * b->T * s->C,
               (size_t)s->C * sizeof *out);
    return 0;
}

static int first_backward(void *self, const runner_batch *b, const runner_states *s,
                          const float *dout)
{
    first *p = self;
    float *dh = s->dhidden[first_layer(p, s->L)];
    for (int i = 0; i < b->B; i++)
        for (int c = 0; c < s->C; c++)
            dh[(size_t)i * b->T * s->C + c] += dout[(size_t)i * s->C + c];
    return 0;
}

static const runner_pooler_ops first_ops = {
    .out_dim = first_out_dim,
    .lowest_layer = first_lowest_layer,
    .forward = first_forward,
    .backward = first_backward,
};

static const runner_key first_keys[] = {
    {"layer", RUNNER_T_INT, "-1", "hidden state to read: -1 last, -2 second to last, 0 embeddings"},
    {0},
};

static const runner_plugin first_plugin = {
    .abi_major = RUNNER_ABI_MAJOR,
    .abi_minor = RUNNER_ABI_MINOR,
    .kind = RUNNER_KIND_POOLER,
    .name = "first",
    .summary = "state of the first token (an example plugin built out of tree)",
    .keys = first_keys,
    .create = first_create,
    .destroy = first_destroy,
    .ops = &first_ops,
};

RUNNER_PLUGIN(first_plugin)
