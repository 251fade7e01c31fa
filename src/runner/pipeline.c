/* pipeline.c — configuration checking, host services, stage creation. */
#include "pipeline.h"

#include <gsl/gsl_randist.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "runner/kit/util.h"

/* ---- schema of pipeline files ------------------------------------------- */

static const schema batch_schema[] = {
    {"size", RUNNER_T_INT, "32", "sentences per batch", 0, 0, 0},
    {"sort_by_length", RUNNER_T_BOOL, "true",
     "batch sentences of similar length together (outputs keep input order)", 0, 0, 0},
    {0},
};

static const schema sts_schema[] = {
    {"files", RUNNER_T_STRING_LIST,
     "[\"../shared/datasets/stsbenchmark/sts-dev.csv\", \"../shared/datasets/stsbenchmark/sts-test.csv\"]",
     "STS Benchmark files (tab-separated: genre, file, year, id, score, s1, s2)", 0, 0, 0},
    {0},
};

static const schema loss_extra[] = {
    {"weight", RUNNER_T_FLOAT, "1.0", "weight of this task's loss in the total", 0, 0, 0},
    {0},
};

/* A dataset whose training-split text `lines` adds (no nested sources). */
static const schema text_source_schema[] = {
    {"format", RUNNER_T_STRING, NULL, "tsv | agnews_csv | trec | slots | conll", 0, 0, 0},
    {"path", RUNNER_T_STRING, NULL, "one file (or folder) split as the task splits it", 0, 0, 0},
    {"train", RUNNER_T_STRING, NULL, "training file or folder", 0, 0, 0},
    {"text_field", RUNNER_T_STRING, NULL, "column holding the text (tsv)", 0, 0, 0},
    {"label_field", RUNNER_T_STRING, NULL, "column holding the label (tsv)", 0, 0, 0},
    {"target", RUNNER_T_STRING, NULL, "as in the task's dataset", 0, 0, 0},
    {"dev_ratio", RUNNER_T_FLOAT, "0.1", "share held out (and left out here) when there is no dev file", 0, 0, 0},
    {"split_seed", RUNNER_T_INT, "1234", "seed of the deterministic train/dev split", 0, 0, 0},
    {"limit", RUNNER_T_INT, "0", "use at most this many training rows (0: all)", 0, 0, 0},
    {"on_error", RUNNER_T_STRING, "\"stop\"", "bad rows: stop | skip (skipped rows are counted)", 0, 0, 0},
    {0},
};

static const schema dataset_schema[] = {
    {"format", RUNNER_T_STRING, NULL,
     "tsv | agnews_csv | trec | slots | conll | lines", 0, 0, 0},
    {"path", RUNNER_T_STRING, NULL, "one file (or folder) to split into train/dev", 0, 0, 0},
    {"train", RUNNER_T_STRING, NULL, "training file or folder", 0, 0, 0},
    {"dev", RUNNER_T_STRING, NULL, "development file or folder", 0, 0, 0},
    {"text_field", RUNNER_T_STRING, NULL, "column holding the text (tsv)", 0, 0, 0},
    {"label_field", RUNNER_T_STRING, NULL, "column holding the label (tsv)", 0, 0, 0},
    {"labels", RUNNER_T_STRING_LIST, NULL, "label names, in label-id order", 0, 0, 0},
    {"target", RUNNER_T_STRING, NULL,
     "which labels: intent | slots (slots), coarse | fine (trec), ner | pos | chunk (conll)", 0, 0, 0},
    {"dev_ratio", RUNNER_T_FLOAT, "0.1", "share held out as dev when there is no dev file", 0, 0, 0},
    {"split_seed", RUNNER_T_INT, "1234", "seed of the deterministic train/dev split", 0, 0, 0},
    {"limit", RUNNER_T_INT, "0", "use at most this many training rows (0: all)", 0, 0, 0},
    {"dev_limit", RUNNER_T_INT, "0", "use at most this many dev rows (0: all)", 0, 0, 0},
    {"on_error", RUNNER_T_STRING, "\"stop\"", "bad rows: stop | skip (skipped rows are counted)", 0, 0, 0},
    {"files", RUNNER_T_STRING_LIST, NULL,
     "lines: text files or globs, one example per line (.gz read through zlib)", 0, 0, 0},
    {"train_text_from", 0, NULL, "lines: datasets whose training-split text is added (never dev/test)",
     S_GROUPS, 0, text_source_schema},
    {0},
};

