/* ddp.c — data-parallel gradient sums (see ddp.h). */
#include "ddp.h"

#include <fnmatch.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "optim.h"
#include "runner/kit/util.h"

enum { LEVEL_TOP = INT_MAX, LEVEL_BOTTOM = INT_MIN, LEVEL_NONE = INT_MIN + 1 };

/* The layer of every tensor, in backward order: heads, pooler and the
 * loss combiner first (done before the backbone's backward), then the
 * backbone's layer groups from the top (as the backbone names them), its
 * embeddings and anything else of it last. */
static int tensor_levels(ddp *d, const runner_host *h)
{
    params *P = d->P;
    d->plevel = malloc(((size_t)P->n + 1) * sizeof *d->plevel);
    if (!d->plevel)
        return err_set("out of memory");
    for (int i = 0; i < P->n; i++)
        d->plevel[i] = fnmatch("backbone.*", P->p[i].name, 0) == 0 ? -1 : LEVEL_TOP;
    char glob[300];
    for (int g = 1; h && g < h->layer_groups(h); g++)
        if (h->layer_group(h, g, glob, sizeof glob) == 0)
            for (int i = 0; i < P->n; i++)
                if (fnmatch(glob, P->p[i].name, 0) == 0)
                    d->plevel[i] = g - 1;
    return 0;
}

int ddp_shared(const char *choice, const char *file, int *shared)
{
    *shared = 0;
    if (world_size() == 1)
        return 0;
    int one = world_one_node();
    if (choice && strcmp(choice, "shared") == 0 && !one) {
        char *hosts = world_hosts_text();
        err_set("%s: train.allreduce = \"shared\" needs every rank on one node, but they span several (%s): "
                "use \"auto\" or \"mpi\"", file, hosts ? hosts : "host names: out of memory");
        free(hosts);
        return -1;
    }
    *shared = !one || (choice && strcmp(choice, "mpi") == 0) ? 0 : choice && strcmp(choice, "shared") == 0 ? 2 : 1;
    return 0;
}

int ddp_open(ddp *d, params *P, int overlap, double bucket_mb, int layered, const runner_host *h)
{
    memset(d, 0, sizeof *d);
    d->P = P;
    d->overlap = overlap;
    d->layered = layered;
    if (P->grad_win) { /* shared mode: the whole sum after backward takes a few ms */
        world_grad_shared(&d->g, P->grad_win);
        d->overlap = 0;
    }
    d->bucket_floats = (int64_t)(bucket_mb * 1024 * 1024 / sizeof(float));
    if (d->bucket_floats < 1024)
        d->bucket_floats = 1024;
    return tensor_levels(d, h);
}

void ddp_close(ddp *d)
{
    if (d->P && d->P->watch_ctx == d) {
        d->P->watch = NULL;
        d->P->watch_ctx = NULL;
    }
    world_grad_free(&d->g);
    free(d->share);
    free(d->level);
    free(d->plevel);
    memset(d, 0, sizeof *d);
}

static int add_bucket(ddp *d, int64_t lo, int64_t hi, int level)
{
    if (d->g.n == d->cap_level) {
        int cap = d->cap_level ? 2 * d->cap_level : 64;
        int *l = realloc(d->level, (size_t)cap * sizeof *l);
        if (!l)
            return err_set("out of memory");
        d->level = l;
        d->cap_level = cap;
    }
    d->level[d->g.n] = level;
    d->floats += hi - lo;
    return world_grad_add(&d->g, lo, hi);
}

/* The word-embedding table: a step touches few of its rows (the batch's
 * pieces), and its gradient is the last backward writes, so it cannot
 * overlap anything: summed by rows after backward instead of densely. */
static int sparse_rows(const param *p)
{
    const char *tail = "word_embeddings.weight";
    size_t n = strlen(p->name), t = strlen(tail);
    return p->ndim == 2 && n >= t && strcmp(p->name + n - t, tail) == 0;
}

