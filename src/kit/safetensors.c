/* safetensors.c — reader (mmap + jansson, every offset checked) and atomic
 * writer of safetensors files (see safetensors.h). */
#include "runner/kit/safetensors.h"
#include "runner/kit/nn.h"

#include <errno.h>
#include <fcntl.h>
#include <immintrin.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runner/kit/util.h"

/* The format's own limit on the header (safetensors refuses larger). */
#define ST_MAX_HEADER (100u << 20)

size_t st_dtype_size(const char *dtype)
{
    static const struct { const char *name; size_t size; } sizes[] = {
        {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"U64", 8},
        {"I32", 4}, {"U32", 4}, {"I16", 2}, {"U16", 2}, {"I8", 1},  {"U8", 1},
        {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        if (strcmp(dtype, sizes[i].name) == 0)
            return sizes[i].size;
    return 0;
}

void st_close(safetensors *st)
{
    if (!st)
        return;
    for (int i = 0; i < st->n; i++)
        free(st->t[i].name);
    free(st->t);
    for (int i = 0; i < st->nmeta; i++) {
        free(st->meta_key[i]);
        free(st->meta_val[i]);
    }
    free(st->meta_key);
    free(st->meta_val);
    if (st->map)
        munmap(st->map, st->map_len);
    free(st->path);
    memset(st, 0, sizeof *st);
}

static int read_metadata(safetensors *st, json_t *meta)
{
    if (!json_is_object(meta))
        return err_set("%s: malformed header: __metadata__ is not an object", st->path);
    size_t n = json_object_size(meta);
    st->meta_key = calloc(n + 1, sizeof *st->meta_key);
    st->meta_val = calloc(n + 1, sizeof *st->meta_val);
    if (!st->meta_key || !st->meta_val)
        return err_set("out of memory");
    const char *k;
    json_t *v;
    json_object_foreach(meta, k, v) {
        if (!json_is_string(v))
            return err_set("%s: malformed header: __metadata__ value of \"%s\" is not a string",
                           st->path, k);
        st->meta_key[st->nmeta] = str_dup(k);
        st->meta_val[st->nmeta] = str_dup(json_string_value(v));
        st->nmeta++;
        if (!st->meta_key[st->nmeta - 1] || !st->meta_val[st->nmeta - 1])
            return err_set("out of memory");
    }
    return 0;
}

/* One header entry into t; data_size is the size of the data area on disk. */
static int read_entry(safetensors *st, const char *name, json_t *e, const uint8_t *data_area,
                      uint64_t data_size, st_tensor *t)
{
    const char *file = st->path;
    if (!json_is_object(e))
        return err_set("%s: malformed header: tensor %s is not an object", file, name);
    json_t *dtype = json_object_get(e, "dtype"), *shape = json_object_get(e, "shape"),
           *offs = json_object_get(e, "data_offsets");
    if (!json_is_string(dtype) || !json_is_array(shape) || !json_is_array(offs) ||
        json_array_size(offs) != 2)
        return err_set("%s: malformed header: tensor %s needs dtype (string), shape (array) "
                       "and data_offsets ([begin, end])", file, name);
    t->name = str_dup(name);
    if (!t->name)
        return err_set("out of memory");
    snprintf(t->dtype, sizeof t->dtype, "%s", json_string_value(dtype));
    size_t esize = st_dtype_size(t->dtype);
    if (!esize)
        return err_set("%s: tensor %s has unknown dtype \"%s\"", file, name, json_string_value(dtype));
    if (json_array_size(shape) > ST_MAX_DIMS)
        return err_set("%s: tensor %s has %zu dimensions (at most %d supported)", file, name,
                       json_array_size(shape), ST_MAX_DIMS);
    t->ndim = (int)json_array_size(shape);
    uint64_t numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        json_t *x = json_array_get(shape, (size_t)d);
        if (!json_is_integer(x) || json_integer_value(x) < 0 ||
            json_integer_value(x) > ((int64_t)1 << 40))
            return err_set("%s: malformed header: tensor %s: shape[%d] is not a sane "
                           "non-negative integer", file, name, d);
        t->shape[d] = json_integer_value(x);
        /* checked before the product: 2^40 x 2^40 would wrap to 0 */
        if (t->shape[d] && numel > ((uint64_t)1 << 48) / (uint64_t)t->shape[d])
            return err_set("%s: tensor %s: shape too large", file, name);
        numel *= (uint64_t)t->shape[d];
    }
    t->numel = (int64_t)numel;
    json_t *jb = json_array_get(offs, 0), *je = json_array_get(offs, 1);
    if (!json_is_integer(jb) || !json_is_integer(je) || json_integer_value(jb) < 0 ||
        json_integer_value(je) < json_integer_value(jb))
        return err_set("%s: malformed header: tensor %s: data_offsets must be integers "
                       "0 <= begin <= end", file, name);
    uint64_t begin = (uint64_t)json_integer_value(jb), end = (uint64_t)json_integer_value(je);
    if (end - begin != numel * esize)
        return err_set("%s: tensor %s: data_offsets [%llu, %llu) hold %llu bytes, but %s %s "
                       "needs %llu", file, name, (unsigned long long)begin,
                       (unsigned long long)end, (unsigned long long)(end - begin), t->dtype,
                       t->ndim ? "of that shape" : "scalar", (unsigned long long)(numel * esize));
    if (end > data_size)
        return err_set("%s: truncated: tensor %s needs bytes [%llu, %llu) of the data area, "
                       "which has only %llu bytes on disk", file, name,
                       (unsigned long long)begin, (unsigned long long)end,
                       (unsigned long long)data_size);
    t->data = data_area + begin;
    t->nbytes = (size_t)(end - begin);
    return 0;
}

int st_open(safetensors *st, const char *path)
{
    memset(st, 0, sizeof *st);
    json_t *root = NULL;
    int fd = -1;
    st->path = str_dup(path);
    if (!st->path) {
        err_set("out of memory");
        goto fail;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        err_set("%s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        err_set("%s: not a regular file", path);
        goto fail;
    }
    if (sb.st_size < 8) {
        err_set("%s: truncated: %lld bytes, too short for a safetensors header", path,
                (long long)sb.st_size);
        goto fail;
    }
    st->map_len = (size_t)sb.st_size;
    void *m = mmap(NULL, st->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
        err_set("%s: mmap: %s", path, strerror(errno));
        goto fail;
    }
    st->map = m;
    close(fd);
    fd = -1;
    uint64_t hlen;
    memcpy(&hlen, st->map, 8); /* little-endian, as the host */
    if (hlen > ST_MAX_HEADER) {
        err_set("%s: header length %llu is not sane (limit %u bytes): not a safetensors file?",
                path, (unsigned long long)hlen, ST_MAX_HEADER);
        goto fail;
    }
    if (hlen > st->map_len - 8) {
        err_set("%s: truncated: header declares %llu bytes, file has only %zu after the "
                "length", path, (unsigned long long)hlen, st->map_len - 8);
        goto fail;
    }
    json_error_t jerr;
    root = json_loadb((const char *)st->map + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        err_set("%s: malformed header: %s (header line %d, column %d)", path, jerr.text,
                jerr.line, jerr.column);
        goto fail;
    }
    if (!json_is_object(root)) {
        err_set("%s: malformed header: not a JSON object", path);
        goto fail;
    }
    size_t n = json_object_size(root);
    st->t = calloc(n + 1, sizeof *st->t);
    if (!st->t) {
        err_set("out of memory");
        goto fail;
    }
    const uint8_t *data_area = st->map + 8 + hlen;
    uint64_t data_size = st->map_len - 8 - hlen;
    const char *name;
    json_t *e;
    json_object_foreach(root, name, e) {
        if (strcmp(name, "__metadata__") == 0) {
            if (read_metadata(st, e) != 0)
                goto fail;
            continue;
        }
        if (read_entry(st, name, e, data_area, data_size, &st->t[st->n]) != 0) {
            free(st->t[st->n].name);
            goto fail;
        }
        st->n++;
    }
    json_decref(root);
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    json_decref(root);
    st_close(st);
    return -1;
}

const st_tensor *st_find(const safetensors *st, const char *name)
{
    for (int i = 0; i < st->n; i++)
        if (strcmp(st->t[i].name, name) == 0)
            return &st->t[i];
    return NULL;
}

const char *st_meta(const safetensors *st, const char *key)
{
    for (int i = 0; i < st->nmeta; i++)
        if (strcmp(st->meta_key[i], key) == 0)
            return st->meta_val[i];
    return NULL;
}

/* A tensor's pages mapped in one call before they are read: read one by
 * one, each fault mapped 64 KiB, and on this project's VMs a fault costs
 * about 14 us (a MiniLM load took about 1,500). The whole file at once
 * would add it to the peak RSS; each tensor's pages go again with
 * st_release. Advice: a failure changes nothing. */
static void prefault(const st_tensor *t) { (void)mem_populate(t->data, t->nbytes, 0); }

int st_to_f32(const safetensors *st, const st_tensor *t, float *out)
{
    int64_t n = t->numel;
    prefault(t);
    if (strcmp(t->dtype, "F32") == 0) {
        memcpy(out, t->data, (size_t)n * sizeof(float));
    } else if (strcmp(t->dtype, "BF16") == 0) {
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, t->data + 2 * i, 2);
            uint32_t u = (uint32_t)h << 16;
            memcpy(&out[i], &u, 4);
        }
    } else if (strcmp(t->dtype, "F16") == 0) {
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, t->data + 2 * i, 2);
            out[i] = _cvtsh_ss(h);
        }
    } else {
        return err_set("%s: tensor %s has dtype %s; only F32, F16 and BF16 can be read as "
                       "float32", st->path, t->name, t->dtype);
    }
    return 0;
}

