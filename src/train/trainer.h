/* trainer.h — the training run's state, shared by the loop (train.c), its
 * saved state (state.c), evaluation and selection (select.c), reports
 * (report.c) and plots (plots.c). Private to src/train. */
#ifndef TRAINER_H
#define TRAINER_H

#include <stdio.h>

#include "checkpoint.h"
#include "drivers.h"
#include "model.h"
#include "optim.h"
#include "plot.h"
#include "run.h"

typedef struct log_row {
    int64_t step;
    int epoch, task, dev;
    double loss, lr, sps;
    eval_values v; /* dev rows */
} log_row;

typedef struct trainer {
    pipeline *pl;
    model m;
    stage *sampler, *freeze;
    adamw opt;
    sched_kind sched;
    int B, accumulate, epochs, eval_every, log_every, patience;
    int64_t steps_per_epoch, total, warmup, step, stop_after;
    int64_t step0; /* the step this process started at (after --resume) */
    double lr, clip;
    /* selection */
    const char *select;
    double best;
    int64_t best_step;
    int bad_evals, evals, stopped_early;
    eval_values *final_v, *best_v; /* per task */
    int64_t **best_cm; /* per task: the best evaluation's confusion counts (gold x predicted), or NULL */
    eval_values *test_v;           /* per task, after training (NULL: no test source) */
    int64_t test_from;             /* the step whose parameters test_v measures */
    /* logging */
    log_row *rows;
    int nrows, caprows;
    double *loss_sum;
    int *loss_n;
    double t_start, t_log, train_seconds;
    int64_t sentences, sentences_log;
    int tty, bar_shown;
    double *show_loss, t_show; /* progress display: smoothed loss per task */
    int *show_n;
    /* study instruments (study.c) */
    int grad_cosine_every, grad_cosine_said;
    double lw_scale; /* learning-rate scale of the learned loss weights */
} trainer;

/* A task's dev (or test) predictions, for the predictions and confusion files. */
struct pred_out {
    const task *t;
    const int32_t *pred;
    const float *prob;
    int jsonl; /* tr_write_predictions: JSON Lines, else CSV */
    const dataset *d; /* the examples predicted: NULL for the task's dev set */
};

/* train.c */
void tr_clear_progress(trainer *tr);
/* state.c */
void tr_shuffle_task(trainer *tr, task *t);
int tr_next_rows(trainer *tr, task *t, int *rows);
int tr_state_save(trainer *tr, blob *b);
int tr_state_load(trainer *tr, blob *b, const char *dir);
int tr_save_checkpoint(trainer *tr, const char *name, int with_state);
/* After a SIGINT/SIGTERM: save last/ with the trainer state; always -1,
 * with a message saying how to resume. */
int tr_stop_on_signal(trainer *tr);
/* report.c */
log_row *tr_add_row(trainer *tr);
void tr_copy_values(eval_values *dst, const eval_values *src);
int tr_history_save(const trainer *tr, blob *b);
int tr_history_load(trainer *tr, blob *b);
int tr_write_metrics_csv(FILE *f, void *ctx);
/* The run rows' value names in order of first appearance (-1 in *n: out
 * of memory); free the array, not the names. */
const char **tr_run_names(const trainer *tr, int *n);
int tr_write_predictions(FILE *f, void *ctx);
int tr_write_confusion(FILE *f, void *ctx);
void tr_confusion_counts(const struct pred_out *o, int64_t *cm);
int tr_write_metrics_json(trainer *tr);
/* select.c */
int tr_select_minimises(const trainer *tr);
int tr_selection(trainer *tr, eval_values *vals, double *value);
int tr_evaluate(trainer *tr, double lr);
/* evaltest.c: the best checkpoint on each task's test source, once */
int tr_evaluate_test(trainer *tr);
void tr_print_test(const trainer *tr); /* stdout, after the best evaluation's lines */
/* study.c: run rows (task -1) of the log. At step 1 and every
 * grad_cosine_every steps, before the step's update: the gradient cosine
 * of every pair of tasks (grad_cosine.<a>.<b>). */
int tr_grad_cosine(trainer *tr);
/* Uncertainty weighting: exp(-s_t) per task (loss_weight.<task>). */
int tr_loss_weights(trainer *tr, double lr);
/* plots.c */
int tr_draw_plots(trainer *tr);

#endif