static const schema task_schema[] = {
    {"name", RUNNER_T_STRING, NULL, "task name (heads.<name>.* parameters)", 0, 0, 0},
    {"dataset", 0, NULL, "where the examples come from", S_GROUP, 0, dataset_schema},
    {"head", 0, NULL, "the task's head", S_SECTION, RUNNER_KIND_HEAD, NULL},
    {"loss", 0, NULL, "the task's loss (+ weight)", S_SECTION, RUNNER_KIND_LOSS, loss_extra},
    {"metrics", 0, "[\"accuracy\"]", "metrics on the dev set; the first is the headline",
     S_SECTIONS, RUNNER_KIND_METRIC, NULL},
    {0},
};

static const schema train_schema[] = {
    {"epochs", RUNNER_T_INT, "1", "passes over the sampled data", 0, 0, 0},
    {"max_steps", RUNNER_T_INT, "0", "stop after this many steps (0: no limit)", 0, 0, 0},
    {"batch", RUNNER_T_INT, "32", "sentences per step", 0, 0, 0},
    {"lr", RUNNER_T_FLOAT, "5e-5", "peak learning rate", 0, 0, 0},
    {"weight_decay", RUNNER_T_FLOAT, "0.01", "AdamW decoupled weight decay", 0, 0, 0},
    {"warmup", RUNNER_T_FLOAT, "0.1", "share of steps of linear warm-up", 0, 0, 0},
    {"schedule", RUNNER_T_STRING, "\"linear\"", "decay after warm-up: linear | cosine | constant", 0, 0, 0},
    {"clip", RUNNER_T_FLOAT, "1.0", "global gradient-norm clip (0: off)", 0, 0, 0},
    {"accumulate", RUNNER_T_INT, "1", "batches per optimizer step", 0, 0, 0},
    {"eval_every", RUNNER_T_INT, "0", "evaluate every N steps (0: each epoch)", 0, 0, 0},
    {"combine", RUNNER_T_STRING, "\"fixed\"", "loss combination: fixed | uncertainty", 0, 0, 0},
    {"early_stop", RUNNER_T_INT, "0", "stop after N evaluations without improvement (0: off)", 0, 0, 0},
    {"select", RUNNER_T_STRING, NULL,
     "metric choosing the best checkpoint and early stop, \"task.metric\" (default: mean of headlines)", 0, 0, 0},
    {"log_every", RUNNER_T_INT, "20", "log training loss every N steps", 0, 0, 0},
    {"export", RUNNER_T_STRING, NULL,
     "copy the best checkpoint's model folder here at the end (e.g. models/mini-bert-mlm)", 0, 0, 0},
    {"stop_after", RUNNER_T_INT, "0",
     "stop after step N as if interrupted, leaving last/ to --resume (0: off; for testing resume)", 0, 0, 0},
    {"save_best", RUNNER_T_BOOL, "true", "keep the best evaluation's checkpoint in best/", 0, 0, 0},
    {"save_last", RUNNER_T_BOOL, "true", "keep the latest checkpoint with trainer state in last/ (--resume)", 0, 0, 0},
    {0},
};

