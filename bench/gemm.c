/* gemm.c — micro-benchmark of the backbone's GEMM shapes (y = x W^T,
 * x (M,K), W (N,K)) on this CPU: OpenBLAS sgemm against oneDNN matmul in
 * f32, bf16 and int8 (u8 activations, s8 weights), with M fixed at
 * primitive creation and with M given at run time. Weights are packed
 * once outside the timing (oneDNN's "any" layout), as the runner does.
 *
 *   build/bench/gemm [M [reps [hidden intermediate]]]
 *
 * M 800 (a batch of 32 sentences), reps 20, hidden 384 and intermediate
 * 1536 (all-MiniLM-L6-v2's) by default; threads: OMP_NUM_THREADS or all.
 * Prints GFLOPS per shape (the best of reps) and the implementation oneDNN
 * chose; bench/encode.sh reads it for the runner's GEMM ceiling. */
#include <cblas.h>
#include <dnnl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK(x)                                                                                 \
    do {                                                                                         \
        dnnl_status_t s_ = (x);                                                                  \
        if (s_ != dnnl_success) {                                                                \
            fprintf(stderr, "%s:%d: %s: status %d\n", __FILE__, __LINE__, #x, (int)s_);         \
            return -1;                                                                           \
        }                                                                                        \
    } while (0)

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static dnnl_engine_t eng;
static dnnl_stream_t stream;

static dnnl_memory_t mem(const dnnl_memory_desc_t *md, void *p)
{
    dnnl_memory_t m = NULL;
    dnnl_memory_create(&m, md, eng, p ? p : DNNL_MEMORY_ALLOCATE);
    return m;
}

/* oneDNN matmul of dt (f32, bf16, u8 x s8) with runtime M or not; GFLOPS */
static int run_dnnl(int M, int K, int N, dnnl_data_type_t sdt, dnnl_data_type_t wdt,
                    int runtime_m, int reps, double *gflops, const char **impl, double *create_ms)
{
    dnnl_memory_desc_t src_md, wei_md, wany_md, dst_md, wplain_md;
    dnnl_dims_t sd = {runtime_m ? DNNL_RUNTIME_DIM_VAL : M, K}, wd = {K, N},
                dd = {runtime_m ? DNNL_RUNTIME_DIM_VAL : M, N};
    CHECK(dnnl_memory_desc_init_by_tag(&src_md, 2, sd, sdt, dnnl_ab));
    CHECK(dnnl_memory_desc_init_by_tag(&wany_md, 2, wd, wdt, dnnl_format_tag_any));
    /* int8 as the runner runs it (src/kit/compute.c): int32 sums, no
     * scales or zero points in oneDNN (they force its jit GEMM) */
    const dnnl_data_type_t ddt = sdt == dnnl_u8 ? dnnl_s32 : dnnl_f32;
    CHECK(dnnl_memory_desc_init_by_tag(&dst_md, 2, dd, ddt, dnnl_ab));
    dnnl_primitive_attr_t attr;
    CHECK(dnnl_primitive_attr_create(&attr));
    dnnl_matmul_desc_t desc;
    CHECK(dnnl_matmul_desc_init(&desc, &src_md, &wany_md, NULL, &dst_md));
    double t0 = now();
    dnnl_primitive_desc_t pd;
    CHECK(dnnl_primitive_desc_create(&pd, &desc, attr, eng, NULL));
    dnnl_primitive_t prim;
    CHECK(dnnl_primitive_create(&prim, pd));
    *create_ms = 1e3 * (now() - t0);
    CHECK(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, impl));
    wei_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    /* weights (N,K) row major = (K,N) with strides {1,K} */
    dnnl_dims_t ws = {1, K};
    CHECK(dnnl_memory_desc_init_by_strides(&wplain_md, 2, wd, wdt, ws));
    size_t es = sdt == dnnl_f32 ? 4 : sdt == dnnl_bf16 ? 2 : 1;
    void *x = calloc((size_t)M * K, es), *w = calloc((size_t)N * K, es);
    float *y = calloc((size_t)M * N, 4);
    memset(x, 1, (size_t)M * K * es); /* tiny values; timing only */
    memset(w, 1, (size_t)N * K * es);
    dnnl_memory_t wplain = mem(&wplain_md, w), wpacked = mem(&wei_md, NULL);
    dnnl_primitive_desc_t rpd;
    CHECK(dnnl_reorder_primitive_desc_create(&rpd, &wplain_md, eng, &wei_md, eng, NULL));
    dnnl_primitive_t reorder;
    CHECK(dnnl_primitive_create(&reorder, rpd));
    dnnl_exec_arg_t rargs[2] = {{DNNL_ARG_FROM, wplain}, {DNNL_ARG_TO, wpacked}};
    CHECK(dnnl_primitive_execute(reorder, stream, 2, rargs));
    dnnl_memory_desc_t src_rt, dst_rt;
    dnnl_dims_t sdm = {M, K}, ddm = {M, N};
    dnnl_memory_desc_init_by_tag(&src_rt, 2, sdm, sdt, dnnl_ab);
    dnnl_memory_desc_init_by_tag(&dst_rt, 2, ddm, ddt, dnnl_ab);
    dnnl_memory_t ms = mem(&src_rt, x), md = mem(&dst_rt, y);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, wpacked}, {DNNL_ARG_DST, md}};
    int nargs = 3;
    CHECK(dnnl_primitive_execute(prim, stream, nargs, args));
    CHECK(dnnl_stream_wait(stream));
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t = now();
        CHECK(dnnl_primitive_execute(prim, stream, nargs, args));
        CHECK(dnnl_stream_wait(stream));
        t = now() - t;
        best = t < best ? t : best;
    }
    *gflops = 2.0 * M * K * N / best * 1e-9;
    free(x);
    free(w);
    free(y);
    return 0;
}

