/* drivers.c — the table of runs a pipeline can ask for (`run = "..."`). */
#include "drivers.h"

const driver drivers[] = {
    {"tokenize", "sentences of `input` to ids.txt and tokens.txt", drive_tokenize},
    {"embed", "sentences of `input` to embeddings.npy, similarity matrix (Task 1)", drive_embed},
    {"sts", "STS Benchmark Spearman x100 for each pooler of `poolers`", drive_sts},
    {"train", "train the multi-task model of `tasks` (Tasks 2-4)", drive_train},
    {"predict", "the multi-task model's predictions for `input` (Task 2)", drive_predict},
    {0, 0, 0},
};
