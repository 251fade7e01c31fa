/* compute.c — the compute seam on oneDNN (see compute.h). One CPU engine
 * for the process; a stream and a scratch buffer per thread; matmul
 * primitives with the row count given at run time, created once per layer. */
#include "runner/kit/compute.h"

#include <dnnl.h>
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner/kit/nn.h"
#include "runner/kit/util.h"
#include "vec512.h"

enum { NFIXED = 16 }; /* row counts of the fixed-rows primitives (FIXED_M) */

struct compute_linear {
    char name[96];
    compute_precision p, asked; /* p: what runs (f32 when oneDNN cannot do asked here) */
    int in, out, post;
    int packed; /* weights packed by compute_linear_pack: bf16, int8, f32 with COMPUTE_PACKED */
    const float *wref; /* f32 fallback: the weights given to compute_linear_pack */
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
    dnnl_memory_desc_t wmd; /* weights as the primitive wants them */
    void *wpacked;          /* bf16 / int8 / packed f32 weights in that layout */
    int wown;               /* wpacked is ours (else the caller's: compute_linear_pack_memory) */
    size_t wbytes;
    float *wscale; /* int8: per output channel */
    int32_t *wsum; /* int8: sum of each output channel's int8 weights */
    float *zeros;  /* the bias when none is given */
    /* bf16, int8, packed f32: oneDNN's brgemm kernels want the rows at
     * creation; they fuse the bias (GELU: block_after, see make_attr) and
     * read the packed weights without copying them. One primitive per row
     * count of FIXED_M, all with the same weights layout (else the
     * run-time-rows one, prim). */
    int fixed_mode;
    dnnl_primitive_desc_t fixed_pd[NFIXED];
    dnnl_primitive_t fixed[NFIXED];
    size_t fixed_pad[NFIXED]; /* bytes of scratchpad each (per calling thread) */
};

/* 256 down to 16 by 16: a call's rows are blocks of 256 and one block of
 * the rest rounded up to 16 (block_next). With only 256, 128, 64, 32 and
 * 16, the rest took up to four blocks, and small blocks run slower (one
 * thread, the encoder's 24 layers in turn, bf16 on a Zen 5: 345 GFLOPS at
 * 16 rows, 375 at 32, 400 at 64, 412-423 from 96 up): on the SST-2 dev
 * set's groups, modelled, 3.5 % over the GEMMs' time at 256 rows against
 * 1.9 %. Encode at 2 threads, medians of alternating runs: bf16 +1.9 %
 * (13), f32 +1.6 % (9), int8 +0.5 % (9); the same bits and peak RSS; a
 * process's start 13-20 ms longer (make_fixed). */
static const int FIXED_M[NFIXED] = {256, 240, 224, 208, 192, 176, 160, 144, 128, 112, 96, 80, 64, 48, 32, 16};

static dnnl_engine_t engine;
static dnnl_status_t engine_status = dnnl_runtime_error;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;

/* Each thread's stream and scratch live in a slot of this table (a thread
 * keeps its slot): reachable from a global, so leak checkers do not count
 * the ones of pool threads that have ended. */
typedef struct {
    dnnl_stream_t stream;
    void *scratch; /* converted activations */
    size_t cap;
    void *pad; /* oneDNN's scratchpad, and the padded rows of a short batch */
    size_t padcap;
} thread_slot;
enum { MAX_SLOTS = 1024 };
static thread_slot slots[MAX_SLOTS];
static int nslots;
static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local thread_slot *tl_slot;
static _Thread_local thread_slot tl_own; /* when the table is full */

static void engine_init(void) { engine_status = dnnl_engine_create(&engine, dnnl_cpu, 0); }

static thread_slot *slot_get(void)
{
    if (!tl_slot) {
        pthread_mutex_lock(&slots_lock);
        tl_slot = nslots < MAX_SLOTS ? &slots[nslots++] : &tl_own;
        pthread_mutex_unlock(&slots_lock);
    }
    return tl_slot;
}

static int dnnl_fail(const char *what, const char *name, dnnl_status_t s)
{
    return err_set("oneDNN: %s%s%s failed (status %d)", what, name ? " of " : "", name ? name : "",
                   (int)s);
}

static dnnl_stream_t stream_get(void)
{
    pthread_once(&engine_once, engine_init);
    thread_slot *t = slot_get();
    if (engine_status != dnnl_success || !t)
        return NULL;
    if (!t->stream && dnnl_stream_create(&t->stream, engine, dnnl_stream_default_flags) != dnnl_success)
        t->stream = NULL;
    return t->stream;
}

static void *grow_buffer(void **p, size_t *cap, size_t bytes)
{
    if (bytes <= *cap)
        return *p;
    mem_free(*p);
    *cap = 0;
    *p = mem_alloc(bytes + bytes / 4);
    if (*p) {
        *cap = bytes + bytes / 4;
        (void)mem_populate(*p, bytes, 1); /* advice: written next */
    }
    return *p;
}

/* this thread's scratch, at least bytes long (after stream_get) */
static void *scratch_get(size_t bytes) { return grow_buffer(&tl_slot->scratch, &tl_slot->cap, bytes); }

/* this thread's second buffer (oneDNN's scratchpad, padded rows) */
static void *pad_get(size_t bytes) { return grow_buffer(&tl_slot->pad, &tl_slot->padcap, bytes); }

