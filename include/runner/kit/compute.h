/* compute.h — the compute seam: every GEMM of the kit runs on oneDNN.
 *
 * oneDNN picks its kernels from the CPU's features at run time
 * (avx2, avx512_core, avx512_core_bf16, avx512_core_vnni, AMX), never from
 * an environment variable we set. The entry points:
 *
 *  - compute_sgemm: C = alpha op(A) op(B) + beta C, row-major, float32, for
 *    GEMMs whose operands change every call (training, heads, backward).
 *  - compute_linear: y = x W^T + b (then GELU when asked) as oneDNN
 *    matmul primitives created once per layer shape, bias and GELU fused
 *    as post-ops. In "f32" one primitive takes the number of rows at run
 *    time and reads the weights in place (unless COMPUTE_PACKED: then as
 *    bf16 and int8, in f32). In "bf16" and "int8" the weights
 *    are converted and reordered once (compute_linear_pack) into the layout
 *    of oneDNN's brgemm kernels, which need the rows at creation: one
 *    primitive each for blocks of 16, 32, .. 256 rows, a call's rows cut
 *    into blocks of 256 and one of the rest rounded up to 16 rows (a row's
 *    result never depends on the others'); where brgemm is missing, one
 *    run-time-rows primitive as in f32. "int8" is dynamic quantization as
 *    ONNX Runtime's: per-channel symmetric int8 weights, uint8 activations
 *    with a scale and zero point per row computed at run time (int32 sums
 *    from oneDNN, dequantized with the bias and GELU in one pass).
 *  - compute_ffn_forward: two packed layers back to back (a transformer's
 *    feed-forward block) a block of rows at a time.
 *
 * Primitives may run from several threads at once (each thread keeps its
 * own stream and scratch); called inside a parallel region a primitive runs
 * on the calling thread only. */
#ifndef RUNNER_KIT_COMPUTE_H
#define RUNNER_KIT_COMPUTE_H

#include <stddef.h>
#include <stdint.h>

typedef enum { COMPUTE_F32 = 0, COMPUTE_BF16 = 1, COMPUTE_INT8 = 2 } compute_precision;
enum { COMPUTE_POST_NONE = 0, COMPUTE_POST_GELU = 1 }; /* GELU: exact erf */
/* kit 1.6: or'd into compute_linear_create's post: in f32 too, the weights
 * are packed once by compute_linear_pack (into brgemm's layout, when oneDNN
 * has those kernels here) and forward reads only that copy. For weights
 * that do not change until they are packed again (inference). */
enum { COMPUTE_PACKED = 1 << 4 };

/* "f32", "bf16", "int8" -> precision; -1 when name is none of them */
int compute_precision_parse(const char *name);
const char *compute_precision_name(compute_precision p);

/* C (M,N) = alpha op(A) op(B) + beta C, row-major; ta/tb 'N' or 'T'.
 * 0, or -1 with err_set. */
