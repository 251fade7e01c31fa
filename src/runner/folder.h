/* folder.h — what a Hugging Face / sentence-transformers model folder says
 * about itself, read before anything loads: the pooling and normalisation
 * its sentence-transformers files declare (modules.json, the Pooling
 * module's config.json, a Normalize module, sentence_bert_config.json),
 * and the checks `--check` makes on the folder a pipeline names (exists,
 * config.json, model_type, weights format, a pooler from somewhere). */
#ifndef FOLDER_H
#define FOLDER_H

#include "pipeline.h"

typedef struct st_pooling {
    int found;          /* modules.json declares a Pooling module */
    char plugin[32];    /* our pooler: cls, mean, max, mean_sqrt_len, weighted_mean */
    int normalize;      /* a Normalize module follows */
    int dim;            /* word_embedding_dimension (0: not given) */
    int max_seq_length; /* sentence_bert_config.json (0: not given) */
    char where[512];    /* the Pooling config file read */
} st_pooling;

/* Read dir's sentence-transformers pooling; 0 with found = 0 when the
 * folder has no modules.json; -1 (err_set, naming file and key) when the
 * files are malformed or declare a pooling no pooler here implements. */
int folder_st_pooling(const char *dir, st_pooling *out);

/* The pipeline's model folder (backbone.model, else model). */
const char *folder_of(const pipeline *pl);

/* Checks of the model folder for runs that load one; problems go into d.
 * A pipeline without `pooler` that needs one gets the folder's pooling as
 * a `pooler` section: returns that section (to be checked and filled with
 * defaults), else NULL. */
config_setting_t *folder_check(pipeline *pl, diags *d);

#endif