int compute_precision_parse(const char *name)
{
    static const char *const names[] = {"f32", "bf16", "int8"};
    for (int i = 0; name && i < 3; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

const char *compute_precision_name(compute_precision p)
{
    return p == COMPUTE_BF16 ? "bf16" : p == COMPUTE_INT8 ? "int8" : "f32";
}

int compute_sgemm(char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                  int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    if (M == 0 || N == 0)
        return 0;
    dnnl_status_t s = dnnl_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    if (s != dnnl_success)
        return err_set("oneDNN: sgemm %c%c of %lld x %lld x %lld failed (status %d)", ta, tb,
                       (long long)M, (long long)N, (long long)K, (int)s);
    return 0;
}

/* ---- primitive ------------------------------------------------------------------ */

static dnnl_data_type_t src_type(compute_precision p)
{
    return p == COMPUTE_BF16 ? dnnl_bf16 : p == COMPUTE_INT8 ? dnnl_u8 : dnnl_f32;
}

static dnnl_data_type_t wei_type(compute_precision p)
{
    return p == COMPUTE_BF16 ? dnnl_bf16 : p == COMPUTE_INT8 ? dnnl_s8 : dnnl_f32;
}

/* attributes: the GELU post-op for the run-time-rows primitive of f32
 * and bf16. The fixed-rows primitives leave GELU to block_after, like
 * int8's dequantization: on the FFN up GEMM (256 x 384 x 1536, one
 * thread, AMD EPYC Zen 5) the call plus the kit's own GELU on the block
 * still in cache took 3.7 % (f32) and 8.1 % (bf16) less time than the
 * call with oneDNN's fused gelu_erf. */
static dnnl_status_t make_attr(dnnl_primitive_attr_t *attr, compute_precision p, int post, int64_t R)
{
    dnnl_status_t s = dnnl_primitive_attr_create(attr);
    if (s == dnnl_success && post == COMPUTE_POST_GELU && p != COMPUTE_INT8 && R == DNNL_RUNTIME_DIM_VAL) {
        dnnl_post_ops_t po;
        s = dnnl_post_ops_create(&po);
        if (s == dnnl_success) {
            s = dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_gelu_erf, 0, 0);
            if (s == dnnl_success)
                s = dnnl_primitive_attr_set_post_ops(*attr, po);
            dnnl_post_ops_destroy(po);
        }
    }
    return s;
}

/* The matmul of l over R rows (DNNL_RUNTIME_DIM_VAL: given at run time;
 * fixed rows: the scratchpad is the caller's): src (R, in), weights
 * (in, out) in layout want (NULL: oneDNN's choice), bias (1, out), dst (R,
 * out); int8: dst int32 sums of u8 x s8 products, no bias (int8_epilogue) */
static dnnl_status_t make_pd(const compute_linear *l, int64_t R, const dnnl_memory_desc_t *want,
                             dnnl_primitive_desc_t *pd)
{
    dnnl_dims_t sd = {R, l->in}, wd = {l->in, l->out}, bd = {1, l->out}, dd = {R, l->out};
    dnnl_dims_t wstr = {1, l->in}; /* W (out,in) row-major is W^T with these strides */
    dnnl_memory_desc_t smd, wmd, bmd, dmd;
    dnnl_status_t s = dnnl_memory_desc_init_by_tag(&smd, 2, sd, src_type(l->p), dnnl_ab);
    /* f32 reads the weights in place, but for the fixed rows of packed f32 */
    const int in_place = l->p == COMPUTE_F32 && !(l->packed && R != DNNL_RUNTIME_DIM_VAL);
    if (s == dnnl_success && want)
        wmd = *want;
    else if (s == dnnl_success)
        s = in_place ? dnnl_memory_desc_init_by_strides(&wmd, 2, wd, dnnl_f32, wstr)
                     : dnnl_memory_desc_init_by_tag(&wmd, 2, wd, wei_type(l->p), dnnl_format_tag_any);
    if (s == dnnl_success)
        s = dnnl_memory_desc_init_by_tag(&bmd, 2, bd, dnnl_f32, dnnl_ab);
    if (s == dnnl_success)
        s = dnnl_memory_desc_init_by_tag(&dmd, 2, dd, l->p == COMPUTE_INT8 ? dnnl_s32 : dnnl_f32,
                                         dnnl_ab);
    dnnl_matmul_desc_t desc;
    if (s == dnnl_success)
        s = dnnl_matmul_desc_init(&desc, &smd, &wmd, l->p == COMPUTE_INT8 ? NULL : &bmd, &dmd);
    dnnl_primitive_attr_t attr = NULL;
    if (s == dnnl_success)
        s = make_attr(&attr, l->p, l->post, R);
    if (s == dnnl_success && R != DNNL_RUNTIME_DIM_VAL)
        s = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (s == dnnl_success)
        s = dnnl_primitive_desc_create(pd, &desc, attr, engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    return s;
}

static dnnl_status_t make_primitive(compute_linear *l)
{
    dnnl_status_t s = make_pd(l, DNNL_RUNTIME_DIM_VAL, NULL, &l->pd);
    if (s == dnnl_success)
        s = dnnl_primitive_create(&l->prim, l->pd);
    if (s == dnnl_success)
        l->wmd = *dnnl_primitive_desc_query_md(l->pd, dnnl_query_weights_md, 0);
    return s;
}

static void free_fixed(compute_linear *l)
{
    for (int i = 0; i < NFIXED; i++) {
        dnnl_primitive_destroy(l->fixed[i]);
        dnnl_primitive_desc_destroy(l->fixed_pd[i]);
        l->fixed[i] = NULL;
        l->fixed_pd[i] = NULL;
    }
    l->fixed_mode = 0;
}

/* bf16, int8, packed f32: the fixed-rows primitives, when oneDNN has
 * brgemm kernels for them here and they agree on the weights layout (then
 * the weights are packed in it); otherwise the run-time-rows primitive
 * alone (f32: then reading the weights in place, unpacked). The 16 sizes
 * take 25-34 ms for the encoder's 24 layers, against 10-12 ms for the 5
 * of before (the layers after the first of each shape come from oneDNN's
 * primitive cache); created by two threads at once, 33-43 ms. */
static void make_fixed(compute_linear *l)
{
    const char *impl = NULL;
    int ok = 1;
    for (int i = 0; ok && i < NFIXED; i++) {
        /* the layout oneDNN picks for 256 rows, asked of the others: left
         * to choose, AMX takes narrower blocks for fewer rows when out is
         * not a multiple of 64 */
        const dnnl_memory_desc_t *w0 = i ? dnnl_primitive_desc_query_md(l->fixed_pd[0], dnnl_query_weights_md, 0) : NULL;
        ok = make_pd(l, FIXED_M[i], w0, &l->fixed_pd[i]) == dnnl_success &&
             dnnl_primitive_create(&l->fixed[i], l->fixed_pd[i]) == dnnl_success;
        if (ok)
            ok = dnnl_memory_desc_equal(dnnl_primitive_desc_query_md(l->fixed_pd[i], dnnl_query_weights_md, 0),
                                        dnnl_primitive_desc_query_md(l->fixed_pd[0], dnnl_query_weights_md, 0));
        if (ok)
            l->fixed_pad[i] = dnnl_memory_desc_get_size(
                dnnl_primitive_desc_query_md(l->fixed_pd[i], dnnl_query_scratchpad_md, 0));
    }
    if (ok && dnnl_primitive_desc_query(l->fixed_pd[0], dnnl_query_impl_info_str, 0, &impl) == dnnl_success &&
        strncmp(impl, "brg", 3) == 0) {
        l->fixed_mode = 1;
        l->wmd = *dnnl_primitive_desc_query_md(l->fixed_pd[0], dnnl_query_weights_md, 0);
    } else {
        free_fixed(l);
    }
}

int compute_linear_create(compute_linear **out, const char *name, int in, int outs,
                          compute_precision p, int post)
{
    *out = NULL;
    if (!stream_get())
        return err_set("oneDNN: no CPU engine or stream for %s", name);
    compute_linear *l = calloc(1, sizeof *l);
    if (!l || !(l->zeros = mem_calloc((size_t)outs, sizeof(float)))) {
        free(l);
        return err_set("out of memory for the layer %s", name);
    }
    snprintf(l->name, sizeof l->name, "%s", name);
    l->p = l->asked = p;
    l->in = in;
    l->out = outs;
    l->post = post & COMPUTE_POST_GELU;
    l->packed = p != COMPUTE_F32 || (post & COMPUTE_PACKED);
    dnnl_status_t s = make_primitive(l);
    if (s == dnnl_unimplemented && p != COMPUTE_F32) {
        /* e.g. bf16 on a CPU without AVX-512: float32 instead, said by
         * compute_linear_precision */
        l->p = COMPUTE_F32;
        l->packed = (post & COMPUTE_PACKED) != 0;
        s = make_primitive(l);
    }
    if (s != dnnl_success) {
        compute_linear_free(l);
        return dnnl_fail("matmul primitive", name, s);
    }
    if (l->packed)
        make_fixed(l);
    if (l->p == COMPUTE_F32 && !l->fixed_mode)
        l->packed = 0; /* f32 without brgemm kernels: the weights read in place */
    *out = l;
    return 0;
}

void compute_linear_free(compute_linear *l)
{
    if (!l)
        return;
    dnnl_primitive_destroy(l->prim);
    dnnl_primitive_desc_destroy(l->pd);
    free_fixed(l);
    if (l->wown)
        mem_free(l->wpacked);
    mem_free(l->wscale);
    mem_free(l->wsum);
    mem_free(l->zeros);
    free(l);
}

const char *compute_linear_impl(const compute_linear *l)
{
    const char *impl = NULL;
    if (!l || dnnl_primitive_desc_query(l->fixed_mode ? l->fixed_pd[0] : l->pd, dnnl_query_impl_info_str, 0,
                                        &impl) != dnnl_success)
        return "?";
    return impl;
}

size_t compute_linear_bytes(const compute_linear *l) { return l ? l->wbytes : 0; }

size_t compute_linear_pack_size(const compute_linear *l)
{
    return l && l->packed ? dnnl_memory_desc_get_size(&l->wmd) : 0;
}

int compute_linear_pack_memory(compute_linear *l, void *mem)
{
    if (!l || !l->packed)
        return err_set("%s: its weights are not packed", l ? l->name : "(no layer)");
    if (l->wpacked)
        return err_set("%s: its weights are already packed", l->name);
    if (!mem || ((uintptr_t)mem & 63))
        return err_set("%s: memory for the packed weights must be 64-byte aligned", l->name);
    l->wpacked = mem;
    l->wown = 0;
    return 0;
}

compute_precision compute_linear_precision(const compute_linear *l) { return l->p; }

const char *compute_describe(void)
{
    static char buf[160];
    const dnnl_version_t *v = dnnl_version();
    static const struct { dnnl_cpu_isa_t isa; const char *name; } isas[] = {
        {dnnl_cpu_isa_avx512_core_amx, "avx512_core_amx"},
        {dnnl_cpu_isa_avx512_core_bf16, "avx512_core_bf16"},
        {dnnl_cpu_isa_avx512_core_vnni, "avx512_core_vnni"},
        {dnnl_cpu_isa_avx512_core, "avx512_core"},
        {dnnl_cpu_isa_avx2_vnni, "avx2_vnni"},
        {dnnl_cpu_isa_avx2, "avx2"},
        {dnnl_cpu_isa_avx, "avx"},
        {dnnl_cpu_isa_sse41, "sse41"},
    };
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    const char *name = "generic";
    for (size_t i = 0; i < sizeof isas / sizeof *isas; i++)
        if ((isa & isas[i].isa) == isas[i].isa) {
            name = isas[i].name;
            break;
        }
    snprintf(buf, sizeof buf, "oneDNN %d.%d.%d, ISA %s", v->major, v->minor, v->patch, name);
    return buf;
}

/* ---- weights --------------------------------------------------------------------- */

/* reorder src (md, data) into the primitive's weights layout */
static dnnl_status_t reorder_weights(compute_linear *l, const dnnl_memory_desc_t *md, void *data)
{
    dnnl_stream_t st = stream_get();
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t r = NULL;
    dnnl_memory_t from = NULL, to = NULL;
    dnnl_status_t s = dnnl_reorder_primitive_desc_create(&rpd, md, engine, &l->wmd, engine, NULL);
    if (s == dnnl_success)
        s = dnnl_primitive_create(&r, rpd);
    if (s == dnnl_success)
        s = dnnl_memory_create(&from, md, engine, data);
    if (s == dnnl_success)
        s = dnnl_memory_create(&to, &l->wmd, engine, l->wpacked);
    if (s == dnnl_success) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
        s = dnnl_primitive_execute(r, st, 2, args);
    }
    if (s == dnnl_success)
        s = dnnl_stream_wait(st);
    dnnl_memory_destroy(from);
    dnnl_memory_destroy(to);
    dnnl_primitive_destroy(r);
    dnnl_primitive_desc_destroy(rpd);
    return s;
}

/* 1 when oneDNN's int8 kernels have VNNI (vpdpbusd sums u8 x s8 in int32).
 * Without it they use vpmaddubsw, whose int16 sum of two products
 * saturates past 32767 = 255 * 64.25 * 2: then the weights get 7 bits
 * (ONNX Runtime's reduce_range). */
static int have_vnni(void)
{
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    return (isa & dnnl_cpu_isa_avx512_core_vnni) == dnnl_cpu_isa_avx512_core_vnni ||
           (isa & dnnl_cpu_isa_avx2_vnni) == dnnl_cpu_isa_avx2_vnni;
}

/* per output channel: scale = max |W| / qmax, q = round(W / scale), and
 * the sum of q (for the activations' zero points); qmax 127, or 63
 * without VNNI */
static void quantize_weights(int8_t *q, float *scale, int32_t *sum, const float *W, int in, int out)
{
    const float qmax = have_vnni() ? 127.0f : 63.0f;
#pragma omp parallel for schedule(static)
    for (int o = 0; o < out; o++) {
        const float *w = W + (int64_t)o * in;
        int8_t *qo = q + (int64_t)o * in;
        float mx = 0;
#pragma omp simd reduction(max : mx)
        for (int k = 0; k < in; k++) {
            float a = w[k] < 0 ? -w[k] : w[k];
            mx = a > mx ? a : mx;
        }
        float s = mx > 0 ? mx / qmax : 1.0f, inv = 1.0f / s;
        int32_t t = 0;
        scale[o] = s;
        /* comparisons and rintf (ties to even, as lrintf): they vectorise */
#pragma omp simd reduction(+ : t)
        for (int k = 0; k < in; k++) {
            float v = w[k] * inv;
            v = v > qmax ? qmax : v < -qmax ? -qmax : v;
            int8_t r = (int8_t)(int32_t)rintf(v);
            qo[k] = r;
            t += r;
        }
        sum[o] = t;
    }
}

int compute_linear_pack(compute_linear *l, const float *W)
{
    l->wref = W;
    if (!l->packed)
        return 0;
    if (!stream_get())
        return err_set("oneDNN: no stream to pack %s", l->name);
    const int64_t n = (int64_t)l->in * l->out;
    if (!l->wpacked) {
        l->wpacked = mem_alloc_huge(dnnl_memory_desc_get_size(&l->wmd)); /* kept while the layer lives */
        l->wown = 1;
    }
    if (l->p == COMPUTE_INT8 && !l->wscale)
        l->wscale = mem_alloc((size_t)l->out * sizeof(float));
    if (l->p == COMPUTE_INT8 && !l->wsum)
        l->wsum = mem_alloc((size_t)l->out * sizeof(int32_t));
    if (!l->wpacked || (l->p == COMPUTE_INT8 && (!l->wscale || !l->wsum)))
        return err_set("out of memory for the packed weights of %s", l->name);
    l->wbytes = dnnl_memory_desc_get_size(&l->wmd);
    dnnl_dims_t wd = {l->in, l->out}, wstr = {1, l->in};
    dnnl_memory_desc_t md;
    dnnl_status_t s;
    if (l->p != COMPUTE_INT8) {
        s = dnnl_memory_desc_init_by_strides(&md, 2, wd, dnnl_f32, wstr);
        if (s == dnnl_success)
            s = reorder_weights(l, &md, (void *)W);
    } else {
        int8_t *q = scratch_get((size_t)n); /* this thread's, kept: no fresh pages per layer */
        if (!q)
            return err_set("out of memory quantizing %s", l->name);
        quantize_weights(q, l->wscale, l->wsum, W, l->in, l->out);
        s = dnnl_memory_desc_init_by_strides(&md, 2, wd, dnnl_s8, wstr);
        if (s == dnnl_success)
            s = reorder_weights(l, &md, q);
    }
    return s == dnnl_success ? 0 : dnnl_fail("weights reorder", l->name, s);
}

/* ---- activations ------------------------------------------------------------------ */

static void to_bf16_generic(uint16_t *o, const float *x, int64_t n)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++)
        o[i] = compute_bf16_round(x[i]);
}

