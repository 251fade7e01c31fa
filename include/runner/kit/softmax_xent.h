/* softmax_xent.h — softmax cross-entropy of one row of float32 logits,
 * vectorised, for vocabulary-sized rows (the masked_lm loss over 30,522
 * pieces). The math of xent_row (classify.h) without class weights or
 * smoothing; xent_row computes in double with libm's scalar exp, ~12 ns per
 * logit, which made the loss cost as much as the MLM head's GEMMs. Here the
 * exponentials are float32 (Cephes' expf polynomial, relative error < 1e-7)
 * on 8 lanes at a time (GCC vector extensions: AVX2 under the project's
 * -march=x86-64-v3), the sum of exponentials is kept in double per block of
 * 1,024 logits: about 1.3 ns per logit. tests/mlm.c holds it to xent_row. */
#ifndef SOFTMAX_XENT_H
#define SOFTMAX_XENT_H

/* Cross-entropy of K logits z against label y (0 <= y < K): log sum exp z
 * - z_y. dz (may be NULL) is written with scale * (softmax(z) - onehot(y)).
 * Three passes over z: the max, the sum of exponentials, the gradient.
 * NaN or +Inf in z gives a NaN loss. */
double xent_row_f32(int K, const float *z, int y, float scale, float *dz);

#endif
