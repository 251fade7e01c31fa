/* embed.h — sentences to pooled embeddings: the tokenizer, backbone and
 * pooler stages of an inference pipeline, and the batch loop that runs
 * the backbone once per batch and every pooler on its states, writing
 * rows in input order whatever the batching order. */
#ifndef EMBED_H
#define EMBED_H

#include "pipeline.h"
#include "text.h"

typedef struct encoder {
    stage *tok, *backbone;
    runner_backbone_info info;
    int batch_size, sort;
} encoder;

/* Build the tokenizer and backbone stages from the pipeline. */
int encoder_open(pipeline *pl, encoder *enc);
/* Tokenizer vocabulary and max_len within the backbone's tables. */
int encoder_check(const pipeline *pl, const encoder *enc);
/* After every stage registered its parameters: allocate, load weights. */
int encoder_load(pipeline *pl, encoder *enc, int with_grad);
/* The weights are final (a checkpoint read): the backbone builds what its
 * eval forward needs (ABI 1.7 prepare) before the encoding is timed. */
int encoder_prepare(encoder *enc);
/* The lowest hidden state that any of the n poolers reads, 0..layers
 * (runner_batch.lowest_read, ABI 1.7). */
int poolers_lowest(const encoder *enc, stage *const *poolers, int n);
/* Output size of a pooler on this backbone. */
int pooler_dim(const encoder *enc, stage *pooler);
/* Embed e's sentences: out[k] is (e->n, dim of poolers[k]), row i =
 * sentence i. Eval mode. */
int encoder_embed(encoder *enc, const encoded *e, stage *const *poolers, int npoolers,
                  float *const *out);
double cosine(const float *a, const float *b, int n);

#endif
