/* optim.c — AdamW, schedules, clipping (see optim.h). PyTorch's AdamW
 * semantics: p *= 1 - lr*wd; m, v moments; bias-corrected update. The
 * gradient norm and the step each make one parallel pass over the
 * trainable ranges of the contiguous value / gradient / moment blocks
 * (frozen ranges skipped); the step also refreshes the bfloat16 copy of
 * the values when training in bf16. */
#include "optim.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "runner/kit/compute.h"
#include "runner/kit/util.h"

int sched_parse(const char *name, sched_kind *out)
{
    if (strcmp(name, "linear") == 0)
        *out = SCHED_LINEAR;
    else if (strcmp(name, "cosine") == 0)
        *out = SCHED_COSINE;
    else if (strcmp(name, "constant") == 0)
        *out = SCHED_CONSTANT;
    else
        return err_set("train.schedule: '%s' is not linear, cosine or constant", name);
    return 0;
}

double sched_lr(sched_kind k, double peak, int64_t step, int64_t total, int64_t warmup)
{
    if (warmup > 0 && step < warmup)
        return peak * (double)(step + 1) / (double)warmup;
    if (k == SCHED_CONSTANT || total <= warmup)
        return peak;
    double progress = (double)(step - warmup) / (double)(total - warmup);
    if (progress > 1)
        progress = 1;
    if (k == SCHED_LINEAR)
        return peak * (1.0 - progress);
    return peak * 0.5 * (1.0 + cos(M_PI * progress));
}

/* ---- the trainable ranges ------------------------------------------------------- */

/* Runs of adjacent trainable tensors with the same lr scale and decay:
 * one segment each. A parallel pass splits the segments' elements (their
 * concatenation) evenly between threads, whatever the tensors' sizes: one
 * OpenMP region for the whole store, not one per tensor. */
typedef struct {
    int64_t off, n, end; /* end: elements of this and every earlier segment */
    double lr_scale;
    int decay;
} segment;

/* The segments of P into *out (malloc'd); their count, or -1 */
static int segments(const params *P, segment **out)
{
    segment *sg = malloc((size_t)(P->n ? P->n : 1) * sizeof *sg);
    int k = 0;
    if (!sg)
        return -1;
    for (int i = 0; i < P->n; i++) {
        const param *p = &P->p[i];
        int decay = !(p->flags & RUNNER_PARAM_NO_DECAY);
        if (!p->trainable || p->numel == 0)
            continue;
        segment *last = k ? &sg[k - 1] : NULL;
        if (last && last->off + last->n == p->offset && last->lr_scale == p->lr_scale &&
            last->decay == decay) {
            last->n += p->numel;
            last->end += p->numel;
            continue;
        }
        sg[k] = (segment){p->offset, p->numel, (k ? sg[k - 1].end : 0) + p->numel, p->lr_scale, decay};
        k++;
    }
    *out = sg;
    return k;
}

/* The parts of the k segments *sg inside the n sorted [lo, hi) ranges only
 * (store offsets): *sg replaced; their count, or -1 */
static int segments_within(segment **sg, int k, const int64_t *only, int n)
{
    segment *in = *sg, *out = malloc((size_t)(k + n + 1) * sizeof *out);
    if (!out)
        return -1;
    int m = 0;
    for (int i = 0, r = 0; i < k && r < n;) {
        int64_t lo = in[i].off > only[2 * r] ? in[i].off : only[2 * r];
        int64_t hi = in[i].off + in[i].n < only[2 * r + 1] ? in[i].off + in[i].n : only[2 * r + 1];
        if (lo < hi) {
            out[m] = in[i];
            out[m].off = lo;
            out[m].n = hi - lo;
            out[m].end = (m ? out[m - 1].end : 0) + hi - lo;
            m++;
        }
        if (in[i].off + in[i].n < only[2 * r + 1])
            i++;
        else
            r++;
    }
    free(in);
    *sg = out;
    return m;
}

/* This thread's share [*lo, *hi) of the total elements, and the segment
 * holding *lo */
static int share(const segment *sg, int k, int64_t *lo, int64_t *hi)
{
    int64_t total = k ? sg[k - 1].end : 0;
    int t = omp_get_thread_num(), nt = omp_get_num_threads();
    int64_t per = (total + nt - 1) / nt;
    per = (per + 15) & ~(int64_t)15; /* whole 64-byte lines */
    *lo = per * t < total ? per * t : total;
    *hi = *lo + per < total ? *lo + per : total;
    int a = 0, b = k; /* first segment whose end > lo */
    while (a < b) {
        int mid = (a + b) / 2;
        if (sg[mid].end > *lo)
            b = mid;
        else
            a = mid + 1;
    }
    return a;
}