/* The loops of to_bf16 and gelu_bf16: STORE2 converts two vectors into
 * 32 values (two bf16x16, or bf16x32_hw_store on AVX512_BF16: on a Zen 5
 * the two kernels' share of a bf16 encode went from 4.9 to 4.1 % with a
 * conversion per vector, the encode +0.9 % and +1.9 % at 2 threads in two
 * alternating A/Bs of 11 and 7 runs), CVT one vector of the tail */
#define STORE2_SW(o, a, b)                                                                         \
    do {                                                                                           \
        _mm256_storeu_si256((__m256i *)(o), bf16x16(a));                                           \
        _mm256_storeu_si256((__m256i *)((o) + 16), bf16x16(b));                                    \
    } while (0)

#define TO_BF16_LOOP(STORE2, CVT)                                                                  \
    int64_t i = 0;                                                                                 \
    for (; i + 32 <= n; i += 32)                                                                   \
        STORE2(o + i, _mm512_loadu_ps(x + i), _mm512_loadu_ps(x + i + 16));                       \
    for (; i + 16 <= n; i += 16)                                                                   \
        _mm256_storeu_si256((__m256i *)(o + i), CVT(_mm512_loadu_ps(x + i)));                      \
    for (; i < n; i++)                                                                             \
        o[i] = compute_bf16_round(x[i]);

