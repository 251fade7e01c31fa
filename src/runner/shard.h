/* shard.h — encoding split over the ranks of the world. The sentences are
 * visited in the single-process order (longest first) and cut into the
 * same batches; each rank embeds a contiguous run of those batches (runs
 * balanced by padded tokens), and the rows are gathered back into input
 * order. Every sentence is thus computed in the very batch it would be in
 * one process: with the same threads per rank the result is bit for bit
 * the single-process one, whatever the world size. */
#ifndef SHARD_H
#define SHARD_H

#include "embed.h"

/* As encoder_embed, over the world: out[k] holds every row on rank 0
 * (all: on every rank); on other ranks out[k] is scratch when !all. */
int shard_embed(encoder *enc, const encoded *e, stage *const *poolers, int npoolers, float *const *out,
                int all);

#endif