const schema pipeline_schema[] = {
    {"name", RUNNER_T_STRING, NULL, "pipeline name (default: the file name)", 0, 0, 0},
    {"run", RUNNER_T_STRING, NULL, "what the pipeline does (see runner --help)", 0, 0, 0},
    {"model", RUNNER_T_STRING, "\"models/all-MiniLM-L6-v2\"",
     "Hugging Face model folder (config.json, model.safetensors, vocab.txt)", 0, 0, 0},
    {"input", RUNNER_T_STRING, NULL, "file of sentences, one per line", 0, 0, 0},
    {"plugin_path", RUNNER_T_STRING_LIST, NULL, "more folders to search for plugins", 0, 0, 0},
    {"seed", RUNNER_T_INT, "42", "seed of the run's RNG (--seed)", 0, 0, 0},
    {"show_dims", RUNNER_T_INT, "6", "dimensions of each embedding to print", 0, 0, 0},
    {"checkpoint", RUNNER_T_STRING, NULL, "a trained checkpoint folder to load", 0, 0, 0},
    {"batch", 0, NULL, "batching", S_GROUP, 0, batch_schema},
    {"tokenizer", 0, NULL, "the tokenizer", S_SECTION, RUNNER_KIND_TOKENIZER, NULL},
    {"backbone", 0, NULL, "the encoder", S_SECTION, RUNNER_KIND_BACKBONE, NULL},
    {"pooler", 0, NULL, "token states to one vector", S_SECTION, RUNNER_KIND_POOLER, NULL},
    {"poolers", 0, NULL, "poolers to compare", S_SECTIONS, RUNNER_KIND_POOLER, NULL},
    {"sts", 0, NULL, "STS Benchmark evaluation", S_GROUP, 0, sts_schema},
    {"tasks", 0, NULL, "the tasks of a multi-task model", S_GROUPS, 0, task_schema},
    {"sampler", 0, NULL, "which task each batch comes from", S_SECTION, RUNNER_KIND_SAMPLER, NULL},
    {"freeze", 0, NULL, "what trains when", S_SECTION, RUNNER_KIND_FREEZE, NULL},
    {"train", 0, NULL, "optimisation", S_GROUP, 0, train_schema},
    {0},
};

/* ---- checking ------------------------------------------------------------ */

static int type_fits(const config_setting_t *s, runner_type t)
{
    int st = config_setting_type(s);
    int is_int = st == CONFIG_TYPE_INT || st == CONFIG_TYPE_INT64;
    switch (t) {
    case RUNNER_T_INT: return is_int;
    case RUNNER_T_FLOAT: return is_int || st == CONFIG_TYPE_FLOAT;
    case RUNNER_T_BOOL: return st == CONFIG_TYPE_BOOL;
    case RUNNER_T_STRING: return st == CONFIG_TYPE_STRING;
    case RUNNER_T_GROUP: return st == CONFIG_TYPE_GROUP;
    case RUNNER_T_INT_LIST:
    case RUNNER_T_FLOAT_LIST:
    case RUNNER_T_STRING_LIST: {
        if (st != CONFIG_TYPE_ARRAY && st != CONFIG_TYPE_LIST)
            return 0;
        runner_type et = t == RUNNER_T_INT_LIST     ? RUNNER_T_INT
                         : t == RUNNER_T_FLOAT_LIST ? RUNNER_T_FLOAT
                                                    : RUNNER_T_STRING;
        for (int i = 0; i < config_setting_length(s); i++)
            if (!type_fits(config_setting_get_elem(s, (unsigned)i), et))
                return 0;
        return 1;
    }
    }
    return 0;
}

static const char *type_name(runner_type t)
{
    switch (t) {
    case RUNNER_T_INT: return "an integer";
    case RUNNER_T_FLOAT: return "a number";
    case RUNNER_T_BOOL: return "a boolean (true/false)";
    case RUNNER_T_STRING: return "a string";
    case RUNNER_T_INT_LIST: return "a list of integers";
    case RUNNER_T_FLOAT_LIST: return "a list of numbers";
    case RUNNER_T_STRING_LIST: return "a list of strings";
    case RUNNER_T_GROUP: return "a group";
    }
    return "?";
}

static void report(diags *d, const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void report(diags *d, const config_setting_t *s, const char *fmt, ...)
{
    char where[1024], path[512], msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    diag_add(d, "%s: %s: %s", setting_where(s, where, sizeof where),
             setting_path(s, path, sizeof path), msg);
}

static void check_value(diags *d, const config_setting_t *s, runner_type t)
{
    if (!type_fits(s, t))
        report(d, s, "is %s, expected %s", setting_type_name(config_setting_type(s)),
               type_name(t));
}

static void fill_default(diags *d, config_setting_t *group, const char *name,
                         const char *def, const char *origin)
{
    if (!def || config_setting_get_member(group, name))
        return;
    if (!setting_set_from_text(group, name, def, origin))
        report(d, group, "default of %s: %s", name, err_get());
}

static void check_group(pipeline *pl, diags *d, config_setting_t *g, const schema *sch);

/* Edit distance, capped: for "did you mean" on misspelt keys. */
static int edit_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n > 63 || m > 63)
        return 99;
    int row[64];
    for (size_t j = 0; j <= m; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= n; i++) {
        int diag_prev = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= m; j++) {
            int up = row[j];
            int best = diag_prev + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag_prev = up;
        }
    }
    return row[m];
}

