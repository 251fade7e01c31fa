/* compute.c — the oneDNN seam (src/kit/compute.c): sgemm in every
 * transposition, the linear layer in f32 (bias, no bias, fused GELU), bf16
 * (against bfloat16-rounded inputs summed in double) and int8 (against the
 * exact product within the quantization step), concurrent use from a
 * parallel region, and the failure paths. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "runner/kit/compute.h"
#include "runner/kit/nn.h"
#include "runner/kit/util.h"
#include "tap.h"

static uint64_t rs = 0x9E3779B97F4A7C15ull;
static float frand(void) /* uniform (-1, 1) */
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (float)((rs >> 11) * (1.0 / 9007199254740992.0)) * 2 - 1;
}

static float *rand_vec(int64_t n)
{
    float *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++)
        v[i] = frand();
    return v;
}

static float bf16_round(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fff + ((u >> 16) & 1);
    u &= 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}

enum { N = 45, IN = 64, OUT = 96 };

/* ref (N,OUT) = x W^T + b in double, inputs through round() */
static void reference(double *ref, const float *x, const float *W, const float *b, int gelu,
                      float (*round)(float))
{
    for (int i = 0; i < N; i++)
        for (int o = 0; o < OUT; o++) {
            double s = b ? b[o] : 0;
            for (int k = 0; k < IN; k++)
                s += (double)round(x[i * IN + k]) * round(W[o * IN + k]);
            ref[i * OUT + o] = gelu ? 0.5 * s * (1 + erf(s / sqrt(2.0))) : s;
        }
}

static float same(float f) { return f; }

static double max_diff(const float *y, const double *ref, int n)
{
    double m = 0;
    for (int i = 0; i < n; i++)
        m = fmax(m, fabs(y[i] - ref[i]));
    return m;
}

static void test_sgemm(void)
{
    enum { M = 7, K = 5, Q = 6 };
    float *A = rand_vec(M * K), *B = rand_vec(K * Q), C[M * Q], At[K * M], Bt[Q * K];
    for (int i = 0; i < M; i++)
        for (int k = 0; k < K; k++)
            At[k * M + i] = A[i * K + k];
    for (int k = 0; k < K; k++)
        for (int j = 0; j < Q; j++)
            Bt[j * K + k] = B[k * Q + j];
    double ref[M * Q];
    for (int i = 0; i < M; i++)
        for (int j = 0; j < Q; j++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += (double)A[i * K + k] * B[k * Q + j];
            ref[i * Q + j] = s;
        }
    const char t[2] = {'N', 'T'};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            for (int i = 0; i < M * Q; i++)
                C[i] = 1;
            int rc = compute_sgemm(t[ta], t[tb], M, Q, K, 2.0f, ta ? At : A, ta ? M : K,
                                   tb ? Bt : B, tb ? K : Q, 1.0f, C, Q);
            double e = 0;
            for (int i = 0; i < M * Q; i++)
                e = fmax(e, fabs(C[i] - (2 * ref[i] + 1)));
            ok(rc == 0 && e < 1e-5, "sgemm %c%c: C = 2 op(A) op(B) + C (%.1e)", t[ta], t[tb], e);
        }
    ok(compute_sgemm('X', 'N', M, Q, K, 1, A, K, B, Q, 0, C, Q) == -1 && strstr(err_get(), "sgemm"),
       "sgemm with a bad transposition flag fails with a message");
    free(A);
    free(B);
}

