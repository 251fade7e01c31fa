/* nn.h — transformer layer kernels as forward/backward pairs (llm.c
 * style): embeddings, linear (oneDNN sgemm, see compute.h), LayerNorm, exact erf GELU,
 * multi-head softmax attention over packed sequences, residual add and
 * dropout. Every backward accumulates (+=) into its gradients; a NULL
 * gradient pointer means "not wanted" (frozen parameter, nothing below).
 *
 * Row layouts: N rows of packed tokens (padding removed); sequence s owns
 * rows off[s] .. off[s+1]. Loops run in the OpenMP pool that oneDNN
 * shares; AVX-512 paths are chosen at run time. */
#ifndef NN_H
#define NN_H

#include <stdint.h>

/* ---- embeddings: word + position + token type ---------------------------- */
/* out (N,C) = wte[ids] + wpe[pos] + wtt[types]; types NULL = all type 0 */
void embeddings_forward(float *out, const int32_t *ids, const int32_t *pos,
                        const int32_t *types, int N, int C, const float *wte,
                        const float *wpe, const float *wtt);
/* dwte/dwpe/dwtt (rows of the tables) += scatter of dout (N,C) */
void embeddings_backward(float *dwte, float *dwpe, float *dwtt, const float *dout,
                         const int32_t *ids, const int32_t *pos, const int32_t *types,
                         int N, int C);

/* ---- linear: y = x W^T + b, W stored (out,in) as Hugging Face does ------- */
/* y (N,out) = x (N,in) . W^T (in,out) + b (out); b may be NULL */
void linear_forward(float *y, const float *x, const float *W, const float *b, int N, int in,
                    int out);
/* dx (N,in) += dy W ; dW (out,in) += dy^T x ; db (out) += sum_n dy */
void linear_backward(float *dx, float *dW, float *db, const float *dy, const float *x,
                     const float *W, int N, int in, int out);

/* ---- LayerNorm over the last dimension ------------------------------------ */
/* y (N,C) = (x - mean) * rstd * w + b; mean, rstd (N) saved when not NULL */
void layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *w,
                       const float *b, int N, int C, float eps);
/* dx (N,C) += ..., dw (C) += ..., db (C) += ... from saved mean/rstd */
void layernorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                        const float *w, const float *mean, const float *rstd, int N, int C);

/* ---- residual + LayerNorm in one pass: y = LN(a + b) ------------------------ */
/* y (N,C); the sum kept in s (N,C) when not NULL (training: it is the
 * LayerNorm input for backward). y may be a, s may be a. */
void residual_layernorm_forward(float *y, float *s, float *mean, float *rstd, const float *a,
                                const float *b, const float *w, const float *bias, int N, int C,
                                float eps);
/* ds (N,C) = gradient of the sum (written); da, db += ds; dw, dbias += ... */
void residual_layernorm_backward(float *da, float *db, float *dw, float *dbias, float *ds,
                                 const float *dy, const float *s, const float *w,
                                 const float *mean, const float *rstd, int N, int C);

/* ---- GELU, exact: x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) ---------------- */
void gelu_forward(float *y, const float *x, int64_t n);          /* y may be x */
/* the same on the calling thread only (no OpenMP region): for epilogues */
void gelu_row(float *y, const float *x, int64_t n);
void gelu_backward(float *dx, const float *x, const float *dy, int64_t n);

/* ---- residual: y = a + b ---------------------------------------------------- */
void residual_forward(float *y, const float *a, const float *b, int64_t n);
void residual_backward(float *da, float *db, const float *dy, int64_t n);

/* ---- dropout: inverted, mask from a counter-based hash of (seed, index) ---- */
/* y = x * keep / (1 - p), keep[i] drawn from hash(seed, i): the backward
 * pass regenerates the mask instead of storing it. y may be x. */
void dropout_forward(float *y, const float *x, int64_t n, float p, uint64_t seed);
void dropout_backward(float *dx, const float *dy, int64_t n, float p, uint64_t seed);
/* Keyed dropout over N rows of C: element c of row i is kept by
 * hash(hash(seed, keys[i]), c), so a row's mask follows its key — the
 * example's index in the step's global batch, or dropout_key(example,
 * position) for a token — not its place in this buffer (rank, micro-batch,
 * padding, packing). keys NULL: key i. y may be x. */
void dropout_rows_forward(float *y, const float *x, int64_t N, int C, float p, uint64_t seed,
                          const uint64_t *keys);
void dropout_rows_backward(float *dx, const float *dy, int64_t N, int C, float p, uint64_t seed,
                           const uint64_t *keys);
/* The key of the token at position (0-based, < 2^24) of an example. */
static inline uint64_t dropout_key(int64_t example, int position)
{
    return ((uint64_t)example << 24) | (uint64_t)(uint32_t)position;
}

/* ---- multi-head self-attention over S packed sequences -------------------- */
/* qkv (N,3C): row = [q (C) | k (C) | v (C)], head h in columns h*hd..(h+1)*hd
 * of each part, hd = C/NH. Each token attends to the tokens of its own
 * sequence only: Hugging Face's additive mask (-10000 on padding) after the
 * softmax's exp is exactly zero, so padding is skipped instead of masked.
 * probs: attention probabilities before dropout, sequence s head h at
 * poff[s] + h*n*n (n = off[s+1]-off[s]); NULL in eval (nothing kept).
 * Attention dropout p_drop with seed (0: none). out (N,C). Pointers are
 * to row 0 of the packing; the S sequences may be a slice (off + s0).
 * scratch: attention_scratch() floats for each thread of the team that
 * runs the kernel (slot omp_get_thread_num()); a single-thread team (a
 * nested region) uses slot 0. */
int64_t attention_probs_size(const int *off, int S, int NH, int64_t *poff /* S, may be NULL */);
int64_t attention_scratch(int maxlen, int C, int NH);
void attention_forward(float *out, float *probs, const float *qkv, const int *off,
                       const int64_t *poff, int S, int C, int NH, float p_drop, uint64_t seed,
                       float *scratch);
/* dqkv (N,3C) += ... from dout (N,C) and the saved probs */
void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *probs,
                        const int *off, const int64_t *poff, int S, int C, int NH,
                        float p_drop, uint64_t seed, float *scratch);
/* The same with keyed attention dropout: keys[s] (S entries, the slice's
 * own) is sequence s's example key, and the mask of its probability
 * (head, query, key) hashes (seed, keys[s], that triple) — independent of
 * the other sequences packed with it. keys NULL: as above. */
void attention_forward_keyed(float *out, float *probs, const float *qkv, const int *off,
                             const int64_t *poff, int S, int C, int NH, float p_drop,
                             uint64_t seed, const uint64_t *keys, float *scratch);
void attention_backward_keyed(float *dqkv, const float *dout, const float *qkv,
                              const float *probs, const int *off, const int64_t *poff, int S,
                              int C, int NH, float p_drop, uint64_t seed, const uint64_t *keys,
                              float *scratch);

/* 1 when the AVX-512 paths are in use (for logs and tests) */
int nn_avx512(void);
/* index of the first NaN or infinity of x[0..n), or -1 (a branch-free
 * scan of blocks, then the block that has one) */
int64_t nn_first_nonfinite(const float *x, int64_t n);
/* Tests: 0 forces the portable loops, 1 restores the CPU's best, 2 the
 * best without AVX-512 (on an AVX-512 CPU: the AVX2 paths), 3 AVX-512
 * without its BF16 instructions (the bf16 conversions in integer
 * operations). */
void nn_use_avx512(int on);

#endif
