/* folder.c — a model folder's sentence-transformers settings and the
 * `--check` checks on it (see folder.h). */
#include "folder.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "runner/kit/util.h"

/* sentence-transformers' Pooling modes, in its config key order, and our
 * pooler for each. */
static const struct {
    const char *key, *plugin;
} modes[] = {
    {"pooling_mode_cls_token", "cls"},
    {"pooling_mode_mean_tokens", "mean"},
    {"pooling_mode_max_tokens", "max"},
    {"pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len"},
    {"pooling_mode_weightedmean_tokens", "weighted_mean"},
    {"pooling_mode_lasttoken", NULL},
};

static json_t *load_json(const char *path, int *rc)
{
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    if (!j)
        *rc = err_set("%s: %s (line %d)", path, e.text, e.line);
    return j;
}

/* The Pooling module's config: which one mode is on. */
static int read_pooling(const char *path, st_pooling *out)
{
    int rc = 0, on = 0;
    json_t *j = load_json(path, &rc);
    if (!j)
        return rc;
    json_t *dim = json_object_get(j, "word_embedding_dimension");
    out->dim = json_is_integer(dim) ? (int)json_integer_value(dim) : 0;
    for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
        json_t *flag = json_object_get(j, modes[i].key);
        if (!json_is_true(flag) && (flag || strcmp(modes[i].key, "pooling_mode_mean_tokens") != 0))
            continue; /* sentence-transformers' Pooling: pooling_mode_mean_tokens defaults to true */
        if (!modes[i].plugin || on++) {
            rc = err_set("%s: %s%s: no pooler here implements it (one of cls, mean, max, mean_sqrt_len, "
                         "weightedmean at a time)", path, modes[i].key, on > 1 ? " together with another mode" : "");
            break;
        }
        snprintf(out->plugin, sizeof out->plugin, "%s", modes[i].plugin);
    }
    if (!rc && !on)
        rc = err_set("%s: no pooling_mode_* is true", path);
    json_decref(j);
    return rc;
}

int folder_st_pooling(const char *dir, st_pooling *out)
{
    memset(out, 0, sizeof *out);
    char *path = str_printf("%s/modules.json", dir), *pool = NULL;
    int rc = 0;
    if (!path)
        return err_set("out of memory");
    if (!path_exists(path))
        goto done;
    json_t *j = load_json(path, &rc), *m;
    size_t i;
    json_array_foreach(j, i, m) {
        const char *type = json_string_value(json_object_get(m, "type"));
        const char *sub = json_string_value(json_object_get(m, "path"));
        if (type && str_ends_with(type, ".Pooling") && !pool)
            pool = str_printf("%s/%s/config.json", dir, sub ? sub : "");
        if (type && str_ends_with(type, ".Normalize"))
            out->normalize = 1;
    }
    if (j && !json_is_array(j))
        rc = err_set("%s: expected a JSON array of modules", path);
    json_decref(j);
    if (rc || !pool)
        goto done;
    snprintf(out->where, sizeof out->where, "%s", pool);
    if ((rc = read_pooling(pool, out)) == 0)
        out->found = 1;
    free(path);
    path = str_printf("%s/sentence_bert_config.json", dir);
    if (path && path_exists(path)) {
        json_t *sb = load_json(path, &rc);
        json_t *len = json_object_get(sb, "max_seq_length");
        out->max_seq_length = json_is_integer(len) ? (int)json_integer_value(len) : 0;
        json_decref(sb);
    }
done:
    free(path);
    free(pool);
    return rc;
}

const char *folder_of(const pipeline *pl)
{
    const char *dir = cfg_str(pl, "backbone.model");
    return dir ? dir : cfg_str(pl, "model");
}

/* config.json present, parseable, of a model_type the bert backbone runs;
 * weights present as safetensors. */
static void check_files(pipeline *pl, diags *d, const char *dir)
{
    char *cfg = str_printf("%s/config.json", dir), *st = str_printf("%s/model.safetensors", dir);
    char *bin = str_printf("%s/pytorch_model.bin", dir);
    const char *bb = cfg_str(pl, "backbone.plugin"), *init = cfg_str(pl, "backbone.init");
    int rc = 0;
    json_t *j = cfg && path_exists(cfg) ? load_json(cfg, &rc) : NULL;
    if (cfg && !path_exists(cfg))
        diag_add(d, "%s: no such file (model %s is not a Hugging Face model folder)", cfg, dir);
    else if (!j)
        diag_add(d, "%s", err_get());
    const char *type = json_string_value(json_object_get(j, "model_type"));
    if (type && bb && strcmp(bb, "bert") == 0 && strcmp(type, "bert") != 0)
        diag_add(d, "%s: model_type \"%s\": the bert backbone implements BERT only (model_type \"bert\"); "
                 "a %s model would run with the wrong architecture", cfg, type, type);
    int random = init && strcmp(init, "random") == 0;
    if (st && bin && !random && !path_exists(st))
        diag_add(d, path_exists(bin)
                 ? "model %s: only pytorch_model.bin (a PyTorch pickle), and this runner reads safetensors: convert it "
                   "once with Python, e.g. python3 -c \"import torch; from safetensors.torch import save_file; "
                   "save_file(torch.load('%s'), '%s/model.safetensors', metadata={'format': 'pt'})\" "
                   "(see docs/export.md)"
                 : "model %s: no model.safetensors%.0s%.0s", dir, bin, dir);
    json_decref(j);
    free(cfg);
    free(st);
    free(bin);
}