/* Append "; did you mean 'x'?" for the closest of names (within 2 edits). */
static void suggest(char *msg, size_t size, const char *key, const char *const *names, int n)
{
    const char *best = NULL;
    int best_d = 3;
    for (int i = 0; i < n; i++) {
        int dist = edit_distance(key, names[i]);
        if (dist < best_d) {
            best_d = dist;
            best = names[i];
        }
    }
    if (best) {
        size_t used = strlen(msg);
        snprintf(msg + used, size - used, "; did you mean '%s'?", best);
    }
}

/* Members of a plugin section against the plugin's key table. */
static void check_section(pipeline *pl, diags *d, config_setting_t *s, runner_kind kind,
                          const schema *extra)
{
    if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
        report(d, s, "is %s, expected a plugin section { plugin = \"name\"; ... }",
               setting_type_name(config_setting_type(s)));
        return;
    }
    const char *name = NULL;
    if (!config_setting_lookup_string(s, "plugin", &name)) {
        report(d, s, "has no `plugin = \"name\";` (a %s plugin)", kind_name(kind));
        return;
    }
    const runner_plugin *desc;
    if (loader_get(&pl->L, kind, name, &desc) != 0) {
        report(d, config_setting_get_member(s, "plugin"), "%s", err_get());
        return;
    }
    for (int i = 0; i < config_setting_length(s); i++) {
        config_setting_t *m = config_setting_get_elem(s, (unsigned)i);
        const char *key = config_setting_name(m);
        if (strcmp(key, "plugin") == 0)
            continue;
        const runner_key *k = desc->keys;
        while (k && k->name && strcmp(k->name, key) != 0)
            k++;
        if (k && k->name) {
            check_value(d, m, k->type);
            continue;
        }
        const schema *e = extra;
        while (e && e->name && strcmp(e->name, key) != 0)
            e++;
        if (e && e->name) {
            check_value(d, m, e->type);
            continue;
        }
        char known[1024] = "", hint[128] = "";
        const char *names[64];
        int nn = 0;
        size_t used = 0;
        for (k = desc->keys; k && k->name && used < sizeof known; k++) {
            used += (size_t)snprintf(known + used, sizeof known - used, "%s%s",
                                     used ? ", " : "", k->name);
            if (nn < 64)
                names[nn++] = k->name;
        }
        for (e = extra; e && e->name && used < sizeof known; e++) {
            used += (size_t)snprintf(known + used, sizeof known - used, "%s%s",
                                     used ? ", " : "", e->name);
            if (nn < 64)
                names[nn++] = e->name;
        }
        suggest(hint, sizeof hint, key, names, nn);
        report(d, m, "unknown key '%s' for %s plugin '%s' (its keys: %s)%s", key,
               kind_name(kind), name, used ? known : "none", hint);
    }
    char origin[256];
    snprintf(origin, sizeof origin, "<default of %s '%s'>", kind_name(kind), name);
    char *interned = NULL;
    for (const runner_key *k = desc->keys; k && k->name; k++)
        if (k->def && !config_setting_get_member(s, k->name)) {
            if (!interned) {
                diag_add(&pl->origins, "%s", origin);
                interned = pl->origins.msg[pl->origins.n - 1];
            }
            fill_default(d, s, k->name, k->def, interned);
        }
    for (const schema *e = extra; e && e->name; e++)
        fill_default(d, s, e->name, e->def, "<default>");
}

