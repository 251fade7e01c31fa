/* freeze.c — the freeze policies' schedules on a parameter store laid out
 * like a 6-layer backbone with two task heads: which tensors train at
 * which step or epoch, and their learning-rate scales. */
#include <math.h>

#include "plugin_stage.h"
#include "tap.h"

enum { LAYERS = 6 };

/* Trainable flag and lr scale of the first tensor matching glob. */
static int trains(pipeline *pl, const char *glob) { return params_count(&pl->P, glob, 1) > 0; }
static int all_train(pipeline *pl, const char *glob)
{
    return params_count(&pl->P, glob, 1) == params_count(&pl->P, glob, 0);
}

static double scale(pipeline *pl, const char *name)
{
    int i = params_find(&pl->P, name);
    return i >= 0 ? pl->P.p[i].lr_scale : -1;
}

static void add_params(pipeline *pl)
{
    int64_t s[1] = {4};
    char name[128];
    params_add(&pl->P, "backbone.embeddings.word_embeddings.weight", 1, s, 0, RUNNER_INIT_ZERO, 0, NULL, NULL);
    for (int l = 0; l < LAYERS; l++) {
        snprintf(name, sizeof name, "backbone.encoder.layer.%d.attention.self.query.weight", l);
        params_add(&pl->P, name, 1, s, 0, RUNNER_INIT_ZERO, 0, NULL, NULL);
        snprintf(name, sizeof name, "backbone.encoder.layer.%d.output.dense.bias", l);
        params_add(&pl->P, name, 1, s, RUNNER_PARAM_NO_DECAY, RUNNER_INIT_ZERO, 0, NULL, NULL);
    }
    params_add(&pl->P, "heads.topic.0.weight", 1, s, 0, RUNNER_INIT_ZERO, 0, NULL, NULL);
    params_add(&pl->P, "heads.sentiment.0.weight", 1, s, 0, RUNNER_INIT_ZERO, 0, NULL, NULL);
}

/* A policy from `section` on a fresh store; NULL on failure. */
static stage *policy(pipeline *pl, const char *section)
{
    char text[1024];
    snprintf(text, sizeof text, "run = \"train\";\nfreeze = %s;\n", section);
    if (pipeline_from_text(pl, text) != 0)
        return NULL;
    add_params(pl);
    return pipeline_stage(pl, "freeze", "freeze.", RUNNER_KIND_FREEZE, config_lookup(&pl->cfg, "freeze"));
}

/* -1 when the policy could not be set up (a failing test, not a crash) */
static int apply_at(stage *st, int64_t step, int epoch, int *changed)
{
    runner_train_pos pos = {step, 1000, epoch, 10, 100};
    *changed = 0;
    if (!st)
        return -1;
    const runner_freeze_ops *ops = st->desc->ops;
    return ops->apply(st->self, &pos, changed);
}

