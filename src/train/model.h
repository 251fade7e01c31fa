/* model.h — the multi-task model of a `tasks` pipeline: the shared encoder
 * (tokenizer, backbone, pooler), per task a head, a loss and metrics, the
 * task's data (train/dev, tokenized once, token labels aligned to the
 * first piece of each word), the loss combination (fixed weights or
 * learned uncertainty weights), forward/backward of one batch, evaluation
 * on a dev set, and the frozen-backbone embedding cache. */
#ifndef MODEL_H
#define MODEL_H

#include <stdint.h>

#include "data.h"
#include "embed.h"
#include "pipeline.h"
#include "text.h"

/* One evaluation result: named values, the first is the headline. */
typedef struct eval_values {
    int n, cap;
    char **name;
    double *value;
} eval_values;

void eval_values_free(eval_values *v);
/* Append one named value. */
int eval_values_add(eval_values *v, const char *name, double value);

typedef struct task_data {
    dataset ds;
    encoded enc;
    int32_t *piece_label; /* token tasks: per piece (flat, enc offsets), -1 ignored */
    float *cache;         /* frozen-backbone cache: (n, D) pooled embeddings, or NULL */
} task_data;

typedef struct task {
    char *name;
    int index, per_token, n_labels, n_out;
    int mlm; /* unlabeled text: masked-language-model task */
    double weight;
    stage *head, *loss;
    stage **metrics;
    int nmetrics;
    task_data train, dev, test; /* test: when the dataset has a test source */
    int has_test;
    /* data position (saved in checkpoints) */
    int *order;
    int64_t cursor;
    int passes;
    /* per batch */
    float *logits, *dlogits;
    int32_t *labels;
    size_t cap;
    double batch_loss;
    int batch_count; /* rows that carried a label */
} task;

typedef struct model {
    pipeline *pl;
    encoder enc;
    stage *pooler;
    int D;            /* pooled size */
    int ntasks;
    task *t;
    int uncertainty;  /* learned loss weights */
    float *log_var, *dlog_var; /* (ntasks) s_t = log sigma_t^2 */
    int joint_ok;     /* all tasks share their sentences (joint batches) */
    batch bt;
    float *pooled, *dpooled;
    size_t cap_pooled;
    /* rows a per-token head sees: flat (B*T) positions, their states,
     * gradients and labels */
    int *sel;
    int32_t *sel_label;
    float *xsel, *dxsel;
    size_t cap_sel, cap_xsel;
    uint64_t *keys;   /* the rows' dropout keys for a keyed head (ABI 1.4) */
    size_t cap_keys;
    runner_tokenizer_info tok;
    int with_data;    /* datasets loaded */
    /* data parallel (ddp.h): the gradient sums, whether this batch ends
     * the step (sums its gradients), and the position of this rank's first
     * row in the global batch (per-example randomness) */
    struct ddp *ddp;
    int sync;
    int64_t row0;
    int measure; /* a gradient measurement (study.c): raw losses (weight 1), no loss-weight gradient */
} model;

/* MLM: the share of word pieces selected, and of those the shares
 * replaced by [MASK] and by a random piece (BERT: 15%, 80/10/10). */
#define MLM_SELECT 0.15
#define MLM_MASK 0.8
#define MLM_RANDOM 0.1

/* Build stages and (with_data) load and tokenize every task's data; heads
 * are bound. labels_from: a checkpoint folder whose metadata names the
 * labels (for prediction without data), or NULL. */
int model_open(pipeline *pl, model *m, int with_data, const char *labels_from);
void model_close(model *m);
/* Metadata pairs (labels.<task> = names joined by '\n') for checkpoints;
 * free with model_meta_free. */
int model_meta(const model *m, char ***meta, int *nmeta);
void model_meta_free(char **meta, int nmeta);
/* Does any backbone parameter train now? */
int model_backbone_trains(const model *m);
/* One training batch: rows (indices into each task's train data) of task
 * `which` (-1: every task, a joint batch). Forward, losses, combination,
 * backward (gradients accumulate, scaled by 1/accumulate). Returns the
 * combined loss in *total. */
int model_train_batch(model *m, int which, const int *rows, int n, int accumulate, double *total);
/* Evaluate task k on its dev set: dev loss, metrics; if pred/prob are not
 * NULL they receive the predicted label (sentence tasks: per example;
 * token tasks: per word, flat as ds.tag_off) and its probability. */
int model_evaluate(model *m, int k, eval_values *out, int32_t *pred, float *prob);
/* Evaluate task k once on its test source (has_test): as model_evaluate. */
int model_evaluate_test(model *m, int k, eval_values *out, int32_t *pred, float *prob);
/* study.c: per pair of tasks (a < b, in order) the cosine between the
 * tasks' raw-loss gradients on the backbone's trainable tensors, each on
 * up to B rows of its training data drawn from a stream seeded by seed;
 * NAN where a gradient is zero. The run's gradient block, random stream
 * and data-parallel state are restored: training is unaffected. Every
 * rank computes the same (no gradient sums). */
int model_grad_cosines(model *m, int B, uint64_t seed, double *cos);
/* Fill the frozen-backbone cache of every sentence task (eval mode). */
int model_build_cache(model *m);
void model_drop_cache(model *m);
/* Predict task k for raw sentences (task2): label and probability per
 * sentence (sentence task) or per word (token task; the words of sentence
 * i at word_off[i] .. word_off[i+1]). */
int model_predict_sentences(model *m, const encoded *e, int k, int32_t *label, float *prob,
                            const int64_t *word_off);

#endif
