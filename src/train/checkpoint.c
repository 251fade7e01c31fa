/* checkpoint.c — checkpoint folders (see checkpoint.h). */
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "export.h"
#include "folder.h"
#include "runner/kit/safetensors.h"
#include "runner/kit/util.h"

#define STATE_MAGIC "RUNSTATE"
#define STATE_VERSION 1u

int blob_put(blob *b, const void *data, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p)
            return err_set("out of memory (%zu bytes of trainer state)", cap);
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
    return 0;
}

int blob_get(blob *b, void *data, size_t n)
{
    if (b->at + n > b->n)
        return err_set("trainer state ends early (needed %zu more bytes at %zu of %zu)", n, b->at, b->n);
    memcpy(data, b->p + b->at, n);
    b->at += n;
    return 0;
}

void blob_free(blob *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* Checkpoint file name of a store name: backbone tensors keep their
 * Hugging Face names. */
static const char *file_name(const char *store_name)
{
    return strncmp(store_name, "backbone.", 9) == 0 ? store_name + 9 : store_name;
}

/* Remove dir and what it holds (files and file-only subfolders: the
 * sentence-transformers module folders). */
static int remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : err_set("%s: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *p = str_printf("%s/%s", dir, e->d_name);
        struct stat sb;
        if (p && lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
            remove_tree(p);
        else if (p)
            unlink(p);
        free(p);
    }
    closedir(d);
    if (rmdir(dir) != 0)
        return err_set("%s: %s", dir, strerror(errno));
    return 0;
}

/* After a failed write (ENOSPC, EFBIG, ...): no half-written dir.tmp/ stays
 * behind; the first error is the one reported. */
static void drop_tmp(const char *tmp)
{
    char first[1024];
    snprintf(first, sizeof first, "%s", err_get());
    remove_tree(tmp);
    err_set("%s", first);
}

static int copy_file(const char *from, const char *to)
{
    char *data = NULL;
    size_t len;
    if (file_read(from, &data, &len) != 0)
        return -1;
    int rc = file_write_atomic(to, data, len);
    free(data);
    return rc;
}

static int write_state(const char *path, const blob *state)
{
    uLongf clen = compressBound((uLong)state->n);
    uint8_t *buf = malloc(32 + clen);
    if (!buf)
        return err_set("out of memory compressing the trainer state");
    if (compress2(buf + 32, &clen, state->p, (uLong)state->n, 1) != Z_OK) {
        free(buf);
        return err_set("%s: zlib could not compress the trainer state", path);
    }
    uint32_t version = STATE_VERSION;
    uint64_t raw = state->n, packed = clen;
    uint32_t crc = (uint32_t)crc32_z(0L, state->p, (z_size_t)state->n);
    memcpy(buf, STATE_MAGIC, 8);
    memcpy(buf + 8, &version, 4);
    memcpy(buf + 12, &crc, 4);
    memcpy(buf + 16, &raw, 8);
    memcpy(buf + 24, &packed, 8);
    int rc = file_write_atomic(path, buf, 32 + clen);
    free(buf);
    return rc;
}

/* The store's tensors in two files: the backbone under its Hugging Face
 * names in model.safetensors, everything else (heads) in heads.safetensors;
 * both with "format": "pt" and the label metadata. */
static int write_tensors(const char *dir, const params *P, const char *const *meta, int nmeta)
{
    st_out *t = calloc((size_t)P->n + 1, sizeof *t);
    const char **kv = calloc(2 * (size_t)nmeta + 2, sizeof *kv);
    char *model = str_printf("%s/model.safetensors", dir), *heads = str_printf("%s/heads.safetensors", dir);
    int rc = -1, nb = 0, nh = 0;
    if (!t || !kv || !model || !heads) {
        err_set("out of memory");
        goto done;
    }
    kv[0] = "format";
    kv[1] = "pt";
    if (nmeta)
        memcpy(kv + 2, meta, 2 * (size_t)nmeta * sizeof *kv);
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < P->n; i++) {
            int backbone = strncmp(P->p[i].name, "backbone.", 9) == 0;
            if (backbone != (pass == 0))
                continue;
            st_out *o = &t[nb + nh];
            o->name = file_name(P->p[i].name);
            o->ndim = P->p[i].ndim;
            memcpy(o->shape, P->p[i].shape, sizeof P->p[i].shape);
            o->data = P->data + P->p[i].offset;
            *(backbone ? &nb : &nh) += 1;
        }
    if (st_write(model, t, nb, kv, nmeta + 1) != 0 || (nh && st_write(heads, t + nb, nh, kv, nmeta + 1) != 0))
        goto done;
    rc = 0;
done:
    free(t);
    free(kv);
    free(model);
    free(heads);
    return rc;
}