AVX512 static void to_bf16_avx512(uint16_t *o, const float *x, int64_t n) { TO_BF16_LOOP(STORE2_SW, bf16x16) }
AVX512BF16 static void to_bf16_avx512bf16(uint16_t *o, const float *x, int64_t n)
{
    TO_BF16_LOOP(bf16x32_hw_store, bf16x16_hw)
}

/* GELU of x as bf16: gelu_forward then to_bf16 in one pass (the step
 * between the two GEMMs of a bf16 feed-forward block) */
#define GELU_BF16_LOOP(STORE2, CVT)                                                                \
    const erf_coefs e = erf_coefs_load();                                                          \
    int64_t i = 0;                                                                                 \
    for (; i + 32 <= n; i += 32) /* two independent chains per step */                            \
        STORE2(o + i, gelu16(&e, _mm512_loadu_ps(x + i)), gelu16(&e, _mm512_loadu_ps(x + i + 16))); \
    for (; i < n; i += 16) {                                                                       \
        __mmask16 m = tail_mask(n - i);                                                            \
        uint16_t t[16];                                                                            \
        _mm256_storeu_si256((__m256i *)t, CVT(gelu16(&e, _mm512_maskz_loadu_ps(m, x + i))));       \
        memcpy(o + i, t, (size_t)(n - i < 16 ? n - i : 16) * sizeof *t);                           \
    }

AVX512 static void gelu_bf16_avx512(uint16_t *o, const float *x, int64_t n) { GELU_BF16_LOOP(STORE2_SW, bf16x16) }
AVX512BF16 static void gelu_bf16_avx512bf16(uint16_t *o, const float *x, int64_t n)
{
    GELU_BF16_LOOP(bf16x32_hw_store, bf16x16_hw)
}

/* f over chunks of 4096 values, split between the threads (the calling
 * one alone inside a parallel region) */
static void chunked(void (*f)(uint16_t *, const float *, int64_t), uint16_t *o, const float *x, int64_t n)
{
    enum { CHUNK = 4096 };
    const int64_t chunks = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (chunks > 1)
    for (int64_t c = 0; c < chunks; c++) {
        int64_t lo = c * CHUNK, k = n - lo < CHUNK ? n - lo : CHUNK;
        f(o + lo, x + lo, k);
    }
}

static void to_bf16(uint16_t *o, const float *x, int64_t n)
{
    chunked(nn_avx512bf16() ? to_bf16_avx512bf16 : nn_avx512() ? to_bf16_avx512 : to_bf16_generic, o, x, n);
}

void compute_to_bf16(uint16_t *o, const float *x, int64_t n) { to_bf16(o, x, n); }

static int have_avx512bw(void)
{
    static int bw = -1; /* a benign race: every thread stores the same value */
    if (bw < 0) {
        __builtin_cpu_init();
        bw = __builtin_cpu_supports("avx512bw") ? 1 : 0;
    }
    return bw;
}

/* One row r (K) -> uint8 o with the row's range (always holding 0) over
 * 255 steps; its scale and zero point. Comparisons, not fminf/fmaxf: they
 * vectorise. */
static void row_to_u8(uint8_t *o, float *scale, int32_t *zp, const float *r, int K)
{
    float lo = 0, hi = 0;
#pragma omp simd reduction(min : lo) reduction(max : hi)
    for (int k = 0; k < K; k++) {
        lo = r[k] < lo ? r[k] : lo;
        hi = r[k] > hi ? r[k] : hi;
    }
    float s = hi > lo ? (hi - lo) / 255.0f : 1.0f, inv = 1.0f / s;
    float z = nearbyintf(-lo * inv);
    z = z < 0 ? 0 : z > 255 ? 255 : z;
    *scale = s;
    *zp = (int32_t)z;
    const float zh = z + 0.5f; /* round half up: truncation of v + 0.5 >= 0 */
#pragma omp simd
    for (int k = 0; k < K; k++) {
        float v = r[k] * inv + zh;
        v = v < 0 ? 0 : v > 255.0f ? 255.0f : v;
        o[k] = (uint8_t)(int32_t)v;
    }
}

/* the lanes m of 16 values of a row quantized: v inv + z + 1/2, clamped
 * to [0, 255], truncated */
AVX512 static inline __m512i u8x16(const float *r, __mmask16 m, __m512 vinv, __m512 vzh)
{
    __m512 v = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, r), vinv), vzh);
    return _mm512_cvttps_epi32(_mm512_min_ps(_mm512_max_ps(v, _mm512_setzero_ps()), _mm512_set1_ps(255.0f)));
}

/* The row's values 64 at a time, packed to bytes (AVX-512BW) and stored
 * whole: a masked narrowing store per 16 (vpmovdb to memory) costs several
 * uops on Intel. Returns the values done (a multiple of 64). */
__attribute__((target("avx512f,avx512bw"))) static int u8x64_rows(uint8_t *o, const float *r, int K,
                                                                  __m512 vinv, __m512 vzh)
{
    /* after the two packs, dword 4 l + j holds values 4 l .. 4 l + 3 of vector j */
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    int k = 0;
    for (; k + 64 <= K; k += 64) {
        __m512i ab = _mm512_packus_epi32(u8x16(r + k, 0xffff, vinv, vzh), u8x16(r + k + 16, 0xffff, vinv, vzh));
        __m512i cd = _mm512_packus_epi32(u8x16(r + k + 32, 0xffff, vinv, vzh), u8x16(r + k + 48, 0xffff, vinv, vzh));
        _mm512_storeu_si512(o + k, _mm512_permutexvar_epi32(order, _mm512_packus_epi16(ab, cd)));
    }
    return k;
}

/* the same with AVX-512: 16 values per step, saturating narrow to bytes;
 * bw: 64 at a time where AVX-512BW is */
