/* schema.c — the core schema of pipeline files: every key outside the
 * plugins' sections, its type, default and doc. */
#include "pipeline.h"

#include <gsl/gsl_randist.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runner/kit/util.h"

/* ---- schema of pipeline files ------------------------------------------- */

static const schema batch_schema[] = {
    {"size", RUNNER_T_INT, "32", "sentences per batch", 0, 0, 0, "[1, 65536]"},
    {"sort_by_length", RUNNER_T_BOOL, "true",
     "batch sentences of similar length together (outputs keep input order)", 0, 0, 0, NULL},
    {0},
};

static const schema sts_dataset_extra[] = {
    {"on_error", RUNNER_T_STRING, "\"stop\"", "bad rows: stop | skip (skipped rows are counted)", 0, 0, 0, "stop|skip"},
    {0},
};

static const schema sts_schema[] = {
    {"files", RUNNER_T_STRING_LIST,
     "[\"../shared/datasets/stsbenchmark/sts-dev.csv\", \"../shared/datasets/stsbenchmark/sts-test.csv\"]",
     "STS files, each read whole by `dataset` and scored on its own", 0, 0, 0, NULL},
    {"dataset", 0, NULL, "the reader of the files: a dataset plugin giving scored pairs (default { plugin = \"sts\"; })",
     S_SECTION, RUNNER_KIND_DATASET, sts_dataset_extra, NULL},
    {0},
};

static const schema output_schema[] = {
    {"format", RUNNER_T_STRING, "\"csv\"",
     "predictions files: csv (RFC 4180, header, row id and text) | jsonl (one JSON object a line)", 0, 0, 0,
     "csv|jsonl"},
    {"stdout", RUNNER_T_STRING, "\"text\"",
     "stdout: text (for people) | jsonl (embeddings or predictions as JSON Lines; logs stay on stderr; --jsonl)",
     0, 0, 0, "text|jsonl"},
    {0},
};

static const schema loss_extra[] = {
    {"weight", RUNNER_T_FLOAT, "1.0", "weight of this task's loss in the total", 0, 0, 0, "[0, inf)"},
    {0},
};

/* The core keys of a dataset section (the plugin's own keys are in its
 * table): which sources, labels, splits, limits, bad rows. */
#define DATASET_SPLIT_KEYS \
    {"path", RUNNER_T_STRING, NULL, "one file (or folder) split into train/dev by dev_ratio", 0, 0, 0, NULL}, \
    {"train", RUNNER_T_STRING, NULL, "training file or folder", 0, 0, 0, NULL}, \
    {"dev_ratio", RUNNER_T_FLOAT, "0.1", "share held out as dev when there is no dev source", 0, 0, 0, "[0, 1)"}, \
    {"test_ratio", RUNNER_T_FLOAT, "0", "share of the training source held out as test when there is no test source", 0, 0, 0, "[0, 1)"}, \
    {"split_seed", RUNNER_T_INT, "1234", "seed of the deterministic train/dev split", 0, 0, 0, "[0, 4294967295]"}, \
    {"limit", RUNNER_T_INT, "0", "use at most this many training rows (0: all)", 0, 0, 0, "[0, 2147483647]"}, \
    {"on_error", RUNNER_T_STRING, "\"stop\"", "bad rows: stop | skip (skipped rows are counted)", 0, 0, 0, "stop|skip"}

/* A dataset whose training-split text `lines` adds (no dev, test or nested
 * sources). */
static const schema text_source_extra[] = {
    DATASET_SPLIT_KEYS,
    {"labels", RUNNER_T_STRING_LIST, NULL, "label names, in label-id order", 0, 0, 0, NULL},
    {0},
};

static const schema dataset_extra[] = {
    DATASET_SPLIT_KEYS,
    {"dev", RUNNER_T_STRING, NULL, "development file or folder", 0, 0, 0, NULL},
    {"test", RUNNER_T_STRING, NULL, "test file or folder: the best checkpoint is evaluated on it once, after training",
     0, 0, 0, NULL},
    {"labels", RUNNER_T_STRING_LIST, NULL, "label names, in label-id order (numeric labels k name labels[k])", 0, 0, 0,
     NULL},
    {"dev_limit", RUNNER_T_INT, "0", "use at most this many dev (and test) rows (0: all)", 0, 0, 0, "[0, 2147483647]"},
    {"files", RUNNER_T_STRING_LIST, NULL,
     "unlabeled text (lines): text files or globs, one example per line (.gz read through zlib)", 0, 0, 0, NULL},
    {"train_text_from", 0, NULL, "unlabeled text (lines): datasets whose training-split text is added (never dev/test)",
     S_SECTIONS, RUNNER_KIND_DATASET, text_source_extra, NULL},
    {0},
};

