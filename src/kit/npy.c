/* npy.c — NumPy .npy v1.0 float32 matrices (see npy.h). */
#include "runner/kit/npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner/kit/util.h"

struct npy_out {
    int64_t rows, cols;
    const float *data;
    const char *path;
};

static int npy_emit(FILE *f, void *ctx)
{
    const struct npy_out *o = ctx;
    char dict[128];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %lld), }",
                     (long long)o->rows, (long long)o->cols);
    /* magic(6) + version(2) + header length(2) + dict + pad + '\n' = multiple of 64 */
    int total = 10 + n + 1;
    int pad = (64 - total % 64) % 64;
    unsigned hlen = (unsigned)(n + pad + 1);
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff),
                             (unsigned char)(hlen >> 8)};
    fwrite(pre, 1, sizeof pre, f);
    fwrite(dict, 1, (size_t)n, f);
    for (int i = 0; i < pad; i++)
        fputc(' ', f);
    fputc('\n', f);
    size_t count = (size_t)(o->rows * o->cols);
    if (count && fwrite(o->data, sizeof(float), count, f) != count)
        return err_set("%s: write error", o->path);
    return ferror(f) ? err_set("%s: write error", o->path) : 0;
}

int npy_write_f32(const char *path, int64_t rows, int64_t cols, const float *data)
{
    struct npy_out o = {rows, cols, data, path};
    return file_write_atomic_with(path, npy_emit, &o);
}

int npy_read_f32(const char *path, int64_t *rows, int64_t *cols, float **data)
{
    char *buf = NULL;
    size_t len = 0;
    *data = NULL;
    if (file_read(path, &buf, &len) != 0)
        return -1;
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0) {
        err_set("%s: not a .npy file", path);
        goto fail;
    }
    size_t hlen, off;
    if (buf[6] == 1) {
        hlen = (unsigned char)buf[8] | (size_t)(unsigned char)buf[9] << 8;
        off = 10;
    } else {
        if (len < 12) {
            err_set("%s: truncated header", path);
            goto fail;
        }
        hlen = (unsigned char)buf[8] | (size_t)(unsigned char)buf[9] << 8 |
               (size_t)(unsigned char)buf[10] << 16 | (size_t)(unsigned char)buf[11] << 24;
        off = 12;
    }
    if (off + hlen > len) {
        err_set("%s: truncated header", path);
        goto fail;
    }
    char *hdr = strndup(buf + off, hlen);
    if (!hdr) {
        err_set("out of memory");
        goto fail;
    }
    long long r = 0, c = 1;
    const char *shape = strstr(hdr, "'shape':");
    int good = strstr(hdr, "'descr': '<f4'") && strstr(hdr, "'fortran_order': False") && shape &&
               (sscanf(shape, "'shape': (%lld, %lld)", &r, &c) == 2 ||
                sscanf(shape, "'shape': (%lld,)", &r) == 1);
    free(hdr);
    if (!good) {
        err_set("%s: expected a C-order '<f4' array of 1 or 2 dimensions", path);
        goto fail;
    }
    size_t bytes = (size_t)(r * c) * sizeof(float);
    if (off + hlen + bytes != len) {
        err_set("%s: header says %lld x %lld floats (%zu bytes), the file holds %zu", path, r, c,
                bytes, len - off - hlen);
        goto fail;
    }
    *data = malloc(bytes ? bytes : 1);
    if (!*data) {
        err_set("out of memory");
        goto fail;
    }
    memcpy(*data, buf + off + hlen, bytes);
    *rows = r;
    *cols = c;
    free(buf);
    return 0;
fail:
    free(buf);
    return -1;
}
