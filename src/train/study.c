/* study.c — instruments of a training run's dynamics, for studies:
 *   gradient conflict (train.grad_cosine_every = N): at step 1 and every
 *     N steps, before that step's update, the cosine between each pair of
 *     tasks' loss gradients on the backbone's trainable tensors. Each task
 *     gets one measurement batch of train.batch rows of its training data
 *     drawn from a stream of its own (seeded by the run's seed and the
 *     step, the same for every task), the raw task loss (weight 1, neither
 *     the fixed weights nor exp(-s_t)), forward and backward into the
 *     gradient block, whose previous contents are restored afterwards. The
 *     run's random stream, data order and gradient sums are untouched, so
 *     training is bit-identical with the measurement on or off.
 *   loss weights (combine = "uncertainty"): exp(-s_t) per task at every
 *     logged step.
 * Both are run rows of the log (task -1): metrics.csv columns
 * grad_cosine.<a>.<b> and loss_weight.<task> (plots.c draws them). */
#include <gsl/gsl_randist.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ddp.h"
#include "trainer.h"
#include "runner/kit/util.h"

/* The backbone's trainable tensors' gradients, gathered into out (NULL:
 * just count). Returns the number of floats. */
static int64_t backbone_grad(const params *P, float *out)
{
    int64_t n = 0;
    for (int i = 0; i < P->n; i++) {
        const param *p = &P->p[i];
        if (!p->trainable || strncmp(p->name, "backbone.", 9) != 0)
            continue;
        if (out)
            memcpy(out + n, P->grad + p->offset, (size_t)p->numel * sizeof *out);
        n += p->numel;
    }
    return n;
}

/* Up to B distinct rows of task t's training data, from r. */
static int draw_rows(const task *t, int B, gsl_rng *r, int *rows)
{
    int N = t->train.ds.n, n = B < N ? B : N;
    int *all = malloc((size_t)(N > 0 ? N : 1) * sizeof *all);
    if (!all)
        return err_set("out of memory");
    for (int i = 0; i < N; i++)
        all[i] = i;
    if (n > 0)
        gsl_ran_choose(r, rows, (size_t)n, all, (size_t)N, sizeof *all);
    free(all);
    return n;
}

/* Task k's raw-loss gradient on its measurement batch, into g. */
static int task_gradient(model *m, int k, int B, uint64_t seed, gsl_rng *r, int *rows, float *g)
{
    params *P = &m->pl->P;
    gsl_rng_set(r, (unsigned long)seed); /* every task the same rows and dropout draws */
    int n = draw_rows(&m->t[k], B, r, rows);
    double total;
    if (n < 0)
        return -1;
    memset(P->grad, 0, (size_t)P->total * sizeof *P->grad);
    if (n > 0 && model_train_batch(m, k, rows, n, 1, &total) != 0)
        return -1;
    backbone_grad(P, g);
    return 0;
}

static double grad_cos(const float *a, const float *b, int64_t n)
{
    double ab = 0, aa = 0, bb = 0;
#pragma omp parallel for reduction(+ : ab, aa, bb) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : NAN;
}

int model_grad_cosines(model *m, int B, uint64_t seed, double *cos)
{
    pipeline *pl = m->pl;
    params *P = &pl->P;
    int K = m->ntasks, rc = -1;
    int64_t n = P->grad ? backbone_grad(P, NULL) : 0;
    if (n == 0)
        return err_set("gradient cosine: the backbone has no trainable tensor");
    float *keep = malloc((size_t)P->total * sizeof *keep), *g = calloc((size_t)K * (size_t)n, sizeof *g);
    int *rows = malloc((size_t)B * sizeof *rows);
    double *loss = malloc((size_t)K * sizeof *loss);
    int *count = malloc((size_t)K * sizeof *count);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937), *run_rng = pl->rng;
    /* aside: the run's gradient sums, random stream, data-parallel hooks */
    struct ddp *d = m->ddp;
    void (*watch)(void *, int) = P->watch;
    int sync = m->sync;
    int64_t row0 = m->row0;
    if (!keep || !g || !rows || !loss || !count || !r) {
        err_set("out of memory");
        goto done;
    }
    memcpy(keep, P->grad, (size_t)P->total * sizeof *keep);
    for (int k = 0; k < K; k++) {
        loss[k] = m->t[k].batch_loss;
        count[k] = m->t[k].batch_count;
    }
    pl->rng = r;
    m->ddp = NULL;
    P->watch = NULL;
    m->sync = 0;
    m->row0 = 0;
    m->measure = 1;
    int bad = 0;
    for (int k = 0; k < K && !bad; k++)
        bad = task_gradient(m, k, B, seed, r, rows, g + (size_t)k * n) != 0;
    pl->rng = run_rng;
    m->ddp = d;
    P->watch = watch;
    m->sync = sync;
    m->row0 = row0;
    m->measure = 0;
    memcpy(P->grad, keep, (size_t)P->total * sizeof *keep);
    for (int k = 0; k < K; k++) {
        m->t[k].batch_loss = loss[k];
        m->t[k].batch_count = count[k];
    }
    if (bad)
        goto done;
    for (int a = 0, at = 0; a < K; a++)
        for (int b = a + 1; b < K; b++)
            cos[at++] = grad_cos(g + (size_t)a * n, g + (size_t)b * n, n);
    rc = 0;
