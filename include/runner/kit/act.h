/* act.h — element-wise activations the transformer kernels (nn.h) lack,
 * for the MLP head: ReLU and tanh, as forward/backward pairs. Backward
 * passes accumulate (+=) into dx, as every kernel of nn.h does. */
#ifndef ACT_H
#define ACT_H

#include <stdint.h>

/* y = max(x, 0); y may be x */
void relu_forward(float *y, const float *x, int64_t n);
/* dx += dy where x > 0 (x: the forward's input; the derivative at 0 is 0,
 * as PyTorch takes it) */
void relu_backward(float *dx, const float *x, const float *dy, int64_t n);

/* y = tanh(x); y may be x */
void tanh_forward(float *y, const float *x, int64_t n);
/* dx += dy (1 - y^2) (y: the forward's output) */
void tanh_backward(float *dx, const float *y, const float *dy, int64_t n);

#endif