AVX512 static void row_to_u8_avx512(uint8_t *o, float *scale, int32_t *zp, const float *r, int K, int bw)
{
    __m512 vlo = _mm512_setzero_ps(), vhi = _mm512_setzero_ps();
    __m512 vlo1 = vlo, vhi1 = vhi;
    int k = 0;
    for (; k + 32 <= K; k += 32) { /* two independent chains */
        __m512 v = _mm512_loadu_ps(r + k), v1 = _mm512_loadu_ps(r + k + 16);
        vlo = _mm512_min_ps(vlo, v);
        vhi = _mm512_max_ps(vhi, v);
        vlo1 = _mm512_min_ps(vlo1, v1);
        vhi1 = _mm512_max_ps(vhi1, v1);
    }
    for (; k + 16 <= K; k += 16) {
        __m512 v = _mm512_loadu_ps(r + k);
        vlo = _mm512_min_ps(vlo, v);
        vhi = _mm512_max_ps(vhi, v);
    }
    vlo = _mm512_min_ps(vlo, vlo1);
    vhi = _mm512_max_ps(vhi, vhi1);
    float lo = _mm512_reduce_min_ps(vlo), hi = _mm512_reduce_max_ps(vhi);
    for (int t = k; t < K; t++) {
        lo = r[t] < lo ? r[t] : lo;
        hi = r[t] > hi ? r[t] : hi;
    }
    float s = hi > lo ? (hi - lo) / 255.0f : 1.0f, inv = 1.0f / s;
    float z = nearbyintf(-lo * inv);
    z = z < 0 ? 0 : z > 255 ? 255 : z;
    *scale = s;
    *zp = (int32_t)z;
    const __m512 vinv = _mm512_set1_ps(inv), vzh = _mm512_set1_ps(z + 0.5f);
    for (k = bw ? u8x64_rows(o, r, K, vinv, vzh) : 0; k < K; k += 16) {
        __mmask16 m = tail_mask(K - k);
        _mm512_mask_cvtepi32_storeu_epi8(o + k, m, u8x16(r + k, m, vinv, vzh));
    }
}

/* Each row of x (N,K) -> uint8 with its own scale and zero point: finer
 * than ONNX Runtime's one range per tensor, and a row never depends on
 * the other rows of its batch. */
static void to_u8_rows(uint8_t *q, float *scale, int32_t *zp, const float *x, int N, int K)
{
    const int fast = nn_avx512(), bw = fast && have_avx512bw();
#pragma omp parallel for schedule(static)
    for (int m = 0; m < N; m++) {
        if (fast)
            row_to_u8_avx512(q + (int64_t)m * K, scale + m, zp + m, x + (int64_t)m * K, K, bw);
        else
            row_to_u8(q + (int64_t)m * K, scale + m, zp + m, x + (int64_t)m * K, K);
    }
}

/* one row of int8_epilogue */
static void dequant_row(float *row, float s, int32_t z, const float *sw, const int32_t *wsum,
                        const float *b, int out, int gelu)
{
    int32_t *acc = (int32_t *)row;
#pragma omp simd
    for (int n = 0; n < out; n++)
        row[n] = s * sw[n] * (float)(acc[n] - z * wsum[n]) + b[n];
    if (gelu)
        gelu_row(row, row, out);
}

/* 16 outputs of a row, dequantized */
AVX512 static inline __m512 dq16(const float *row, __m512 vs, __m512i vz, const float *sw, const int32_t *wsum,
                                 const float *b, __mmask16 m)
{
    __m512i acc = _mm512_maskz_loadu_epi32(m, row);
    acc = _mm512_sub_epi32(acc, _mm512_mullo_epi32(vz, _mm512_maskz_loadu_epi32(m, wsum)));
    __m512 v = _mm512_mul_ps(_mm512_mul_ps(vs, _mm512_maskz_loadu_ps(m, sw)), _mm512_cvtepi32_ps(acc));
    return _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, b));
}

/* the same, 16 outputs at a time, GELU while they are in registers
 * (GELU is a constant after inlining: one loop with it, one without) */
AVX512 static inline __attribute__((always_inline)) void
dequant16(float *row, __m512 vs, __m512i vz, const float *sw, const int32_t *wsum, const float *b,
          int out, int gelu)
{
    const erf_coefs e = erf_coefs_load();
    int n = 0;
    for (; n + 32 <= out; n += 32) { /* two independent chains per step */
        __m512 v0 = dq16(row + n, vs, vz, sw + n, wsum + n, b + n, 0xffff);
        __m512 v1 = dq16(row + n + 16, vs, vz, sw + n + 16, wsum + n + 16, b + n + 16, 0xffff);
        _mm512_storeu_ps(row + n, gelu ? gelu16(&e, v0) : v0);
        _mm512_storeu_ps(row + n + 16, gelu ? gelu16(&e, v1) : v1);
    }
    for (; n < out; n += 16) {
        __mmask16 m = tail_mask(out - n);
        __m512 v = dq16(row + n, vs, vz, sw + n, wsum + n, b + n, m);
        _mm512_mask_storeu_ps(row + n, m, gelu ? gelu16(&e, v) : v);
    }
}

AVX512 static void dequant_row_avx512(float *row, float s, int32_t z, const float *sw,
                                      const int32_t *wsum, const float *b, int out, int gelu)
{
    const __m512 vs = _mm512_set1_ps(s);
    const __m512i vz = _mm512_set1_epi32(z);
    if (gelu)
        dequant16(row, vs, vz, sw, wsum, b, out, 1);
    else
        dequant16(row, vs, vz, sw, wsum, b, out, 0);
}

/* y (N,out), holding the int32 sums, in place: y = sx[m] sw[n] (acc -
 * zp[m] sum_k qw[n,k]) + b[n], then GELU when gelu is set (each row while
 * it is in cache) */
static void int8_epilogue(float *y, const float *sx, const int32_t *zp, const float *sw,
                          const int32_t *wsum, const float *b, int N, int out, int gelu)
{
    const int fast = nn_avx512();
#pragma omp parallel for schedule(static)
    for (int m = 0; m < N; m++)
        (fast ? dequant_row_avx512 : dequant_row)(y + (int64_t)m * out, sx[m], zp[m], sw, wsum, b, out, gelu);
}

/* int8_epilogue, then each row quantized (to_u8_rows) into q, qs, qz
 * while it is in L1: a feed-forward block's step between its GEMMs */
static void int8_epilogue_requant(float *y, const float *sx, const int32_t *zp, const float *sw,
                                  const int32_t *wsum, const float *b, int N, int out, int gelu,
                                  uint8_t *q, float *qs, int32_t *qz)
{
    const int fast = nn_avx512(), bw = fast && have_avx512bw();
#pragma omp parallel for schedule(static)
    for (int m = 0; m < N; m++) {
        float *row = y + (int64_t)m * out;
        if (fast) {
            dequant_row_avx512(row, sx[m], zp[m], sw, wsum, b, out, gelu);
            row_to_u8_avx512(q + (int64_t)m * out, qs + m, qz + m, row, out, bw);
        } else {
            dequant_row(row, sx[m], zp[m], sw, wsum, b, out, gelu);
            row_to_u8(q + (int64_t)m * out, qs + m, qz + m, row, out);
        }
    }
}

/* ---- forward ---------------------------------------------------------------------- */

typedef struct {
    dnnl_exec_arg_t a[6];
    int n;
} exec_args;

