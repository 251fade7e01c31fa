/* checkpoint.h — training checkpoints. A checkpoint is a folder:
 *   model.safetensors   the backbone under its Hugging Face names, with
 *                       "format": "pt" and label names as __metadata__
 *   heads.safetensors   the other parameters (heads.<task>.*), same metadata
 *   heads.json          what the heads are (export.h)
 *   config.json, tokenizer files, sentence-transformers files: the folder
 *                       loads in transformers and sentence-transformers
 *   trainer_state.bin   optimizer moments, step, RNG and data positions:
 *                       a fixed header (magic, version, sizes, CRC-32)
 *                       and a zlib-compressed payload
 * Written into DIR.tmp, then swapped in by rename: a run killed at any
 * moment leaves the previous checkpoint intact (or DIR.old, which load
 * falls back to). */
#ifndef CHECKPOINT_H
#define CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "params.h"
#include "pipeline.h"

/* A growable byte buffer for the trainer state. */
typedef struct blob {
    uint8_t *p;
    size_t n, cap, at; /* at: read position */
} blob;

int blob_put(blob *b, const void *data, size_t n);
int blob_get(blob *b, void *data, size_t n); /* -1 when short */
void blob_free(blob *b);

/* Save the store (and state, if not NULL) to dir: model.safetensors
 * (backbone), heads.safetensors + heads.json, config.json (the backbone's
 * or the model folder's, edited: see export.h), the model folder's
 * tokenizer files and the sentence-transformers files of the pipeline's
 * pooler. meta: nmeta key/value string pairs. */
int checkpoint_save(const char *dir, pipeline *pl, const blob *state, stage *backbone,
                    const char *const *meta, int nmeta);
/* Load every parameter of P present in dir/model.safetensors or
 * dir/heads.safetensors (older checkpoints kept heads in the first); all of
 * them must be there unless partial (then missing ones are counted in
 * *missing). Shapes are checked. */
int checkpoint_load_params(const char *dir, params *P, int partial, int *missing);
/* Read dir/model.safetensors' metadata value for key (malloc'ed, or NULL). */
char *checkpoint_meta(const char *dir, const char *key);
/* Load and verify (size, CRC) the trainer state. */
int checkpoint_load_state(const char *dir, blob *state);
/* Copy the model-folder files of checkpoint src (weights, heads,
 * config.json, tokenizer and sentence-transformers files; not the trainer
 * state) to dst, creating it. */
int checkpoint_export(const char *src, const char *dst);
/* dir, or dir.old after an interrupted swap; NULL if neither exists. */
char *checkpoint_resolve(const char *dir);

#endif
