/* embed.c — the inference loop shared by the embed and sts runs. */
#include "embed.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runner/kit/nn.h"
#include "runner/kit/util.h"
#include "signals.h"

int encoder_open(pipeline *pl, encoder *enc)
{
    memset(enc, 0, sizeof *enc);
    enc->batch_size = (int)cfg_int(pl, "batch.size", 32);
    enc->sort = cfg_bool(pl, "batch.sort_by_length", 1);
    if (enc->batch_size < 1)
        return err_set("%s: batch.size must be at least 1", pl->file);
    enc->tok = pipeline_stage(pl, "tokenizer", "tokenizer.", RUNNER_KIND_TOKENIZER,
                              config_lookup(&pl->cfg, "tokenizer"));
    if (!enc->tok)
        return -1;
    enc->backbone = pipeline_stage(pl, "backbone", "backbone.", RUNNER_KIND_BACKBONE,
                                   config_lookup(&pl->cfg, "backbone"));
    if (!enc->backbone)
        return -1;
    const runner_backbone_ops *ops = enc->backbone->desc->ops;
    ops->info(enc->backbone->self, &enc->info);
    return 0;
}

/* The tokenizer's ids and lengths must fit the model's tables: caught here,
 * at load, rather than at the first batch that holds a high id. */
int encoder_check(const pipeline *pl, const encoder *enc)
{
    runner_tokenizer_info ti;
    const runner_tokenizer_ops *tops = enc->tok->desc->ops;
    const char *model = cfg_str(pl, "model");
    tops->info(enc->tok->self, &ti);
    if (ti.vocab_size > enc->info.vocab_size)
        return err_set("tokenizer %s has %d pieces but the model's embedding table (%s/config.json "
                       "vocab_size) has %d rows: a vocabulary from another model?", enc->tok->desc->name,
                       ti.vocab_size, model ? model : "backbone", enc->info.vocab_size);
    if (ti.max_len > enc->info.max_positions)
        return err_set("tokenizer.max_len = %d exceeds the model's position table (%s/config.json "
                       "max_position_embeddings = %d): set tokenizer.max_len to at most %d", ti.max_len,
                       model ? model : "backbone", enc->info.max_positions, enc->info.max_positions);
    return 0;
}

int encoder_load(pipeline *pl, encoder *enc, int with_grad)
{
    if (pipeline_alloc_params(pl, with_grad) != 0)
        return -1;
    const runner_backbone_ops *ops = enc->backbone->desc->ops;
    if (ops->load(enc->backbone->self) != 0)
        return -1;
    return encoder_check(pl, enc);
}

int encoder_prepare(encoder *enc)
{
    const runner_backbone_ops *ops = enc->backbone->desc->ops;
    if (enc->backbone->desc->abi_minor < 7 || !ops->prepare)
        return 0;
    return ops->prepare(enc->backbone->self);
}

int poolers_lowest(const encoder *enc, stage *const *poolers, int n)
{
    const int L = enc->info.layers;
    int lo = L;
    for (int k = 0; k < n; k++) {
        const runner_pooler_ops *ops = poolers[k]->desc->ops;
        int v = ops->lowest_layer ? ops->lowest_layer(poolers[k]->self, L) : 0;
        lo = v < lo ? v : lo;
    }
    return lo < 0 ? 0 : lo;
}

int pooler_dim(const encoder *enc, stage *pooler)
{
    runner_states s = {enc->info.layers, 0, 0, enc->info.dim, NULL, NULL};
    const runner_pooler_ops *ops = pooler->desc->ops;
    return ops->out_dim(pooler->self, &s);
}

/* Whether row i's real tokens in h (B,T,C) hold a NaN or an infinity. */
static int row_nonfinite(const float *h, const runner_batch *b, int i, int C)
{
    for (int t = 0; t < b->T; t++)
        if (b->mask[(size_t)i * b->T + t] && nn_first_nonfinite(h + ((size_t)i * b->T + t) * C, C) >= 0)
            return 1;
    return 0;
}

