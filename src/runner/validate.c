/* validate.c — checks a whole pipeline against the core schema and every
 * plugin's key table, all errors at once with file:line; fills defaults;
 * typed lookups into the resolved configuration. */
#include "pipeline.h"

#include <gsl/gsl_randist.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "folder.h"
#include "textout.h"
#include "runner/kit/util.h"

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

static void suggest(char *msg, size_t size, const char *key, const char *const *names, int n);

/* An interval "[a, b)" / "(a, inf]": returns 0 and the bounds, or -1. */
static int parse_interval(const char *lim, double *lo, double *hi, int *lo_open, int *hi_open)
{
    char a[64], b[64], open_c, close_c;
    int n = 0;
    if (sscanf(lim, " %c %63[^, ] , %63[^]) ] %c%n", &open_c, a, b, &close_c, &n) != 4 || lim[n])
        return -1;
    if ((open_c != '[' && open_c != '(') || (close_c != ']' && close_c != ')'))
        return -1;
    char *end;
    *lo = strcmp(a, "-inf") == 0 ? -INFINITY : strtod(a, &end);
    if (strcmp(a, "-inf") != 0 && *end)
        return -1;
    *hi = strcmp(b, "inf") == 0 ? INFINITY : strtod(b, &end);
    if (strcmp(b, "inf") != 0 && *end)
        return -1;
    *lo_open = open_c == '(';
    *hi_open = close_c == ')';
    return 0;
}

/* One scalar against its limits (see runner_key.limits). */
static void check_scalar(diags *d, const config_setting_t *s, runner_type t, const char *lim)
{
    int st = config_setting_type(s);
    if (st == CONFIG_TYPE_STRING) {
        if (!lim)
            return;
        const char *v = config_setting_get_string(s), *c = lim;
        size_t n = strlen(v);
        while (c) {
            const char *bar = strchr(c, '|');
            size_t len = bar ? (size_t)(bar - c) : strlen(c);
            if (len == n && strncmp(c, v, n) == 0)
                return;
            c = bar ? bar + 1 : NULL;
        }
        const char *names[64];
        char buf[1024];
        int nn = 0;
        snprintf(buf, sizeof buf, "%s", lim);
        for (char *save = NULL, *w = strtok_r(buf, "|", &save); w && nn < 64; w = strtok_r(NULL, "|", &save))
            names[nn++] = w;
        char msg[256] = "";
        suggest(msg, sizeof msg, v, names, nn);
        report(d, s, "'%s' is not one of %s%s", v, lim, msg);
        return;
    }
    if (st != CONFIG_TYPE_INT && st != CONFIG_TYPE_INT64 && st != CONFIG_TYPE_FLOAT)
        return;
    double v = st == CONFIG_TYPE_FLOAT ? config_setting_get_float(s) : (double)config_setting_get_int64(s);
    if (st == CONFIG_TYPE_FLOAT && !isfinite(v)) {
        report(d, s, "is not a finite number");
        return;
    }
    double lo = -INFINITY, hi = INFINITY;
    int lo_open = 0, hi_open = 0;
    if (lim && parse_interval(lim, &lo, &hi, &lo_open, &hi_open) != 0) {
        report(d, s, "its key table has malformed limits \"%s\" (a plugin bug)", lim);
        return;
    }
    if (!lim && t == RUNNER_T_INT) {
        lo = INT32_MIN;
        hi = INT32_MAX;
        lim = "[-2147483648, 2147483647]";
    }
    if (v < lo || v > hi || (lo_open && v == lo) || (hi_open && v == hi)) {
        if (st == CONFIG_TYPE_FLOAT)
            report(d, s, "%g is out of range: must be in %s", v, lim);
        else
            report(d, s, "%lld is out of range: must be in %s", config_setting_get_int64(s), lim);
    }
}

