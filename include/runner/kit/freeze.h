/* freeze.h — what the freeze-policy plugins share: the backbone's layer
 * groups as parameter-name globs, and layer-wise learning-rate decay. The
 * policies act only through the host's param_set/param_count. */
#ifndef FREEZE_H
#define FREEZE_H

#include "runner/runner.h"

/* Layers of the backbone (its layer groups less the embeddings), as the
 * backbone names them (host->layer_groups). */
int freeze_layers(const runner_host *h);
/* Group g of the backbone from the top: g = 0 the top layer, g = L - 1
 * the bottom one, g = L the embeddings (host->layer_group). */
void freeze_group_glob(const runner_host *h, int g, int L, char *buf, size_t size);
/* Trainable (0/1) for the backbone groups g with from <= g < to. */
int freeze_groups(const runner_host *h, int L, int from, int to, int trainable);
/* Layer-wise lr decay (discriminative learning rates): the heads and the
 * top encoder layer keep scale 1, each group below gets `decay` times the
 * scale of the one above (group g: decay^g). */
int freeze_decay(const runner_host *h, int L, double decay);
/* Everything outside the backbone (heads, pooler, loss weights). */
int freeze_non_backbone(const runner_host *h, int trainable);

/* The state every policy plugin keeps: its settings and the last stage it
 * applied (-1 before the first step), so it reports a change only when
 * what trains (or an lr scale) changes. */
typedef struct freeze_policy {
    const runner_host *h;
    int stage, L;
    double decay;
    long long every_epochs, every_steps;
    const char **freeze, **unfreeze; /* globs, from the config */
    int nfreeze, nunfreeze;
} freeze_policy;

int freeze_policy_create(const runner_host *h, void **self);
void freeze_policy_destroy(void *self);
/* create() failed after freeze_policy_create: free *self, return -1. */
int freeze_policy_fail(void **self);
/* Read a string-list key into *out (pointers into the config). */
int freeze_read_globs(freeze_policy *p, const runner_cfg *cfg, const char *key, const char ***out, int *n);
/* Record stage; *changed = 1 if it differs from the last one. Returns 1
 * when there is nothing new to apply. */
int freeze_stage(freeze_policy *p, int stage, int *changed);
/* Read every_epochs and every_steps (the period of a staged policy; one of
 * them at least 1). */
int freeze_read_period(freeze_policy *p, const runner_cfg *cfg);
/* How many whole periods lie before pos: every_steps when > 0, else
 * every_epochs. */
long long freeze_periods(const freeze_policy *p, const runner_train_pos *pos);

#endif
