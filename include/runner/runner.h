/* runner.h — the plugin ABI of runner: the only header a plugin includes.
 *
 * A plugin is a shared object that exports exactly one symbol,
 * RUNNER_ENTRY (runner_plugin_v1), returning a const runner_plugin
 * descriptor. Everything else in the plugin is built with hidden
 * visibility. The host hands each plugin instance a const runner_host
 * table of services (log, error, allocation, RNG, threads, configuration,
 * parameter store); plugins never call exit().
 *
 * Rules of growth: structs here only grow at the end, and every growth
 * bumps RUNNER_ABI_MINOR. A change that moves or removes a member bumps
 * RUNNER_ABI_MAJOR. The loader refuses a plugin built for another major
 * or for a newer minor than the host's.
 *
 * Status convention: functions returning int return 0 on success and -1 on
 * failure, after putting a message in the host with h->error(). Config
 * getters return 1 when a key is absent and has no default.
 */
#ifndef RUNNER_H
#define RUNNER_H

#include <stddef.h>
#include <stdint.h>

#define RUNNER_ABI_MAJOR 1
#define RUNNER_ABI_MINOR 7

#define RUNNER_ENTRY runner_plugin_v1
#define RUNNER_ENTRY_NAME "runner_plugin_v1"
#define RUNNER_EXPORT __attribute__((visibility("default")))

