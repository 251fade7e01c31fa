/* compute_isa.c — the compute seam on an older CPU: oneDNN capped at AVX2
 * (dnnl_set_max_cpu_isa, before any other oneDNN call) stands for a CPU
 * without AVX-512. Every precision must still work: bf16, which oneDNN 2.6
 * has no AVX2 kernel for, computes in float32 and says so; int8 keeps its
 * AVX2 kernels. */
#include <dnnl.h>
#include <math.h>
#include <stdlib.h>

#include "runner/kit/compute.h"
#include "runner/kit/util.h"
#include "tap.h"

enum { N = 9, IN = 32, OUT = 48 };

static double worst(const compute_linear *l, const float *x, const float *W, const float *b)
{
    float y[N * OUT];
    if (compute_linear_forward(l, y, x, NULL, b, N) != 0)
        return INFINITY;
    double e = 0;
    for (int i = 0; i < N; i++)
        for (int o = 0; o < OUT; o++) {
            double s = b[o];
            for (int k = 0; k < IN; k++)
                s += (double)x[i * IN + k] * W[o * IN + k];
            e = fmax(e, fabs(y[i * OUT + o] - s));
        }
    return e;
}

int main(void)
{
    ok(dnnl_set_max_cpu_isa(dnnl_cpu_isa_avx2) == dnnl_success, "oneDNN capped at AVX2");
    diag("%s", compute_describe());
    float x[N * IN], W[OUT * IN], b[OUT];
    for (int i = 0; i < N * IN; i++)
        x[i] = (float)((i * 37) % 23) / 23.0f - 0.5f;
    for (int i = 0; i < OUT * IN; i++)
        W[i] = (float)((i * 53) % 29) / 29.0f - 0.5f;
    for (int i = 0; i < OUT; i++)
        b[i] = 0.01f * (float)i;
    const compute_precision ps[3] = {COMPUTE_F32, COMPUTE_BF16, COMPUTE_INT8};
    const double tol[3] = {1e-5, 1e-5, 0.05}; /* bf16 runs as f32 here */
    for (int i = 0; i < 3; i++) {
        compute_linear *l = NULL;
        int rc = compute_linear_create(&l, "isa", IN, OUT, ps[i], COMPUTE_POST_NONE);
        rc = rc || compute_linear_pack(l, W);
        if (!ok(rc == 0, "%s linear created on AVX2", compute_precision_name(ps[i]))) {
            diag("%s", err_get());
            continue;
        }
        compute_precision runs = compute_linear_precision(l);
        diag("%s runs as %s: %s", compute_precision_name(ps[i]), compute_precision_name(runs),
             compute_linear_impl(l));
        ok(ps[i] == COMPUTE_BF16 ? runs == COMPUTE_F32 : runs == ps[i],
           "%s: the precision that runs is reported (%s)", compute_precision_name(ps[i]),
           compute_precision_name(runs));
        double e = worst(l, x, W, b);
        ok(e < tol[i], "%s linear on AVX2 = x W^T + b (%.2e)", compute_precision_name(ps[i]), e);
        compute_linear_free(l);
    }
    return done_testing(10);
}