/* config.json (the backbone's, or model_dir's copied), the tokenizer files. */
static int write_model_files(const char *tmp, stage *backbone, const char *model_dir)
{
    static const char *const tokenizer_files[] = {"vocab.txt", "tokenizer_config.json", "special_tokens_map.json",
                                                  "tokenizer.json", NULL};
    const runner_backbone_ops *bops = backbone ? backbone->desc->ops : NULL;
    if (bops && backbone->desc->abi_minor >= 1 && bops->save_config) {
        if (bops->save_config(backbone->self, tmp) != 0)
            return -1;
    } else if (model_dir) {
        char *from = str_printf("%s/config.json", model_dir), *to = str_printf("%s/config.json", tmp);
        int bad = !from || !to || copy_file(from, to) != 0;
        free(from);
        free(to);
        if (bad)
            return -1;
    }
    for (int i = 0; model_dir && tokenizer_files[i]; i++) {
        char *from = str_printf("%s/%s", model_dir, tokenizer_files[i]);
        char *to = str_printf("%s/%s", tmp, tokenizer_files[i]);
        int bad = from && to && path_exists(from) && copy_file(from, to) != 0;
        free(from);
        free(to);
        if (bad)
            return -1;
    }
    return 0;
}

/* dir.tmp becomes dir: dir -> dir.old, dir.tmp -> dir, drop dir.old. */
static int swap_in(const char *tmp, const char *old, const char *dir)
{
    if (remove_tree(old) != 0)
        return -1;
    if (path_exists(dir) && rename(dir, old) != 0)
        return err_set("%s: rename: %s", dir, strerror(errno));
    if (rename(tmp, dir) != 0)
        return err_set("%s: rename: %s", tmp, strerror(errno));
    return remove_tree(old);
}

int checkpoint_save(const char *dir, pipeline *pl, const blob *state, stage *backbone,
                    const char *const *meta, int nmeta)
{
    const char *model_dir = folder_of(pl);
    char *tmp = str_printf("%s.tmp", dir), *old = str_printf("%s.old", dir), *path = NULL;
    int rc = -1, made = 0;
    if (!tmp || !old) {
        err_set("out of memory");
        goto done;
    }
    if (pl->P.released) {
        err_set("%s: the values of %d tensors were given back by their stages (an eval-only run); not saved", dir,
                pl->P.released);
        goto done;
    }
    if (remove_tree(tmp) != 0 || dir_make(tmp) != 0)
        goto done;
    made = 1;
    if (write_tensors(tmp, &pl->P, meta, nmeta) != 0 ||
        write_model_files(tmp, backbone, model_dir) != 0 || export_hf_config(tmp, meta, nmeta) != 0 ||
        export_st_files(tmp, pl, model_dir) != 0 || export_heads_json(tmp, pl, meta, nmeta) != 0)
        goto done;
    if (state) {
        path = str_printf("%s/trainer_state.bin", tmp);
        if (!path || write_state(path, state) != 0)
            goto done;
    }
    rc = swap_in(tmp, old, dir);
done:
    if (rc != 0 && made)
        drop_tmp(tmp);
    free(path);
    free(tmp);
    free(old);
    return rc;
}

char *checkpoint_resolve(const char *dir)
{
    char *model = str_printf("%s/model.safetensors", dir);
    int here = model && path_exists(model);
    free(model);
    if (here)
        return str_dup(dir);
    char *old = str_printf("%s.old", dir);
    char *old_model = str_printf("%s.old/model.safetensors", dir);
    int was = old_model && path_exists(old_model);
    free(old_model);
    if (was)
        return old;
    free(old);
    return NULL;
}