static void test_f32(const float *x, const float *W, const float *b)
{
    float y[N * OUT];
    double ref[N * OUT];
    compute_linear *l = NULL, *g = NULL;
    int rc = compute_linear_create(&l, "f32", IN, OUT, COMPUTE_F32, COMPUTE_POST_NONE);
    rc = rc || compute_linear_pack(l, W);
    if (!ok(rc == 0, "f32 linear created (%s)", rc ? err_get() : compute_linear_impl(l)))
        return;
    reference(ref, x, W, b, 0, same);
    rc = compute_linear_forward(l, y, x, W, b, N);
    ok(rc == 0 && max_diff(y, ref, N * OUT) < 1e-5, "f32 linear = x W^T + b (%.1e)",
       max_diff(y, ref, N * OUT));
    reference(ref, x, W, NULL, 0, same);
    rc = compute_linear_forward(l, y, x, W, NULL, N);
    ok(rc == 0 && max_diff(y, ref, N * OUT) < 1e-5, "f32 linear without bias (%.1e)",
       max_diff(y, ref, N * OUT));
    ok(compute_linear_forward(l, y, x, W, b, 0) == 0, "zero rows is a no-op");
    rc = compute_linear_create(&g, "gelu", IN, OUT, COMPUTE_F32, COMPUTE_POST_GELU);
    if (!ok(rc == 0, "f32 linear with GELU created")) {
        compute_linear_free(l);
        return;
    }
    reference(ref, x, W, b, 1, same);
    rc = compute_linear_forward(g, y, x, W, b, N);
    ok(rc == 0 && max_diff(y, ref, N * OUT) < 1e-5, "fused GELU = exact erf GELU of x W^T + b (%.1e)",
       max_diff(y, ref, N * OUT));
    /* several threads at once, each its own rows */
    float y2[N * OUT];
    rc = 0;
#pragma omp parallel for num_threads(3) reduction(| : rc)
    for (int part = 0; part < 3; part++)
        rc |= compute_linear_forward(g, y2 + part * 15 * OUT, x + part * 15 * IN, W, b, 15);
    double d = 0;
    for (int i = 0; i < N * OUT; i++)
        d = fmax(d, fabs(y[i] - y2[i]));
    ok(rc == 0 && d < 1e-5, "concurrent calls from 3 threads give the same rows (%.1e)", d);
    compute_linear_free(l);
    compute_linear_free(g);
}

static void test_bf16(const float *x, const float *W, const float *b)
{
    float y[N * OUT];
    double ref[N * OUT];
    compute_linear *l = NULL;
    int rc = compute_linear_create(&l, "bf16", IN, OUT, COMPUTE_BF16, COMPUTE_POST_NONE);
    rc = rc || compute_linear_pack(l, W);
    int packed = l && compute_linear_precision(l) == COMPUTE_BF16 ? compute_linear_bytes(l) >= IN * OUT * 2 : 1;
    if (!ok(rc == 0 && packed, "bf16 linear created, weights packed where bf16 runs (%s)",
            rc ? err_get() : compute_linear_impl(l)))
        return;
    int bf = compute_linear_precision(l) == COMPUTE_BF16; /* else f32 runs: exact inputs */
    reference(ref, x, W, b, 0, bf ? bf16_round : same);
    rc = compute_linear_forward(l, y, x, NULL, b, N);
    ok(rc == 0 && max_diff(y, ref, N * OUT) < 1e-4, "bf16 linear = %s inputs, float32 sums (%.1e)",
       bf ? "bfloat16" : "float32 (no bf16 kernel here)", max_diff(y, ref, N * OUT));
    compute_linear_free(l);
}

static void test_int8(const float *x, const float *W, const float *b)
{
    float y[N * OUT];
    double ref[N * OUT];
    compute_linear *l = NULL;
    int rc = compute_linear_create(&l, "int8", IN, OUT, COMPUTE_INT8, COMPUTE_POST_GELU);
    rc = rc || compute_linear_pack(l, W);
    if (!ok(rc == 0, "int8 linear created, weights quantized (%s)", rc ? err_get() : compute_linear_impl(l)))
        return;
    reference(ref, x, W, b, 1, same);
    /* |x| < 1, |W| < 1: steps 2/255 and 1/127 over 64 products */
    rc = compute_linear_forward(l, y, x, NULL, b, N);
    double e = max_diff(y, ref, N * OUT);
    ok(rc == 0 && e < 0.15, "int8 linear + GELU within quantization error of the exact (%.3f)", e);
    double dot = 0, na = 0, nb = 0;
    for (int i = 0; i < N * OUT; i++) {
        dot += y[i] * ref[i];
        na += (double)y[i] * y[i];
        nb += ref[i] * ref[i];
    }
    cmp_ok(dot / sqrt(na * nb), >, 0.999, "int8 output cosine to the exact one");
    float y2[N * OUT];
    nn_use_avx512(0);
    rc = compute_linear_forward(l, y2, x, NULL, b, N);
    nn_use_avx512(1);
    double pd = 0;
    for (int i = 0; i < N * OUT; i++)
        pd = fmax(pd, fabs(y[i] - y2[i]));
    /* the same quantized bytes; only GELU's generic and AVX-512 erf differ (<= 5e-7) */
    ok(rc == 0 && pd < 2e-6, "int8: generic and AVX-512 paths agree (%.1e)", pd);
    compute_linear_free(l);
}

