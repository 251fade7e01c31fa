/* optim.c — AdamW, schedules, clipping (see optim.h). PyTorch's AdamW
 * semantics: p *= 1 - lr*wd; m, v moments; bias-corrected update. */
#include "optim.h"

#include <math.h>
#include <string.h>

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

double grad_norm(const params *P)
{
    double sum = 0;
    if (!P->grad)
        return 0;
    for (int i = 0; i < P->n; i++) {
        if (!P->p[i].trainable)
            continue;
        const float *g = P->grad + P->p[i].offset;
        int64_t n = P->p[i].numel;
        double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static)
        for (int64_t j = 0; j < n; j++)
            s += (double)g[j] * g[j];
        sum += s;
    }
    return sqrt(sum);
}

double clip_scale(double norm, double max_norm)
{
    return max_norm > 0 && norm > max_norm ? max_norm / (norm + 1e-6) : 1.0;
}

int adamw_step(adamw *o, params *P, double lr, double scale)
{
    if (!P->grad)
        return err_set("optimizer: nothing is trainable (no gradients were allocated)");
    if (!P->m && params_alloc_moments(P) != 0)
        return -1;
    o->t++;
    double bc1 = 1.0 - pow(o->beta1, (double)o->t), bc2 = 1.0 - pow(o->beta2, (double)o->t);
    for (int i = 0; i < P->n; i++) {
        const param *p = &P->p[i];
        if (!p->trainable)
            continue;
        float *w = P->data + p->offset, *g = P->grad + p->offset;
        float *m = P->m + p->offset, *v = P->v + p->offset;
        float a = (float)(lr * p->lr_scale);
        float decay = (p->flags & RUNNER_PARAM_NO_DECAY) ? 1.0f : (float)(1.0 - lr * p->lr_scale * o->weight_decay);
        float b1 = (float)o->beta1, b2 = (float)o->beta2, eps = (float)o->eps;
        float c1 = (float)(1.0 / bc1), c2 = (float)(1.0 / sqrt(bc2)), gs = (float)scale;
        int64_t n = p->numel;
#pragma omp parallel for schedule(static)
        for (int64_t j = 0; j < n; j++) {
            float gj = g[j] * gs;
            g[j] = 0;
            float mj = b1 * m[j] + (1.0f - b1) * gj;
            float vj = b2 * v[j] + (1.0f - b2) * gj * gj;
            m[j] = mj;
            v[j] = vj;
            w[j] = w[j] * decay - a * (mj * c1) / (sqrtf(vj) * c2 + eps);
        }
    }
    return 0;
}
