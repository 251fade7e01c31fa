/* export.c — Hugging Face and sentence-transformers files of a checkpoint
 * folder (see export.h). */
#include "export.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "folder.h"
#include "run.h"
#include "runner/kit/util.h"

static int json_out(FILE *f, void *ctx)
{
    if (json_dumpf(ctx, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9)) != 0 ||
        fputc('\n', f) == EOF)
        return err_set("write error");
    return 0;
}

/* Write j (stolen) to dir/name atomically. */
static int write_json(const char *dir, const char *name, json_t *j)
{
    char *path = str_printf("%s/%s", dir, name);
    int rc = !j || !path ? err_set("out of memory") : file_write_atomic_with(path, json_out, j);
    free(path);
    json_decref(j);
    return rc;
}

/* Label names of a task from the metadata pairs, as a JSON array. */
static json_t *labels_of(const char *task, const char *const *meta, int nmeta)
{
    json_t *a = json_array();
    for (int i = 0; a && i < nmeta; i++) {
        if (strncmp(meta[2 * i], "labels.", 7) != 0 || strcmp(meta[2 * i] + 7, task) != 0)
            continue;
        for (const char *s = meta[2 * i + 1]; *s;) {
            size_t n = strcspn(s, "\n");
            json_array_append_new(a, json_stringn(s, n));
            s += n + (s[n] == '\n');
        }
    }
    return a;
}

static void add_label_maps(json_t *obj, const json_t *names)
{
    json_t *id2 = json_object(), *to_id = json_object(), *v;
    size_t i;
    json_array_foreach(names, i, v) {
        char key[32];
        snprintf(key, sizeof key, "%zu", i);
        json_object_set(id2, key, v);
        json_object_set_new(to_id, json_string_value(v), json_integer((json_int_t)i));
    }
    json_object_set_new(obj, "id2label", id2);
    json_object_set_new(obj, "label2id", to_id);
}

int export_hf_config(const char *dir, const char *const *meta, int nmeta)
{
    char *path = str_printf("%s/config.json", dir);
    json_error_t e;
    json_t *j = path ? json_load_file(path, JSON_PRESERVE_ORDER, &e) : NULL;
    if (!j || !json_is_object(j)) {
        int rc = err_set("%s: %s", path ? path : "config.json", j ? "not a JSON object" : e.text);
        json_decref(j);
        free(path);
        return rc;
    }
    free(path);
    json_object_del(j, "_name_or_path");
    json_object_set_new(j, "architectures", json_pack("[s]", "BertModel"));
    json_t *tasks = json_object();
    int labelled = 0;
    for (int i = 0; i < nmeta; i++) {
        if (strncmp(meta[2 * i], "labels.", 7) != 0 || !*meta[2 * i + 1])
            continue;
        json_t *names = labels_of(meta[2 * i] + 7, meta, nmeta), *t = json_object();
        add_label_maps(t, names);
        json_object_set_new(tasks, meta[2 * i] + 7, t);
        if (++labelled == 1)
            add_label_maps(j, names);
        json_decref(names);
    }
    if (labelled != 1) { /* transformers' id2label is one head's: only for a single task */
        json_object_del(j, "id2label");
        json_object_del(j, "label2id");
    }
    if (labelled)
        json_object_set_new(j, "task_labels", tasks);
    else
        json_decref(tasks);
    return write_json(dir, "config.json", j);
}

/* sentence-transformers' Pooling mode key of one of our poolers. */
static const char *st_mode(const char *plugin)
{
    static const char *const map[][2] = {
        {"cls", "pooling_mode_cls_token"},       {"mean", "pooling_mode_mean_tokens"},
        {"max", "pooling_mode_max_tokens"},      {"mean_sqrt_len", "pooling_mode_mean_sqrt_len_tokens"},
        {"weighted_mean", "pooling_mode_weightedmean_tokens"},
    };
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (strcmp(map[i][0], plugin) == 0)
            return map[i][1];
    return NULL;
}

static json_t *pooling_config(const char *mode, int dim)
{
    static const char *const keys[] = {"pooling_mode_cls_token", "pooling_mode_mean_tokens",
                                       "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens",
                                       "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"};
    json_t *j = json_object();
    json_object_set_new(j, "word_embedding_dimension", json_integer(dim));
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        json_object_set_new(j, keys[i], json_boolean(strcmp(keys[i], mode) == 0));
    json_object_set_new(j, "include_prompt", json_true());
    return j;
}

static json_t *modules(int normalize)
{
    json_t *m = json_pack("[{s:i,s:s,s:s,s:s},{s:i,s:s,s:s,s:s}]", "idx", 0, "name", "0", "path", "",
                          "type", "sentence_transformers.models.Transformer", "idx", 1, "name", "1", "path",
                          "1_Pooling", "type", "sentence_transformers.models.Pooling");
    if (m && normalize)
        json_array_append_new(m, json_pack("{s:i,s:s,s:s,s:s}", "idx", 2, "name", "2", "path", "2_Normalize",
                                           "type", "sentence_transformers.models.Normalize"));
    return m;
}

/* max_seq_length: the tokenizer's max_len, else the source folder's, else
 * 512; never more than the position table. */
static int max_seq_length(pipeline *pl, const char *model_dir, int positions)
{
    st_pooling src;
    int n = (int)cfg_int(pl, "tokenizer.max_len", 0);
    if (n <= 0 && model_dir && folder_st_pooling(model_dir, &src) == 0)
        n = src.max_seq_length;
    if (n <= 0)
        n = 512;
    return positions > 0 && n > positions ? positions : n;
}