/* Does this run need a pooler: embed always, train/predict when a task
 * has a sentence head. */
static int needs_pooler(pipeline *pl, const char *run)
{
    if (strcmp(run, "embed") == 0)
        return 1;
    if (strcmp(run, "train") != 0 && strcmp(run, "predict") != 0)
        return 0;
    const config_setting_t *tasks = config_lookup(&pl->cfg, "tasks");
    for (int i = 0; tasks && i < config_setting_length(tasks); i++) {
        const config_setting_t *t = config_setting_get_elem(tasks, (unsigned)i);
        const char *head = NULL;
        const runner_plugin *desc;
        config_setting_t *h = config_setting_get_member(t, "head");
        if (h && config_setting_lookup_string(h, "plugin", &head) &&
            loader_get(&pl->L, RUNNER_KIND_HEAD, head, &desc) == 0 &&
            !((const runner_head_ops *)desc->ops)->per_token)
            return 1;
    }
    return 0;
}

/* The folder's pooling as a `pooler` section of the pipeline. */
static config_setting_t *add_pooler(pipeline *pl, const st_pooling *sp)
{
    config_setting_t *root = config_root_setting(&pl->cfg);
    config_setting_t *g = config_setting_add(root, "pooler", CONFIG_TYPE_GROUP);
    config_setting_t *p = g ? config_setting_add(g, "plugin", CONFIG_TYPE_STRING) : NULL;
    config_setting_t *n = g ? config_setting_add(g, "normalize", CONFIG_TYPE_BOOL) : NULL;
    if (!p || !n)
        return NULL;
    config_setting_set_string(p, sp->plugin);
    config_setting_set_bool(n, sp->normalize);
    diag_add(&pl->origins, "<pooler from %s>", sp->where);
    config_setting_set_hook(g, pl->origins.msg[pl->origins.n - 1]);
    return g;
}

config_setting_t *folder_check(pipeline *pl, diags *d)
{
    static const char *const model_runs[] = {"embed", "sts", "predict", "train", NULL};
    const char *run = cfg_str(pl, "run"), *dir = folder_of(pl);
    int i = 0;
    while (run && model_runs[i] && strcmp(model_runs[i], run) != 0)
        i++;
    if (!run || !model_runs[i] || !dir)
        return NULL;
    if (!path_exists(dir)) {
        diag_add(d, "%s/config.json: model folder %s not found (%s; or --set model=DIR)", dir, dir,
                 str_ends_with(dir, "all-MiniLM-L6-v2") ? "run `make model`"
                                                        : "a training run with train.export writes such a folder");
        return NULL;
    }
    check_files(pl, d, dir);
    st_pooling sp;
    if (folder_st_pooling(dir, &sp) != 0) {
        diag_add(d, "%s", err_get());
        return NULL;
    }
    config_setting_t *pooler = config_lookup(&pl->cfg, "pooler");
    if (pooler) {
        const char *name = NULL;
        int norm = 0;
        config_setting_lookup_string(pooler, "plugin", &name);
        config_setting_lookup_bool(pooler, "normalize", &norm);
        if (sp.found && name && (strcmp(name, sp.plugin) != 0 || !norm != !sp.normalize))
            pipeline_log(pl, RUNNER_LOG_INFO, "the pipeline's pooler (%s%s) overrides the model folder's (%s%s, %s)",
                         name, norm ? ", normalized" : "", sp.plugin, sp.normalize ? ", normalized" : "", sp.where);
        return NULL;
    }
    if (!needs_pooler(pl, run))
        return NULL;
    if (!sp.found) {
        diag_add(d, "%s: the pipeline has no `pooler` and model %s has no sentence-transformers pooling to take "
                 "(modules.json with a Pooling module, 1_Pooling/config.json); add e.g. "
                 "pooler = { plugin = \"mean\"; normalize = true; };", pl->file, dir);
        return NULL;
    }
    pipeline_log(pl, RUNNER_LOG_INFO, "pooling from the model folder: %s%s (%s)", sp.plugin,
                 sp.normalize ? ", normalized" : "", sp.where);
    return add_pooler(pl, &sp);
}