static dnnl_status_t add_arg(exec_args *e, int arg, dnnl_data_type_t dt, int64_t d0, int64_t d1,
                             const void *data)
{
    dnnl_dims_t d = {d0, d1};
    dnnl_memory_desc_t md;
    dnnl_status_t s = d1 ? dnnl_memory_desc_init_by_tag(&md, 2, d, dt, dnnl_ab)
                         : dnnl_memory_desc_init_by_tag(&md, 1, d, dt, dnnl_a);
    dnnl_memory_t m = NULL;
    if (s == dnnl_success)
        s = dnnl_memory_create(&m, &md, engine, (void *)data);
    if (s == dnnl_success)
        e->a[e->n++] = (dnnl_exec_arg_t){arg, m};
    return s;
}

/* Execute prim with e's arguments when s (the status so far) is success,
 * wait for it, and destroy e's memory objects in every case. */
static dnnl_status_t run_args(dnnl_primitive_t prim, dnnl_stream_t st, exec_args *e, dnnl_status_t s)
{
    if (s == dnnl_success)
        s = dnnl_primitive_execute(prim, st, e->n, e->a);
    if (s == dnnl_success)
        s = dnnl_stream_wait(st);
    for (int i = 0; i < e->n; i++)
        dnnl_memory_destroy(e->a[i].memory);
    e->n = 0;
    return s;
}

/* One matmul call: rows [0, M) of src (converted activations, or x in
 * f32) and of y; pad: the scratchpad of a fixed-rows primitive. */
static dnnl_status_t run_rows(const compute_linear *l, dnnl_primitive_t prim, dnnl_stream_t st,
                              const void *src, void *y, const float *W, const float *bias, int64_t M,
                              void *pad, size_t padbytes)
{
    exec_args e = {.n = 0};
    dnnl_status_t s;
    if (!l->packed) {
        dnnl_dims_t wd = {l->in, l->out}, wstr = {1, l->in};
        dnnl_memory_desc_t wmd;
        s = dnnl_memory_desc_init_by_strides(&wmd, 2, wd, dnnl_f32, wstr);
        dnnl_memory_t wm = NULL;
        if (s == dnnl_success)
            s = dnnl_memory_create(&wm, &wmd, engine, (void *)(W ? W : l->wref));
        if (s == dnnl_success)
            e.a[e.n++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, wm};
    } else {
        dnnl_memory_t wm = NULL;
        s = dnnl_memory_create(&wm, &l->wmd, engine, l->wpacked);
        if (s == dnnl_success)
            e.a[e.n++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, wm};
    }
    if (s == dnnl_success)
        s = add_arg(&e, DNNL_ARG_SRC, src_type(l->p), M, l->in, src);
    if (s == dnnl_success && l->p != COMPUTE_INT8)
        s = add_arg(&e, DNNL_ARG_BIAS, dnnl_f32, 1, l->out, bias);
    if (s == dnnl_success)
        s = add_arg(&e, DNNL_ARG_DST, l->p == COMPUTE_INT8 ? dnnl_s32 : dnnl_f32, M, l->out, y);
    if (s == dnnl_success && padbytes)
        s = add_arg(&e, DNNL_ARG_SCRATCHPAD, dnnl_u8, (int64_t)padbytes, 0, pad);
    return run_args(prim, st, &e, s);
}

static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

/* What a block of rows needs besides the GEMM: in bf16 and int8 its rows
 * of x converted before; after, int8's sums dequantized, and GELU. Done
 * block by block, the rows stay in the core's cache from one step to the
 * next. */
typedef struct {
    const float *x; /* bf16, int8: the f32 input (N, in); NULL in f32 (the GEMM reads x) */
    void *q;        /* its rows converted: the GEMM's src */
    float *xs;      /* int8, per row: scale */
    int32_t *zp;    /*                and zero point */
    const float *bias;
} block_io;

/* bytes of M rows of l's input converted (with int8's scales and zero points) */
static size_t conv_bytes(const compute_linear *l, int64_t M)
{
    if (l->p == COMPUTE_F32)
        return 0;
    return round64((size_t)M * l->in * (l->p == COMPUTE_BF16 ? 2 : 1)) + round64(2 * (size_t)M * 4);
}

/* the block_io of M rows of x converted into buf (conv_bytes(l, M)) */
static block_io conv_io(const compute_linear *l, const float *x, char *buf, int64_t M, const float *bias)
{
    block_io io = {.bias = bias};
    if (l->p != COMPUTE_F32) {
        io.x = x;
        io.q = buf;
        io.xs = (float *)(buf + round64((size_t)M * l->in * (l->p == COMPUTE_BF16 ? 2 : 1)));
        io.zp = (int32_t *)(io.xs + M);
    }
    return io;
}

static void block_before(const compute_linear *l, const block_io *io, int64_t r0, int64_t M)
{
    if (io->x && l->p == COMPUTE_BF16)
        to_bf16((uint16_t *)io->q + r0 * l->in, io->x + r0 * l->in, M * l->in);
    else if (io->x)
        to_u8_rows((uint8_t *)io->q + r0 * l->in, io->xs + r0, io->zp + r0, io->x + r0 * l->in, (int)M,
                   l->in);
}

static void block_after(const compute_linear *l, const block_io *io, char *y, int64_t r0, int64_t M)
{
    if (l->p == COMPUTE_INT8)
        int8_epilogue((float *)y + r0 * l->out, io->xs + r0, io->zp + r0, l->wscale, l->wsum, io->bias,
                      (int)M, l->out, l->post == COMPUTE_POST_GELU);
    else if (l->post == COMPUTE_POST_GELU) /* f32, bf16: see make_attr */
        gelu_forward((float *)y + r0 * l->out, (float *)y + r0 * l->out, M * l->out);
}

/* The blocks of the fixed-rows primitives over N >= 16 rows: blocks of
 * 256 while they last, then one block of the rest rounded up to 16 rows,
 * ending at row N (it recomputes up to 15 rows: same inputs, same sums);
 * when N itself is under 256 and not a multiple of 16, its multiple of 16
 * first, then 16 rows ending at N. Start with *r = 0; each call gives the
 * next block (first row *r0, size FIXED_M[*fi]), 0 after the last. */
static int block_next(int64_t N, int64_t *r, int64_t *r0, int *fi)
{
    const int64_t left = N - *r;
    int64_t m;
    if (left <= 0)
        return 0;
    if (left >= FIXED_M[0]) {
        m = FIXED_M[0];
        *r0 = *r;
    } else if ((m = (left + 15) / 16 * 16) <= N) {
        *r0 = N - m;
    } else { /* the first block of N < 256 rows, N not a multiple of 16 */
        m = left / 16 * 16;
        *r0 = *r;
    }
    *fi = (int)((FIXED_M[0] - m) / 16);
    *r = *r0 + m;
    return 1;
}

/* bytes of oneDNN scratchpad the fixed-rows primitives of l want */
static size_t fixed_pad_max(const compute_linear *l)
{
    size_t m = 0;
    for (int i = 0; i < NFIXED; i++)
        m = l->fixed_pad[i] > m ? l->fixed_pad[i] : m;
    return round64(m);
}

/* The fixed-rows primitives over N rows (block_next); fewer than 16 rows
 * go through a zero-padded block of 16. */