/* A row's result does not depend on how many rows share the call: the
 * packed precisions run blocks of 256 rows, then one of the rest rounded
 * up to 16 that overlaps the one before it (or, under 256 rows, a multiple
 * of 16 and 16 more), and fewer than 16 rows padded to 16. */
static void test_row_blocks(compute_precision p, const float *W, const float *b)
{
    enum { BIG = 600 };
    /* block_next's cases: under 16 rows, multiples of 16, under 256 rows
     * and not (two blocks), 256 and more (the last block overlapping) */
    const int counts[] = {1, 15, 16, 17, 45, 100, 160, 255, 256, 257, 299, 511, 599};
    float *x = rand_vec(BIG * IN), *all = malloc(BIG * OUT * sizeof *all), *y = malloc(BIG * OUT * sizeof *y);
    compute_linear *l = NULL;
    int rc = !x || !all || !y || compute_linear_create(&l, "blocks", IN, OUT, p, COMPUTE_POST_GELU) ||
             compute_linear_pack(l, W) || compute_linear_forward(l, all, x, NULL, b, BIG);
    double d = rc ? 1 : 0;
    for (size_t k = 0; !rc && k < sizeof counts / sizeof *counts; k++) {
        int n = counts[k];
        rc = compute_linear_forward(l, y, x + (BIG - n) * IN, NULL, b, n); /* the last n rows */
        for (int i = 0; i < n * OUT; i++)
            d = fmax(d, fabs(y[i] - all[(BIG - n) * OUT + i]));
    }
    /* bit for bit on the fixed-rows (brgemm) path; where this CPU (or
     * valgrind's) has no such kernel for p, the run-time-rows GEMM may
     * order sums by rows */
    double bound = l && strncmp(compute_linear_impl(l), "brg", 3) == 0 ? 0 : 1e-5;
    ok(rc == 0 && d <= bound, "%s (%s): 1 .. 599 rows give the rows of one 600-row call (%.1e)",
       compute_precision_name(p), l ? compute_linear_impl(l) : "?", d);
    compute_linear_free(l);
    free(x);
    free(all);
    free(y);
}

/* Packed into the caller's memory (kit 1.9), a layer gives the same bits
 * as packed into its own; the misuses fail with the layer's name. */
static void test_pack_memory(compute_precision p, const float *x, const float *W, const float *b)
{
    compute_linear *own = NULL, *lent = NULL;
    float *y1 = malloc(N * OUT * sizeof *y1), *y2 = malloc(N * OUT * sizeof *y2);
    int rc = !y1 || !y2 || compute_linear_create(&own, "own", IN, OUT, p, COMPUTE_PACKED) ||
             compute_linear_create(&lent, "lent", IN, OUT, p, COMPUTE_PACKED);
    size_t n = rc ? 0 : compute_linear_pack_size(lent);
    char *mem = n ? mem_alloc(n + 64) : NULL;
    int misaligned = mem && compute_linear_pack_memory(lent, mem + 8) == -1 && strstr(err_get(), "lent");
    rc = rc || !mem || compute_linear_pack_memory(lent, mem) || compute_linear_pack(own, W) ||
         compute_linear_pack(lent, W) || compute_linear_forward(own, y1, x, NULL, b, N) ||
         compute_linear_forward(lent, y2, x, NULL, b, N);
    int twice = !rc && compute_linear_pack_memory(lent, mem) == -1 && strstr(err_get(), "already packed");
    ok(!rc && n > 0 && compute_linear_bytes(lent) == n && memcmp(y1, y2, N * OUT * sizeof *y1) == 0 &&
           misaligned && twice,
       "%s: packed into the caller's %zu bytes, the same bits; unaligned memory and a second block refused",
       compute_precision_name(p), n);
    compute_linear_free(own);
    compute_linear_free(lent); /* leaves mem alone: valgrind would see a double free */
    mem_free(mem);
    free(y1);
    free(y2);
}