static const schema task_schema[] = {
    {"name", RUNNER_T_STRING, NULL, "task name (heads.<name>.* parameters)", 0, 0, 0, NULL},
    {"dataset", 0, NULL, "where the examples come from: { plugin = \"tsv\"; train = ...; ... }", S_SECTION,
     RUNNER_KIND_DATASET, dataset_extra, NULL},
    {"head", 0, NULL, "the task's head", S_SECTION, RUNNER_KIND_HEAD, NULL, NULL},
    {"loss", 0, NULL, "the task's loss (+ weight)", S_SECTION, RUNNER_KIND_LOSS, loss_extra, NULL},
    {"metrics", 0, "[\"accuracy\"]", "metrics on the dev set; the first is the headline",
     S_SECTIONS, RUNNER_KIND_METRIC, NULL, NULL},
    {0},
};

static const schema train_schema[] = {
    {"epochs", RUNNER_T_INT, "1", "passes over the sampled data", 0, 0, 0, "[1, 100000]"},
    {"max_steps", RUNNER_T_INT, "0", "stop after this many steps (0: no limit)", 0, 0, 0, "[0, inf)"},
    {"batch", RUNNER_T_INT, "32", "sentences per step", 0, 0, 0, "[1, 65536]"},
    {"lr", RUNNER_T_FLOAT, "5e-5", "peak learning rate", 0, 0, 0, "[0, inf)"},
    {"weight_decay", RUNNER_T_FLOAT, "0.01", "AdamW decoupled weight decay", 0, 0, 0, "[0, 1]"},
    {"warmup", RUNNER_T_FLOAT, "0.1", "share of steps of linear warm-up", 0, 0, 0, "[0, 1]"},
    {"schedule", RUNNER_T_STRING, "\"linear\"", "decay after warm-up: linear | cosine | constant", 0, 0, 0, "linear|cosine|constant"},
    {"clip", RUNNER_T_FLOAT, "1.0", "global gradient-norm clip (0: off)", 0, 0, 0, "[0, inf)"},
    {"accumulate", RUNNER_T_INT, "1", "batches per optimizer step", 0, 0, 0, "[1, 65536]"},
    {"precision", RUNNER_T_STRING, "\"f32\"",
     "training matmuls: f32 | bf16 (the backbone's forward and backward GEMMs take bfloat16 inputs "
     "with float32 sums; float32 master weights, optimizer state, reductions, LayerNorm, softmax, "
     "GELU; f32 with one info line on a CPU without bf16 matmuls). Inference: backbone.precision",
     0, 0, 0, "f32|bf16"},
    {"eval_every", RUNNER_T_INT, "0", "evaluate every N steps (0: each epoch)", 0, 0, 0, "[0, inf)"},
    {"combine", RUNNER_T_STRING, "\"fixed\"", "loss combination: fixed | uncertainty", 0, 0, 0, "fixed|uncertainty"},
    {"loss_weight_lr_scale", RUNNER_T_FLOAT, "1.0",
     "combine = \"uncertainty\": learning-rate multiplier of the learned s_t = log sigma_t^2 (they see few steps)",
     0, 0, 0, "(0, inf)"},
    {"grad_cosine_every", RUNNER_T_INT, "0",
     "every N steps (and at step 1) the cosine between each pair of tasks' loss gradients on the shared backbone "
     "(one extra batch per task, training unchanged; 0: off)", 0, 0, 0, "[0, inf)"},
    {"early_stop", RUNNER_T_INT, "0", "stop after N evaluations without improvement (0: off)", 0, 0, 0, "[0, inf)"},
    {"select", RUNNER_T_STRING, NULL,
     "metric choosing the best checkpoint and early stop, \"task.metric\" (default: mean of headlines)", 0, 0, 0, NULL},
    {"log_every", RUNNER_T_INT, "5", "log the training loss (mean since the last log) every N steps", 0, 0, 0, "[1, inf)"},
    {"export", RUNNER_T_STRING, NULL,
     "copy the best checkpoint's model folder here at the end (e.g. models/mini-bert-mlm)", 0, 0, 0, NULL},
    {"stop_after", RUNNER_T_INT, "0",
     "stop after step N as if interrupted, leaving last/ to --resume (0: off; for testing resume)", 0, 0, 0, "[0, inf)"},
    {"save_best", RUNNER_T_BOOL, "true", "keep the best evaluation's checkpoint in best/", 0, 0, 0, NULL},
    {"save_last", RUNNER_T_BOOL, "true", "keep the latest checkpoint with trainer state in last/ (--resume)", 0, 0, 0, NULL},
    /* data parallel (mpirun -np N): see docs/cluster.md */
    {"overlap", RUNNER_T_BOOL, "true",
     "several ranks: start each gradient bucket's all-reduce as soon as its layer's backward is done "
     "(false: all after backward)", 0, 0, 0, NULL},
    {"bucket_mb", RUNNER_T_FLOAT, "4", "several ranks: gradient all-reduce bucket size in MB", 0, 0, 0, "(0, 4096]"},
    {"allreduce", RUNNER_T_STRING, "\"auto\"",
     "several ranks: how gradients are summed: shared (through an MPI shared-memory window, every rank on one "
     "node; no overlap) | mpi (bucketed MPI all-reduce, train.overlap) | auto (shared on one node, else mpi)",
     0, 0, 0, "auto|shared|mpi"},
    {"shard_optimizer", RUNNER_T_BOOL, "true",
     "several ranks summing through shared memory: one copy of the values and AdamW moments for the node, "
     "each rank updating its share (false: every rank keeps a copy and updates all of it)", 0, 0, 0, NULL},
    {0},
};