static dnnl_status_t fixed_forward(const compute_linear *l, dnnl_stream_t st, const char *src, char *y,
                                   const float *bias, int64_t N, const block_io *io)
{
    const size_t es = l->p == COMPUTE_F32 ? 4 : l->p == COMPUTE_BF16 ? 2 : 1;
    const size_t xrow = (size_t)l->in * es, yrow = (size_t)l->out * 4, maxpad = fixed_pad_max(l);
    char *pad = pad_get(maxpad + round64(16 * xrow) + 16 * yrow);
    if (!pad)
        return dnnl_out_of_memory;
    if (N < 16) {
        char *x16 = pad + maxpad, *y16 = x16 + round64(16 * xrow);
        block_before(l, io, 0, N);
        memcpy(x16, src, (size_t)N * xrow);
        memset(x16 + N * xrow, 0, (size_t)(16 - N) * xrow);
        dnnl_status_t s = run_rows(l, l->fixed[NFIXED - 1], st, x16, y16, NULL, bias, 16, pad, l->fixed_pad[NFIXED - 1]);
        memcpy(y, y16, (size_t)N * yrow);
        block_after(l, io, y, 0, N);
        return s;
    }
    dnnl_status_t s = dnnl_success;
    int64_t r = 0, r0;
    int fi;
    while (s == dnnl_success && block_next(N, &r, &r0, &fi)) {
        block_before(l, io, r0, FIXED_M[fi]); /* a last block's earlier rows: converted again, the same bytes */
        s = run_rows(l, l->fixed[fi], st, src + r0 * xrow, y + r0 * yrow, NULL, bias, FIXED_M[fi], pad,
                     l->fixed_pad[fi]);
        block_after(l, io, y, r0, FIXED_M[fi]); /* their sums were written again: done again */
    }
    return s;
}

int compute_linear_forward(const compute_linear *l, float *y, const float *x, const float *W,
                           const float *b, int N)
{
    if (N == 0)
        return 0;
    dnnl_stream_t st = stream_get();
    if (!st)
        return err_set("oneDNN: no stream for %s", l->name);
    const float *bias = b ? b : l->zeros;
    if (!l->packed) {
        dnnl_status_t s = run_rows(l, l->prim, st, x, y, W, bias, N, NULL, 0);
        return s == dnnl_success ? 0 : dnnl_fail("matmul", l->name, s);
    }
    /* the GEMM's src: x itself (packed f32), or its rows converted */
    const void *src = x;
    block_io io = {.bias = bias};
    if (l->p != COMPUTE_F32) {
        char *scr = scratch_get(conv_bytes(l, N));
        if (!scr)
            return err_set("out of memory for the activations of %s (%d rows)", l->name, N);
        io = conv_io(l, x, scr, N, bias);
        src = scr;
    }
    dnnl_status_t s;
    if (l->fixed_mode) {
        s = fixed_forward(l, st, src, (char *)y, bias, N, &io);
    } else {
        block_before(l, &io, 0, N);
        s = run_rows(l, l->prim, st, src, y, NULL, bias, N, NULL, 0);
        if (s == dnnl_success)
            block_after(l, &io, (char *)y, 0, N);
    }
    return s == dnnl_success ? 0 : dnnl_fail("matmul", l->name, s);
}

/* One block of rows [r0, r0 + M) through up and down (fixed rows, index
 * fi); buf: conv_bytes(up, 256), then up's output (256 rows), then
 * conv_bytes(down, 256). */
static dnnl_status_t ffn_block(const compute_linear *up, const compute_linear *down, dnnl_stream_t st,
                               float *y, const float *x, const float *b1, const float *b2, int64_t r0,
                               int fi, char *buf, char *pad)
{
    const int64_t M = FIXED_M[fi], B = FIXED_M[0];
    const size_t cu = conv_bytes(up, B), ch = round64((size_t)B * up->out * 4);
    float *h = (float *)(buf + cu), *yb = y + r0 * down->out;
    const float *xb = x + r0 * up->in;
    block_io iu = conv_io(up, xb, buf, M, b1), id = conv_io(down, h, buf + cu + ch, M, b2);
    block_before(up, &iu, 0, M);
    dnnl_status_t s = run_rows(up, up->fixed[fi], st, iu.x ? iu.q : xb, h, NULL, b1, M, pad, up->fixed_pad[fi]);
    if (s != dnnl_success)
        return s;
    /* block_after(up) and block_before(down) in one pass */
    if (up->p == COMPUTE_BF16 && up->post == COMPUTE_POST_GELU && nn_avx512()) {
        chunked(nn_avx512bf16() ? gelu_bf16_avx512bf16 : gelu_bf16_avx512, id.q, h, M * up->out);
    } else if (up->p == COMPUTE_INT8) {
        int8_epilogue_requant(h, iu.xs, iu.zp, up->wscale, up->wsum, b1, (int)M, up->out,
                              up->post == COMPUTE_POST_GELU, id.q, id.xs, id.zp);
    } else {
        block_after(up, &iu, (char *)h, 0, M);
        block_before(down, &id, 0, M);
    }
    s = run_rows(down, down->fixed[fi], st, id.x ? id.q : h, yb, NULL, b2, M, pad, down->fixed_pad[fi]);
    if (s == dnnl_success)
        block_after(down, &id, (char *)yb, 0, M);
    return s;
}

int compute_ffn_forward(const compute_linear *up, const compute_linear *down, float *y, const float *x,
                        const float *b1, const float *b2, float *g, int N)
{
    if (up->out != down->in)
        return err_set("feed-forward block: %s gives %d values a row, %s takes %d", up->name, up->out,
                       down->name, down->in);
    if (N < 16 || !up->fixed_mode || !down->fixed_mode || up->p != down->p) {
        int rc = compute_linear_forward(up, g, x, NULL, b1, N);
        return rc ? rc : compute_linear_forward(down, y, g, NULL, b2, N);
    }
    const int64_t B = FIXED_M[0];
    const size_t pu = fixed_pad_max(up), pd = fixed_pad_max(down);
    dnnl_stream_t st = stream_get();
    char *pad = st ? pad_get(pu > pd ? pu : pd) : NULL;
    char *buf = pad ? scratch_get(conv_bytes(up, B) + round64((size_t)B * up->out * 4) + conv_bytes(down, B)) : NULL;
    if (!buf)
        return err_set("out of memory for the feed-forward blocks of %s (%d rows)", up->name, N);
    dnnl_status_t s = dnnl_success;
    int64_t r = 0, r0;
    int fi;
    while (s == dnnl_success && block_next(N, &r, &r0, &fi))
        s = ffn_block(up, down, st, y, x, b1 ? b1 : up->zeros, b2 ? b2 : down->zeros, r0, fi, buf, pad);
    return s == dnnl_success ? 0 : dnnl_fail("matmul", up->name, s);
}

/* ---- bf16 GEMMs (training) ------------------------------------------------------------ */

/* One primitive per (ta, tb, beta) with the dimensions given at run time;
 * the operands are dense (leading dimension = row length), a transpose is
 * the column-major tag. */
static dnnl_primitive_t gemm_prim[8];
static dnnl_status_t gemm_status[8];
static pthread_mutex_t gemm_lock = PTHREAD_MUTEX_INITIALIZER;

static int gemm_key(char ta, char tb, float beta) { return (ta == 'T') * 4 + (tb == 'T') * 2 + (beta != 0); }