/* Non-finite activations (weights are checked at load; overflow can still
 * make them): one warning a run, naming the first such sentence and the
 * first hidden state that went wrong. The states below the batch's
 * lowest_read were not written: the batch runs again with all of them
 * (once a run; eval is deterministic, *sp then points to the same last
 * states). */
static int warn_nonfinite(encoder *enc, batch *bt, const runner_states **sp, int n, int *warned)
{
    const runner_states *s = *sp;
    for (int i = 0; i < n && !*warned; i++) {
        if (!row_nonfinite(s->hidden[s->L], &bt->b, i, s->C))
            continue;
        if (bt->b.lowest_read > 0) {
            const runner_backbone_ops *bops = enc->backbone->desc->ops;
            bt->b.lowest_read = 0;
            if (bops->forward(enc->backbone->self, &bt->b, 0, sp) != 0)
                return -1;
            s = *sp;
        }
        int l = 0;
        while (l < s->L && !row_nonfinite(s->hidden[l], &bt->b, i, s->C))
            l++;
        pipeline_log(enc->backbone->pl, RUNNER_LOG_WARN,
                     "input sentence %d (counting from 1): non-finite values (NaN or infinity) from %s %d on; "
                     "its embedding is not a number (later sentences are not reported)",
                     bt->rows[i] + 1, l == 0 ? "the embeddings, hidden state" : "layer", l);
        *warned = 1;
    }
    return 0;
}

int encoder_embed(encoder *enc, const encoded *e, stage *const *poolers, int npoolers,
                  float *const *out)
{
    int warned = 0;
    const runner_backbone_ops *bops = enc->backbone->desc->ops;
    batch bt = {0};
    float **tmp = calloc((size_t)npoolers, sizeof *tmp);
    int *dims = calloc((size_t)npoolers, sizeof *dims);
    int *order = encoded_order(e, enc->sort);
    const int lowest = poolers_lowest(enc, poolers, npoolers);
    int rc = -1;
    if (!tmp || !dims || !order) {
        err_set("out of memory");
        goto done;
    }
    for (int k = 0; k < npoolers; k++) {
        dims[k] = pooler_dim(enc, poolers[k]);
        tmp[k] = malloc((size_t)enc->batch_size * (size_t)dims[k] * sizeof(float));
        if (!tmp[k]) {
            err_set("out of memory");
            goto done;
        }
    }
    for (int at = 0; at < e->n; at += enc->batch_size) {
        int n = e->n - at < enc->batch_size ? e->n - at : enc->batch_size;
        if (signals_caught()) {
            err_set("stopped by %s after %d of %d sentences; nothing written", signal_label(signals_caught()), at,
                    e->n);
            goto done;
        }
        if (batch_fill(&bt, e, order + at, n) != 0)
            goto done;
        bt.b.lowest_read = lowest;
        const runner_states *s;
        if (bops->forward(enc->backbone->self, &bt.b, 0, &s) != 0)
            goto done;
        if (warn_nonfinite(enc, &bt, &s, n, &warned) != 0)
            goto done;
        for (int k = 0; k < npoolers; k++) {
            const runner_pooler_ops *pops = poolers[k]->desc->ops;
            if (pops->forward(poolers[k]->self, &bt.b, s, tmp[k]) != 0)
                goto done;
            for (int i = 0; i < n; i++) /* back to input order */
                memcpy(out[k] + (size_t)bt.rows[i] * dims[k], tmp[k] + (size_t)i * dims[k],
                       (size_t)dims[k] * sizeof(float));
        }
    }
    rc = 0;
done:
    for (int k = 0; tmp && k < npoolers; k++)
        free(tmp[k]);
    free(tmp);
    free(dims);
    free(order);
    batch_free(&bt);
    return rc;
}

double cosine(const float *a, const float *b, int n)
{
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0.0;
}
