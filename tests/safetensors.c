/* safetensors.c — the safetensors reader and writer: round trip, F16/BF16
 * conversion, and every failure path names the file (and the tensor). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runner/kit/safetensors.h"
#include "tap.h"
#include "runner/kit/util.h"

static char dir[256];

/* A file of an explicit header length, header text and data bytes. */
static const char *raw_file(const char *name, uint64_t hlen, const char *header,
                            const void *data, size_t dlen)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    fwrite(&hlen, 8, 1, f);
    fwrite(header, 1, strlen(header), f);
    if (dlen)
        fwrite(data, 1, dlen, f);
    fclose(f);
    return path;
}

static const char *file_with(const char *name, const char *header, const void *data, size_t dlen)
{
    return raw_file(name, strlen(header), header, data, dlen);
}

/* st_open must fail with a message containing each of the needles. */
static void fails_with(const char *path, const char *what, const char *n1, const char *n2)
{
    safetensors st;
    int rc = st_open(&st, path);
    const char *msg = err_get();
    int good = rc == -1 && strstr(msg, path) && (!n1 || strstr(msg, n1)) && (!n2 || strstr(msg, n2));
    ok(good, "%s: fails naming the file%s%s", what, n1 ? " and " : "", n1 ? n1 : "");
    if (!good)
        diag("rc %d, message: %s", rc, msg);
    ok(st.map == NULL && st.n == 0, "%s: nothing left open", what);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/runner-st-test.%ld", (long)getpid());
    dir_make(dir);
    char path[512];
    snprintf(path, sizeof path, "%s/rt.safetensors", dir);

    /* round trip */
    float a[6] = {1, -2, 3.5f, 4, 5, 6e-8f}, b[3] = {0.25f, -0.5f, 1e30f};
    st_out out[] = {
        {"layer.weight", 2, {2, 3}, a},
        {"layer.bias", 1, {3}, b},
        {"scalar", 0, {0}, b},
    };
    const char *meta[] = {"format", "pt", "note", "written by a test"};
    ok(st_write(path, out, 3, meta, 2) == 0, "st_write succeeds");
    safetensors st;
    ok(st_open(&st, path) == 0, "st_open reads it back");
    is(st.n, 3, "three tensors");
    const st_tensor *w = st_find(&st, "layer.weight");
    ok(w && w->ndim == 2 && w->shape[0] == 2 && w->shape[1] == 3 && strcmp(w->dtype, "F32") == 0,
       "shape and dtype of layer.weight");
    float got[6] = {0};
    ok(w && st_to_f32(&st, w, got) == 0 && memcmp(got, a, sizeof a) == 0, "values of layer.weight");
    float got2[6] = {0};
    int64_t bad = 7;
    ok(w && st_to_f32_finite(&st, w, got2, &bad) == 0 && bad == -1 && memcmp(got2, a, sizeof a) == 0,
       "st_to_f32_finite: the values, and no non-finite one");
    const st_tensor *s = st_find(&st, "scalar");
    ok(s && s->ndim == 0 && s->numel == 1, "a scalar has no dimensions and one element");
    ok(st_find(&st, "absent") == NULL, "st_find of an absent name is NULL");
    ok(st_meta(&st, "note") && strcmp(st_meta(&st, "note"), "written by a test") == 0,
       "__metadata__ strings come back");
    ok(((const uint8_t *)w->data - st.map) % 8 == 0, "data area starts 8-byte aligned");
    st_close(&st);
    st_close(&st);
    ok(1, "st_close twice is harmless");

    /* F16 and BF16 conversion */
    uint16_t half[4] = {0x3c00, 0xc000, 0x3555, 0x7bff};   /* 1, -2, ~0.33325, 65504 */
    uint16_t bf[3] = {0x3f80, 0xc0a0, 0x3e80};             /* 1, -5, 0.25 */
    uint8_t data[14];
    memcpy(data, half, 8);
    memcpy(data + 8, bf, 6);
    const char *p = file_with("conv.safetensors",
                              "{\"h\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]},"
                              "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[8,14]}}",
                              data, sizeof data);
    ok(st_open(&st, p) == 0, "F16/BF16 file opens");
    float hf[4], bff[3];
    ok(st_to_f32(&st, st_find(&st, "h"), hf) == 0 && hf[0] == 1 && hf[1] == -2 &&
           fabsf(hf[2] - 0.33325195f) < 1e-7f && hf[3] == 65504,
       "F16 -> float32");
    ok(st_to_f32(&st, st_find(&st, "b"), bff) == 0 && bff[0] == 1 && bff[1] == -5 && bff[2] == 0.25f,
       "BF16 -> float32");
    int64_t bad2 = 7;
    ok(st_to_f32_finite(&st, st_find(&st, "b"), bff, &bad2) == 0 && bad2 == -1 && bff[1] == -5,
       "st_to_f32_finite of BF16: converted, all finite");
    st_close(&st);

    /* a NaN past the first piece st_to_f32_finite checks, and an infinity in BF16 */
    enum { BIG = 40000 };
    float *big = calloc(BIG, sizeof *big), *back = calloc(BIG, sizeof *back);
    uint16_t bfi[2] = {0x3f80, 0x7f80}; /* 1, +inf */
    big[BIG - 3] = NAN;
    st_out nan_out[] = {{"w", 1, {BIG}, big}};
    const char *np = file_with("inf.safetensors", "{\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}",
                               (const uint8_t *)bfi, sizeof bfi);
    char *nan_path = str_printf("%s/nan.safetensors", dir);
    int64_t at = 0;
    ok(big && back && st_write(nan_path, nan_out, 1, NULL, 0) == 0 && st_open(&st, nan_path) == 0 &&
           st_to_f32_finite(&st, st_find(&st, "w"), back, &at) == 0 && at == BIG - 3,
       "st_to_f32_finite: a NaN at element %d found (%lld)", BIG - 3, (long long)at);
    st_close(&st);
    ok(st_open(&st, np) == 0 && st_to_f32_finite(&st, st_find(&st, "b"), back, &at) == 0 && at == 1,
       "st_to_f32_finite of BF16: the infinity at element 1 found");
    st_close(&st);
    free(nan_path);
    free(big);
    free(back);

    int64_t ids[2] = {1, 2};
    p = file_with("i64.safetensors", "{\"ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}",
                  ids, sizeof ids);
    ok(st_open(&st, p) == 0, "an I64 tensor is listed");
    float f2[2];
    ok(st_to_f32(&st, st_find(&st, "ids"), f2) == -1 && strstr(err_get(), "ids") &&
           strstr(err_get(), "I64") && strstr(err_get(), p),
       "converting I64 fails naming file, tensor and dtype");
    st_close(&st);

    /* failure paths */
    snprintf(path, sizeof path, "%s/absent.safetensors", dir);
    fails_with(path, "missing file", "No such file", NULL);
    p = raw_file("short.safetensors", 0, "", NULL, 0);
    FILE *f = fopen(p, "wb");
    fwrite("abc", 1, 3, f);
    fclose(f);
    fails_with(p, "3-byte file", "truncated", NULL);
    fails_with(raw_file("insane.safetensors", (uint64_t)1 << 40, "{}", NULL, 0),
               "absurd header length", "not sane", NULL);
    fails_with(raw_file("hdrcut.safetensors", 4096, "{\"a\":", NULL, 0),
               "header longer than the file", "truncated", "4096");
    fails_with(file_with("badjson.safetensors", "{\"a\": {\"dtype\": \"F32\",", NULL, 0),
               "malformed JSON", "malformed header", NULL);
    fails_with(file_with("array.safetensors", "[1,2,3]", NULL, 0), "JSON array header",
               "not a JSON object", NULL);
    fails_with(file_with("nodtype.safetensors", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", a, 4),
               "entry without dtype", "w", "dtype");
    fails_with(file_with("dtype.safetensors",
                         "{\"w\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]}}", a, 4),
               "unknown dtype", "w", "Q4");
    fails_with(file_with("negshape.safetensors",
                         "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", a, 4),
               "negative dimension", "w", "shape");
    fails_with(file_with("sizes.safetensors",
                         "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", a, 24),
               "offsets inconsistent with shape", "w", "needs 24");
    fails_with(file_with("backwards.safetensors",
                         "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", a, 8),
               "end before begin", "w", "begin <= end");
    fails_with(file_with("trunc.safetensors",
                         "{\"ok\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                         "\"cut\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
                         a, 20),
               "truncated data", "truncated", "tensor cut");
    fails_with(file_with("meta.safetensors", "{\"__metadata__\":{\"k\":1}}", NULL, 0),
               "non-string metadata", "__metadata__", "\"k\"");
    fails_with(file_with("dup.safetensors",
                         "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                         "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", a, 4),
               "duplicate key", "malformed header", "duplicate");

    /* writer failures */
    snprintf(path, sizeof path, "%s/no/such/dir/x.safetensors", dir);
    ok(st_write(path, out, 1, NULL, 0) == -1 && strstr(err_get(), "no/such/dir"),
       "st_write into a missing folder fails naming the path");
    st_out twice[] = {{"t", 1, {1}, a}, {"t", 1, {1}, b}};
    snprintf(path, sizeof path, "%s/twice.safetensors", dir);
    ok(st_write(path, twice, 2, NULL, 0) == -1 && strstr(err_get(), "t written twice"),
       "st_write refuses a name given twice");

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        diag("could not remove %s", dir);
    return done_testing(49);
}