/* ---- gradient norm ---------------------------------------------------------------- */

static double sum_squares(const segment *sg, int k, const float *grad)
{
    double sum = 0;
#pragma omp parallel reduction(+ : sum)
    {
        int64_t lo, hi;
        for (int i = share(sg, k, &lo, &hi); i < k && lo < hi; i++) {
            int64_t start = sg[i].end - sg[i].n, from = lo - start;
            int64_t to = (hi < sg[i].end ? hi : sg[i].end) - start;
            const float *g = grad + sg[i].off;
            float s = 0; /* float lanes per segment share, summed in double */
#pragma omp simd reduction(+ : s)
            for (int64_t j = from; j < to; j++)
                s += g[j] * g[j];
            sum += s;
            lo = start + to;
        }
    }
    return sum;
}

double grad_norm(const params *P)
{
    segment *sg = NULL;
    if (!P->grad)
        return 0;
    int k = segments(P, &sg);
    double sum = k > 0 ? sum_squares(sg, k, P->grad) : 0;
    free(sg);
    return sqrt(sum);
}

double clip_scale(double norm, double max_norm)
{
    return max_norm > 0 && norm > max_norm ? max_norm / (norm + 1e-6) : 1.0;
}

/* ---- AdamW ------------------------------------------------------------------------ */

typedef struct {
    float b1, b2, eps, c1, c2, gs;
} adam_consts;

/* one element: its moments, its new value (returned); its gradient zeroed */
static inline float adam_one(float *w, float *g, float *m, float *v, const adam_consts *k, float a,
                             float decay)
{
    float gj = *g * k->gs;
    *g = 0;
    float mj = k->b1 * *m + (1.0f - k->b1) * gj;
    float vj = k->b2 * *v + (1.0f - k->b2) * gj * gj;
    *m = mj;
    *v = vj;
    return *w = *w * decay - a * (mj * k->c1) / (sqrtf(vj) * k->c2 + k->eps);
}

/* elements [from, to) of one segment; the bf16 copy refreshed in the same
 * pass when kept */
static void adam_range(params *P, const segment *sg, const adam_consts *k, float a, float decay,
                       int64_t from, int64_t to)
{
    float *w = P->data + sg->off, *g = P->grad + sg->off, *m = P->m + sg->off, *v = P->v + sg->off;
    uint16_t *wb = P->bf16 ? P->bf16 + sg->off : NULL;
    if (wb) {
#pragma omp simd
        for (int64_t j = from; j < to; j++)
            wb[j] = compute_bf16_round(adam_one(w + j, g + j, m + j, v + j, k, a, decay));
    } else {
#pragma omp simd
        for (int64_t j = from; j < to; j++)
            adam_one(w + j, g + j, m + j, v + j, k, a, decay);
    }
}

int adamw_step(adamw *o, params *P, double lr, double scale)
{
    if (!P->grad)
        return err_set("optimizer: nothing is trainable (no gradients were allocated)");
    if (!P->m && params_alloc_moments(P) != 0)
        return -1;
    segment *sg = NULL;
    int k = segments(P, &sg);
    if (k >= 0 && o->only)
        k = segments_within(&sg, k, o->only, o->nonly);
    if (k < 0) {
        free(sg);
        return err_set("out of memory in the optimizer step");
    }
    o->t++;
    double bc1 = 1.0 - pow(o->beta1, (double)o->t), bc2 = 1.0 - pow(o->beta2, (double)o->t);
    const adam_consts c = {(float)o->beta1, (float)o->beta2, (float)o->eps, (float)(1.0 / bc1),
                           (float)(1.0 / sqrt(bc2)), (float)scale};
#pragma omp parallel
    {
        int64_t lo, hi;
        for (int i = share(sg, k, &lo, &hi); i < k && lo < hi; i++) {
            int64_t start = sg[i].end - sg[i].n, to = (hi < sg[i].end ? hi : sg[i].end) - start;
            float a = (float)(lr * sg[i].lr_scale);
            float decay = sg[i].decay ? (float)(1.0 - lr * sg[i].lr_scale * o->weight_decay) : 1.0f;
            adam_range(P, &sg[i], &c, a, decay, lo - start, to);
            lo = start + to;
        }
    }
    free(sg);
    return 0;
}

int optim_precision(params *P, const char *precision)
{
    if (!precision || strcmp(precision, "bf16") != 0 || !compute_bf16_available())
        return 0;
    return params_refresh_bf16(P) != 0 ? -1 : 1;
}
