/* params.c — the parameter store (see params.h). */
#include "params.h"

#include <errno.h>
#include <fnmatch.h>
#include <gsl/gsl_randist.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner/kit/compute.h"
#include "runner/kit/util.h"
#include "world.h"

void params_init(params *s) { memset(s, 0, sizeof *s); }

/* Bytes of one block of elements of this size (values, moments: pages of
 * their own, world_pages_alloc, so the ranks of a node can share them). */
static size_t block_bytes(const params *s, size_t elem) { return (size_t)(s->total ? s->total : 16) * elem; }

void params_free(params *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->n; i++)
        free(s->p[i].name);
    free(s->p);
    free(s->slot);
    size_t bytes = block_bytes(s, sizeof(float));
    world_pages_free(s->data, bytes);
    if (s->grad_win)
        world_shm_free(s->grad_win);
    else
        mem_free(s->grad);
    world_pages_free(s->m, bytes);
    world_pages_free(s->v, bytes);
    world_pages_free(s->bf16, block_bytes(s, sizeof *s->bf16));
    params_init(s);
}

/* The name index keeps registration linear: 10,000 layers register in
 * milliseconds, not minutes. */
static size_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (size_t)h;
}

int params_find(const params *s, const char *name)
{
    if (!s->nslot)
        return -1;
    size_t m = s->nslot - 1;
    for (size_t h = name_hash(name) & m; s->slot[h] >= 0; h = (h + 1) & m)
        if (strcmp(s->p[s->slot[h]].name, name) == 0)
            return s->slot[h];
    return -1;
}

static void index_put(params *s, int id)
{
    size_t m = s->nslot - 1, h = name_hash(s->p[id].name) & m;
    while (s->slot[h] >= 0)
        h = (h + 1) & m;
    s->slot[h] = id;
}

/* Room in the index for one more name. */
static int index_grow(params *s)
{
    if ((size_t)(s->n + 1) * 2 <= s->nslot)
        return 0;
    size_t nslot = s->nslot ? 2 * s->nslot : 256;
    int *slot = malloc(nslot * sizeof *slot);
    if (!slot)
        return err_set("out of memory");
    for (size_t i = 0; i < nslot; i++)
        slot[i] = -1;
    free(s->slot);
    s->slot = slot;
    s->nslot = nslot;
    for (int i = 0; i < s->n; i++)
        index_put(s, i);
    return 0;
}

int params_add(params *s, const char *name, int ndim, const int64_t *shape,
               unsigned flags, runner_init init, float std, float **data,
               float **grad)
{
    if (s->allocated)
        return err_set("parameter %s: registered after the store was allocated", name);
    if (ndim < 1 || ndim > 4)
        return err_set("parameter %s: %d dimensions (1 to 4 allowed)", name, ndim);
    if (params_find(s, name) >= 0)
        return err_set("parameter %s: registered twice", name);
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] <= 0)
            return err_set("parameter %s: dimension %d is %lld", name, d, (long long)shape[d]);
        if (shape[d] > PARAMS_MAX_FLOATS / numel)
            return err_set("parameter %s: more than %lld floats", name, (long long)PARAMS_MAX_FLOATS);
        numel *= shape[d];
    }
    if (numel > PARAMS_MAX_FLOATS - s->total)
        return err_set("parameter %s: the model would hold more than %lld floats", name,
                       (long long)PARAMS_MAX_FLOATS);
    if (index_grow(s) != 0)
        return -1;
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        param *p = realloc(s->p, (size_t)cap * sizeof *p);
        if (!p)
            return err_set("out of memory");
        s->p = p;
        s->cap = cap;
    }
    param *p = &s->p[s->n];
    memset(p, 0, sizeof *p);
    p->name = str_dup(name);
    if (!p->name)
        return err_set("out of memory");
    p->ndim = ndim;
    memcpy(p->shape, shape, (size_t)ndim * sizeof *shape);
    p->numel = numel;
    /* 16-float alignment keeps every tensor 64-byte aligned */
    p->offset = s->total;
    s->total += (numel + 15) & ~(int64_t)15;
    p->flags = flags;
    p->trainable = !(flags & RUNNER_PARAM_FROZEN);
    p->lr_scale = 1.0;
    p->init = init;
    p->std = std;
    p->data_slot = data;
    p->grad_slot = grad;
    index_put(s, s->n);
    return s->n++;
}