int st_to_f32_finite(const safetensors *st, const st_tensor *t, float *out, int64_t *bad)
{
    enum { CHUNK = 16384 }; /* floats converted, then checked while in cache */
    *bad = -1;
    if (strcmp(t->dtype, "F32") != 0) { /* rare on the load path: whole, then checked */
        if (st_to_f32(st, t, out) != 0)
            return -1;
        *bad = nn_first_nonfinite(out, t->numel);
        return 0;
    }
    prefault(t);
    for (int64_t at = 0; at < t->numel && *bad < 0; at += CHUNK) {
        int64_t k = t->numel - at < CHUNK ? t->numel - at : CHUNK;
        memcpy(out + at, t->data + at * (int64_t)sizeof(float), (size_t)k * sizeof(float));
        int64_t i = nn_first_nonfinite(out + at, k);
        if (i >= 0)
            *bad = at + i;
    }
    return 0;
}

void st_release(const safetensors *st, const st_tensor *t)
{
    (void)st;
    mem_drop_pages(t->data, t->nbytes); /* advice: a failure changes nothing */
}

/* ---- writer ---------------------------------------------------------------- */

struct st_writing {
    const char *path;
    const st_out *t;
    int n;
    const char *header;
    size_t hlen; /* padded */
};

static int write_st(FILE *f, void *ctx)
{
    struct st_writing *w = ctx;
    uint64_t len = w->hlen;
    size_t raw = strlen(w->header);
    if (fwrite(&len, 8, 1, f) != 1 || fwrite(w->header, 1, raw, f) != raw)
        return err_set("%s: %s", w->path, strerror(errno));
    for (size_t i = raw; i < w->hlen; i++)
        fputc(' ', f);
    for (int i = 0; i < w->n; i++) {
        size_t numel = 1;
        for (int d = 0; d < w->t[i].ndim; d++)
            numel *= (size_t)w->t[i].shape[d];
        if (numel && fwrite(w->t[i].data, sizeof(float), numel, f) != numel)
            return err_set("%s: %s", w->path, strerror(errno));
    }
    return ferror(f) ? err_set("%s: write error", w->path) : 0;
}

