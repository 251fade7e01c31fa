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

/* ---- data positions --------------------------------------------------------- */

void tr_shuffle_task(trainer *tr, task *t)
{
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
    return 0;
}

int tr_state_load(trainer *tr, blob *b, const char *dir)
{
    params *P = &tr->pl->P;
    uint32_t rng_size;
    int ntasks, has_m;
    int64_t total;
    if (blob_get(b, &tr->step, sizeof tr->step) || blob_get(b, &tr->opt.t, sizeof tr->opt.t) ||
        blob_get(b, &tr->best, sizeof tr->best) || blob_get(b, &tr->best_step, sizeof tr->best_step) ||
        blob_get(b, &tr->bad_evals, sizeof tr->bad_evals) || blob_get(b, &tr->evals, sizeof tr->evals) ||
        blob_get(b, &rng_size, sizeof rng_size))
        return err_set("%s: %s", dir, err_get());
    if (rng_size != gsl_rng_size(tr->pl->rng))
        return err_set("%s: RNG state of %u bytes, expected %zu", dir, rng_size, gsl_rng_size(tr->pl->rng));
    if (blob_get(b, gsl_rng_state(tr->pl->rng), rng_size) || blob_get(b, &ntasks, sizeof ntasks))
        return err_set("%s: %s", dir, err_get());
    if (ntasks != tr->m.ntasks)
        return err_set("%s: checkpoint of %d tasks, the pipeline has %d", dir, ntasks, tr->m.ntasks);
    for (int k = 0; k < ntasks; k++) {
        task *t = &tr->m.t[k];
        int n;
        if (blob_get(b, &n, sizeof n))
            return err_set("%s: %s", dir, err_get());
        if (n != t->train.ds.n)
            return err_set("%s: task %s had %d training examples, now %d: the data or its settings changed",
                           dir, t->name, n, t->train.ds.n);
        if (blob_get(b, &t->cursor, sizeof t->cursor) || blob_get(b, &t->passes, sizeof t->passes) ||
            blob_get(b, t->order, (size_t)n * sizeof *t->order))
            return err_set("%s: %s", dir, err_get());
    }
    if (blob_get(b, &total, sizeof total) || blob_get(b, &has_m, sizeof has_m))
        return err_set("%s: %s", dir, err_get());
    if (total != P->total)
        return err_set("%s: %lld parameters, the model has %lld", dir, (long long)total, (long long)P->total);
    if (has_m) {
        if (params_alloc_moments(P) != 0 || blob_get(b, P->m, (size_t)total * sizeof(float)) ||
            blob_get(b, P->v, (size_t)total * sizeof(float)))
            return err_set("%s: %s", dir, err_get());
    }
    if (b->at != b->n)
        return err_set("%s: %zu bytes of trainer state left over", dir, b->n - b->at);
    return 0;
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
    rc = checkpoint_save(dir, &tr->pl->P, with_state ? &b : NULL, tr->m.enc.backbone, cfg_str(tr->pl, "model"),
                         (const char *const *)meta, nmeta);
done:
    blob_free(&b);
    model_meta_free(meta, nmeta);
    free(dir);
    return rc;
}