static void check_value(diags *d, const config_setting_t *s, runner_type t, const char *lim)
{
    if (!type_fits(s, t)) {
        report(d, s, "is %s, expected %s", setting_type_name(config_setting_type(s)),
               type_name(t));
        return;
    }
    int st = config_setting_type(s);
    if (st == CONFIG_TYPE_ARRAY || st == CONFIG_TYPE_LIST) {
        runner_type et = t == RUNNER_T_INT_LIST ? RUNNER_T_INT : t == RUNNER_T_FLOAT_LIST ? RUNNER_T_FLOAT : RUNNER_T_STRING;
        for (int i = 0; i < config_setting_length(s); i++)
            check_scalar(d, config_setting_get_elem(s, (unsigned)i), et, lim);
    } else if (st != CONFIG_TYPE_GROUP && st != CONFIG_TYPE_BOOL) {
        check_scalar(d, s, t, lim);
    }
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

/* Append "; did you mean 'x'?" for the closest of names (within 2 edits,
 * else one that begins with key). */
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
    /* else a name that key begins ("agnews" for "agnews_csv") */
    for (int i = 0; !best && strlen(key) >= 3 && i < n; i++)
        if (strncmp(names[i], key, strlen(key)) == 0)
            best = names[i];
    if (best) {
        size_t used = strlen(msg);
        snprintf(msg + used, size - used, "; did you mean '%s'?", best);
    }
}

static void check_sections(pipeline *pl, diags *d, config_setting_t *parent, config_setting_t *s,
                           runner_kind kind, const schema *extra);

/* Members of a plugin section against the plugin's key table (and the
 * core's extra keys: values, or lists of sections). */
static void check_section(pipeline *pl, diags *d, config_setting_t *s, runner_kind kind,
                          const schema *extra)
{
    if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
        report(d, s, "is %s, expected a plugin section { plugin = \"name\"; ... }",
               setting_type_name(config_setting_type(s)));
        return;
    }
    if (kind == RUNNER_KIND_DATASET && dataset_format_alias(s)) {
        char where[512];
        pipeline_log(pl, RUNNER_LOG_WARN, "%s: `format` is deprecated in dataset sections: write `plugin = \"%s\";`",
                     setting_where(config_setting_get_member(s, "plugin"), where, sizeof where),
                     config_setting_get_string(config_setting_get_member(s, "plugin")));
    }
    const char *name = NULL;
    if (!config_setting_lookup_string(s, "plugin", &name)) {
        report(d, s, "has no `plugin = \"name\";` (a %s plugin)", kind_name(kind));
        return;
    }
    const runner_plugin *desc;
    if (loader_get(&pl->L, kind, name, &desc) != 0) {
        char msg[2048], *names[128];
        snprintf(msg, sizeof msg, "%s", err_get());
        int n = strstr(msg, "not found") ? loader_kind_names(&pl->L, kind, names, 128) : 0;
        suggest(msg, sizeof msg, name, (const char *const *)names, n);
        for (int i = 0; i < n; i++)
            free(names[i]);
        report(d, config_setting_get_member(s, "plugin"), "%s", msg);
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
            check_value(d, m, k->type, k->limits);
            continue;
        }
        const schema *e = extra;
        while (e && e->name && strcmp(e->name, key) != 0)
            e++;
        if (e && e->name) {
            if (e->shape == S_SECTIONS)
                check_sections(pl, d, s, m, e->kind, e->sub);
            else
                check_value(d, m, e->type, e->limits);
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
                           config_setting_t *s, runner_kind kind, const schema *extra)
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
        check_section(pl, d, config_setting_get_elem(s, (unsigned)i), kind, extra);
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
        case S_VALUE: check_value(d, m, k->type, k->limits); break;
        case S_SECTION: check_section(pl, d, m, k->kind, k->sub); break;
        case S_SECTIONS: check_sections(pl, d, g, m, k->kind, k->sub); break;
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
                check_sections(pl, d, g, m, k->kind, k->sub);
        }
    }
}

/* The names a metric plugin reports (per_class's per-class values are
 * "precision.<class>" etc.; they are accepted by prefix). */
static int metric_reports(const char *plugin, const char *name)
{
    static const char *const known[][5] = {
        {"accuracy", "accuracy", NULL},
        {"macro_f1", "macro_f1", "macro_precision", "macro_recall", NULL},
        {"micro_f1", "micro_f1", "micro_precision", "micro_recall", NULL},
        {"per_class", "per_class.macro_f1", "macro_f1", NULL},
        {"span_f1", "f1", "precision", "recall", NULL},
        {"confusion", "accuracy", "confusion.accuracy", NULL},
    };
    static const char *const per_class[] = {"precision.", "recall.", "f1.", "support.", NULL};
    size_t pl = strlen(plugin);
    if (strcmp(name, plugin) == 0 || (strncmp(name, plugin, pl) == 0 && name[pl] == '.'))
        return 1;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        for (int j = 1; strcmp(known[i][0], plugin) == 0 && j < 5 && known[i][j]; j++)
            if (strcmp(known[i][j], name) == 0)
                return 1;
    for (int i = 0; strcmp(plugin, "per_class") == 0 && per_class[i]; i++)
        if (strncmp(name, per_class[i], strlen(per_class[i])) == 0)
            return 1;
    return 0;
}