int params_alloc(params *s, int with_grad, gsl_rng *rng)
{
    if (s->allocated)
        return err_set("parameter store allocated twice");
    size_t bytes = block_bytes(s, sizeof(float));
    /* a run without gradients (evaluation, or a training with everything
     * frozen): its values in huge pages
     * (one-sentence int8 encode 89 -> 67 ms, AMD EPYC). Not in training:
     * there huge pages for values, moments and gradients made a step 12 %
     * slower on this project's VMs (first touch of fresh 2 MiB regions) */
    s->data = world_pages_alloc(bytes, !with_grad);
    if (with_grad && s->grad_shared) {
        int room = world_shm_room((int64_t)(bytes / sizeof(float)), s->grad_note, sizeof s->grad_note);
        if (room < 0 || (room == 0 && s->grad_shared == 2))
            return err_set("train.allreduce = \"shared\": %s", room < 0 ? err_get() : s->grad_note);
        s->grad_shared = room; /* "auto" without room: the MPI all-reduce (grad_note says why) */
    }
    if (with_grad && s->grad_shared) {
        if (world_shm_alloc((int64_t)(bytes / sizeof(float)), &s->grad_win) != 0)
            return -1;
        s->grad = world_shm_mine(s->grad_win);
    } else if (with_grad) {
        s->grad = mem_calloc(1, bytes);
    }
    if (!s->data || (with_grad && !s->grad))
        return err_set("out of memory allocating %zu bytes of parameters", bytes);
    for (int i = 0; i < s->n; i++) {
        param *p = &s->p[i];
        float *x = s->data + p->offset;
        for (int64_t j = 0; p->init != RUNNER_INIT_ZERO && j < p->numel; j++) { /* zeros: the block comes zeroed */
            switch (p->init) {
            case RUNNER_INIT_ZERO: break;
            case RUNNER_INIT_ONE: x[j] = 1; break;
            case RUNNER_INIT_NORMAL: x[j] = (float)gsl_ran_gaussian(rng, p->std); break;
            case RUNNER_INIT_UNIFORM: x[j] = (float)gsl_ran_flat(rng, -p->std, p->std); break;
            }
        }
        if (p->data_slot)
            *p->data_slot = x;
        if (p->grad_slot)
            *p->grad_slot = s->grad ? s->grad + p->offset : NULL;
    }
    s->allocated = 1;
    return 0;
}

int params_alloc_moments(params *s)
{
    size_t bytes = block_bytes(s, sizeof(float));
    if (!s->m)
        s->m = world_pages_alloc(bytes, 0);
    if (!s->v)
        s->v = world_pages_alloc(bytes, 0);
    if (!s->m || !s->v)
        return err_set("out of memory allocating optimizer state (%zu bytes)", 2 * bytes);
    return 0;
}

int params_refresh_bf16(params *s)
{
    size_t bytes = block_bytes(s, sizeof *s->bf16);
    if (!s->bf16 && !(s->bf16 = world_pages_alloc(bytes, 0)))
        return err_set("out of memory allocating the bfloat16 copy of the weights (%zu bytes)", bytes);
    if (s->data)
        compute_to_bf16(s->bf16, s->data, s->total);
    return 0;
}

int params_set(params *s, const char *glob, int trainable, double lr_scale)
{
    int n = 0;
    for (int i = 0; i < s->n; i++) {
        if (fnmatch(glob, s->p[i].name, 0) != 0)
            continue;
        if (trainable >= 0)
            s->p[i].trainable = trainable;
        if (lr_scale >= 0)
            s->p[i].lr_scale = lr_scale;
        n++;
    }
    return n;
}

int64_t params_count(const params *s, const char *glob, int trainable_only)
{
    int64_t n = 0;
    for (int i = 0; i < s->n; i++)
        if ((!trainable_only || s->p[i].trainable) && fnmatch(glob, s->p[i].name, 0) == 0)
            n += s->p[i].numel;
    return n;
}

void params_zero_grad(params *s)
{
    if (s->grad)
        memset(s->grad, 0, (size_t)s->total * sizeof(float));
}

/* The blocks the ranks of a node can share: values, moments, bf16 copy. */
static int value_blocks(params *s, void **block, size_t *bytes)
{
    void *b[4] = {s->data, s->m, s->v, s->bf16};
    size_t n[4] = {block_bytes(s, sizeof(float)), block_bytes(s, sizeof(float)), block_bytes(s, sizeof(float)),
                   block_bytes(s, sizeof *s->bf16)};
    int k = 0;
    for (int i = 0; i < 4; i++)
        if (b[i]) {
            block[k] = b[i];
            bytes[k++] = n[i];
        }
    return k;
}

int params_share_values(params *s)
{
    void *block[4];
    size_t bytes[4];
    int n = value_blocks(s, block, bytes), i = 0;
    while (i < n && world_pages_share(block[i], bytes[i]) == 0)
        i++;
    if (i == n) {
        s->values_shared = 1;
        return 0;
    }
    char why[256];
    snprintf(why, sizeof why, "%s", err_get());
    while (i-- > 0) /* the ones already shared: private again */
        world_pages_private(block[i], bytes[i]);
    return err_set("%s", why);
}

int params_private_values(params *s)
{
    if (!s->values_shared)
        return 0;
    void *block[4];
    size_t bytes[4];
    int n = value_blocks(s, block, bytes);
    for (int i = 0; i < n; i++)
        if (world_pages_private(block[i], bytes[i]) != 0)
            return -1;
    s->values_shared = 0;
    return 0;
}

int params_release(params *s, int id)
{
    if (s->values_shared)
        return err_set("%s: the values are shared by the node's ranks; not released", s->p[id].name);
    if (mem_drop_pages(s->data + s->p[id].offset, (size_t)s->p[id].numel * sizeof(float)) != 0)
        return err_set("%s: madvise: %s", s->p[id].name, strerror(errno));
    s->released++;
    return 0;
}