int checkpoint_load_params(const char *dir, params *P, int partial, int *missing)
{
    safetensors st = {0}, hs = {0};
    char *path = str_printf("%s/model.safetensors", dir), *heads = str_printf("%s/heads.safetensors", dir);
    int rc = -1, miss = 0;
    if (!path || !heads || st_open(&st, path) != 0 || (path_exists(heads) && st_open(&hs, heads) != 0))
        goto done;
    for (int i = 0; i < P->n; i++) {
        const param *p = &P->p[i];
        const st_tensor *t = st_find(&st, file_name(p->name));
        safetensors *from = &st;
        if (!t && hs.n && (t = st_find(&hs, p->name)))
            from = &hs;
        if (!t) {
            if (partial) {
                miss++;
                continue;
            }
            err_set("%s: no tensor %s", path, file_name(p->name));
            goto done;
        }
        int same = t->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++)
            same = t->shape[d] == p->shape[d];
        if (!same) {
            err_set("%s: tensor %s has %d dimensions [%lld, ...], expected [%lld, ...] x %d", path,
                    t->name, t->ndim, (long long)t->shape[0], (long long)p->shape[0], p->ndim);
            goto done;
        }
        if (st_to_f32(from, t, P->data + p->offset) != 0)
            goto done;
    }
    if (missing)
        *missing = miss;
    rc = 0;
done:
    st_close(&st);
    st_close(&hs);
    free(heads);
    free(path);
    return rc;
}

char *checkpoint_meta(const char *dir, const char *key)
{
    safetensors st = {0};
    char *path = str_printf("%s/model.safetensors", dir), *val = NULL;
    if (path && st_open(&st, path) == 0)
        val = str_dup(st_meta(&st, key));
    st_close(&st);
    free(path);
    return val;
}

int checkpoint_load_state(const char *dir, blob *state)
{
    char *path = str_printf("%s/trainer_state.bin", dir), *data = NULL;
    size_t len = 0;
    int rc = -1;
    memset(state, 0, sizeof *state);
    if (!path || file_read(path, &data, &len) != 0)
        goto done;
    uint32_t version, crc;
    uint64_t raw, packed;
    if (len < 32 || memcmp(data, STATE_MAGIC, 8) != 0) {
        err_set("%s: not a trainer state file (bad magic)", path);
        goto done;
    }
    memcpy(&version, data + 8, 4);
    memcpy(&crc, data + 12, 4);
    memcpy(&raw, data + 16, 8);
    memcpy(&packed, data + 24, 8);
    if (version != STATE_VERSION) {
        err_set("%s: trainer state version %u, this runner reads %u", path, version, STATE_VERSION);
        goto done;
    }
    if (packed != len - 32) {
        err_set("%s: truncated or padded: header says %llu compressed bytes, file holds %zu", path,
                (unsigned long long)packed, len - 32);
        goto done;
    }
    /* deflate expands at most 1032:1; a larger claim would only make us
     * allocate what the header asks (the trainer state is data) */
    if (raw > packed * 1032 + 1024 || raw > SIZE_MAX / 2) {
        err_set("%s: corrupted: header says %llu bytes inflate from %llu", path, (unsigned long long)raw,
                (unsigned long long)packed);
        goto done;
    }
    state->p = malloc(raw ? raw : 1);
    if (!state->p) {
        err_set("out of memory (%llu bytes of trainer state)", (unsigned long long)raw);
        goto done;
    }
    uLongf out = (uLongf)raw;
    if (uncompress(state->p, &out, (const Bytef *)data + 32, (uLong)packed) != Z_OK || out != raw) {
        err_set("%s: corrupted: the compressed state does not inflate to %llu bytes", path,
                (unsigned long long)raw);
        goto done;
    }
    if ((uint32_t)crc32_z(0L, state->p, (z_size_t)raw) != crc) {
        err_set("%s: corrupted: CRC-32 mismatch", path);
        goto done;
    }
    state->n = state->cap = raw;
    rc = 0;
done:
    if (rc != 0)
        blob_free(state);
    free(data);
    free(path);
    return rc;
}

int checkpoint_export(const char *src, const char *dst)
{
    static const char *const files[] = {
        "model.safetensors", "config.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json",
        "tokenizer.json", "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json",
        "1_Pooling/config.json", "heads.safetensors", "heads.json", NULL};
    char *sub = str_printf("%s/1_Pooling", dst), *norm = str_printf("%s/2_Normalize", src);
    int rc = !sub || !norm || dir_make(dst) != 0 || dir_make(sub) != 0 ? -1 : 0;
    for (int i = 0; rc == 0 && files[i]; i++) {
        char *from = str_printf("%s/%s", src, files[i]), *to = str_printf("%s/%s", dst, files[i]);
        if (!from || !to || (path_exists(from) && copy_file(from, to) != 0))
            rc = -1;
        free(from);
        free(to);
    }
    free(sub);
    if (rc == 0 && path_exists(norm)) {
        free(norm);
        norm = str_printf("%s/2_Normalize", dst);
        rc = !norm || dir_make(norm) != 0 ? -1 : 0;
    }
    free(norm);
    return rc;
}