static const char *metric_plugin(const config_setting_t *m)
{
    const char *name = config_setting_get_string(m);
    if (!name && config_setting_is_group(m))
        config_setting_lookup_string(m, "plugin", &name);
    return name;
}

/* A task on unlabeled text (its dataset plugin says RUNNER_DATASET_TEXT)
 * is masked-LM: the core reports its masked-piece "accuracy". */
static int text_task(pipeline *pl, const config_setting_t *t)
{
    const char *dp = NULL;
    const runner_plugin *desc;
    const config_setting_t *ds = config_setting_get_member(t, "dataset");
    if (!ds || !config_setting_lookup_string(ds, "plugin", &dp) || /* libconfig reads NULL */
        loader_get(&pl->L, RUNNER_KIND_DATASET, dp, &desc) != 0)
        return 0;
    const runner_dataset_ops *ops = desc->ops;
    return (ops->flags & RUNNER_DATASET_TEXT) != 0;
}

/* train.select names "<task>.<metric>": a task of the pipeline and "loss"
 * or a value one of that task's metrics reports. */
static void check_select(pipeline *pl, diags *d, const config_setting_t *root)
{
    const config_setting_t *sel = config_setting_lookup((config_setting_t *)root, "train.select");
    const config_setting_t *tasks = config_setting_get_member(root, "tasks");
    const char *v = sel ? config_setting_get_string(sel) : NULL;
    if (!v || !tasks || !config_setting_is_list(tasks))
        return;
    char names[1024] = "";
    size_t used = 0;
    for (int k = 0; k < config_setting_length(tasks); k++) {
        const config_setting_t *t = config_setting_get_elem(tasks, (unsigned)k);
        const char *tn = NULL;
        if (!config_setting_lookup_string(t, "name", &tn))
            continue;
        size_t ln = strlen(tn);
        const config_setting_t *ms = config_setting_get_member(t, "metrics");
        if (strncmp(v, tn, ln) == 0 && v[ln] == '.') {
            int ok = strcmp(v + ln + 1, "loss") == 0 || (strcmp(v + ln + 1, "accuracy") == 0 && text_task(pl, t));
            for (int j = 0; !ok && ms && j < config_setting_length(ms); j++) {
                const char *mp = metric_plugin(config_setting_get_elem(ms, (unsigned)j));
                ok = mp && metric_reports(mp, v + ln + 1);
            }
            if (ok)
                return;
        }
        used += (size_t)snprintf(names + used, used < sizeof names ? sizeof names - used : 0,
                                 "%s%s.loss%s%s%s", used ? ", " : "", tn, text_task(pl, t) ? ", " : "",
                                 text_task(pl, t) ? tn : "", text_task(pl, t) ? ".accuracy" : "");
        for (int j = 0; ms && j < config_setting_length(ms) && used < sizeof names; j++) {
            const char *mp = metric_plugin(config_setting_get_elem(ms, (unsigned)j));
            used += (size_t)snprintf(names + used, sizeof names - used, ", %s.%s", tn, mp ? mp : "?");
        }
    }
    report(d, sel, "'%s' names no metric of the pipeline's tasks (choose one of: %s)", v, names);
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
    check_select(pl, d, root);
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
    if (d->n == before) { /* files the pipeline names: only once its keys are right */
        const char *input = cfg_str(pl, "input");
        if (input && strcmp(input, "-") != 0 && !path_exists(input))
            report(d, config_setting_get_member(root, "input"), "%s: no such file (\"-\" reads stdin)", input);
        config_setting_t *pooler = folder_check(pl, d);
        if (pooler)
            check_section(pl, d, pooler, RUNNER_KIND_POOLER, NULL);
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