/* A list of plugin names or sections: names become sections in place. */
static void check_sections(pipeline *pl, diags *d, config_setting_t *parent,
                           config_setting_t *s, runner_kind kind)
{
    int st = config_setting_type(s);
    if (st == CONFIG_TYPE_STRING || st == CONFIG_TYPE_GROUP) {
        report(d, s, "expected a list: [\"name\", ...] or ({ plugin = \"name\"; ... }, ...)");
        return;
    }
    if (st != CONFIG_TYPE_ARRAY && st != CONFIG_TYPE_LIST) {
        report(d, s, "is %s, expected a list of %s plugins", setting_type_name(st), kind_name(kind));
        return;
    }
    int has_names = 0;
    for (int i = 0; i < config_setting_length(s); i++)
        if (config_setting_type(config_setting_get_elem(s, (unsigned)i)) == CONFIG_TYPE_STRING)
            has_names = 1;
    if (has_names) {
        /* rebuild as a list of groups so every element has its defaults */
        char *name = str_dup(config_setting_name(s));
        const char *hook = config_setting_get_hook(s);
        config_t tmp;
        if (!name)
            return;
        config_init(&tmp);
        config_setting_t *old = setting_copy(config_root_setting(&tmp), "old", s);
        config_setting_remove(parent, name);
        config_setting_t *list = config_setting_add(parent, name, CONFIG_TYPE_LIST);
        if (hook)
            config_setting_set_hook(list, (void *)hook);
        for (int i = 0; old && list && i < config_setting_length(old); i++) {
            config_setting_t *e = config_setting_get_elem(old, (unsigned)i);
            if (config_setting_type(e) == CONFIG_TYPE_STRING) {
                config_setting_t *g = config_setting_add(list, NULL, CONFIG_TYPE_GROUP);
                config_setting_t *p = g ? config_setting_add(g, "plugin", CONFIG_TYPE_STRING) : NULL;
                if (p)
                    config_setting_set_string(p, config_setting_get_string(e));
            } else {
                setting_copy(list, NULL, e);
            }
        }
        config_destroy(&tmp);
        free(name);
        s = list;
        if (!s)
            return;
    }
    for (int i = 0; i < config_setting_length(s); i++)
        check_section(pl, d, config_setting_get_elem(s, (unsigned)i), kind, NULL);
}

static void check_group(pipeline *pl, diags *d, config_setting_t *g, const schema *sch)
{
    if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
        report(d, g, "is %s, expected a group { ... }", setting_type_name(config_setting_type(g)));
        return;
    }
    /* members may be replaced while checking: walk by name */
    int n = config_setting_length(g);
    char **names = calloc((size_t)n + 1, sizeof *names);
    for (int i = 0; names && i < n; i++)
        names[i] = str_dup(config_setting_name(config_setting_get_elem(g, (unsigned)i)));
    for (int i = 0; names && i < n; i++) {
        config_setting_t *m = config_setting_get_member(g, names[i]);
        const schema *k = sch;
        while (k->name && strcmp(k->name, names[i]) != 0)
            k++;
        if (!m)
            continue;
        if (!k->name) {
            char known[1024] = "", hint[128] = "";
            const char *keys[64];
            int nk = 0;
            size_t used = 0;
            for (k = sch; k->name && used < sizeof known; k++) {
                used += (size_t)snprintf(known + used, sizeof known - used, "%s%s",
                                         used ? ", " : "", k->name);
                if (nk < 64)
                    keys[nk++] = k->name;
            }
            suggest(hint, sizeof hint, names[i], keys, nk);
            report(d, m, "unknown key '%s' (known here: %s)%s", names[i], known, hint);
            continue;
        }
        switch (k->shape) {
        case S_VALUE: check_value(d, m, k->type); break;
        case S_SECTION: check_section(pl, d, m, k->kind, k->sub); break;
        case S_SECTIONS: check_sections(pl, d, g, m, k->kind); break;
        case S_GROUP: check_group(pl, d, m, k->sub); break;
        case S_GROUPS:
            if (config_setting_type(m) != CONFIG_TYPE_LIST) {
                report(d, m, "is %s, expected a list of groups ( { ... }, { ... } )",
                       setting_type_name(config_setting_type(m)));
                break;
            }
            for (int j = 0; j < config_setting_length(m); j++)
                check_group(pl, d, config_setting_get_elem(m, (unsigned)j), k->sub);
            break;
        }
    }
    for (int i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
    for (const schema *k = sch; k->name; k++) {
        if (k->shape == S_VALUE)
            fill_default(d, g, k->name, k->def, "<default>");
        else if (k->shape == S_SECTIONS && k->def && !config_setting_get_member(g, k->name)) {
            fill_default(d, g, k->name, k->def, "<default>");
            config_setting_t *m = config_setting_get_member(g, k->name);
            if (m)
                check_sections(pl, d, g, m, k->kind);
        }
    }
}

