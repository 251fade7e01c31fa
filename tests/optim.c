/* optim.c — AdamW against PyTorch's torch.optim.AdamW (values below were
 * computed with torch 1.13: w = [0.5, -1, 2] with weight_decay 0.01 and
 * lr 0.1; b = [0.25, -0.75] without decay at lr 0.05 (here: lr scale 0.5);
 * betas 0.9/0.999, eps 1e-8; three steps of the gradients below), frozen
 * tensors left untouched, clipping folded into the step, gradients zeroed
 * by the step, and the learning-rate schedules. */
#include <math.h>

#include "optim.h"
#include "tap.h"

int main(void)
{
    params P;
    params_init(&P);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    float *w, *gw, *b, *gb, *f, *gf;
    int64_t s3[1] = {3}, s2[1] = {2};
    params_add(&P, "w", 1, s3, 0, RUNNER_INIT_ZERO, 0, &w, &gw);
    params_add(&P, "b", 1, s2, RUNNER_PARAM_NO_DECAY, RUNNER_INIT_ZERO, 0, &b, &gb);
    params_add(&P, "frozen", 1, s2, 0, RUNNER_INIT_ZERO, 0, &f, &gf);
    params_alloc(&P, 1, rng);
    params_set(&P, "b", -1, 0.5);
    params_set(&P, "frozen", 0, -1);
    const float w0[3] = {0.5f, -1.0f, 2.0f}, b0[2] = {0.25f, -0.75f};
    for (int i = 0; i < 3; i++)
        w[i] = w0[i];
    for (int i = 0; i < 2; i++)
        b[i] = b0[i];
    f[0] = 3;
    f[1] = 4;
    const float grads_w[3][3] = {{0.1f, -0.2f, 0.3f}, {0.05f, 0.4f, -0.1f}, {-0.3f, 0.0f, 0.2f}};
    const float grads_b[3][2] = {{1.0f, -2.0f}, {0.5f, 0.5f}, {-1.0f, 0.25f}};
    adamw o = {0.1, 0.9, 0.999, 1e-8, 0.01, 0};
    for (int step = 0; step < 3; step++) {
        for (int i = 0; i < 3; i++)
            gw[i] = grads_w[step][i];
        for (int i = 0; i < 2; i++)
            gb[i] = grads_b[step][i];
        gf[0] = gf[1] = 9;
        adamw_step(&o, &P, 0.1, 1.0);
    }
    const double want_w[3] = {0.34029901, -0.962076604, 1.79391539}, want_b[2] = {0.147851869, -0.662362695};
    double err = 0;
    for (int i = 0; i < 3; i++)
        err = fmax(err, fabs(w[i] - want_w[i]));
    for (int i = 0; i < 2; i++)
        err = fmax(err, fabs(b[i] - want_b[i]));
    cmp_ok(err, <, 2e-6, "3 AdamW steps equal PyTorch's (decay, no decay, lr scale): max error %.2g", err);
    ok(f[0] == 3 && f[1] == 4 && P.m[P.p[2].offset] == 0, "a frozen tensor and its moments are untouched");
    ok(gw[0] == 0 && gb[1] == 0, "the step zeroes the trainable gradients");
    ok(gf[0] == 9, "... and leaves the frozen ones (cleared when the policy changes)");
    is(o.t, 3, "step count");

    /* clipping: norm of [3, 4] is 5 */
    params_zero_grad(&P);
    gw[0] = 3;
    gw[1] = 4;
    double norm = grad_norm(&P);
    cmp_ok(fabs(norm - 5), <, 1e-9, "global norm over trainable tensors only (frozen ones excluded)");
    cmp_ok(fabs(clip_scale(norm, 1.0) - 0.2), <, 1e-6, "clip to 1: scale 1/5");
    cmp_ok(clip_scale(norm, 10.0), ==, 1.0, "below the limit: no clipping");
    cmp_ok(clip_scale(norm, 0), ==, 1.0, "clip 0: off");

    /* the same step with a scale equals the step on scaled gradients */
    params Q;
    params_init(&Q);
    float *q, *gq;
    params_add(&Q, "q", 1, s3, 0, RUNNER_INIT_ONE, 0, &q, &gq);
    params_alloc(&Q, 1, rng);
    adamw o1 = {0.01, 0.9, 0.999, 1e-8, 0.0, 0}, o2 = o1;
    gq[0] = 2;
    gq[1] = -4;
    gq[2] = 6;
    adamw_step(&o1, &Q, 0.01, 0.5);
    float once[3] = {q[0], q[1], q[2]};
    params_free(&Q);
    params_init(&Q);
    params_add(&Q, "q", 1, s3, 0, RUNNER_INIT_ONE, 0, &q, &gq);
    params_alloc(&Q, 1, rng);
    gq[0] = 1;
    gq[1] = -2;
    gq[2] = 3;
    adamw_step(&o2, &Q, 0.01, 1.0);
    ok(once[0] == q[0] && once[1] == q[1] && once[2] == q[2], "scale folded into the step = scaled gradients");
    params_free(&Q);

    /* schedules: 100 steps, 10 of warm-up, peak 1 */
    sched_kind k;
    ok(sched_parse("linear", &k) == 0 && k == SCHED_LINEAR, "parse linear");
    ok(sched_parse("cosine", &k) == 0 && k == SCHED_COSINE, "parse cosine");
    ok(sched_parse("step", &k) == -1, "an unknown schedule is an error");
    cmp_ok(fabs(sched_lr(SCHED_LINEAR, 1, 0, 100, 10) - 0.1), <, 1e-12, "warm-up: step 0 at 1/10");
    cmp_ok(fabs(sched_lr(SCHED_LINEAR, 1, 9, 100, 10) - 1.0), <, 1e-12, "warm-up ends at the peak");
    cmp_ok(fabs(sched_lr(SCHED_LINEAR, 1, 55, 100, 10) - 0.5), <, 1e-12, "linear: half way down at step 55");
    cmp_ok(fabs(sched_lr(SCHED_COSINE, 1, 55, 100, 10) - 0.5), <, 1e-12, "cosine: half way down at step 55");
    cmp_ok(fabs(sched_lr(SCHED_COSINE, 1, 32, 100, 10) - 0.5 * (1 + cos(M_PI * 22.0 / 90.0))), <, 1e-12,
           "cosine: 22 of 90 decay steps");
    cmp_ok(sched_lr(SCHED_LINEAR, 1, 100, 100, 10), ==, 0, "linear: 0 at the end");
    cmp_ok(sched_lr(SCHED_CONSTANT, 1, 80, 100, 10), ==, 1, "constant after warm-up");

    params_free(&P);
    gsl_rng_free(rng);
    return done_testing(20);
}
