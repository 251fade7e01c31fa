/* safetensors.h — Hugging Face safetensors files: a memory-mapped reader
 * (header parsed with jansson and checked: length, JSON, dtype, shape,
 * offsets inside the data area, file size) with F32/F16/BF16 -> float32
 * conversion, and an atomic writer of named float32 tensors.
 *
 * File layout: 8-byte little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
 *  "__metadata__": {"key": "value"}}, then the data area (offsets are
 * relative to its start). */
#ifndef SAFETENSORS_H
#define SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8

typedef struct st_tensor {
    char *name;
    char dtype[16];          /* "F32", "F16", "BF16", "I64", ... */
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    const uint8_t *data;     /* inside the mapping */
    size_t nbytes;
} st_tensor;

typedef struct safetensors {
    char *path;
    uint8_t *map;
    size_t map_len;
    st_tensor *t;
    int n;
    char **meta_key, **meta_val; /* __metadata__ */
    int nmeta;
} safetensors;

/* Map and check a file. On failure the message names the file (and the
 * tensor when one is at fault), and *st is left empty. */
int st_open(safetensors *st, const char *path);
void st_close(safetensors *st); /* unmaps; st_close of an empty one is a no-op */
const st_tensor *st_find(const safetensors *st, const char *name);
const char *st_meta(const safetensors *st, const char *key); /* NULL if absent */
/* Bytes per element of a dtype name, 0 when unknown. */
size_t st_dtype_size(const char *dtype);
/* Tensor t (F32, F16 or BF16) as float32 into out (t->numel floats). */
int st_to_f32(const safetensors *st, const st_tensor *t, float *out);
/* st_to_f32, and *bad = the index of its first NaN or infinity (-1: none;
 * the copy may stop there), checked piece by piece as it is copied (kit
 * 1.5). */
int st_to_f32_finite(const safetensors *st, const st_tensor *t, float *out, int64_t *bad);
/* Drop the mapped pages of t from memory once it has been copied (they
 * are read again from the file if touched): keeps peak RSS near one copy
 * of the model instead of two. */
void st_release(const safetensors *st, const st_tensor *t);

/* A float32 tensor to write. */
typedef struct st_out {
    const char *name;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const float *data;
} st_out;

/* Write n tensors (in this order) and nmeta __metadata__ string pairs
 * (meta[2i] = key, meta[2i+1] = value) atomically to path. */
int st_write(const char *path, const st_out *t, int n, const char *const *meta, int nmeta);

#endif