done:
    pl->rng = run_rng;
    if (r)
        gsl_rng_free(r);
    free(keep);
    free(g);
    free(rows);
    free(loss);
    free(count);
    return rc;
}

/* ---- the trainer's side ----------------------------------------------------------- */

/* A run row (task -1) at the trainer's step with named values. */
static log_row *tr_run_row(trainer *tr, int64_t step, double lr)
{
    log_row *r = tr_add_row(tr);
    if (!r) {
        err_set("out of memory");
        return NULL;
    }
    r->step = step;
    r->epoch = (int)(step / tr->steps_per_epoch);
    r->task = -1;
    r->loss = r->sps = NAN;
    r->lr = lr;
    return r;
}

int tr_grad_cosine(trainer *tr)
{
    pipeline *pl = tr->pl;
    int64_t s = tr->step + 1; /* the step about to run, measured before its update */
    int K = tr->m.ntasks;
    if (tr->grad_cosine_every <= 0 || K < 2 || (s != 1 && s % tr->grad_cosine_every != 0))
        return 0;
    if (!model_backbone_trains(&tr->m)) {
        if (!tr->grad_cosine_said++)
            pipeline_log(pl, RUNNER_LOG_INFO, "step %lld: the backbone does not train: no gradient cosine "
                         "(train.grad_cosine_every) while it is frozen", (long long)s);
        return 0;
    }
    int npairs = K * (K - 1) / 2;
    double *cos = malloc((size_t)npairs * sizeof *cos);
    uint64_t seed = ((uint64_t)pl->seed << 32) ^ (uint64_t)s ^ 0x9e3779b97f4a7c15ull;
    if (!cos)
        return err_set("out of memory");
    int rc = model_grad_cosines(&tr->m, tr->B, seed, cos);
    log_row *r = rc == 0 ? tr_run_row(tr, s, sched_lr(tr->sched, tr->lr, tr->step, tr->total, tr->warmup)) : NULL;
    char line[512];
    size_t used = 0;
    line[0] = 0;
    for (int a = 0, at = 0; r && a < K; a++)
        for (int b = a + 1; b < K; b++, at++) {
            char *name = str_printf("grad_cosine.%s.%s", tr->m.t[a].name, tr->m.t[b].name);
            if (!name || eval_values_add(&r->v, name, cos[at]) != 0)
                rc = err_set("out of memory");
            free(name);
            if (used < sizeof line)
                used += (size_t)snprintf(line + used, sizeof line - used, " %.16s/%.16s %+.3f", tr->m.t[a].name,
                                         tr->m.t[b].name, cos[at]);
        }
    if (rc == 0 && r) {
        tr_clear_progress(tr);
        pipeline_log(pl, RUNNER_LOG_INFO, "step %lld: gradient cosine on the backbone:%s", (long long)s, line);
    }
    free(cos);
    return r ? rc : -1;
}

int tr_loss_weights(trainer *tr, double lr)
{
    if (!tr->m.uncertainty || !tr->m.log_var)
        return 0;
    log_row *r = tr_run_row(tr, tr->step, lr);
    for (int k = 0; r && k < tr->m.ntasks; k++) {
        char *name = str_printf("loss_weight.%s", tr->m.t[k].name);
        int bad = !name || eval_values_add(&r->v, name, exp(-(double)tr->m.log_var[k])) != 0;
        free(name);
        if (bad)
            return err_set("out of memory");
    }
    return r ? 0 : -1;
}
