/* state.c — the trainer's data positions and its saved state (last/ and
 * best/ checkpoints, --resume). */
#include <fnmatch.h>
#include <gsl/gsl_randist.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trainer.h"
#include "world.h"
#include "runner/kit/util.h"
#include "signals.h"

/* ---- data positions --------------------------------------------------------- */

void tr_shuffle_task(trainer *tr, task *t)
{
    t->cursor = 0;
    if (t->train.ds.n < 2) /* GSL asks for a number below 0 when n = 0 */
        return;
    gsl_ran_shuffle(tr->pl->rng, t->order, (size_t)t->train.ds.n, sizeof *t->order);
    t->cursor = 0;
}

/* Next n rows of task t, wrapping (and reshuffling) at the end. */
int tr_next_rows(trainer *tr, task *t, int *rows)
{
    int n = tr->B < t->train.ds.n ? tr->B : t->train.ds.n;
    for (int i = 0; i < n; i++) {
        if (t->cursor >= t->train.ds.n) {
            t->passes++;
            tr_shuffle_task(tr, t);
        }
        rows[i] = t->order[t->cursor++];
    }
    return n;
}

/* ---- trainer state (checkpoints) ------------------------------------------- */

int tr_state_save(trainer *tr, blob *b)
{
    params *P = &tr->pl->P;
    uint32_t rng_size = (uint32_t)gsl_rng_size(tr->pl->rng);
    int has_m = P->m != NULL;
    if (blob_put(b, &tr->step, sizeof tr->step) || blob_put(b, &tr->opt.t, sizeof tr->opt.t) ||
        blob_put(b, &tr->best, sizeof tr->best) || blob_put(b, &tr->best_step, sizeof tr->best_step) ||
        blob_put(b, &tr->bad_evals, sizeof tr->bad_evals) || blob_put(b, &tr->evals, sizeof tr->evals) ||
        blob_put(b, &rng_size, sizeof rng_size) || blob_put(b, gsl_rng_state(tr->pl->rng), rng_size) ||
        blob_put(b, &tr->m.ntasks, sizeof tr->m.ntasks))
        return -1;
    for (int k = 0; k < tr->m.ntasks; k++) {
        task *t = &tr->m.t[k];
        if (blob_put(b, &t->train.ds.n, sizeof t->train.ds.n) || blob_put(b, &t->cursor, sizeof t->cursor) ||
            blob_put(b, &t->passes, sizeof t->passes) ||
            blob_put(b, t->order, (size_t)t->train.ds.n * sizeof *t->order))
            return -1;
    }
    if (blob_put(b, &P->total, sizeof P->total) || blob_put(b, &has_m, sizeof has_m))
        return -1;
    if (has_m && (blob_put(b, P->m, (size_t)P->total * sizeof(float)) ||
                  blob_put(b, P->v, (size_t)P->total * sizeof(float))))
        return -1;
    return tr_history_save(tr, b);
}

/* Bytes tr_state_save writes for this trainer (moments included or not). */
static size_t state_size(const trainer *tr, int has_m)
{
    size_t n = 3 * sizeof(int64_t) + sizeof(double) + 2 * sizeof(int) + sizeof(uint32_t) +
               gsl_rng_size(tr->pl->rng) + sizeof(int);
    for (int k = 0; k < tr->m.ntasks; k++)
        n += sizeof(int) + sizeof(int64_t) + sizeof(int) + (size_t)tr->m.t[k].train.ds.n * sizeof(int);
    n += sizeof(int64_t) + sizeof(int);
    if (has_m)
        n += 2 * (size_t)tr->pl->P.total * sizeof(float);
    return n;
}

/* The saved Mersenne Twister: 624 words of 32 bits and an index in
 * [0, 624] (GSL's mt_state_t); a word above 32 bits makes
 * gsl_rng_uniform_int loop forever. */