int main(void)
{
    pipeline pl;
    int changed;
    stage *st;

    st = policy(&pl, "{ plugin = \"none\"; }");
    ok(st && apply_at(st, 0, 0, &changed) == 0 && changed, "none: first apply reports a change");
    ok(all_train(&pl, "*"), "none: everything trains");
    apply_at(st, 1, 0, &changed);
    ok(!changed, "none: nothing changes afterwards");
    pipeline_close(&pl);

    st = policy(&pl, "{ plugin = \"all\"; }");
    ok(st && apply_at(st, 0, 0, &changed) == 0, "all: applies");
    is(params_count(&pl.P, "*", 1), 0, "all: nothing trains");
    pipeline_close(&pl);

    st = policy(&pl, "{ plugin = \"backbone\"; }");
    apply_at(st, 0, 0, &changed);
    ok(!trains(&pl, "backbone.*") && all_train(&pl, "heads.*"), "backbone: the backbone is frozen, the heads train");
    pipeline_close(&pl);

    st = policy(&pl, "{ plugin = \"heads\"; tasks = [\"topic\"]; }");
    apply_at(st, 0, 0, &changed);
    ok(!trains(&pl, "heads.topic.*"), "heads: topic's head is frozen");
    ok(all_train(&pl, "heads.sentiment.*") && all_train(&pl, "backbone.*"), "heads: the rest, backbone included, trains");
    pipeline_close(&pl);

    st = policy(&pl, "{ plugin = \"heads\"; tasks = [\"nosuch\"]; }");
    ok(st && apply_at(st, 0, 0, &changed) == -1, "heads: an unknown task is an error");
    like(err_get(), "no head of a task named nosuch", "... naming it");
    pipeline_close(&pl);

    st = policy(&pl, "{ plugin = \"patterns\"; freeze = [\"backbone.embeddings.*\", \"backbone.encoder.layer.[0-3].*\"]; }");
    apply_at(st, 0, 0, &changed);
    ok(!trains(&pl, "backbone.embeddings.*") && !trains(&pl, "backbone.encoder.layer.3.*"),
       "patterns: embeddings and layers 0-3 frozen");
    ok(all_train(&pl, "backbone.encoder.layer.4.*") && all_train(&pl, "backbone.encoder.layer.5.*") &&
           all_train(&pl, "heads.*"), "patterns: layers 4-5 and heads train");
    pipeline_close(&pl);

    st = policy(&pl, "{ plugin = \"patterns\"; freeze = [\"backbone.*\"]; unfreeze = [\"*.bias\"]; }");
    apply_at(st, 0, 0, &changed);
    ok(trains(&pl, "backbone.encoder.layer.2.output.dense.bias") &&
           !trains(&pl, "backbone.encoder.layer.2.attention.self.query.weight"),
       "patterns: unfreeze applies after freeze (BitFit-style biases only)");
    pipeline_close(&pl);

    st = policy(&pl, "{ plugin = \"patterns\"; freeze = [\"backbone.encoder.layer.9.*\"]; }");
    ok(st && apply_at(st, 0, 0, &changed) == -1, "patterns: a glob matching nothing is an error");
    like(err_get(), "matches no parameter", "... saying so");
    pipeline_close(&pl);

    st = policy(&pl, "{ plugin = \"discriminative_lr\"; decay = 0.5; }");
    apply_at(st, 0, 0, &changed);
    ok(all_train(&pl, "*"), "discriminative_lr: everything trains");
    cmp_ok(fabs(scale(&pl, "backbone.encoder.layer.5.attention.self.query.weight") - 1.0), <, 1e-12, "top layer scale 1");
    cmp_ok(fabs(scale(&pl, "backbone.encoder.layer.4.attention.self.query.weight") - 0.5), <, 1e-12, "layer below: 0.5");
    cmp_ok(fabs(scale(&pl, "backbone.encoder.layer.0.output.dense.bias") - pow(0.5, 5)), <, 1e-12, "layer 0: 0.5^5");
    cmp_ok(fabs(scale(&pl, "backbone.embeddings.word_embeddings.weight") - pow(0.5, 6)), <, 1e-12, "embeddings: 0.5^6");
    cmp_ok(fabs(scale(&pl, "heads.topic.0.weight") - 1.0), <, 1e-12, "heads: 1");
    pipeline_close(&pl);

    char *e = validate_errors("run = \"train\"; freeze = { plugin = \"discriminative_lr\"; decay = 1.5; };");
    like(e, "freeze.decay: 1.5 is out of range: must be in (0, 1]", "discriminative_lr: decay > 1 refused at --check, naming the value");
    free(e);

    /* ULMFiT: heads only in epoch 0, then one more group from the top per epoch */
    st = policy(&pl, "{ plugin = \"gradual_unfreeze\"; every_epochs = 1; decay = 0.8; }");
    apply_at(st, 0, 0, &changed);
    ok(changed && !trains(&pl, "backbone.*") && all_train(&pl, "heads.*"), "gradual: epoch 0 trains the heads only");
    apply_at(st, 50, 0, &changed);
    ok(!changed, "gradual: no change within the epoch");
    apply_at(st, 100, 1, &changed);
    ok(changed && all_train(&pl, "backbone.encoder.layer.5.*") && !trains(&pl, "backbone.encoder.layer.4.*"),
       "gradual: epoch 1 adds the top layer");
    apply_at(st, 300, 3, &changed);
    ok(all_train(&pl, "backbone.encoder.layer.3.*") && !trains(&pl, "backbone.encoder.layer.2.*"),
       "gradual: epoch 3 trains layers 3-5");
    apply_at(st, 600, 6, &changed);
    ok(all_train(&pl, "backbone.encoder.layer.0.*") && !trains(&pl, "backbone.embeddings.*"),
       "gradual: epoch 6 trains every layer, not yet the embeddings");
    apply_at(st, 700, 7, &changed);
    ok(all_train(&pl, "*"), "gradual: epoch 7 trains everything");
    apply_at(st, 900, 9, &changed);
    ok(!changed, "gradual: nothing changes after everything is unfrozen");
    cmp_ok(fabs(scale(&pl, "backbone.encoder.layer.4.attention.self.query.weight") - 0.8), <, 1e-12,
           "gradual + decay: discriminative rates");
    pipeline_close(&pl);

    st = policy(&pl, "{ plugin = \"gradual_unfreeze\"; every_steps = 10; }");
    apply_at(st, 9, 0, &changed);
    ok(!trains(&pl, "backbone.*"), "gradual by steps: step 9 heads only");
    apply_at(st, 25, 0, &changed);
    ok(all_train(&pl, "backbone.encoder.layer.4.*") && !trains(&pl, "backbone.encoder.layer.3.*"),
       "gradual by steps: step 25 trains the top two layers");
    pipeline_close(&pl);

    /* LP-FT: the heads alone first, then everything at once */
    st = policy(&pl, "{ plugin = \"heads_first\"; every_epochs = 1; }");
    apply_at(st, 0, 0, &changed);
    ok(changed && !trains(&pl, "backbone.*") && all_train(&pl, "heads.*"), "heads_first: epoch 0 trains the heads only");
    apply_at(st, 50, 0, &changed);
    ok(!changed, "heads_first: no change within the epoch");
    apply_at(st, 100, 1, &changed);
    ok(changed && all_train(&pl, "*"), "heads_first: epoch 1 trains everything, embeddings included");
    cmp_ok(fabs(scale(&pl, "backbone.embeddings.word_embeddings.weight") - 1.0), <, 1e-12, "heads_first: one lr");
    apply_at(st, 300, 3, &changed);
    ok(!changed, "heads_first: nothing changes afterwards");
    pipeline_close(&pl);
    st = policy(&pl, "{ plugin = \"heads_first\"; every_steps = 10; }");
    apply_at(st, 9, 0, &changed);
    ok(!trains(&pl, "backbone.*"), "heads_first by steps: step 9 heads only");
    apply_at(st, 10, 0, &changed);
    ok(all_train(&pl, "*"), "heads_first by steps: step 10 everything");
    pipeline_close(&pl);

    return done_testing(39);
}