int export_st_files(const char *dir, pipeline *pl, const char *model_dir)
{
    const char *plugin = cfg_str(pl, "pooler.plugin");
    const char *mode = plugin ? st_mode(plugin) : NULL;
    if (!plugin)
        return 0; /* token or MLM heads only: no sentence embedding to describe */
    if (!mode || cfg_int(pl, "pooler.layer", -1) != -1 || config_lookup(&pl->cfg, "pooler.layers")) {
        pipeline_log(pl, RUNNER_LOG_WARN, "pooler %s (layer %lld%s) has no sentence-transformers equivalent: "
                     "the checkpoint has no modules.json (heads.json describes the pooler)", plugin,
                     cfg_int(pl, "pooler.layer", -1), config_lookup(&pl->cfg, "pooler.layers") ? ", layers" : "");
        return 0;
    }
    char *cfg = str_printf("%s/config.json", dir), *sub = str_printf("%s/1_Pooling", dir);
    char *norm = str_printf("%s/2_Normalize", dir);
    json_error_t e;
    json_t *c = cfg ? json_load_file(cfg, 0, &e) : NULL;
    int dim = (int)json_integer_value(json_object_get(c, "hidden_size"));
    int positions = (int)json_integer_value(json_object_get(c, "max_position_embeddings"));
    int normalize = cfg_bool(pl, "pooler.normalize", 0), rc = -1;
    json_decref(c);
    if (!cfg || !sub || !norm || dir_make(sub) != 0 || (normalize && dir_make(norm) != 0))
        goto done;
    if (write_json(dir, "modules.json", modules(normalize)) != 0 ||
        write_json(sub, "config.json", pooling_config(mode, dim)) != 0 ||
        write_json(dir, "sentence_bert_config.json",
                   json_pack("{s:i,s:b}", "max_seq_length", max_seq_length(pl, model_dir, positions),
                             "do_lower_case", 0)) != 0 ||
        write_json(dir, "config_sentence_transformers.json",
                   json_pack("{s:s,s:{s:s,s:s},s:{},s:n,s:s}", "model_type", "SentenceTransformer", "__version__",
                             "sentence_transformers", "2.0.0", "runner", RUNNER_VERSION, "prompts",
                             "default_prompt_name", "similarity_fn_name", "cosine")) != 0)
        goto done;
    rc = 0;
done:
    free(cfg);
    free(sub);
    free(norm);
    return rc;
}

/* A libconfig setting as JSON (groups: objects, lists and arrays: arrays). */
static json_t *setting_json(const config_setting_t *s)
{
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64: return json_integer(config_setting_get_int64(s));
    case CONFIG_TYPE_FLOAT: return json_real(config_setting_get_float(s));
    case CONFIG_TYPE_BOOL: return json_boolean(config_setting_get_bool(s));
    case CONFIG_TYPE_STRING: return json_string(config_setting_get_string(s));
    case CONFIG_TYPE_GROUP: {
        json_t *o = json_object();
        for (int i = 0; i < config_setting_length(s); i++) {
            const config_setting_t *m = config_setting_get_elem(s, (unsigned)i);
            json_object_set_new(o, config_setting_name(m), setting_json(m));
        }
        return o;
    }
    default: {
        json_t *a = json_array();
        for (int i = 0; i < config_setting_length(s); i++)
            json_array_append_new(a, setting_json(config_setting_get_elem(s, (unsigned)i)));
        return a;
    }
    }
}

/* Names and shapes of the store's tensors under prefix. */
static json_t *tensors_under(const params *P, const char *prefix)
{
    json_t *o = json_object();
    for (int i = 0; i < P->n; i++) {
        if (strncmp(P->p[i].name, prefix, strlen(prefix)) != 0)
            continue;
        json_t *shape = json_array();
        for (int d = 0; d < P->p[i].ndim; d++)
            json_array_append_new(shape, json_integer(P->p[i].shape[d]));
        json_object_set_new(o, P->p[i].name, shape);
    }
    return o;
}

int export_heads_json(const char *dir, const pipeline *pl, const char *const *meta, int nmeta)
{
    const config_setting_t *tasks = config_lookup(&pl->cfg, "tasks");
    const config_setting_t *pooler = config_lookup(&pl->cfg, "pooler");
    json_t *arr = json_array();
    for (int i = 0; tasks && arr && i < config_setting_length(tasks); i++) {
        const config_setting_t *t = config_setting_get_elem(tasks, (unsigned)i);
        const char *name = NULL, *head = NULL;
        const runner_plugin *desc;
        config_setting_lookup_string(t, "name", &name);
        config_setting_t *h = config_setting_get_member(t, "head"), *loss = config_setting_get_member(t, "loss");
        if (!name || !h)
            continue;
        config_setting_lookup_string(h, "plugin", &head);
        int per_token = head && loader_get((loader *)&pl->L, RUNNER_KIND_HEAD, head, &desc) == 0 &&
                        ((const runner_head_ops *)desc->ops)->per_token;
        char *prefix = str_printf("heads.%s.", name);
        json_array_append_new(arr, json_pack("{s:s,s:s,s:o,s:o*,s:o,s:o}", "name", name, "input",
                                             per_token ? "token states (last layer)" : "pooler output",
                                             "head", setting_json(h), "loss", loss ? setting_json(loss) : NULL,
                                             "labels", labels_of(name, meta, nmeta), "tensors",
                                             tensors_under(&pl->P, prefix ? prefix : "heads.")));
        free(prefix);
    }
    json_t *j = json_pack("{s:s,s:i,s:s,s:f,s:o*,s:o}", "format", "runner-heads", "version", 1, "tensors_file",
                          "heads.safetensors", "layer_norm_eps", 1e-5, "pooler", pooler ? setting_json(pooler) : NULL,
                          "tasks", arr);
    return write_json(dir, "heads.json", j);
}