int ddp_plan(ddp *d)
{
    params *P = d->P;
    world_grad_reset(&d->g, P->grad);
    d->floats = 0;
    d->rows_id = -1;
    int64_t lo = -1, hi = -1;
    int level = 0;
    for (int i = P->n - 1; i >= 0; i--) {
        const param *p = &P->p[i];
        if (!p->trainable || !P->grad)
            continue;
        if (d->rows_id < 0 && sparse_rows(p)) {
            d->rows_id = i;
            continue;
        }
        int l = d->plevel[i];
        int64_t end = p->offset + p->numel;
        if (lo >= 0 && (end != lo || l != level || hi - p->offset > d->bucket_floats)) {
            if (add_bucket(d, lo, hi, level) != 0)
                return -1;
            lo = -1;
        }
        if (lo < 0) {
            hi = end;
            level = l;
        }
        lo = p->offset;
    }
    if (d->rows_id >= 0) {
        const param *e = &P->p[d->rows_id];
        world_grad_rows(&d->g, e->offset, e->shape[0], e->shape[1]);
    }
    if (lo >= 0 && add_bucket(d, lo, hi, level) != 0)
        return -1;
    free(d->share);
    d->share = NULL;
    d->nshare = 0;
    return d->g.sharded ? world_grad_shm_share(&d->g, &d->share, &d->nshare) : 0;
}

int ddp_share_values(ddp *d)
{
    if (!d->g.shm)
        return 0;
    if (params_alloc_moments(d->P) != 0)
        return -1;
    d->g.sharded = params_share_values(d->P) == 0;
    return d->g.sharded;
}

int ddp_step_done(ddp *d)
{
    return d->g.sharded ? world_shm_sync(d->g.shm) : 0;
}

/* Start, in bucket order, every bucket whose layer is done. */
static int start_ready(ddp *d)
{
    int upto = d->g.next;
    while (upto < d->g.n && d->level[upto] >= d->done_above)
        upto++;
    return world_grad_start(&d->g, upto);
}

static void on_question(void *ctx, int id)
{
    ddp *d = ctx;
    int l = id >= 0 && id < d->P->n ? d->plevel[id] : LEVEL_TOP;
    if (d->prev != LEVEL_NONE && l < d->prev && d->prev < d->done_above)
        d->done_above = d->prev; /* moved down: the layer above is done */
    d->prev = l;
    if (start_ready(d) != 0)
        d->watching = -1; /* reported by ddp_backward_end */
    world_grad_poll(&d->g);
}

int ddp_backward_begin(ddp *d)
{
    if (world_size() == 1)
        return 0;
    d->done_above = LEVEL_TOP;
    d->prev = LEVEL_NONE;
    d->watching = 1;
    d->t_begin = time_now();
    if (!d->overlap)
        return 0;
    if (world_grad_begin(&d->g) != 0 || start_ready(d) != 0)
        return -1;
    if (d->layered) {
        d->P->watch = on_question;
        d->P->watch_ctx = d;
    }
    return 0;
}

int ddp_backward_end(ddp *d)
{
    if (world_size() == 1)
        return 0;
    d->P->watch = NULL;
    d->P->watch_ctx = NULL;
    int failed = d->watching < 0;
    d->watching = 0;
    d->early = world_grad_released(&d->g);
    if (failed)
        return -1;
    double t = time_now();
    int rc = world_grad_finish(&d->g);
    const param *e = d->rows_id >= 0 && !d->g.shm ? &d->P->p[d->rows_id] : NULL; /* shared: in finish */
    if (rc == 0 && e)
        rc = world_grad_sum_rows(d->P->grad + e->offset, e->shape[0], e->shape[1]);
    d->t_backward += t - d->t_begin;
    d->t_wait += time_now() - t;
    d->steps++;
    return rc;
}

double ddp_grad_norm(const ddp *d, const params *P)
{
    if (d->P == P && d->g.shm && d->g.have_sumsq)
        return sqrt(d->g.sumsq);
    return grad_norm(P);
}

static uint64_t crc_block(uint64_t h, const void *p, size_t bytes)
{
    const unsigned char *c = p;
    uLong crc = crc32(0L, Z_NULL, 0);
    for (size_t at = 0; at < bytes; at += 1u << 30) {
        size_t n = bytes - at < (1u << 30) ? bytes - at : (1u << 30);
        crc = crc32(crc, c + at, (uInt)n);
    }
    return h * 0x100000001b3ull ^ (uint64_t)crc;
}

int ddp_check(const ddp *d, const gsl_rng *rng, const char *when)
{
    const params *P = d->P;
    size_t bytes = (size_t)P->total * sizeof(float);
    uint64_t h = crc_block(0, P->data, bytes);
    if (P->m)
        h = crc_block(crc_block(h, P->m, bytes), P->v, bytes);
    h = crc_block(h, gsl_rng_state(rng), gsl_rng_size(rng));
    char what[160];
    snprintf(what, sizeof what, "parameters, optimizer moments and RNG %s", when);
    return world_check_same(h, what);
}