static int check_rng(const trainer *tr, const uint8_t *state, uint32_t size, const char *dir)
{
    enum { MT_N = 624 };
    unsigned long w;
    int mti;
    if (strcmp(gsl_rng_name(tr->pl->rng), "mt19937") != 0 || size < MT_N * sizeof w + sizeof mti)
        return err_set("%s: cannot check the state of RNG %s", dir, gsl_rng_name(tr->pl->rng));
    for (int i = 0; i < MT_N; i++) {
        memcpy(&w, state + (size_t)i * sizeof w, sizeof w);
        if (w > 0xffffffffUL)
            return err_set("%s: corrupted trainer state: RNG word %d is %#lx, above 32 bits", dir, i, w);
    }
    memcpy(&mti, state + MT_N * sizeof w, sizeof mti);
    if (mti < 0 || mti > MT_N)
        return err_set("%s: corrupted trainer state: RNG index %d outside [0, %d]", dir, mti, MT_N);
    return 0;
}

/* A task's saved position: cursor in [0, n], passes >= 0, order a
 * permutation of 0..n-1. */
static int check_order(const task *t, int64_t cursor, int passes, const int *order, const char *dir)
{
    int n = t->train.ds.n, rc = 0;
    if (cursor < 0 || cursor > n || passes < 0)
        return err_set("%s: corrupted trainer state: task %s at row %lld of %d, pass %d", dir, t->name,
                       (long long)cursor, n, passes);
    char *seen = calloc((size_t)n + 1, 1);
    if (!seen)
        return err_set("out of memory");
    for (int i = 0; i < n && rc == 0; i++) {
        if (order[i] < 0 || order[i] >= n || seen[order[i]])
            rc = err_set("%s: corrupted trainer state: task %s: row order[%d] = %d is not a permutation "
                         "of 0..%d", dir, t->name, i, order[i], n - 1);
        else
            seen[order[i]] = 1;
    }
    free(seen);
    return rc;
}

/* Counters: non-negative, the best step not after the current one. */
static int check_counters(const trainer *tr, const char *dir)
{
    if (tr->step < 0 || tr->opt.t < 0 || tr->best_step < -1 || tr->best_step > tr->step ||
        tr->bad_evals < 0 || tr->evals < 0 || tr->bad_evals > tr->evals || isnan(tr->best))
        return err_set("%s: corrupted trainer state: step %lld, optimizer step %lld, best step %lld, "
                       "%d bad of %d evaluations", dir, (long long)tr->step, (long long)tr->opt.t,
                       (long long)tr->best_step, tr->bad_evals, tr->evals);
    return 0;
}

static int check_moments(const float *m, const float *v, int64_t total, const char *dir)
{
    for (int64_t i = 0; i < total; i++)
        if (!isfinite(m[i]) || !isfinite(v[i]) || v[i] < 0)
            return err_set("%s: corrupted trainer state: optimizer moment %lld is %g / %g", dir,
                           (long long)i, (double)m[i], (double)v[i]);
    return 0;
}

/* One task's position into t, checked first. */
static int load_task(blob *b, task *t, const char *dir)
{
    int n, passes;
    int64_t cursor;
    if (blob_get(b, &n, sizeof n))
        return err_set("%s: %s", dir, err_get());
    if (n != t->train.ds.n)
        return err_set("%s: task %s had %d training examples, now %d: the data or its settings changed",
                       dir, t->name, n, t->train.ds.n);
    if (blob_get(b, &cursor, sizeof cursor) || blob_get(b, &passes, sizeof passes))
        return err_set("%s: %s", dir, err_get());
    if (b->n - b->at < (size_t)n * sizeof(int))
        return err_set("%s: trainer state ends early in the row order of task %s", dir, t->name);
    const int *order = (const int *)(const void *)(b->p + b->at);
    int *copy = malloc(((size_t)n + 1) * sizeof *copy);
    if (!copy)
        return err_set("out of memory");
    memcpy(copy, order, (size_t)n * sizeof *copy);
    b->at += (size_t)n * sizeof(int);
    int rc = check_order(t, cursor, passes, copy, dir);
    if (rc == 0) {
        memcpy(t->order, copy, (size_t)n * sizeof *copy);
        t->cursor = cursor;
        t->passes = passes;
    }
    free(copy);
    return rc;
}

/* The saved state into tr, every field checked before it is used: a state
 * file is data (it may come from elsewhere), its CRC only catches accidents. */