int st_write(const char *path, const st_out *t, int n, const char *const *meta, int nmeta)
{
    json_t *root = json_object(), *jm = NULL;
    char *header = NULL;
    int rc = -1;
    if (!root)
        goto oom;
    if (nmeta > 0) {
        jm = json_object();
        if (!jm || json_object_set_new(root, "__metadata__", jm) != 0)
            goto oom;
        for (int i = 0; i < nmeta; i++)
            if (json_object_set_new(jm, meta[2 * i], json_string(meta[2 * i + 1])) != 0)
                goto oom;
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        if (t[i].ndim < 0 || t[i].ndim > ST_MAX_DIMS) {
            err_set("%s: tensor %s: %d dimensions", path, t[i].name, t[i].ndim);
            goto done;
        }
        if (json_object_get(root, t[i].name)) {
            err_set("%s: tensor %s written twice", path, t[i].name);
            goto done;
        }
        for (int d = 0; d < t[i].ndim; d++)
            if (t[i].shape[d] < 0) {
                err_set("%s: tensor %s: negative shape[%d]", path, t[i].name, d);
                goto done;
            }
        json_t *shape = json_array();
        uint64_t numel = 1;
        for (int d = 0; shape && d < t[i].ndim; d++) {
            json_array_append_new(shape, json_integer(t[i].shape[d]));
            numel *= (uint64_t)t[i].shape[d];
        }
        json_t *e = json_pack("{s:s, s:o, s:[I,I]}", "dtype", "F32", "shape", shape,
                              "data_offsets", (json_int_t)off, (json_int_t)(off + 4 * numel));
        if (!e || json_object_set_new(root, t[i].name, e) != 0)
            goto oom;
        off += 4 * numel;
    }
    header = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!header)
        goto oom;
    struct st_writing w = {path, t, n, header, (strlen(header) + 7) & ~(size_t)7};
    rc = file_write_atomic_with(path, write_st, &w);
    goto done;
oom:
    err_set("%s: out of memory building the header", path);
done:
    free(header);
    json_decref(root);
    return rc;
}