static double run_blas(int M, int K, int N, int reps)
{
    float *x = calloc((size_t)M * K, 4), *w = calloc((size_t)N * K, 4), *y = calloc((size_t)M * N, 4);
    for (size_t i = 0; i < (size_t)M * K; i++)
        x[i] = 0.001f * (float)(i % 7);
    for (size_t i = 0; i < (size_t)N * K; i++)
        w[i] = 0.001f * (float)(i % 5);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, x, K, w, K, 0, y, N);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, x, K, w, K, 0, y, N);
        t = now() - t;
        best = t < best ? t : best;
    }
    free(x);
    free(w);
    free(y);
    return 2.0 * M * K * N / best * 1e-9;
}

/* the training GEMMs of a linear layer (in -> out) over M rows, sgemm of
 * OpenBLAS (blas = 1) or oneDNN: forward x W^T, dx = dy W, dW = dy^T x */
static double run_train(int M, int in, int out, int blas, int which, int reps)
{
    float *x = calloc((size_t)M * in, 4), *W = calloc((size_t)out * in, 4), *dy = calloc((size_t)M * out, 4);
    float *y = calloc((size_t)M * out, 4), *dx = calloc((size_t)M * in, 4), *dW = calloc((size_t)out * in, 4);
    double best = 1e30;
    for (int r = 0; r <= reps; r++) {
        double t = now();
        if (which == 0) {
            if (blas)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, out, in, 1, x, in, W, in, 1, y, out);
            else
                dnnl_sgemm('N', 'T', M, out, in, 1, x, in, W, in, 1, y, out);
        } else if (which == 1) {
            if (blas)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, in, out, 1, dy, out, W, in, 1, dx, in);
            else
                dnnl_sgemm('N', 'N', M, in, out, 1, dy, out, W, in, 1, dx, in);
        } else {
            if (blas)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, M, 1, dy, out, x, in, 1, dW, in);
            else
                dnnl_sgemm('T', 'N', out, in, M, 1, dy, out, x, in, 1, dW, in);
        }
        t = now() - t;
        if (r > 0)
            best = t < best ? t : best;
    }
    free(x);
    free(W);
    free(dy);
    free(y);
    free(dx);
    free(dW);
    return 2.0 * M * in * out / best * 1e-9;
}

/* argv[i] as an integer in 1..max, else 0 */
static int arg_int(int argc, char **argv, int i, int dflt, int max)
{
    if (i >= argc)
        return dflt;
    char *end;
    long v = strtol(argv[i], &end, 10);
    return end != argv[i] && !*end && v >= 1 && v <= max ? (int)v : 0;
}

int main(int argc, char **argv)
{
    int M = arg_int(argc, argv, 1, 800, 1 << 16), reps = arg_int(argc, argv, 2, 20, 10000),
        C = arg_int(argc, argv, 3, 384, 1 << 14), FF = arg_int(argc, argv, 4, 1536, 1 << 16);
    if (argc > 5 || argc == 4 || !M || !reps || !C || !FF) {
        fprintf(stderr, "usage: %s [M [reps [hidden intermediate]]]  (positive integers; "
                        "defaults 800 20 384 1536)\n", argv[0]);
        return 2;
    }
    if (dnnl_engine_create(&eng, dnnl_cpu, 0) || dnnl_stream_create(&stream, eng, dnnl_stream_default_flags))
        return 1;
    printf("M=%d, %d threads, best of %d; oneDNN effective ISA code 0x%x\n", M, omp_get_max_threads(),
           reps, (unsigned)dnnl_get_effective_cpu_isa());
    /* the encoder layer's four: QKV, attention output, FFN up, FFN down */
    const int shapes[][2] = {{C, 3 * C}, {C, C}, {C, FF}, {FF, C}};
    struct { const char *name; dnnl_data_type_t s, w; } kinds[] = {
        {"f32", dnnl_f32, dnnl_f32}, {"bf16", dnnl_bf16, dnnl_bf16}, {"int8", dnnl_u8, dnnl_s8}};
    printf("%-10s %9s", "K x N", "OpenBLAS");
    for (int k = 0; k < 3; k++)
        printf(" %9s %9s", kinds[k].name, "(rt M)");
    printf("\n");
    const char *impls[3][2] = {{0}};
    double cms[3][2];
    for (int s = 0; s < 4; s++) {
        int K = shapes[s][0], N = shapes[s][1];
        printf("%4d x %-4d %9.1f", K, N, run_blas(M, K, N, reps));
        for (int k = 0; k < 3; k++)
            for (int rt = 0; rt < 2; rt++) {
                double g = 0;
                if (run_dnnl(M, K, N, kinds[k].s, kinds[k].w, rt, reps, &g, &impls[k][rt], &cms[k][rt]))
                    g = 0;
                printf(" %9.1f", g);
            }
        printf("\n");
    }
    for (int k = 0; k < 3; k++)
        for (int rt = 0; rt < 2; rt++)
            printf("%s%s: %s (created in %.1f ms)\n", kinds[k].name, rt ? " runtime M" : "",
                   impls[k][rt] ? impls[k][rt] : "-", cms[k][rt]);
    printf("\ntraining GEMMs, f32 sgemm GFLOPS (OpenBLAS / oneDNN): forward x W^T, dx = dy W, dW = dy^T x\n");
    for (int s = 0; s < 4; s++) {
        int K = shapes[s][0], N = shapes[s][1];
        printf("%4d x %-4d", K, N);
        for (int w = 0; w < 3; w++)
            printf("   %6.1f / %6.1f", run_train(M, K, N, 1, w, reps), run_train(M, K, N, 0, w, reps));
        printf("\n");
    }
    return 0;
}