int tr_state_load(trainer *tr, blob *b, const char *dir)
{
    params *P = &tr->pl->P;
    uint32_t rng_size;
    int ntasks, has_m, rc = -1;
    int64_t total;
    uint8_t *rng = NULL;
    /* the fixed part, then the metrics history (checked as it is read) */
    if (b->n < state_size(tr, 0))
        return err_set("%s: trainer state of %zu bytes, expected at least %zu: "
                       "a different pipeline or data?", dir, b->n, state_size(tr, 0));
    if (blob_get(b, &tr->step, sizeof tr->step) || blob_get(b, &tr->opt.t, sizeof tr->opt.t) ||
        blob_get(b, &tr->best, sizeof tr->best) || blob_get(b, &tr->best_step, sizeof tr->best_step) ||
        blob_get(b, &tr->bad_evals, sizeof tr->bad_evals) || blob_get(b, &tr->evals, sizeof tr->evals) ||
        blob_get(b, &rng_size, sizeof rng_size))
        return err_set("%s: %s", dir, err_get());
    if (check_counters(tr, dir) != 0)
        return -1;
    if (rng_size != gsl_rng_size(tr->pl->rng))
        return err_set("%s: RNG state of %u bytes, expected %zu", dir, rng_size, gsl_rng_size(tr->pl->rng));
    if (!(rng = malloc(rng_size)))
        return err_set("out of memory");
    if (blob_get(b, rng, rng_size) || blob_get(b, &ntasks, sizeof ntasks)) {
        err_set("%s: %s", dir, err_get());
        goto done;
    }
    if (check_rng(tr, rng, rng_size, dir) != 0)
        goto done;
    memcpy(gsl_rng_state(tr->pl->rng), rng, rng_size);
    if (ntasks != tr->m.ntasks) {
        err_set("%s: checkpoint of %d tasks, the pipeline has %d", dir, ntasks, tr->m.ntasks);
        goto done;
    }
    for (int k = 0; k < ntasks; k++)
        if (load_task(b, &tr->m.t[k], dir) != 0)
            goto done;
    if (blob_get(b, &total, sizeof total) || blob_get(b, &has_m, sizeof has_m)) {
        err_set("%s: %s", dir, err_get());
        goto done;
    }
    if (total != P->total || (has_m != 0 && has_m != 1) || b->n < state_size(tr, has_m)) {
        err_set("%s: %lld parameters%s, the model has %lld", dir, (long long)total,
                has_m == 0 || has_m == 1 ? "" : " (bad moments flag)", (long long)P->total);
        goto done;
    }
    if (has_m) {
        if (params_alloc_moments(P) != 0 || blob_get(b, P->m, (size_t)total * sizeof(float)) ||
            blob_get(b, P->v, (size_t)total * sizeof(float))) {
            err_set("%s: %s", dir, err_get());
            goto done;
        }
        if (check_moments(P->m, P->v, total, dir) != 0)
            goto done;
    }
    if (b->at < b->n && tr_history_load(tr, b) != 0) { /* older checkpoints have no history */
        err_set("%s: %s", dir, err_get());
        goto done;
    }
    if (b->at != b->n) {
        err_set("%s: %zu bytes of trainer state left over", dir, b->n - b->at);
        goto done;
    }
    rc = 0;
done:
    free(rng);
    return rc;
}

int tr_save_checkpoint(trainer *tr, const char *name, int with_state)
{
    if (!world_is_root()) /* ranks are identical: rank 0 saves */
        return 0;
    char **meta = NULL;
    int nmeta = 0, rc = -1;
    blob b = {0};
    char *dir = run_path(tr->pl, name);
    if (!dir || model_meta(&tr->m, &meta, &nmeta) != 0)
        goto done;
    if (with_state && tr_state_save(tr, &b) != 0)
        goto done;
    rc = checkpoint_save(dir, tr->pl, with_state ? &b : NULL, tr->m.enc.backbone,
                         (const char *const *)meta, nmeta);
done:
    blob_free(&b);
    model_meta_free(meta, nmeta);
    free(dir);
    return rc;
}

int tr_stop_on_signal(trainer *tr)
{
    const char *sig = signal_label(signals_caught());
    if (tr_save_checkpoint(tr, "last", 1) != 0)
        return err_set("stopped by %s after step %lld; last/ could not be written: %s", sig, (long long)tr->step,
                       err_get());
    return err_set("stopped by %s after step %lld; %s/last written: continue with: runner %s --resume %s/last "
                   "(and the same --set options)", sig, (long long)tr->step, tr->pl->out_dir, tr->pl->file,
                   tr->pl->out_dir);
}
