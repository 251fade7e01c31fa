/* npy.c — NumPy .npy v1.0 float32 matrices (see npy.h). */
#include "runner/kit/npy.h"

#include <errno.h>
#include <stdint.h>
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

/* "'shape': (r, c)" or "'shape': (r,)": both non-negative, r * c * 4 bytes
 * representable. 1 when good. */
static int npy_shape(const char *hdr, long long *r, long long *c)
{
    const char *s = strstr(hdr, "'shape': (");
    char *end;
    if (!s)
        return 0;
    s += strlen("'shape': (");
    if (*s < '0' || *s > '9')
        return 0;
    errno = 0;
    *r = strtoll(s, &end, 10);
    *c = 1;
    if (errno || *end != ',')
        return 0;
    s = end + 1;
    while (*s == ' ')
        s++;
    if (*s != ')') {
        if (*s < '0' || *s > '9')
            return 0;
        *c = strtoll(s, &end, 10);
        if (errno || *end != ')')
            return 0;
    }
    return *r >= 0 && *c >= 0 && (*c == 0 || *r <= (long long)(SIZE_MAX / sizeof(float)) / *c);
}

int npy_parse_f32(const char *path, const char *buf, size_t len, int64_t *rows, int64_t *cols,
                  float **data)
{
    *data = NULL;
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0)
        return err_set("%s: not a .npy file", path);
    size_t hlen, off;
    if (buf[6] == 1) {
        hlen = (unsigned char)buf[8] | (size_t)(unsigned char)buf[9] << 8;
        off = 10;
    } else if (buf[6] == 2 || buf[6] == 3) {
        if (len < 12)
            return err_set("%s: truncated header", path);
        hlen = (unsigned char)buf[8] | (size_t)(unsigned char)buf[9] << 8 |
               (size_t)(unsigned char)buf[10] << 16 | (size_t)(unsigned char)buf[11] << 24;
        off = 12;
    } else {
        return err_set("%s: unknown .npy format version %d", path, (unsigned char)buf[6]);
    }
    if (hlen > len - off)
        return err_set("%s: truncated header", path);
    char *hdr = strndup(buf + off, hlen);
    if (!hdr)
        return err_set("out of memory");
    long long r = 0, c = 1;
    int good = strstr(hdr, "'descr': '<f4'") && strstr(hdr, "'fortran_order': False");
    int shaped = good && npy_shape(hdr, &r, &c);
    free(hdr);
    if (!good)
        return err_set("%s: expected a C-order '<f4' array of 1 or 2 dimensions", path);
    if (!shaped)
        return err_set("%s: bad shape: expected (rows, cols) or (rows,), non-negative, of a size "
                       "this machine can address", path);
    size_t bytes = (size_t)r * (size_t)c * sizeof(float);
    if (bytes != len - off - hlen)
        return err_set("%s: header says %lld x %lld floats (%zu bytes), the file holds %zu", path, r, c,
                       bytes, len - off - hlen);
    *data = malloc(bytes ? bytes : 1);
    if (!*data)
        return err_set("out of memory");
    memcpy(*data, buf + off + hlen, bytes);
    *rows = r;
    *cols = c;
    return 0;
}

int npy_read_f32(const char *path, int64_t *rows, int64_t *cols, float **data)
{
    char *buf = NULL;
    size_t len = 0;
    *data = NULL;
    if (file_read(path, &buf, &len) != 0)
        return -1;
    int rc = npy_parse_f32(path, buf, len, rows, cols, data);
    free(buf);
    return rc;
}