const schema pipeline_schema[] = {
    {"name", RUNNER_T_STRING, NULL, "pipeline name (default: the file name)", 0, 0, 0, NULL},
    {"run", RUNNER_T_STRING, NULL, "what the pipeline does (see runner --help)", 0, 0, 0, NULL},
    {"model", RUNNER_T_STRING, "\"models/all-MiniLM-L6-v2\"",
     "Hugging Face model folder (config.json, model.safetensors, vocab.txt)", 0, 0, 0, NULL},
    {"input", RUNNER_T_STRING, NULL, "file of sentences, one per line (\"-\": stdin)", 0, 0, 0, NULL},
    {"plugin_path", RUNNER_T_STRING_LIST, NULL, "more folders to search for plugins", 0, 0, 0, NULL},
    {"seed", RUNNER_T_INT, "42", "seed of the run's RNG (--seed)", 0, 0, 0, "[0, 4294967295]"},
    {"show_dims", RUNNER_T_INT, "6", "dimensions of each embedding to print", 0, 0, 0, "[0, 100000]"},
    {"checkpoint", RUNNER_T_STRING, NULL, "a trained checkpoint folder to load", 0, 0, 0, NULL},
    {"batch", 0, NULL, "batching", S_GROUP, 0, batch_schema, NULL},
    {"output", 0, NULL, "what the outputs look like", S_GROUP, 0, output_schema, NULL},
    {"tokenizer", 0, NULL, "the tokenizer", S_SECTION, RUNNER_KIND_TOKENIZER, NULL, NULL},
    {"backbone", 0, NULL, "the encoder", S_SECTION, RUNNER_KIND_BACKBONE, NULL, NULL},
    {"pooler", 0, NULL, "token states to one vector", S_SECTION, RUNNER_KIND_POOLER, NULL, NULL},
    {"poolers", 0, NULL, "poolers to compare", S_SECTIONS, RUNNER_KIND_POOLER, NULL, NULL},
    {"sts", 0, NULL, "STS Benchmark evaluation", S_GROUP, 0, sts_schema, NULL},
    {"tasks", 0, NULL, "the tasks of a multi-task model", S_GROUPS, 0, task_schema, NULL},
    {"sampler", 0, NULL, "which task each batch comes from", S_SECTION, RUNNER_KIND_SAMPLER, NULL, NULL},
    {"freeze", 0, NULL, "what trains when", S_SECTION, RUNNER_KIND_FREEZE, NULL, NULL},
    {"train", 0, NULL, "optimisation", S_GROUP, 0, train_schema, NULL},
    {0},
};
