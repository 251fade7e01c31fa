/* drive_train.c — `run = "train"` (Task 4): the multi-task training loop.
 * Each step the sampler picks the task of the next batch (or a joint batch
 * of all tasks); the batch runs forward through the shared encoder and the
 * task's head and loss; the combined loss runs backward (only the heads
 * that had labels in the batch get gradient; the backbone only when it
 * trains, and only down to its lowest trainable layer); every `accumulate`
 * batches the gradients are clipped and AdamW steps with the scheduled
 * learning rate times each tensor's scale. The freeze policy may change
 * what trains before any step. Dev sets are evaluated every `eval_every`
 * steps or each epoch; the best evaluation's checkpoint is kept in best/,
 * the latest (with the optimizer and data state, for --resume) in last/.
 * Writes metrics.csv, metrics.json, predictions_<task>.csv,
 * confusion_<task>.csv and PNG plots. */
#include <fnmatch.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "ddp.h"
#include "trainer.h"
#include "world.h"
#include "runner/kit/compute.h"
#include "runner/kit/util.h"
#include "signals.h"

/* ---- the loop ------------------------------------------------------------------ */

static void tr_log_group(trainer *tr, const char *glob)
{
    params *P = &tr->pl->P;
    int64_t all = params_count(P, glob, 0), on = params_count(P, glob, 1);
    double scale = -1;
    for (int i = 0; i < P->n; i++)
        if (fnmatch(glob, P->p[i].name, 0) == 0) {
            scale = P->p[i].lr_scale;
            break;
        }
    pipeline_log(tr->pl, RUNNER_LOG_INFO, "  %-28s %10lld of %10lld trainable, lr scale %.4g", glob,
                 (long long)on, (long long)all, scale);
}

/* Trainable counts and lr scales per layer group, as the backbone names
 * its groups, then the heads. */
static void tr_log_groups(trainer *tr)
{
    const runner_host *h = &tr->m.enc.backbone->host;
    char glob[300];
    pipeline_log(tr->pl, RUNNER_LOG_INFO, "step %lld: trainable parameters by group:", (long long)tr->step);
    for (int g = 0; g < h->layer_groups(h); g++)
        if (h->layer_group(h, g, glob, sizeof glob) == 0)
            tr_log_group(tr, glob);
    tr_log_group(tr, "heads.*");
}

/* Log rows of the training loss (every log_every steps): one per task
 * that had batches since the last one. */
static int tr_log_losses(trainer *tr, double lr)
{
    double now = time_now();
    double sps = (double)(tr->sentences - tr->sentences_log) / (now - tr->t_log + 1e-9);
    for (int k = 0; k < tr->m.ntasks; k++) {
        if (!tr->loss_n[k])
            continue;
        log_row *r = tr_add_row(tr);
        if (r) {
            r->step = tr->step;
            r->epoch = (int)(tr->step / tr->steps_per_epoch);
            r->task = k;
            r->loss = tr->loss_sum[k] / tr->loss_n[k];
            r->lr = lr;
            r->sps = sps;
        }
    }
    memset(tr->loss_sum, 0, (size_t)tr->m.ntasks * sizeof *tr->loss_sum);
    memset(tr->loss_n, 0, (size_t)tr->m.ntasks * sizeof *tr->loss_n);
    tr->t_log = now;
    tr->sentences_log = tr->sentences;
    return tr_loss_weights(tr, lr);
}

/* The epoch the last finished step belongs to (1-based), and how many
 * epochs the run has (max_steps may end it early). */
static int tr_epoch(const trainer *tr) { return tr->step > 0 ? (int)((tr->step - 1) / tr->steps_per_epoch) + 1 : 1; }
static int tr_epochs(const trainer *tr) { return (int)((tr->total + tr->steps_per_epoch - 1) / tr->steps_per_epoch); }

/* The progress display: on a terminal one line redrawn in place (at most
 * 10 times a second, and at the last step): bar, %, step, epoch, steps/s,
 * sentences/s, smoothed loss per task, ETA; otherwise a plain line about
 * every 10% of the steps (or 30 s). */
