/* shard.c — encoding split over the ranks (see shard.h). */
#include "shard.h"

#include <stdlib.h>
#include <string.h>

#include "runner/kit/util.h"
#include "world.h"

/* Sentences order[lo..hi) of e as an encoded set of their own, in that
 * order (already longest first, so it sorts to itself). */
static int take_rows(const encoded *e, const int *order, int64_t lo, int64_t hi, encoded *out)
{
    memset(out, 0, sizeof *out);
    out->info = e->info;
    out->n = (int)(hi - lo);
    int64_t tokens = 0;
    for (int64_t p = lo; p < hi; p++)
        tokens += e->off[order[p] + 1] - e->off[order[p]];
    out->off = malloc(((size_t)out->n + 1) * sizeof *out->off);
    out->ids = malloc(((size_t)tokens + 1) * sizeof *out->ids);
    out->word = malloc(((size_t)tokens + 1) * sizeof *out->word);
    if (!out->off || !out->ids || !out->word)
        return err_set("out of memory");
    int64_t at = 0;
    for (int64_t p = lo; p < hi; p++) {
        int64_t a = e->off[order[p]], len = e->off[order[p] + 1] - a;
        out->off[p - lo] = at;
        memcpy(out->ids + at, e->ids + a, (size_t)len * sizeof *out->ids);
        memcpy(out->word + at, e->word + a, (size_t)len * sizeof *out->word);
        at += len;
    }
    out->off[out->n] = at;
    return 0;
}

/* Row bounds (in visiting order) of each rank: whole batches, balanced by
 * padded tokens (rows x longest). */
static int batch_bounds(const encoded *e, const int *order, int bs, int64_t *bounds)
{
    int64_t nb = ((int64_t)e->n + bs - 1) / bs;
    int64_t *w = malloc(((size_t)nb + 1) * sizeof *w);
    if (!w)
        return err_set("out of memory");
    for (int64_t b = 0; b < nb; b++) {
        int64_t longest = 0, rows = 0;
        for (int64_t p = b * bs; p < (b + 1) * bs && p < e->n; p++, rows++) {
            int64_t len = e->off[order[p] + 1] - e->off[order[p]];
            longest = len > longest ? len : longest;
        }
        w[b] = rows * longest + 1;
    }
    world_share_weighted(w, nb, bounds);
    for (int r = 0; r <= world_size(); r++)
        bounds[r] = bounds[r] * bs < e->n ? bounds[r] * bs : e->n;
    free(w);
    return 0;
}

int shard_embed(encoder *enc, const encoded *e, stage *const *poolers, int npoolers, float *const *out, int all)
{
    int size = world_size(), rank = world_rank();
    if (size == 1 || e->n == 0)
        return encoder_embed(enc, e, poolers, npoolers, out);
    int64_t *bounds = malloc(((size_t)size + 1) * sizeof *bounds);
    int *order = encoded_order(e, enc->sort);
    float **tmp = calloc((size_t)npoolers, sizeof *tmp);
    encoded mine = {0};
    int rc = -1;
    if (!bounds || !order || !tmp) {
        err_set("out of memory");
        goto done;
    }
    if (batch_bounds(e, order, enc->batch_size, bounds) != 0 ||
        take_rows(e, order, bounds[rank], bounds[rank + 1], &mine) != 0)
        goto done;
    for (int k = 0; k < npoolers; k++) {
        int dim = pooler_dim(enc, poolers[k]);
        if (!(tmp[k] = malloc(((size_t)e->n + 1) * (size_t)dim * sizeof(float)))) {
            err_set("out of memory for %d embeddings", e->n);
            goto done;
        }
    }
    float **at = calloc((size_t)npoolers, sizeof *at);
    if (!at) {
        err_set("out of memory");
        goto done;
    }
    for (int k = 0; k < npoolers; k++)
        at[k] = tmp[k] + bounds[rank] * pooler_dim(enc, poolers[k]);
    int bad = mine.n > 0 && encoder_embed(enc, &mine, poolers, npoolers, at) != 0;
    free(at);
    if (bad)
        goto done;
    for (int k = 0; k < npoolers; k++) {
        int dim = pooler_dim(enc, poolers[k]);
        if (world_gather_rows(tmp[k], dim, bounds, all) != 0)
            goto done;
        if (all || world_is_root()) /* visiting order back to input order */
            for (int p = 0; p < e->n; p++)
                memcpy(out[k] + (size_t)order[p] * dim, tmp[k] + (size_t)p * dim, (size_t)dim * sizeof(float));
    }
    rc = 0;
done:
    for (int k = 0; tmp && k < npoolers; k++)
        free(tmp[k]);
    free(tmp);
    free(order);
    free(bounds);
    encoded_free(&mine);
    return rc;
}