/* The feed-forward block (up with GELU, then down) as one call gives the
 * rows of the two calls bit for bit, at every row count of block_next's
 * cases; the fused path leaves the intermediate buffer alone. */
static const char *ffn_note = ""; /* how the kernels between the GEMMs run, if not the best way */

static void test_ffn(compute_precision p, const float *W, const float *b)
{
    enum { BIG = 600 };
    const int counts[] = {1, 15, 16, 17, 45, 100, 257, 299, 600};
    float *x = rand_vec(BIG * IN), *W2 = rand_vec(IN * OUT), *b2 = rand_vec(IN);
    float *g = malloc(BIG * OUT * sizeof *g), *y1 = malloc(BIG * IN * sizeof *y1);
    float *y2 = malloc(BIG * IN * sizeof *y2);
    compute_linear *up = NULL, *down = NULL;
    int rc = !x || !W2 || !b2 || !g || !y1 || !y2 ||
             compute_linear_create(&up, "ffn.up", IN, OUT, p, COMPUTE_POST_GELU | COMPUTE_PACKED) ||
             compute_linear_create(&down, "ffn.down", OUT, IN, p, COMPUTE_PACKED) ||
             compute_linear_pack(up, W) || compute_linear_pack(down, W2);
    int same = !rc, untouched = !rc;
    const int fused = !rc && strncmp(compute_linear_impl(up), "brg", 3) == 0;
    for (size_t k = 0; !rc && k < sizeof counts / sizeof *counts; k++) {
        int n = counts[k];
        rc = compute_linear_forward(up, g, x, NULL, b, n) || compute_linear_forward(down, y1, g, NULL, b2, n);
        for (int i = 0; i < n * OUT; i++)
            g[i] = NAN;
        rc = rc || compute_ffn_forward(up, down, y2, x, b, b2, g, n);
        same = same && memcmp(y1, y2, (size_t)n * IN * sizeof *y1) == 0;
        for (int i = 0; n >= 16 && fused && i < n * OUT; i++)
            untouched = untouched && isnan(g[i]);
    }
    ok(rc == 0 && same && untouched, "%s (%s%s): the feed-forward block of 1 .. 600 rows in one call is "
       "the two layers' calls bit for bit%s", compute_precision_name(p), up ? compute_linear_impl(up) : "?",
       nn_avx512() ? ffn_note : ", portable loops", fused ? ", a block of rows at a time" : "");
    compute_linear_free(up);
    compute_linear_free(down);
    free(x);
    free(W2);
    free(b2);
    free(g);
    free(y1);
    free(y2);
}

/* compute_to_bf16 (AVX-512 where there is, with or without AVX512_BF16's
 * conversion: what), in chunks, is compute_bf16_round bit for bit: ties,
 * NaN, infinities, denormals; in either vector of a pair, and in the last
 * chunk's single vector (53 = 32 + 16 + 5 values) */