int compute_sgemm(char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                  int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

typedef struct compute_linear compute_linear;

/* A linear layer of `in` inputs and `out` outputs in precision p, post-op
 * post. name labels error messages (a tensor name). -1 with err_set. */
int compute_linear_create(compute_linear **l, const char *name, int in, int out,
                          compute_precision p, int post);
/* W (out,in) float32: converted and packed once (bf16, int8, f32 with
 * COMPUTE_PACKED); in f32 the weights are read in place at each forward and
 * this does nothing. After it, compute_linear_bytes > 0 means forward no
 * longer reads W. */
int compute_linear_pack(compute_linear *l, const float *W);
/* y (N,out) = post(x (N,in) W^T + b); b may be NULL; W is read only when
 * the weights are not packed (f32 without COMPUTE_PACKED; NULL otherwise:
 * the fallback to f32 then reads the pack's W). -1 with
 * err_set. */
int compute_linear_forward(const compute_linear *l, float *y, const float *x, const float *W,
                           const float *b, int N);
/* kit 1.7: y (N,out) = down(up(x)) with b1, b2 the biases (NULL: none):
 * a transformer's feed-forward block (up with COMPUTE_POST_GELU). Packed
 * layers of one precision with brgemm kernels run it a block of up to 256
 * rows at a time, both GEMMs and the conversions between them, so the
 * (N, mid) intermediate stays in the core's cache; each row's result is
 * bit for bit that of the two compute_linear_forward calls. Otherwise (and
 * for N < 16) it is those two calls, through g (N, mid), which the fused
 * path does not touch. -1 with err_set (also when up's outputs are not
 * down's inputs). */
int compute_ffn_forward(const compute_linear *up, const compute_linear *down, float *y, const float *x,
                        const float *b1, const float *b2, float *g, int N);
/* oneDNN's implementation name ("brg:avx512_core_bf16", "gemm:jit", ...) */
const char *compute_linear_impl(const compute_linear *l);
/* the precision that runs: the one asked for, or COMPUTE_F32 where oneDNN
 * has no kernel for it on this CPU (bf16 before AVX-512) */
compute_precision compute_linear_precision(const compute_linear *l);
/* bytes of packed weights held */
size_t compute_linear_bytes(const compute_linear *l);
/* kit 1.9: the bytes compute_linear_pack will write (0 when l does not
 * pack: f32 without COMPUTE_PACKED, or without brgemm kernels here) */
size_t compute_linear_pack_size(const compute_linear *l);
/* kit 1.9: compute_linear_pack writes the packed weights into mem
 * (compute_linear_pack_size bytes, 64-byte aligned, the caller's, kept
 * until l is freed) instead of a block of its own: one block for many
 * layers takes fewer page faults. Before the first pack; -1 with err_set
 * when l does not pack, is packed already, or mem is not aligned. */
int compute_linear_pack_memory(compute_linear *l, void *mem);
void compute_linear_free(compute_linear *l);

/* ---- bfloat16 GEMMs for training (train.precision = "bf16") ---------------
 * C (M,N) = op(A) op(B) + beta C with A and B bfloat16 (uint16_t bit
 * patterns), sums and C in float32, row-major, ta/tb 'N' or 'T', beta 0
 * or 1. One oneDNN matmul primitive per (ta, tb, beta), every dimension
 * and leading dimension given at run time, created at the first call. */
int compute_gemm_bf16(char ta, char tb, int64_t M, int64_t N, int64_t K, const uint16_t *A,
                      int64_t lda, const uint16_t *B, int64_t ldb, float beta, float *C,
                      int64_t ldc);
/* 1 when oneDNN has a bf16 matmul kernel on this CPU (AVX-512 and newer:
 * native with AVX512_BF16 or AMX, emulated before); 0: use float32 */
int compute_bf16_available(void);
/* A training linear layer with bfloat16 weights Wb (out,in) (the bf16 copy
 * of the float32 master weights): x and dy are rounded to bfloat16, sums
 * and results are float32.
 * forward:  y (N,out) = x (N,in) Wb^T + b (b may be NULL);
 * backward: dx (N,in) += dy Wb; dW (out,in) += dy^T x; db (out) += sum of
 * dy's rows (dx, dW, db NULL when not wanted). 0, or -1 with err_set. */
int compute_linear_bf16_forward(float *y, const float *x, const uint16_t *Wb, const float *b,
                                int N, int in, int out);
int compute_linear_bf16_backward(float *dx, float *dW, float *db, const float *dy,
                                 const float *x, const uint16_t *Wb, int N, int in, int out);
/* o[i] = x[i] rounded to the nearest bfloat16 (ties to even; NaN stays
 * NaN), in parallel */
void compute_to_bf16(uint16_t *o, const float *x, int64_t n);
/* one value, for loops of their own (the optimizer's) */
static inline uint16_t compute_bf16_round(float f)
{
    union { float f; uint32_t u; } v = {f};
    uint32_t nan = (v.u & 0x7fffffffu) > 0x7f800000u; /* a select, not a branch: loops vectorise */
    uint32_t r = (v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16;
    return (uint16_t)(nan ? (v.u >> 16) | 0x40u : r);
}

/* oneDNN's version and the ISA it runs on, for one info line */
const char *compute_describe(void);

#endif