int pipeline_validate(pipeline *pl, diags *d)
{
    config_setting_t *root = config_root_setting(&pl->cfg);
    /* plugin_path first: it changes where the other plugins are found */
    config_setting_t *pp = config_setting_get_member(root, "plugin_path");
    if (pp && type_fits(pp, RUNNER_T_STRING_LIST))
        for (int i = 0; i < config_setting_length(pp); i++)
            loader_add_dir(&pl->L, config_setting_get_string_elem(pp, i));
    int before = d->n;
    check_group(pl, d, root, pipeline_schema);
    const char *run = NULL;
    if (!config_setting_lookup_string(root, "run", &run)) {
        if (!config_setting_get_member(root, "run"))
            diag_add(d, "%s: no `run = \"...\";` saying what the pipeline does", pl->file);
    } else {
        const driver *dr = drivers;
        while (dr->name && strcmp(dr->name, run) != 0)
            dr++;
        if (!dr->name) {
            char known[512] = "";
            size_t used = 0;
            for (dr = drivers; dr->name; dr++)
                used += (size_t)snprintf(known + used, sizeof known - used, "%s%s",
                                         used ? ", " : "", dr->name);
            report(d, config_setting_get_member(root, "run"), "unknown run '%s' (known: %s)",
                   run, known);
        }
    }
    return d->n > before ? -1 : 0;
}

/* ---- typed lookups -------------------------------------------------------- */

const char *cfg_str(const pipeline *pl, const char *path)
{
    const char *s = NULL;
    return config_lookup_string(&pl->cfg, path, &s) ? s : NULL;
}

long long cfg_int(const pipeline *pl, const char *path, long long fallback)
{
    long long v;
    return config_lookup_int64(&pl->cfg, path, &v) ? v : fallback;
}

double cfg_num(const pipeline *pl, const char *path, double fallback)
{
    const config_setting_t *s = config_lookup(&pl->cfg, path);
    if (!s)
        return fallback;
    int t = config_setting_type(s);
    if (t == CONFIG_TYPE_FLOAT)
        return config_setting_get_float(s);
    if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64)
        return (double)config_setting_get_int64(s);
    return fallback;
}

int cfg_bool(const pipeline *pl, const char *path, int fallback)
{
    int v;
    return config_lookup_bool(&pl->cfg, path, &v) ? v : fallback;
}

/* ---- host services ---------------------------------------------------------- */

static stage *stage_of(const runner_host *h) { return (stage *)(uintptr_t)h; }