static void test_to_bf16(const char *what)
{
    enum { M = 3 * 4096 + 53 };
    const uint32_t special[] = {0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7f800001u, 0xffbfffffu,
                                0x00000001u, 0x807fffffu, 0x3f808000u, 0x3f818000u, 0x3f80ffffu,
                                0x7f7fffffu, 0x00008000u, 0x00018000u, 0x80000000u};
    float *x = rand_vec(M);
    uint16_t *o = malloc(M * sizeof *o);
    int bad = !x || !o;
    for (size_t i = 0; !bad && i < sizeof special / sizeof *special; i++)
        memcpy(&x[100 + 17 * i], &special[i], 4);
    if (!bad) {
        memcpy(&x[M - 45], &special[5], 4); /* denormals: the last pair */
        memcpy(&x[M - 21], &special[6], 4); /* and the single vector after it */
    }
    if (!bad)
        compute_to_bf16(o, x, M);
    for (int i = 0; !bad && i < M; i++)
        bad = o[i] != compute_bf16_round(x[i]);
    ok(!bad, "compute_to_bf16 of %d values is compute_bf16_round of each (NaN, inf, denormals, ties; %s)", M,
       what);
    free(x);
    free(o);
}

int main(void)
{
    diag("%s", compute_describe());
    ok(compute_precision_parse("f32") == COMPUTE_F32 && compute_precision_parse("bf16") == COMPUTE_BF16 &&
           compute_precision_parse("int8") == COMPUTE_INT8 && compute_precision_parse("fp16") == -1 &&
           compute_precision_parse(NULL) == -1,
       "precision names parse, unknown ones do not");
    ok(strcmp(compute_precision_name(COMPUTE_INT8), "int8") == 0, "precision names print");
    test_sgemm();
    float *x = rand_vec(N * IN), *W = rand_vec(OUT * IN), *b = rand_vec(OUT);
    test_f32(x, W, b);
    test_bf16(x, W, b);
    test_int8(x, W, b);
    test_row_blocks(COMPUTE_BF16, W, b);
    test_row_blocks(COMPUTE_INT8, W, b);
    test_ffn(COMPUTE_F32, W, b);
    test_ffn(COMPUTE_BF16, W, b);
    test_ffn(COMPUTE_INT8, W, b);
    nn_use_avx512(0); /* the portable loops between the GEMMs */
    test_ffn(COMPUTE_BF16, W, b);
    test_ffn(COMPUTE_INT8, W, b);
    nn_use_avx512(3); /* AVX-512 without the AVX512_BF16 conversion */
    ffn_note = ", AVX-512 without AVX512_BF16's conversion";
    test_ffn(COMPUTE_BF16, W, b);
    ffn_note = "";
    test_to_bf16("integer rounding");
    nn_use_avx512(1);
    test_to_bf16(nn_avx512() && __builtin_cpu_supports("avx512bf16") ? "vcvtneps2bf16"
                                                                      : "integer rounding: no AVX512_BF16 here");
    compute_linear *bad = (compute_linear *)1;
    ok(compute_linear_create(&bad, "encoder.layer.0.bad", -3, OUT, COMPUTE_F32, 0) == -1 && !bad &&
           strstr(err_get(), "encoder.layer.0.bad"),
       "a layer oneDNN refuses fails with its name: %s", err_get());
    compute_linear *l1 = NULL, *l2 = NULL;
    float y1[IN], g1[OUT];
    ok(compute_linear_create(&l1, "ffn.a", IN, OUT, COMPUTE_F32, COMPUTE_POST_GELU) == 0 &&
           compute_linear_create(&l2, "ffn.b", IN, OUT, COMPUTE_F32, 0) == 0 &&
           compute_ffn_forward(l1, l2, y1, x, NULL, NULL, g1, 1) == -1 && strstr(err_get(), "ffn.a") &&
           strstr(err_get(), "ffn.b"),
       "a feed-forward block whose layers do not fit fails with both names: %s", err_get());
    compute_linear_free(l1);
    test_pack_memory(COMPUTE_BF16, x, W, b);
    test_pack_memory(COMPUTE_INT8, x, W, b);
    ok(compute_linear_pack_size(l2) == 0 && compute_linear_pack_memory(l2, g1) == -1 &&
           strstr(err_get(), "ffn.b") && strstr(err_get(), "not packed"),
       "f32 read in place packs nothing: size 0, caller's memory refused: %s", err_get());
    compute_linear_free(l2);
    compute_linear_free(NULL);
    ok(1, "compute_linear_free(NULL) is a no-op");
    free(x);
    free(W);
    free(b);
    return done_testing(36);
}
