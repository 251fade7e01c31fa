/* checkpoint.h — training checkpoints. A checkpoint is a folder:
 *   model.safetensors   every parameter (backbone tensors under their
 *                       Hugging Face names, heads under heads.<task>.*),
 *                       with label names and the like as __metadata__
 *   config.json, vocab.txt, tokenizer files  copied from the model folder,
 *                       so the folder is itself a model folder
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

/* Save params (and state, if not NULL) to dir; the tokenizer files of
 * model_dir are copied and the backbone writes config.json (plugins of ABI
 * 1.0 cannot: model_dir's config.json is copied). meta: nmeta key/value
 * string pairs. */
int checkpoint_save(const char *dir, const params *P, const blob *state, stage *backbone,
                    const char *model_dir, const char *const *meta, int nmeta);
/* Load every parameter of P present in dir/model.safetensors; all of
 * them must be there unless partial (then missing ones are counted in
 * *missing). Shapes are checked. */
int checkpoint_load_params(const char *dir, params *P, int partial, int *missing);
/* Read dir/model.safetensors' metadata value for key (malloc'ed, or NULL). */
char *checkpoint_meta(const char *dir, const char *key);
/* Load and verify (size, CRC) the trainer state. */
int checkpoint_load_state(const char *dir, blob *state);
/* Copy the model-folder files of checkpoint src (weights, config.json,
 * tokenizer files; not the trainer state) to dst, creating it. */
int checkpoint_export(const char *src, const char *dst);
/* dir, or dir.old after an interrupted swap; NULL if neither exists. */
char *checkpoint_resolve(const char *dir);

#endif