static void tr_show(trainer *tr, double lr)
{
    double now = time_now();
    int last = tr->step == tr->total;
    int periodic = tr->step % (tr->total / 10 > 0 ? tr->total / 10 : 1) == 0 || now - tr->t_show >= 30;
    if (tr->pl->quiet || (tr->tty ? now - tr->t_show < 0.1 && !last : !periodic && !last))
        return;
    tr->t_show = now;
    double elapsed = tr->train_seconds + (now - tr->t_start), done = (double)(tr->step - tr->step0);
    double steps_s = elapsed > 0 ? done / elapsed : 0, sent_s = elapsed > 0 ? (double)tr->sentences / elapsed : 0;
    double eta = steps_s > 0 ? (double)(tr->total - tr->step) / steps_s : 0;
    double frac = tr->total ? (double)tr->step / (double)tr->total : 1;
    char losses[256], bar[32];
    size_t used = 0;
    losses[0] = 0;
    for (int k = 0; k < tr->m.ntasks && used < sizeof losses; k++)
        if (tr->show_n[k])
            used += (size_t)snprintf(losses + used, sizeof losses - used, " %.12s %.3f", tr->m.t[k].name,
                                     tr->show_loss[k]);
    int filled = (int)(frac * 16 + 0.5);
    for (int i = 0; i < 16; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[16] = 0;
    if (tr->tty) { /* cut to the terminal's width: a wrapped line could not be redrawn */
        char line[512];
        struct winsize ws;
        int width = ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20 ? ws.ws_col - 1 : 79;
        snprintf(line, sizeof line, "[%s] %3.0f%% %lld/%lld epoch %d/%d %.2f steps/s %.0f sent/s ETA %dm%02ds loss%s",
                 bar, 100 * frac, (long long)tr->step, (long long)tr->total, tr_epoch(tr), tr_epochs(tr), steps_s,
                 sent_s, (int)eta / 60, (int)eta % 60, losses);
        fprintf(stderr, "\r\033[K%.*s", width, line);
    } else
        pipeline_log(tr->pl, RUNNER_LOG_INFO, "%3.0f%% step %lld/%lld epoch %d/%d | %.2f steps/s %.0f sent/s | loss%s | lr %.3g | ETA %ds",
                     100 * frac, (long long)tr->step, (long long)tr->total, tr_epoch(tr), tr_epochs(tr), steps_s,
                     sent_s, losses, lr, (int)eta);
    tr->bar_shown = tr->tty;
}

/* Clear the progress line before other output. */
void tr_clear_progress(trainer *tr)
{
    if (tr->bar_shown)
        fputs("\r\033[K", stderr);
    tr->bar_shown = 0;
}

static int tr_setup(trainer *tr)
{
    pipeline *pl = tr->pl;
    if (model_open(pl, &tr->m, 1, NULL) != 0)
        return -1;
    config_setting_t *ss = config_lookup(&pl->cfg, "sampler");
    if (!ss && tr->m.ntasks > 1)
        return err_set("%s: %d tasks need a `sampler` (round_robin, proportional, temperature or joint)",
                       pl->file, tr->m.ntasks);
    if (ss && !(tr->sampler = pipeline_stage(pl, "sampler", "sampler.", RUNNER_KIND_SAMPLER, ss)))
        return -1;
    config_setting_t *fs = config_lookup(&pl->cfg, "freeze");
    if (fs && !(tr->freeze = pipeline_stage(pl, "freeze", "freeze.", RUNNER_KIND_FREEZE, fs)))
        return -1;
    tr->B = (int)cfg_int(pl, "train.batch", 32);
    tr->accumulate = (int)cfg_int(pl, "train.accumulate", 1);
    tr->epochs = (int)cfg_int(pl, "train.epochs", 1);
    tr->eval_every = (int)cfg_int(pl, "train.eval_every", 0);
    tr->log_every = (int)cfg_int(pl, "train.log_every", 5);
    tr->patience = (int)cfg_int(pl, "train.early_stop", 0);
    tr->lr = cfg_num(pl, "train.lr", 5e-5);
    tr->clip = cfg_num(pl, "train.clip", 1.0);
    tr->select = cfg_str(pl, "train.select");
    tr->stop_after = cfg_int(pl, "train.stop_after", 0);
    tr->grad_cosine_every = (int)cfg_int(pl, "train.grad_cosine_every", 0);
    tr->lw_scale = cfg_num(pl, "train.loss_weight_lr_scale", 1.0);
    if (tr->grad_cosine_every > 0 && tr->m.ntasks < 2)
        pipeline_log(pl, RUNNER_LOG_INFO, "train.grad_cosine_every: one task, no pair to compare");
    if (tr->B < 1 || tr->accumulate < 1 || tr->epochs < 1 || tr->log_every < 1)
        return err_set("%s: train.batch, accumulate, epochs and log_every must be at least 1", pl->file);
    if (sched_parse(cfg_str(pl, "train.schedule") ? cfg_str(pl, "train.schedule") : "linear", &tr->sched) != 0)
        return -1;
    tr->opt = (adamw){tr->lr, 0.9, 0.999, 1e-8, cfg_num(pl, "train.weight_decay", 0.01), 0};
    /* one epoch: every task's data once (joint: the shared data once) */
    int64_t batches = 0;
    const runner_sampler_ops *sops = tr->sampler ? tr->sampler->desc->ops : NULL;
    int joint = sops && tr->sampler->desc->abi_minor >= 2 && sops->joint;
    for (int k = 0; k < tr->m.ntasks; k++) {
        int64_t n = tr->m.t[k].train.ds.n;
        if (!joint || k == 0)
            batches += (n + tr->B - 1) / tr->B;
    }
    tr->steps_per_epoch = (batches + tr->accumulate - 1) / tr->accumulate;
    if (tr->steps_per_epoch < 1)
        tr->steps_per_epoch = 1;
    tr->total = tr->steps_per_epoch * tr->epochs;
    int64_t max_steps = cfg_int(pl, "train.max_steps", 0);
    if (max_steps > 0 && max_steps < tr->total)
        tr->total = max_steps;
    tr->warmup = (int64_t)(cfg_num(pl, "train.warmup", 0.1) * (double)tr->total);
    if (tr->sampler) {
        int64_t *sizes = malloc((size_t)tr->m.ntasks * sizeof *sizes);
        if (!sizes)
            return err_set("out of memory");
        for (int k = 0; k < tr->m.ntasks; k++)
            sizes[k] = tr->m.t[k].train.ds.n;
        const runner_sampler_ops *so = tr->sampler->desc->ops;
        int rc = so->bind(tr->sampler->self, tr->m.ntasks, sizes);
        free(sizes);
        if (rc != 0)
            return -1;
    }
    tr->final_v = calloc((size_t)tr->m.ntasks, sizeof *tr->final_v);
    tr->best_v = calloc((size_t)tr->m.ntasks, sizeof *tr->best_v);
    tr->loss_sum = calloc((size_t)tr->m.ntasks, sizeof *tr->loss_sum);
    tr->loss_n = calloc((size_t)tr->m.ntasks, sizeof *tr->loss_n);
    tr->best_cm = calloc((size_t)tr->m.ntasks, sizeof *tr->best_cm);
    tr->show_loss = calloc((size_t)tr->m.ntasks, sizeof *tr->show_loss);
    tr->show_n = calloc((size_t)tr->m.ntasks, sizeof *tr->show_n);
    if (!tr->final_v || !tr->best_v || !tr->loss_sum || !tr->loss_n || !tr->best_cm || !tr->show_loss || !tr->show_n)
        return err_set("out of memory");
    tr->tty = isatty(2);
    return 0;
}

static int tr_apply_freeze(trainer *tr, int force_log)
{
    int changed = 0;
    if (tr->freeze) {
        runner_train_pos pos = {tr->step, tr->total, (int)(tr->step / tr->steps_per_epoch), tr->epochs,
                                tr->steps_per_epoch};
        const runner_freeze_ops *fo = tr->freeze->desc->ops;
        if (fo->apply(tr->freeze->self, &pos, &changed) != 0)
            return -1;
    }
    if (changed && tr->pl->P.grad) /* frozen tensors may hold stale sums: none may reach an update */
        params_zero_grad(&tr->pl->P);
    /* the learned loss weights' own learning-rate scale, after any policy
     * that resets every tensor's (freeze none sets "*" to 1) */
    if (tr->m.uncertainty && params_set(&tr->pl->P, "combiner.log_var", -1, tr->lw_scale) != 1)
        return err_set("%s: combiner.log_var is not in the parameter store", tr->pl->file);
    if (changed || force_log)
        tr_log_groups(tr);
    return 0;
}

/* ---- data parallel (several ranks) ---------------------------------------------- */

/* Every rank needs a share of every batch; gradients are summed by d. */
static int tr_ddp_open(trainer *tr, ddp *d)
{
    pipeline *pl = tr->pl;
    if (world_size() == 1)
        return 0;
    for (int k = 0; k < tr->m.ntasks; k++) {
        int n = tr->B < tr->m.t[k].train.ds.n ? tr->B : tr->m.t[k].train.ds.n;
        if (n < world_size())
            return err_set("%s: batches of %d sentences (task %s) cannot be split over %d ranks: "
                           "raise train.batch or use fewer ranks", pl->file, n, tr->m.t[k].name, world_size());
    }
    const char *bb = tr->m.enc.backbone->desc->name;
    if (ddp_open(d, &pl->P, cfg_bool(pl, "train.overlap", 1), cfg_num(pl, "train.bucket_mb", 4),
                 strcmp(bb, "bert") == 0, &tr->m.enc.backbone->host) != 0)
        return -1;
    tr->m.ddp = d;
    if (pl->P.grad_note[0] && world_is_root()) /* every rank decided the same */
        pipeline_log(pl, RUNNER_LOG_WARN, "train.allreduce = \"auto\": summing with the MPI all-reduce, "
                     "not in shared memory: %s", pl->P.grad_note);
    pipeline_log(pl, RUNNER_LOG_INFO, "data parallel over %d ranks: global batch %d, %d threads each, "
                 "gradient sum: %s", world_size(), tr->B, pl->threads,
                 d->g.shm ? "shared (through a shared-memory window on the node, after backward)"
                 : d->overlap ? "mpi (all-reduce overlapping backward)" : "mpi (all-reduce after backward)");
    return 0;
}

/* This rank's share of a global batch of n rows (rows[*lo .. *lo + *mine)):
 * contiguous runs balanced by tokens (batches are drawn at random, so equal
 * row counts leave one rank waiting for the other), at least one row each.
 * Which rank takes which row changes nothing in the sums. */
static int tr_share(trainer *tr, const encoded *e, const int *rows, int n, int *lo, int *mine)
{
    int W = world_size(), r = world_rank();
    int64_t *w = malloc(((size_t)n + (size_t)W + 1) * sizeof *w), *bounds = w ? w + n : NULL;
    if (!w)
        return err_set("out of memory");
    for (int i = 0; i < n; i++)
        w[i] = e->off[rows[i] + 1] - e->off[rows[i]];
    world_share_weighted(w, n, bounds);
    for (int k = 1; k < W; k++) { /* every rank a row (n >= W is checked at the start) */
        if (bounds[k] < bounds[k - 1] + 1)
            bounds[k] = bounds[k - 1] + 1;
        if (bounds[k] > n - (W - k))
            bounds[k] = n - (W - k);
    }
    *lo = (int)bounds[r];
    *mine = (int)(bounds[r + 1] - bounds[r]);
    tr->m.row0 = bounds[r];
    free(w);
    return 0;
}

/* Before an evaluation: are all ranks still the same? */
static int tr_ddp_check(trainer *tr, ddp *d)
{
    if (!tr->m.ddp)
        return 0;
    char when[64];
    snprintf(when, sizeof when, tr->step == tr->step0 && tr->step == 0 ? "before the first step" : "at step %lld",
             (long long)tr->step);
    return ddp_check(d, tr->pl->rng, when);
}

/* Shared gradient mode: one copy of the values and moments for the node,
 * each rank's optimizer updating its share (else every rank updates the
 * whole store: said once). */
static int tr_share_values(trainer *tr, ddp *d)
{
    if (!tr->m.ddp || !d->g.shm || !cfg_bool(tr->pl, "train.shard_optimizer", 1))
        return 0;
    int shared = ddp_share_values(d);
    if (shared < 0)
        return -1;
    if (shared)
        pipeline_log(tr->pl, RUNNER_LOG_INFO, "optimizer sharded over the %d ranks: one copy of the values and "
                     "moments on the node, each rank updates its share of the summed gradient", world_size());
    else /* each rank says its own cause */
        pipeline_log(tr->pl, RUNNER_LOG_WARN, "every rank updates the whole store: the values could not be "
                     "shared (rank %d: %s)", world_rank(), err_get());
    return 0;
}

/* A signal caught by any rank, so that all stop after the same step (mpirun
 * forwards it to every rank, but they may see it at different steps); a
 * rank that did not catch it records it as caught, so every rank exits
 * 128 + signal. */
static int tr_signal_agreed(void)
{
    if (world_size() == 1)
        return signals_caught();
    int64_t sig = signals_caught();
    if (world_max_i64(&sig, 1) != 0 || sig == 0)
        return 0;
    signals_note((int)sig);
    return signals_caught();
}

/* After the first step: the buckets; at the end: where the time went. */
static void tr_ddp_log(trainer *tr, const ddp *d, int end)
{
    if (!tr->m.ddp)
        return;
    char sum_text[128];
    snprintf(sum_text, sizeof sum_text, "sum (%.1f ms of it summing in shared memory, the rest waiting for the "
             "slowest rank)", d->steps ? 1e3 * world_grad_shm_seconds() / (double)d->steps : 0.0);
    if (!end && d->g.shm)
        pipeline_log(tr->pl, RUNNER_LOG_INFO, "gradient sum in shared memory: %d ranges, %lld bytes per step (+ the "
                     "touched rows of the word embeddings), after backward", d->g.n, (long long)d->floats * 4);
    else if (!end)
        pipeline_log(tr->pl, RUNNER_LOG_INFO, "gradient all-reduce: %d buckets, %lld bytes per step (+ the touched "
                     "rows of the word embeddings), %d released before backward ended", d->g.n,
                     (long long)d->floats * 4, d->early);
    else if (d->steps)
        pipeline_log(tr->pl, RUNNER_LOG_INFO, "data parallel: per step %.1f ms of backbone backward (about %d sentences a "
                     "rank, cut by tokens), then %.1f ms waiting for the gradient %s; %.1f ms in the optimizer step (norm and AdamW, "
                     "%s)", 1e3 * d->t_backward / (double)d->steps, tr->B / world_size(),
                     1e3 * d->t_wait / (double)d->steps, d->g.shm ? sum_text : "all-reduce",
                     1e3 * d->t_step / (double)d->steps,
                     d->g.sharded ? "each rank its share, then waiting for the others" : "every rank the whole store");
}

/* train.precision: "bf16" keeps a bfloat16 copy of the weights for the
 * backbone's matmuls (filled here, then refreshed by each optimizer step),
 * when oneDNN has bf16 matmuls on this CPU; else float32, said once. */
static int tr_precision(trainer *tr)
{
    pipeline *pl = tr->pl;
    const char *p = cfg_str(pl, "train.precision");
    int bf = optim_precision(&pl->P, p);
    if (bf > 0)
        pipeline_log(pl, RUNNER_LOG_INFO, "train.precision = \"bf16\": backbone matmuls with bfloat16 "
                     "inputs and float32 sums (%s); float32 master weights and optimizer state",
                     compute_describe());
    else if (bf == 0 && p && strcmp(p, "bf16") == 0)
        pipeline_log(pl, RUNNER_LOG_INFO, "train.precision = \"bf16\": no bf16 matmul on this CPU "
                     "(%s): training computes in f32", compute_describe());
    return bf < 0 ? -1 : 0;
}

/* Start from train.checkpoint's weights if given, shuffle every task's
 * order, then --resume: weights, optimizer and data positions. */
static int tr_start(trainer *tr)
{
    pipeline *pl = tr->pl;
    const char *init = cfg_str(pl, "checkpoint");
    if (init) {
        int missing = 0;
        if (checkpoint_load_params(init, &pl->P, 1, &missing) != 0)
            return -1;
        pipeline_log(pl, RUNNER_LOG_INFO, "initialised from %s (%d tensors not in it keep their initial values)",
                     init, missing);
    }
    for (int k = 0; k < tr->m.ntasks; k++)
        tr_shuffle_task(tr, &tr->m.t[k]);
    if (!pl->resume)
        return 0;
    char *dir = checkpoint_resolve(pl->resume);
    blob b = {0};
    if (!dir)
        return err_set("--resume %s: no checkpoint there (model.safetensors missing)", pl->resume);
    int bad = checkpoint_load_params(dir, &pl->P, 0, NULL) != 0 || checkpoint_load_state(dir, &b) != 0 ||
              tr_state_load(tr, &b, dir) != 0;
    blob_free(&b);
    if (!bad)
        pipeline_log(pl, RUNNER_LOG_INFO, "resumed from %s at step %lld", dir, (long long)tr->step);
    free(dir);
    return bad ? -1 : 0;
}

/* One optimizer step's batches: the sampler picks each batch's task, this
 * rank takes its share of the global batch, gradients accumulate. */
static int tr_micro_batches(trainer *tr, int *rows)
{
    for (int micro = 0; micro < tr->accumulate; micro++) {
        int which = 0;
        if (tr->sampler) {
            /* samplers count batches, so tasks alternate within an accumulated step */
            runner_train_pos pos = {tr->step * tr->accumulate + micro, tr->total * tr->accumulate,
                                    (int)(tr->step / tr->steps_per_epoch), tr->epochs,
                                    tr->steps_per_epoch * tr->accumulate};
            const runner_sampler_ops *so = tr->sampler->desc->ops;
            if (so->next(tr->sampler->self, &pos, &which) != 0)
                return -1;
        }
        task *t = &tr->m.t[which < 0 ? 0 : which];
        int n = tr_next_rows(tr, t, rows), lo = 0, mine = n;
        double total;
        tr->m.row0 = 0;
        if (world_size() > 1 && tr_share(tr, &t->train.enc, rows, n, &lo, &mine) != 0)
            return -1;
        tr->m.sync = micro == tr->accumulate - 1;
        if (model_train_batch(&tr->m, which, rows + lo, mine, tr->accumulate, &total) != 0)
            return -1;
        for (int k = 0; k < tr->m.ntasks; k++)
            if (which < 0 || which == k) {
                tr->loss_sum[k] += tr->m.t[k].batch_loss;
                tr->loss_n[k]++;
                tr->show_loss[k] = tr->show_n[k]++ ? 0.9 * tr->show_loss[k] + 0.1 * tr->m.t[k].batch_loss
                                                   : tr->m.t[k].batch_loss;
            }
        tr->sentences += n;
    }
    return 0;
}

enum { STEP_ON = 0, STEP_STOP_AFTER = 1, STEP_EARLY_STOP = 2 };

/* After an optimizer step: logs, progress, evaluation when due, and
 * whether to stop (train.stop_after, early stopping). -1 on error. */
static int tr_after_step(trainer *tr, ddp *dp, double lr)
{
    pipeline *pl = tr->pl;
    if (tr->step == tr->step0 + 1)
        tr_ddp_log(tr, dp, 0);
    if ((tr->step % tr->log_every == 0 || tr->step == tr->total) && tr_log_losses(tr, lr) != 0)
        return -1;
    tr_show(tr, lr);
    int epoch_end = tr->step % tr->steps_per_epoch == 0;
    if (!((tr->eval_every > 0 ? tr->step % tr->eval_every == 0 : epoch_end) || tr->step == tr->total))
        return STEP_ON;
    tr->train_seconds += time_now() - tr->t_start;
    if (tr_ddp_check(tr, dp) != 0 || tr_evaluate(tr, lr) != 0)
        return -1;
    tr->t_start = tr->t_log = time_now();
    tr->sentences_log = tr->sentences;
    tr_clear_progress(tr);
    if (tr->stop_after > 0 && tr->step >= tr->stop_after) {
        pipeline_log(pl, RUNNER_LOG_INFO, "stopping after step %lld as asked (train.stop_after): "
                     "continue with --resume %s/last", (long long)tr->step, pl->out_dir);
        return STEP_STOP_AFTER;
    }
    if (tr->patience > 0 && tr->bad_evals >= tr->patience) {
        pipeline_log(pl, RUNNER_LOG_INFO, "early stop: %d evaluations without improvement", tr->bad_evals);
        tr->stopped_early = 1;
        return STEP_EARLY_STOP;
    }
    return STEP_ON;
}

/* The loop: freeze policy, cache, batches, AdamW, evaluations, signals.
 * Returns -1 on error, STEP_STOP_AFTER when the run stops as asked,
 * else 0 (trained to the end or stopped early). */
static int tr_loop(trainer *tr, ddp *dp, int *rows)
{
    pipeline *pl = tr->pl;
    tr->t_start = tr->t_log = time_now();
    tr->step0 = tr->step;
    while (tr->step < tr->total) {
        if (tr_apply_freeze(tr, 0) != 0)
            return -1;
        int bb = model_backbone_trains(&tr->m);
        if (!bb && model_build_cache(&tr->m) != 0)
            return -1;
        if (bb)
            model_drop_cache(&tr->m);
        if (tr_grad_cosine(tr) != 0)
            return -1;
        if ((tr->m.ddp && ddp_plan(dp) != 0) || tr_micro_batches(tr, rows) != 0)
            return -1;
        tr->opt.only = dp->share; /* shared values: this rank's share */
        tr->opt.nonly = dp->nshare;
        double lr = sched_lr(tr->sched, tr->lr, tr->step, tr->total, tr->warmup);
        double t = time_now();
        if (adamw_step(&tr->opt, &pl->P, lr, clip_scale(ddp_grad_norm(dp, &pl->P), tr->clip)) != 0 ||
            ddp_step_done(dp) != 0)
            return -1;
        dp->t_step += time_now() - t;
        tr->step++;
        int after = tr_after_step(tr, dp, lr);
        if (after < 0 || after == STEP_STOP_AFTER)
            return after;
        if (after == STEP_EARLY_STOP)
            break;
        if (tr_signal_agreed() && tr_stop_on_signal(tr) != 0) /* SIGINT/SIGTERM: this step done, last/ saved */
            return -1;
    }
    return 0;
}

/* Rank 0's report: metrics.json, plots, the best step, the test split,
 * the export, throughput. */
static int tr_report(trainer *tr, ddp *dp)
{
    pipeline *pl = tr->pl;
    if (tr_write_metrics_json(tr) != 0 || tr_draw_plots(tr) != 0)
        return -1;
    printf("%s: best at step %lld (%s = %.4f)\n", pl->name, (long long)tr->best_step,
           tr->select ? tr->select : "mean headline metric", tr->best);
    for (int k = 0; k < tr->m.ntasks; k++) {
        printf("  %-12s", tr->m.t[k].name);
        for (int j = 0; j < tr->best_v[k].n && j < 4; j++)
            printf(" %s %.4f", tr->best_v[k].name[j], tr->best_v[k].value[j]);
        printf("\n");
    }
    tr_print_test(tr);
    const char *export = cfg_str(pl, "train.export");
    if (export) {
        char *best = run_path(pl, "best");
        int bad = !best || checkpoint_export(best, export) != 0;
        free(best);
        if (bad)
            return -1;
        printf("exported the best checkpoint's model folder to %s\n", export);
    }
    tr_ddp_log(tr, dp, 1);
    printf("trained %lld steps (%d epoch%s) on %lld sentences in %.2f s: %.2f steps/s, %.1f sentences/s\n",
           (long long)(tr->step - tr->step0), tr_epochs(tr), tr_epochs(tr) > 1 ? "s" : "", (long long)tr->sentences,
           tr->train_seconds, tr->train_seconds > 0 ? (double)(tr->step - tr->step0) / tr->train_seconds : 0.0,
           tr->train_seconds > 0 ? (double)tr->sentences / tr->train_seconds : 0.0);
    printf("metrics: %s/metrics.csv, %s/metrics.json\n", pl->out_dir, pl->out_dir);
    printf("results in %s\n", pl->out_dir);
    return 0;
}

static void tr_free(trainer *tr)
{
    for (int k = 0; k < tr->m.ntasks; k++) {
        if (tr->final_v)
            eval_values_free(&tr->final_v[k]);
        if (tr->best_v)
            eval_values_free(&tr->best_v[k]);
        if (tr->best_cm)
            free(tr->best_cm[k]);
        if (tr->test_v)
            eval_values_free(&tr->test_v[k]);
    }
    free(tr->test_v);
    for (int i = 0; i < tr->nrows; i++)
        eval_values_free(&tr->rows[i].v);
    free(tr->rows);
    free(tr->final_v);
    free(tr->best_v);
    free(tr->best_cm);
    free(tr->show_loss);
    free(tr->show_n);
    free(tr->loss_sum);
    free(tr->loss_n);
    model_close(&tr->m);
}

int drive_train(pipeline *pl)
{
    ddp dp;
    memset(&dp, 0, sizeof dp);
    trainer tr;
    memset(&tr, 0, sizeof tr);
    tr.pl = pl;
    int rc = -1, *rows = NULL;
    if (tr_setup(&tr) != 0 || tr_apply_freeze(&tr, 0) != 0)
        goto done;
    int with_grad = params_count(&pl->P, "*", 1) > 0;
    if (ddp_shared(cfg_str(pl, "train.allreduce"), pl->file, &pl->P.grad_shared) != 0 ||
        encoder_load(pl, &tr.m.enc, with_grad) != 0 || tr_start(&tr) != 0)
        goto done;
    if (!tr.freeze)
        tr_log_groups(&tr);
    if (tr_ddp_open(&tr, &dp) != 0 || tr_ddp_check(&tr, &dp) != 0 || tr_precision(&tr) != 0)
        goto done;
    pipeline_log(pl, RUNNER_LOG_INFO, "%d task%s, %lld steps (%lld per epoch), batch %d x %d accumulated, lr %.3g",
                 tr.m.ntasks, tr.m.ntasks > 1 ? "s" : "", (long long)tr.total, (long long)tr.steps_per_epoch,
                 tr.B, tr.accumulate, tr.lr);
    if (!with_grad) {
        pipeline_log(pl, RUNNER_LOG_INFO, "nothing trains: evaluation only (no gradients, no optimizer state)");
        if (model_build_cache(&tr.m) != 0 || tr_evaluate(&tr, 0) != 0)
            goto done;
    } else {
        if (!(rows = malloc((size_t)tr.B * sizeof *rows))) {
            err_set("out of memory");
            goto done;
        }
        int loop = tr_share_values(&tr, &dp) != 0 ? -1 : tr_loop(&tr, &dp, rows);
        if (loop >= 0 && params_private_values(&pl->P) != 0) /* loading the best checkpoint writes values */
            loop = -1;
        if (loop != 0) {
            rc = loop == STEP_STOP_AFTER ? 0 : -1;
            goto done;
        }
    }
    tr_clear_progress(&tr);
    /* the test sources are evaluated by every rank (sharded), once rank 0
     * has finished writing the best checkpoint they load */
    if (world_barrier() != 0 || tr_evaluate_test(&tr) != 0)
        goto done;
    /* rank 0 writes and reports */
    rc = world_is_root() ? tr_report(&tr, &dp) : 0;
done:
    free(rows);
    tr_free(&tr);
    ddp_close(&dp);
    return rc;
}