void pipeline_log(const pipeline *pl, int level, const char *fmt, ...)
{
    if (pl && pl->quiet && level > RUNNER_LOG_WARN)
        return;
    va_list ap;
    va_start(ap, fmt);
    if (level == RUNNER_LOG_ERROR)
        fputs("error: ", stderr);
    else if (level == RUNNER_LOG_WARN)
        fputs("warning: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void host_log(const runner_host *h, int level, const char *fmt, ...)
{
    stage *st = stage_of(h);
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pipeline_log(st->pl, level, "%s/%s: %s", st->slot, st->desc->name, msg);
}

static int host_error(const runner_host *h, const char *fmt, ...)
{
    stage *st = stage_of(h);
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s/%s", st->slot, st->desc->name);
    va_list ap;
    va_start(ap, fmt);
    err_setv(prefix, fmt, ap);
    va_end(ap);
    return -1;
}

static uint64_t host_rng_u64(const runner_host *h)
{
    gsl_rng *r = stage_of(h)->pl->rng;
    return ((uint64_t)gsl_rng_get(r) << 32) ^ (uint64_t)gsl_rng_get(r);
}

static double host_rng_uniform(const runner_host *h) { return gsl_rng_uniform(stage_of(h)->pl->rng); }
static int host_threads(const runner_host *h) { return stage_of(h)->pl->threads; }
static int host_quiet(const runner_host *h) { return stage_of(h)->pl->quiet; }

/* A member of the section; 1 when absent. Keys a plugin reads must be in
 * its table (a plugin bug otherwise). */
static int cfg_member(const runner_cfg *c, const char *key, config_setting_t **out)
{
    const runner_key *k = c->st->desc->keys;
    while (k && k->name && strcmp(k->name, key) != 0)
        k++;
    if (!k || !k->name)
        return host_error(&c->st->host, "reads key '%s', which its key table lacks", key);
    *out = c->group ? config_setting_get_member(c->group, key) : NULL;
    return *out ? 0 : 1;
}

static int host_cfg_int(const runner_cfg *c, const char *key, long long *out)
{
    config_setting_t *s;
    int rc = cfg_member(c, key, &s);
    if (rc == 0)
        *out = config_setting_get_int64(s);
    return rc;
}

static double setting_number(const config_setting_t *s)
{
    return config_setting_type(s) == CONFIG_TYPE_FLOAT ? config_setting_get_float(s)
                                                       : (double)config_setting_get_int64(s);
}

static int host_cfg_float(const runner_cfg *c, const char *key, double *out)
{
    config_setting_t *s;
    int rc = cfg_member(c, key, &s);
    if (rc == 0)
        *out = setting_number(s);
    return rc;
}

static int host_cfg_bool(const runner_cfg *c, const char *key, int *out)
{
    config_setting_t *s;
    int rc = cfg_member(c, key, &s);
    if (rc == 0)
        *out = config_setting_get_bool(s);
    return rc;
}

static int host_cfg_string(const runner_cfg *c, const char *key, const char **out)
{
    config_setting_t *s;
    int rc = cfg_member(c, key, &s);
    if (rc == 0)
        *out = config_setting_get_string(s);
    return rc;
}

static int host_cfg_count(const runner_cfg *c, const char *key)
{
    config_setting_t *s;
    return cfg_member(c, key, &s) == 0 ? config_setting_length(s) : -1;
}

static int cfg_elem(const runner_cfg *c, const char *key, int i, config_setting_t **e)
{
    config_setting_t *s;
    int rc = cfg_member(c, key, &s);
    if (rc != 0)
        return rc;
    *e = config_setting_get_elem(s, (unsigned)i);
    return *e ? 0 : host_error(&c->st->host, "%s has no element %d", key, i);
}

static int host_cfg_int_at(const runner_cfg *c, const char *key, int i, long long *out)
{
    config_setting_t *e;
    int rc = cfg_elem(c, key, i, &e);
    if (rc == 0)
        *out = config_setting_get_int64(e);
    return rc;
}

static int host_cfg_float_at(const runner_cfg *c, const char *key, int i, double *out)
{
    config_setting_t *e;
    int rc = cfg_elem(c, key, i, &e);
    if (rc == 0)
        *out = setting_number(e);
    return rc;
}

static int host_cfg_string_at(const runner_cfg *c, const char *key, int i, const char **out)
{
    config_setting_t *e;
    int rc = cfg_elem(c, key, i, &e);
    if (rc == 0)
        *out = config_setting_get_string(e);
    return rc;
}

static const char *host_pipeline_string(const runner_host *h, const char *key)
{
    return cfg_str(stage_of(h)->pl, key);
}

static int host_param_add(const runner_host *h, const char *name, int ndim,
                          const int64_t *shape, unsigned flags, runner_init init, float std,
                          float **data, float **grad)
{
    stage *st = stage_of(h);
    char *full = str_printf("%s%s", st->prefix, name);
    if (!full)
        return host_error(h, "out of memory");
    int id = params_add(&st->pl->P, full, ndim, shape, flags, init, std, data, grad);
    free(full);
    if (id < 0)
        return host_error(h, "%s", err_get());
    return id;
}

static int host_param_trainable(const runner_host *h, int id)
{
    const params *P = &stage_of(h)->pl->P;
    return id >= 0 && id < P->n && P->p[id].trainable && P->grad != NULL;
}

static int host_param_set(const runner_host *h, const char *glob, int trainable, double lr_scale)
{
    return params_set(&stage_of(h)->pl->P, glob, trainable, lr_scale);
}

static int64_t host_param_count(const runner_host *h, const char *glob)
{
    return params_count(&stage_of(h)->pl->P, glob, 0);
}

static int host_param_ref(const runner_host *h, const char *name, float **data, float **grad)
{
    params *P = &stage_of(h)->pl->P;
    int id = params_find(P, name);
    if (id < 0 || !P->allocated)
        return host_error(h, "no parameter %s%s", name, P->allocated ? "" : " (the store is not allocated yet)");
    *data = P->data + P->p[id].offset;
    *grad = P->grad ? P->grad + P->p[id].offset : NULL;
    return id;
}

static const runner_host host_template = {
    .abi_major = RUNNER_ABI_MAJOR,
    .abi_minor = RUNNER_ABI_MINOR,
    .log = host_log,
    .error = host_error,
    .alloc = mem_alloc,
    .calloc = mem_calloc,
    .free = mem_free,
    .rng_u64 = host_rng_u64,
    .rng_uniform = host_rng_uniform,
    .threads = host_threads,
    .quiet = host_quiet,
    .cfg_int = host_cfg_int,
    .cfg_float = host_cfg_float,
    .cfg_bool = host_cfg_bool,
    .cfg_string = host_cfg_string,
    .cfg_count = host_cfg_count,
    .cfg_int_at = host_cfg_int_at,
    .cfg_float_at = host_cfg_float_at,
    .cfg_string_at = host_cfg_string_at,
    .pipeline_string = host_pipeline_string,
    .param_add = host_param_add,
    .param_trainable = host_param_trainable,
    .param_set = host_param_set,
    .param_count = host_param_count,
    .param_ref = host_param_ref,
};

/* ---- lifecycle -------------------------------------------------------------- */

int pipeline_open(pipeline *pl, const char *file, const char *build_plugins)
{
    memset(pl, 0, sizeof *pl);
    config_init(&pl->cfg);
    diag_init(&pl->origins);
    params_init(&pl->P);
    pl->threads = 1;
    pl->file = str_dup(file);
    if (file && !pl->file)
        return err_set("out of memory");
    if (loader_init(&pl->L, build_plugins) != 0)
        return -1;
    pl->rng = gsl_rng_alloc(gsl_rng_mt19937);
    if (!pl->rng)
        return err_set("out of memory");
    return file ? config_load(&pl->cfg, file) : 0;
}

void pipeline_close(pipeline *pl)
{
    if (!pl)
        return;
    for (int i = pl->nstages - 1; i >= 0; i--) {
        stage *st = pl->stages[i];
        st->desc->destroy(st->self);
        free(st->slot);
        free(st->prefix);
        free(st);
    }
    free(pl->stages);
    params_free(&pl->P);
    config_destroy(&pl->cfg);
    diag_free(&pl->origins);
    loader_free(&pl->L);
    if (pl->rng)
        gsl_rng_free(pl->rng);
    free(pl->file);
    free(pl->name);
    free(pl->out_dir);
    memset(pl, 0, sizeof *pl);
}

stage *pipeline_stage(pipeline *pl, const char *slot, const char *prefix, runner_kind kind,
                      config_setting_t *section)
{
    const char *name = NULL;
    if (!section)
        return err_set("%s: missing from the pipeline", slot), NULL;
    if (config_setting_type(section) == CONFIG_TYPE_STRING)
        name = config_setting_get_string(section);
    else
        config_setting_lookup_string(section, "plugin", &name);
    if (!name)
        return err_set("%s: no plugin named", slot), NULL;
    const runner_plugin *desc;
    if (loader_get(&pl->L, kind, name, &desc) != 0)
        return NULL;
    stage **grown = realloc(pl->stages, (size_t)(pl->nstages + 1) * sizeof *grown);
    if (!grown)
        return err_set("out of memory"), NULL;
    pl->stages = grown;
    stage *st = calloc(1, sizeof *st);
    if (!st)
        return err_set("out of memory"), NULL;
    st->host = host_template;
    st->pl = pl;
    st->slot = str_dup(slot);
    st->prefix = str_dup(prefix ? prefix : "");
    st->desc = desc;
    st->cfg.group = config_setting_type(section) == CONFIG_TYPE_GROUP ? section : NULL;
    st->cfg.st = st;
    if (!st->slot || !st->prefix) {
        free(st->slot);
        free(st->prefix);
        free(st);
        return err_set("out of memory"), NULL;
    }
    err_clear();
    if (desc->create(&st->host, &st->cfg, &st->self) != 0) {
        if (!err_get()[0] || strcmp(err_get(), "unknown error") == 0)
            err_set("%s/%s: create failed without a message", slot, name);
        free(st->slot);
        free(st->prefix);
        free(st);
        return NULL;
    }
    pl->stages[pl->nstages++] = st;
    return st;
}

int pipeline_alloc_params(pipeline *pl, int with_grad)
{
    return params_alloc(&pl->P, with_grad, pl->rng);
}