static dnnl_status_t make_gemm(int key, dnnl_primitive_t *prim)
{
    const int64_t R = DNNL_RUNTIME_DIM_VAL;
    dnnl_dims_t d = {R, R};
    dnnl_memory_desc_t amd, bmd, cmd;
    dnnl_matmul_desc_t desc;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t s = dnnl_memory_desc_init_by_tag(&amd, 2, d, dnnl_bf16, key & 4 ? dnnl_ba : dnnl_ab);
    if (s == dnnl_success)
        s = dnnl_memory_desc_init_by_tag(&bmd, 2, d, dnnl_bf16, key & 2 ? dnnl_ba : dnnl_ab);
    if (s == dnnl_success)
        s = dnnl_memory_desc_init_by_tag(&cmd, 2, d, dnnl_f32, dnnl_ab);
    if (s == dnnl_success)
        s = dnnl_matmul_desc_init(&desc, &amd, &bmd, NULL, &cmd);
    if (s == dnnl_success)
        s = dnnl_primitive_attr_create(&attr);
    if (s == dnnl_success && (key & 1)) {
        s = dnnl_post_ops_create(&po);
        if (s == dnnl_success)
            s = dnnl_post_ops_append_sum(po, 1.0f);
        if (s == dnnl_success)
            s = dnnl_primitive_attr_set_post_ops(attr, po);
    }
    if (s == dnnl_success)
        s = dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL);
    if (s == dnnl_success)
        s = dnnl_primitive_create(prim, pd);
    const char *impl = NULL;
    if (s == dnnl_success && dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) ==
                                 dnnl_success && impl && strncmp(impl, "ref", 3) == 0) {
        dnnl_primitive_destroy(*prim); /* a reference kernel: f32 is far faster */
        *prim = NULL;
        s = dnnl_unimplemented;
    }
    dnnl_post_ops_destroy(po);
    dnnl_primitive_attr_destroy(attr);
    dnnl_primitive_desc_destroy(pd);
    return s;
}

/* the primitive of key, created at its first use; NULL when there is none */
static dnnl_primitive_t gemm_get(int key)
{
    if (!stream_get())
        return NULL;
    pthread_mutex_lock(&gemm_lock);
    if (!gemm_prim[key] && gemm_status[key] == dnnl_success)
        gemm_status[key] = make_gemm(key, &gemm_prim[key]);
    dnnl_primitive_t p = gemm_prim[key];
    pthread_mutex_unlock(&gemm_lock);
    return p;
}

int compute_bf16_available(void) { return gemm_get(gemm_key('N', 'T', 0)) != NULL; }

/* a (rows, cols) operand, stored transposed when t is 'T' */
static dnnl_status_t gemm_arg(exec_args *e, int arg, dnnl_data_type_t dt, int64_t rows,
                              int64_t cols, char t, const void *data)
{
    dnnl_dims_t d = {rows, cols};
    dnnl_memory_desc_t md;
    dnnl_memory_t m = NULL;
    dnnl_status_t s = dnnl_memory_desc_init_by_tag(&md, 2, d, dt, t == 'T' ? dnnl_ba : dnnl_ab);
    if (s == dnnl_success)
        s = dnnl_memory_create(&m, &md, engine, (void *)data);
    if (s == dnnl_success)
        e->a[e->n++] = (dnnl_exec_arg_t){arg, m};
    return s;
}

int compute_gemm_bf16(char ta, char tb, int64_t M, int64_t N, int64_t K, const uint16_t *A,
                      int64_t lda, const uint16_t *B, int64_t ldb, float beta, float *C,
                      int64_t ldc)
{
    if (M == 0 || N == 0)
        return 0;
    if ((ta != 'N' && ta != 'T') || (tb != 'N' && tb != 'T') || (beta != 0 && beta != 1) ||
        M < 0 || N < 0 || K < 0 || lda != (ta == 'N' ? K : M) || ldb != (tb == 'N' ? N : K) ||
        ldc != N)
        return err_set("bf16 gemm %c%c of %lld x %lld x %lld: bad arguments (transposes N or T, "
                       "beta 0 or 1, dense operands)", ta, tb, (long long)M, (long long)N,
                       (long long)K);
    if (K == 0) {
        if (beta == 0)
            memset(C, 0, (size_t)(M * N) * sizeof *C);
        return 0;
    }
    dnnl_primitive_t prim = gemm_get(gemm_key(ta, tb, beta));
    if (!prim)
        return err_set("oneDNN: no bf16 matmul on this CPU (%s)", compute_describe());
    dnnl_stream_t st = stream_get();
    exec_args e = {.n = 0};
    dnnl_status_t s = gemm_arg(&e, DNNL_ARG_SRC, dnnl_bf16, M, K, ta, A);
    if (s == dnnl_success)
        s = gemm_arg(&e, DNNL_ARG_WEIGHTS, dnnl_bf16, K, N, tb, B);
    if (s == dnnl_success)
        s = gemm_arg(&e, DNNL_ARG_DST, dnnl_f32, M, N, 'N', C);
    s = run_args(prim, st, &e, s);
    if (s != dnnl_success)
        return err_set("oneDNN: bf16 gemm %c%c of %lld x %lld x %lld failed (status %d)", ta, tb,
                       (long long)M, (long long)N, (long long)K, (int)s);
    return 0;
}

/* ---- bf16 training linear layers ---------------------------------------------------- */

int compute_linear_bf16_forward(float *y, const float *x, const uint16_t *Wb, const float *b,
                                int N, int in, int out)
{
    if (N == 0)
        return 0;
    uint16_t *xb = stream_get() ? scratch_get((size_t)N * in * sizeof *xb) : NULL;
    if (!xb)
        return err_set("out of memory for the bf16 activations of a %d x %d layer (%d rows)", out,
                       in, N);
    to_bf16(xb, x, (int64_t)N * in);
    if (b) { /* rows start as the bias, the GEMM adds into them */
#pragma omp parallel for schedule(static)
        for (int i = 0; i < N; i++)
            memcpy(y + (int64_t)i * out, b, (size_t)out * sizeof *b);
    }
    return compute_gemm_bf16('N', 'T', N, out, in, xb, in, Wb, in, b ? 1.0f : 0.0f, y, out);
}

int compute_linear_bf16_backward(float *dx, float *dW, float *db, const float *dy,
                                 const float *x, const uint16_t *Wb, int N, int in, int out)
{
    if (N == 0 || (!dx && !dW && !db))
        return 0;
    if (db)
        linear_backward(NULL, NULL, db, dy, x, NULL, N, in, out);
    if (!dx && !dW)
        return 0;
    size_t need = (size_t)N * out + (dW ? (size_t)N * in : 0);
    uint16_t *dyb = stream_get() ? scratch_get(need * sizeof *dyb) : NULL;
    if (!dyb)
        return err_set("out of memory for the bf16 gradients of a %d x %d layer (%d rows)", out,
                       in, N);
    to_bf16(dyb, dy, (int64_t)N * out);
    int rc = 0;
    if (dx) /* (N,in) += (N,out) (out,in) */
        rc = compute_gemm_bf16('N', 'N', N, in, out, dyb, out, Wb, in, 1.0f, dx, in);
    if (dW && !rc) { /* (out,in) += (N,out)^T (N,in) */
        uint16_t *xb = dyb + (size_t)N * out;
        to_bf16(xb, x, (int64_t)N * in);
        rc = compute_gemm_bf16('T', 'N', out, in, N, dyb, out, xb, in, 1.0f, dW, in);
    }
    return rc;
}