#ifdef __cplusplus
extern "C" {
#endif

typedef enum runner_kind {
    RUNNER_KIND_TOKENIZER = 1,
    RUNNER_KIND_BACKBONE,
    RUNNER_KIND_POOLER,
    RUNNER_KIND_HEAD,
    RUNNER_KIND_LOSS,
    RUNNER_KIND_METRIC,
    RUNNER_KIND_FREEZE,
    RUNNER_KIND_SAMPLER,
    RUNNER_KIND_DATASET   /* ABI 1.2 */
    /* grows at the end */
} runner_kind;

/* Types of configuration keys. The host checks every key of a plugin's
 * section against its table before create() runs: unknown keys and wrong
 * types are reported, all at once, with file and line. */
typedef enum runner_type {
    RUNNER_T_INT = 1,     /* integer */
    RUNNER_T_FLOAT,       /* number (an integer is accepted) */
    RUNNER_T_BOOL,
    RUNNER_T_STRING,
    RUNNER_T_INT_LIST,    /* [1, 2] */
    RUNNER_T_FLOAT_LIST,  /* [0.5, 1] */
    RUNNER_T_STRING_LIST, /* ["a", "b"] */
    RUNNER_T_GROUP        /* { ... }: passed through, checked by the plugin */
} runner_type;

/* One configuration key. def is the default in libconfig syntax ("128",
 * "true", "\"mean\"", "[256]"), or NULL when the key has no default (the
 * getter then returns 1 and the plugin decides). The table ends with {0}.
 *
 * ABI 1.2: limits, checked by the host at --check time (and before
 * create()), for the key and each element of a list:
 *   numbers: an interval, "[0, 1)", "(0, inf]", "[1, 65536]" — "inf" and
 *            "-inf" are unbounded; INT keys without limits must fit in 32
 *            bits (values are checked before any cast, never wrapped);
 *   strings: the choices, "linear|cosine|constant".
 * NULL: no limit. A plugin built for ABI 1.0/1.1 has the shorter struct;
 * the loader reads its table with the old stride. */
typedef struct runner_key {
    const char *name;
    runner_type type;
    const char *def;
    const char *doc;
    const char *limits; /* ABI 1.2 */
} runner_key;

/* The ABI 1.0/1.1 layout of runner_key, for reading old plugins' tables. */
typedef struct runner_key_v1_1 {
    const char *name;
    runner_type type;
    const char *def;
    const char *doc;
} runner_key_v1_1;

typedef struct runner_host runner_host;
typedef struct runner_cfg runner_cfg; /* opaque: a plugin's own section */

typedef struct runner_plugin {
    int abi_major, abi_minor;
    runner_kind kind;
    const char *name;    /* e.g. "mean"; unique within its kind */
    const char *summary; /* one line */
    const runner_key *keys;
    /* Build an instance from its section (keys already type-checked).
     * h stays valid until destroy(). On failure: h->error(), return -1,
     * and leave nothing allocated. */
    int (*create)(const runner_host *h, const runner_cfg *cfg, void **self);
    void (*destroy)(void *self); /* destroy(NULL) is a no-op */
    const void *ops;             /* kind-specific table, below */
    void *reserved[8];
} runner_plugin;

typedef const runner_plugin *(*runner_entry_fn)(void);

/* ---------------------------------------------------------------------
 * Host services. Each plugin instance gets its own table; messages are
 * prefixed with the plugin's slot and name ("backbone/bert: ..."), and
 * parameter names with its slot ("backbone.", "heads.<task>."). */

enum { RUNNER_LOG_ERROR = 0, RUNNER_LOG_WARN, RUNNER_LOG_INFO, RUNNER_LOG_DEBUG };

/* Parameter flags for param_add. */
enum {
    RUNNER_PARAM_NO_DECAY = 1u << 0, /* biases, LayerNorm: no weight decay */
    RUNNER_PARAM_FROZEN = 1u << 1    /* starts frozen */
};

/* Initial values of a new parameter. */
typedef enum runner_init {
    RUNNER_INIT_ZERO = 0,
    RUNNER_INIT_ONE,
    RUNNER_INIT_NORMAL,  /* N(0, std) from the run's RNG */
    RUNNER_INIT_UNIFORM  /* U(-std, std) */
} runner_init;

struct runner_host {
    int abi_major, abi_minor;

    void (*log)(const runner_host *h, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
    /* Record a failure message; returns -1 so `return h->error(h, ...)`. */
    int (*error)(const runner_host *h, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

    void *(*alloc)(size_t bytes);               /* 64-byte aligned, NULL on failure */
    void *(*calloc)(size_t n, size_t size);     /* 64-byte aligned, zeroed */
    void (*free)(void *p);                      /* free(NULL) is a no-op */

    uint64_t (*rng_u64)(const runner_host *h);  /* the run's seeded RNG */
    double (*rng_uniform)(const runner_host *h); /* [0, 1) */
    int (*threads)(const runner_host *h);       /* --threads */
    int (*quiet)(const runner_host *h);

    /* Configuration of this plugin's own section. Defaults come from the
     * key table. Return 0 found (or default), 1 absent without default,
     * -1 error (message set). Lists: count returns -1 when absent. */
    int (*cfg_int)(const runner_cfg *c, const char *key, long long *out);
    int (*cfg_float)(const runner_cfg *c, const char *key, double *out);
    int (*cfg_bool)(const runner_cfg *c, const char *key, int *out);
    int (*cfg_string)(const runner_cfg *c, const char *key, const char **out);
    int (*cfg_count)(const runner_cfg *c, const char *key);
    int (*cfg_int_at)(const runner_cfg *c, const char *key, int i, long long *out);
    int (*cfg_float_at)(const runner_cfg *c, const char *key, int i, double *out);
    int (*cfg_string_at)(const runner_cfg *c, const char *key, int i, const char **out);
    /* A top-level string setting of the pipeline ("model"), or NULL. */
    const char *(*pipeline_string)(const runner_host *h, const char *key);

    /* Parameter store. Register in create() (or bind()); *data and *grad
     * are filled when the store is allocated, before the first forward.
     * grad may be NULL; *grad stays NULL when nothing trains. Returns the
     * parameter's id (>= 0) or -1. shape has ndim entries (ndim <= 4). */
    int (*param_add)(const runner_host *h, const char *name, int ndim,
                     const int64_t *shape, unsigned flags, runner_init init,
                     float std, float **data, float **grad);
    int (*param_trainable)(const runner_host *h, int id);
    /* Set trainable (0/1, or -1 to keep) and lr scale (< 0 to keep) of
     * every parameter whose full name matches the glob; returns the count
     * matched, or -1. Used by freeze policies. */
    int (*param_set)(const runner_host *h, const char *glob, int trainable,
                     double lr_scale);
    /* Parameters (count of floats) matching a glob, trainable or not. */
    int64_t (*param_count)(const runner_host *h, const char *glob);

    /* ABI 1.1: another stage's parameter by its full name
     * ("backbone.embeddings.word_embeddings.weight"), after the store is
     * allocated: its values, its gradient (NULL when it does not train) and
     * its id for param_trainable. -1 if there is no such parameter. Used to
     * tie weights (the MLM decoder to the word embeddings). */
    int (*param_ref)(const runner_host *h, const char *name, float **data, float **grad);

    /* ABI 1.2: the backbone's layer groups, bottom to top (group 0 the
     * embeddings, then one per layer), as the backbone names them — so
     * freeze policies and logs work for any backbone. Count of groups, or
     * -1 when the pipeline has no backbone; the glob of group g
     * ("backbone.encoder.layer.3.*") into buf, or -1. */
    int (*layer_groups)(const runner_host *h);
    int (*layer_group)(const runner_host *h, int g, char *buf, size_t size);

    /* ABI 1.5: mixed-precision training (train.precision = "bf16"): the
     * bfloat16 copy of parameter id's values (same shape), refreshed once
     * after each optimizer step, for the matmuls of a training forward and
     * backward (float32 sums; the float32 values stay the master copy).
     * NULL when training runs in float32 (or not at all). */
    const uint16_t *(*param_bf16)(const runner_host *h, int id);

    /* ABI 1.6: 1 when the run only evaluates (run = "embed", "sts" or
     * "predict"): once the stages are loaded (and a checkpoint read),
     * nothing trains, saves or exports a parameter. 0 otherwise. */
    int (*eval_only)(const runner_host *h);
    /* ABI 1.6: in an eval-only run, a stage that keeps its own copy of a
     * parameter (weights packed for its kernels) gives back the memory of
     * the float32 values, which read as zeros from then on. 0, or -1 with
     * the message set (not an eval-only run, or no such parameter). */
    int (*param_release)(const runner_host *h, int id);
};

/* ---------------------------------------------------------------------
 * Data passed between stages. Shapes in comments are row-major. */

typedef struct runner_batch {
    int B, T;                  /* sentences, padded length */
    const int32_t *ids;        /* (B,T) token ids, pad id on padding */
    const int32_t *type_ids;   /* (B,T) or NULL for all zero */
    const uint8_t *mask;       /* (B,T) 1 token, 0 padding */
    const int32_t *word;       /* (B,T) whitespace-word index of each piece,
                                  -1 for [CLS]/[SEP]/padding; NULL if unknown */
    const int *len;            /* (B) tokens including [CLS] and [SEP] */
    /* ABI 1.4: the index of row 0 in the step's global batch (this
     * rank's first example of the micro-batch; 0 with one rank and outside
     * training). Row r is example row0 + r: per-example randomness
     * (dropout) keyed by it does not depend on ranks or padding. */
    int64_t row0;
    /* ABI 1.7: in an eval forward (train = 0), the lowest hidden state
     * that the stages after the backbone read (the poolers' lowest_layer):
     * a backbone may leave hidden[0 .. lowest_read - 1] unwritten. 0: all
     * of them are read. */
    int lowest_read;
} runner_batch;

/* What a backbone exposes after forward(). hidden[0] is the embedding
 * output, hidden[l] the output of layer l, hidden[L] the last layer; in
 * eval those below the batch's lowest_read may be stale (ABI 1.7). */
typedef struct runner_states {
    int L, B, T, C;
    float *const *hidden;  /* L+1 pointers to (B,T,C) */
    float *const *dhidden; /* L+1 gradient accumulators (B,T,C), zeroed by a
                              training forward; NULL in eval */
} runner_states;

typedef struct runner_tokenizer_info {
    int vocab_size, max_len;
    int32_t pad_id, unk_id, cls_id, sep_id, mask_id;
} runner_tokenizer_info;

typedef struct runner_tokenizer_ops {
    /* One sentence of len bytes (not NUL-terminated; NUL bytes are
     * content) to ids: [CLS] pieces... [SEP], pieces cut to max_len - 2.
     * word (may be NULL) gets each piece's whitespace-word index, -1 for
     * [CLS]/[SEP]. cap >= max_len. */
    int (*encode)(void *self, const char *text, size_t len, int32_t *ids,
                  int32_t *word, int cap, int *n);
    const char *(*token)(void *self, int32_t id); /* NULL if out of range */
    void (*info)(void *self, runner_tokenizer_info *out);
} runner_tokenizer_ops;

typedef struct runner_backbone_info {
    int dim, layers, vocab_size, max_positions;
} runner_backbone_info;

typedef struct runner_backbone_ops {
    void (*info)(void *self, runner_backbone_info *out);
    /* Load weights into the (now allocated) parameter store. */
    int (*load)(void *self);
    /* train: dropout on and activations kept for backward. */
    int (*forward)(void *self, const runner_batch *b, int train,
                   const runner_states **out);
    /* Consume states->dhidden and add into the parameters' gradients;
     * stops below the lowest trainable layer. */
    int (*backward)(void *self, const runner_batch *b);
    /* Write a Hugging Face model folder's weights (safetensors). */
    int (*save)(void *self, const char *dir);
    /* ABI 1.1: write only config.json (checkpoints write the weights of
     * every stage in one file themselves). */
    int (*save_config)(void *self, const char *dir);
    /* ABI 1.2: the glob of layer group g, relative to the backbone's
     * parameter prefix, bottom to top: g = 0 the embeddings, g = 1..layers
     * the layers ("embeddings.*", "encoder.layer.0.*"). -1 past the top.
     * NULL: BERT's names are assumed. */
    int (*group)(void *self, int g, char *buf, size_t size);
    /* ABI 1.7: the weights are final for the evaluation that follows
     * (loaded, a checkpoint read): build now what forward(train = 0)
     * needs, such as weights packed for its kernels, so that the first
     * batch runs as fast as the others. Called by the eval-only runs
     * before they time the encoding; NULL: nothing to build. A later
     * change of the weights (training) is the backbone's to notice. */
    int (*prepare)(void *self);
} runner_backbone_ops;

typedef struct runner_pooler_ops {
    int (*out_dim)(void *self, const runner_states *s);
    /* The lowest hidden-state index this pooler reads (the host passes
     * the lowest over its poolers as runner_batch.lowest_read; NULL: 0). */
    int (*lowest_layer)(void *self, int L);
    int (*forward)(void *self, const runner_batch *b, const runner_states *s,
                   float *out /* (B,D) */);
    int (*backward)(void *self, const runner_batch *b, const runner_states *s,
                    const float *dout /* (B,D) */); /* adds into s->dhidden */
} runner_pooler_ops;

typedef struct runner_head_ops {
    int per_token; /* 0: input is the pooled (B,D); 1: token states (B*T,C) */
    /* Called once before the store is allocated: register parameters. */
    int (*bind)(void *self, int in_dim, int n_out);
    int (*forward)(void *self, int N, const float *x /* (N,D) */,
                   float *logits /* (N,K) */, int train);
    /* dx may be NULL (nothing below trains); else dx += d loss / d x. */
    int (*backward)(void *self, int N, const float *x, const float *dlogits,
                    float *dx);
    /* ABI 1.4: forward with each row's key (N of them; copy them, backward
     * needs them too): a sentence head's row is example
     * runner_batch.row0 + r, a token head's row dropout_key(example,
     * position) (runner/kit/nn.h). Dropout keyed by them gives each example
     * the same mask whichever rank, micro-batch row or padding holds it.
     * NULL: forward() is called (masks then follow the row). N may be 0 in
     * training (draw the step's seeds all the same: the ranks' RNGs stay
     * equal). */
    int (*forward_keyed)(void *self, int N, const float *x, float *logits, int train,
                         const uint64_t *keys);
} runner_head_ops;

typedef struct runner_loss_ops {
    /* Logits per example for n_labels classes (bce: 1 for 2 labels). */
    int (*outputs)(void *self, int n_labels, int *n_out);
    /* Mean loss over rows whose label >= 0 (label -1 is ignored).
     * dlogits (may be NULL) is written, not added: d mean loss / d logits. */
    int (*forward)(void *self, int N, int K, const float *logits,
                   const int32_t *labels, double *loss, float *dlogits);
    /* Predicted label and its probability for one row of logits. */
    void (*predict)(void *self, int K, const float *logits, int32_t *label,
                    float *prob);
} runner_loss_ops;

/* Metrics see gold and predicted labels; token tasks call add() once per
 * sentence with word-level label sequences (so span metrics see spans). */
typedef void (*runner_emit_fn)(void *ctx, const char *name, double value);
typedef struct runner_metric_ops {
    int (*reset)(void *self, int n_labels, const char *const *label_names);
    int (*add)(void *self, int n, const int32_t *gold, const int32_t *pred);
    /* Emit named values; the first one is the metric's headline value. */
    int (*report)(void *self, runner_emit_fn emit, void *ctx);
} runner_metric_ops;

/* Where training is, for freeze policies and samplers. */
typedef struct runner_train_pos {
    int64_t step, steps_total;
    int epoch, epochs;
    int64_t steps_per_epoch;
} runner_train_pos;

typedef struct runner_freeze_ops {
    /* Called before the first step and before every step after; sets
     * trainable flags and lr scales through h->param_set(). *changed = 1
     * when anything changed (the host then logs the groups). */
    int (*apply)(void *self, const runner_train_pos *pos, int *changed);
} runner_freeze_ops;

typedef struct runner_sampler_ops {
    int (*bind)(void *self, int n_tasks, const int64_t *sizes);
    /* The task of the next batch, or -1 for a joint batch of all tasks. */
    int (*next)(void *self, const runner_train_pos *pos, int *task);
    /* ABI 1.2: 1 when every batch is joint (the tasks share their
     * sentences; an epoch is one pass over them, not one per task). */
    int joint;
} runner_sampler_ops;

/* ABI 1.3: datasets. A dataset plugin reads one source (a file or a
 * folder: the `path`, `train`, `dev` or `test` of its section) into the
 * host's row sink; the kit's runner/kit/rows.h adds rows to it and
 * runner/kit/textio.h reads lines (plain or gzip'd), CSV records and
 * fields. The host keeps what is common to every dataset: which sources,
 * label maps (`labels`), train/dev splits, limits, the bad-row policy
 * (on_error) and its notes. */
typedef struct runner_rows runner_rows; /* the host's row sink */

enum {
    /* Unlabeled text (one example per line, MLM): the host also accepts
     * `files` (paths or globs) and `train_text_from`, holds dev rows out
     * line by line (dev_ratio) and stops reading at `limit`. */
    RUNNER_DATASET_TEXT = 1u << 0
};

typedef struct runner_dataset_ops {
    /* Add the rows of one source to out (rows_kind() first). Bad rows go
     * through rows_bad(); -1 stops the load with the kit's error. */
    int (*read)(void *self, const char *source, runner_rows *out);
    unsigned flags; /* RUNNER_DATASET_* */
    /* NULL, or the subfolders {train, dev, test} (NULL-terminated; an entry
     * may be "") that a `path` folder holding them splits into, e.g.
     * {"train", "valid", "test", NULL} for the SNIPS/ATIS layout. */
    const char *const *folders;
} runner_dataset_ops;

/* The one exported symbol of a single-plugin file. */
RUNNER_EXPORT const runner_plugin *RUNNER_ENTRY(void);

/* A bundle (one file, many plugins: the in-tree <kind>.so) exports instead
 * RUNNER_BUNDLE_ENTRY: item i's descriptor, NULL past the last one. */
#define RUNNER_BUNDLE_ENTRY runner_bundle_v1
#define RUNNER_BUNDLE_NAME "runner_bundle_v1"
#define RUNNER_BUNDLE_MAX 1024
typedef const runner_plugin *(*runner_bundle_fn)(int i);

/* Convenience for plugin authors: RUNNER_PLUGIN(desc) defines the entry. */
#define RUNNER_PLUGIN(desc) \
    RUNNER_EXPORT const runner_plugin *RUNNER_ENTRY(void) { return &(desc); }

/* RUNNER_DEFINE_PLUGIN(kind, name, summary, keys, create, destroy, ops):
 * the whole descriptor in one line, e.g.
 *     RUNNER_DEFINE_PLUGIN(pooler, first, "state of the first token", keys,
 *                          create, destroy, &ops)
 * kind and name are bare words (pooler, head, ...; the plugin's name).
 * Built alone it defines the entry symbol; built with -DRUNNER_BUNDLE (the
 * in-tree bundles) it defines a hidden item the bundle's list returns. */
#define RUNNER_KIND_OF_tokenizer RUNNER_KIND_TOKENIZER
#define RUNNER_KIND_OF_backbone RUNNER_KIND_BACKBONE
#define RUNNER_KIND_OF_pooler RUNNER_KIND_POOLER
#define RUNNER_KIND_OF_head RUNNER_KIND_HEAD
#define RUNNER_KIND_OF_loss RUNNER_KIND_LOSS
#define RUNNER_KIND_OF_metric RUNNER_KIND_METRIC
#define RUNNER_KIND_OF_freeze RUNNER_KIND_FREEZE
#define RUNNER_KIND_OF_sampler RUNNER_KIND_SAMPLER
#define RUNNER_KIND_OF_dataset RUNNER_KIND_DATASET
#define RUNNER_DEFINE_PLUGIN(KIND, NAME, SUMMARY, KEYS, CREATE, DESTROY, OPS)                        \
    static const runner_plugin runner_desc_ = {                                                     \
        .abi_major = RUNNER_ABI_MAJOR, .abi_minor = RUNNER_ABI_MINOR, .kind = RUNNER_KIND_OF_##KIND, \
        .name = #NAME, .summary = SUMMARY, .keys = KEYS, .create = CREATE, .destroy = DESTROY,      \
        .ops = OPS};                                                                                \
    RUNNER_ITEM_(KIND, NAME)
#ifdef RUNNER_BUNDLE
#define RUNNER_ITEM_(KIND, NAME) \
    const runner_plugin *runner_item_##KIND##_##NAME(void) { return &runner_desc_; }
#else
#define RUNNER_ITEM_(KIND, NAME) RUNNER_PLUGIN(runner_desc_)
#endif

#ifdef __cplusplus
}
#endif
#endif
