/* sweep.c — grids of runs (see sweep.h). */
#include "sweep.h"

#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proc.h"
#include "run.h"
#include "sbuf.h"
#include "runner/kit/util.h"

/* ---- axes ------------------------------------------------------------------- */

/* A setting's value as libconfig text (what --set takes). */
static char *setting_text(const config_setting_t *e)
{
    config_t t;
    config_init(&t);
    char *buf = NULL, *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (m && setting_copy(config_root_setting(&t), "v", e)) {
        config_write(&t, m);
        fclose(m);
        m = NULL;
        /* libconfig writes "v = VALUE;" and, for a group, "v : \n{ ... };" */
        if (buf && (strncmp(buf, "v = ", 4) == 0 || strncmp(buf, "v : ", 4) == 0)) {
            const char *at = buf + 4;
            while (*at == ' ' || *at == '\n')
                at++;
            size_t n = strlen(at);
            while (n && (at[n - 1] == '\n' || at[n - 1] == ';'))
                n--;
            text = strndup(at, n);
        }
    }
    if (m)
        fclose(m);
    free(buf);
    config_destroy(&t);
    return text;
}

static char *setting_label(const config_setting_t *e, int index)
{
    switch (config_setting_type(e)) {
    case CONFIG_TYPE_STRING: return str_dup(config_setting_get_string(e));
    case CONFIG_TYPE_GROUP: { /* a stage: its plugin's name */
        const char *plugin = NULL;
        if (config_setting_lookup_string(e, "plugin", &plugin))
            return str_dup(plugin);
        return str_printf("#%d", index);
    }
    case CONFIG_TYPE_LIST:
    case CONFIG_TYPE_ARRAY: return str_printf("#%d", index);
    default: return setting_text(e);
    }
}

static int axis_add_value(sweep_axis *a, const config_setting_t *e, const char *dir)
{
    char **v = realloc(a->values, (size_t)(a->n + 1) * sizeof *v);
    if (v)
        a->values = v;
    char **l = v ? realloc(a->labels, (size_t)(a->n + 1) * sizeof *l) : NULL;
    if (!l)
        return err_set("out of memory");
    a->labels = l;
    int pipe = strcmp(a->path, "pipeline") == 0;
    if (pipe && config_setting_type(e) != CONFIG_TYPE_STRING)
        return err_set("sweep axis pipeline: values are pipeline files (strings)");
    const char *s = pipe ? config_setting_get_string(e) : NULL;
    char *value = pipe ? (s[0] == '/' || !dir ? str_dup(s) : str_printf("%s/%s", dir, s)) : setting_text(e);
    char *label = setting_label(e, a->n);
    if (pipe && label) { /* the file's base name without .cfg */
        char *slash = strrchr(label, '/'), *base = str_dup(slash ? slash + 1 : label);
        free(label);
        label = base;
        if (label && str_ends_with(label, ".cfg"))
            label[strlen(label) - 4] = 0;
    }
    for (int i = 0; label && i < a->n; i++)
        if (strcmp(a->labels[i], label) == 0) { /* two stages of one plugin: tell them apart */
            char *numbered = str_printf("%s#%d", label, a->n + 1);
            free(label);
            label = numbered;
            break;
        }
    if (!value || !label) {
        free(value);
        free(label);
        return err_set("out of memory");
    }
    a->values[a->n] = value;
    a->labels[a->n++] = label;
    return 0;
}

static sweep_axis *sweep_new_axis(sweep *s, const char *path)
{
    for (int i = 0; i < s->naxes; i++)
        if (strcmp(s->axes[i].path, path) == 0) {
            err_set("sweep axis %s is given twice", path);
            return NULL;
        }
    sweep_axis *a = realloc(s->axes, (size_t)(s->naxes + 1) * sizeof *a);
    if (!a) {
        err_set("out of memory");
        return NULL;
    }
    s->axes = a;
    a = &s->axes[s->naxes];
    memset(a, 0, sizeof *a);
    if (!(a->path = str_dup(path))) {
        err_set("out of memory");
        return NULL;
    }
    s->naxes++;
    return a;
}

/* A list of strings from the sweep section (absent: nothing added). */
static int take_strings(const config_setting_t *list, const char *key, const char *what, char ***out, int *n)
{
    char where[512];
    for (int i = 0; list && i < config_setting_length(list); i++) {
        const char *a = config_setting_get_string_elem(list, i);
        char **g = a ? realloc(*out, (size_t)(*n + 1) * sizeof *g) : NULL;
        if (!a || !g)
            return err_set("%s: %s: expected a list of %s", setting_where(list, where, sizeof where), key, what);
        *out = g;
        if (!((*out)[*n] = str_dup(a)))
            return -1;
        (*n)++;
    }
    return 0;
}

/* Parse "[v1, v2]" (or one value) into the axis; bare words are strings. */
static int axis_parse_values(sweep_axis *a, const char *text)
{
    config_t t;
    config_init(&t);
    int rc = -1;
    char *src = str_printf("v = %s;", text);
    if (src && config_read_string(&t, src) != CONFIG_TRUE) {
        /* [mean, cls]: read each bare item as a string */
        size_t n = strlen(text);
        free(src);
        src = NULL;
        config_destroy(&t); /* a failed read may leave a partial tree */
        config_init(&t);
        if (n >= 2 && text[0] == '[' && text[n - 1] == ']') {
            char *inner = strndup(text + 1, n - 2), *save = NULL;
            config_setting_t *list = inner ? config_setting_add(config_root_setting(&t), "v", CONFIG_TYPE_LIST) : NULL;
            for (char *item = inner ? strtok_r(inner, ",", &save) : NULL; list && item;
                 item = strtok_r(NULL, ",", &save)) {
                while (*item == ' ')
                    item++;
                size_t len = strlen(item);
                while (len && item[len - 1] == ' ')
                    item[--len] = 0;
                config_setting_t *e = config_setting_add(list, NULL, CONFIG_TYPE_STRING);
                if (!e)
                    break;
                config_setting_set_string(e, item);
            }
            free(inner);
        }
    }
    free(src);
    const config_setting_t *v = config_lookup(&t, "v");
    if (!v) {
        err_set("--sweep %s=%s: expected a list of values, e.g. [\"mean\", \"cls\"] or [1, 2, 3]", a->path, text);
        goto done;
    }
    int list = config_setting_is_aggregate(v) && config_setting_type(v) != CONFIG_TYPE_GROUP;
    int n = list ? config_setting_length(v) : 1;
    for (int i = 0; i < n; i++)
        if (axis_add_value(a, list ? config_setting_get_elem(v, (unsigned)i) : v, NULL) != 0)
            goto done;
    rc = n > 0 ? 0 : err_set("--sweep %s: no values", a->path);
done:
    config_destroy(&t);
    return rc;
}

int sweep_add_arg(sweep *s, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        return err_set("--sweep %s: expected PATH=[v1,v2,...]", arg);
    char *path = strndup(arg, (size_t)(eq - arg));
    sweep_axis *a = path ? sweep_new_axis(s, path) : NULL;
    free(path);
    return a ? axis_parse_values(a, eq + 1) : -1;
}

int sweep_take_section(sweep *s, config_t *cfg, const char *file)
{
    config_setting_t *sec = config_lookup(cfg, "sweep");
    char where[512];
    int rc = -1;
    if (!sec)
        return 0;
    char *copy = str_dup(file), *dir = copy ? dirname(copy) : NULL;
    const char *name = NULL;
    if (!config_setting_is_group(sec)) {
        err_set("%s: sweep: expected a group { axes = ( ... ); }", setting_where(sec, where, sizeof where));
        goto done;
    }
    if (config_setting_lookup_string(sec, "name", &name) && !(s->name = str_dup(name)))
        goto done;
    config_setting_t *axes = config_setting_get_member(sec, "axes"), *sets = config_setting_get_member(sec, "set");
    if (take_strings(sets, "sweep.set", "\"PATH=VALUE\" strings", &s->sets, &s->nsets) != 0)
        goto done;
    if (take_strings(config_setting_get_member(sec, "columns"), "sweep.columns", "metric names", &s->columns,
                     &s->ncolumns) != 0)
        goto done;
    for (int i = 0; i < config_setting_length(sec); i++) {
        const char *key = config_setting_name(config_setting_get_elem(sec, (unsigned)i));
        if (strcmp(key, "axes") != 0 && strcmp(key, "name") != 0 && strcmp(key, "set") != 0 &&
            strcmp(key, "columns") != 0) {
            err_set("%s: sweep.%s: unknown key (known here: name, set, axes, columns)",
                    setting_where(config_setting_get_elem(sec, (unsigned)i), where, sizeof where), key);
            goto done;
        }
    }
    if (!axes || !config_setting_is_list(axes)) {
        err_set("%s: sweep.axes: expected a list of groups ( { set = \"PATH\"; values = [...]; }, ... )",
                setting_where(axes ? axes : sec, where, sizeof where));
        goto done;
    }
    for (int i = 0; i < config_setting_length(axes); i++) {
        config_setting_t *ax = config_setting_get_elem(axes, (unsigned)i);
        const char *path = NULL;
        config_setting_t *values = config_setting_get_member(ax, "values");
        if (!config_setting_lookup_string(ax, "set", &path) || !values || !config_setting_is_aggregate(values) ||
            config_setting_length(values) < 1) {
            err_set("%s: sweep.axes.[%d]: expected { set = \"PATH\"; values = [v1, v2, ...]; }",
                    setting_where(ax, where, sizeof where), i);
            goto done;
        }
        sweep_axis *a = sweep_new_axis(s, path);
        if (!a) {
            err_set("%s: %s", setting_where(ax, where, sizeof where), err_get());
            goto done;
        }
        for (int j = 0; j < config_setting_length(values); j++)
            if (axis_add_value(a, config_setting_get_elem(values, (unsigned)j), dir) != 0) {
                err_set("%s: %s", setting_where(ax, where, sizeof where), err_get());
                goto done;
            }
    }
    rc = 0;
done:
    free(copy);
    config_setting_remove(config_root_setting(cfg), "sweep");
    return rc;
}

void sweep_free(sweep *s)
{
    for (int i = 0; i < s->naxes; i++) {
        for (int j = 0; j < s->axes[i].n; j++) {
            free(s->axes[i].values[j]);
            free(s->axes[i].labels[j]);
        }
        free(s->axes[i].values);
        free(s->axes[i].labels);
        free(s->axes[i].path);
    }
    for (int i = 0; i < s->nsets; i++)
        free(s->sets[i]);
    free(s->sets);
    for (int i = 0; i < s->ncolumns; i++)
        free(s->columns[i]);
    free(s->columns);
    free(s->axes);
    free(s->name);
    memset(s, 0, sizeof *s);
}

/* ---- points ----------------------------------------------------------------- */

/* Point p's value index on each axis (the first axis varies slowest). */
static void point_index(const sweep *s, long p, int *idx)
{
    for (int i = s->naxes - 1; i >= 0; i--) {
        idx[i] = (int)(p % s->axes[i].n);
        p /= s->axes[i].n;
    }
}

static void sanitize(sbuf *b, const char *text, int max)
{
    for (int i = 0; text[i] && i < max; i++) {
        char c = text[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                 c == '-' || c == '_';
        sb_append(b, ok ? &c : "_", 1);
    }
}

/* The point's folder name: "path=label,path=label". */
static char *point_name(const sweep *s, const int *idx)
{
    sbuf b = {0};
    for (int i = 0; i < s->naxes; i++) {
        sb_append(&b, i ? "," : "", i ? 1 : 0);
        sanitize(&b, s->axes[i].path, 60);
        sb_append(&b, "=", 1);
        sanitize(&b, s->axes[i].labels[idx[i]], 60);
    }
    if (b.failed || !b.s) {
        sb_free(&b);
        return NULL;
    }
    return b.s;
}

static int point_finished(const char *pdir)
{
    char *path = str_printf("%s/run.json", pdir);
    json_t *j = path ? json_load_file(path, 0, NULL) : NULL;
    const char *st = j ? json_string_value(json_object_get(j, "status")) : NULL;
    int done = st && strcmp(st, "ok") == 0;
    json_decref(j);
    free(path);
    return done;
}

/* point.json: the point's index and axis values, for the collector. */
static int point_write_json(const sweep *s, const int *idx, long p, const char *pdir)
{
    json_t *root = json_object(), *axes = json_array();
    for (int i = 0; i < s->naxes; i++)
        json_array_append_new(axes, json_pack("{s:s, s:s, s:s}", "set", s->axes[i].path, "label",
                                              s->axes[i].labels[idx[i]], "value", s->axes[i].values[idx[i]]));
    json_object_set_new(root, "index", json_integer(p));
    json_object_set_new(root, "axes", axes);
    char *path = str_printf("%s/point.json", pdir);
    int rc = json_write_atomic(path, root, JSON_INDENT(2));
    free(path);
    return rc;
}

static void argv_push(char ***argv, int *n, char *arg)
{
    char **a = realloc(*argv, (size_t)(*n + 2) * sizeof *a);
    if (!a) {
        free(arg);
        return;
    }
    *argv = a;
    a[(*n)++] = arg;
    a[*n] = NULL;
}

/* The child's command line: runner FILE --sweep-point --out DIR ... */
static char **point_argv(const sweep *s, const sweep_opts *o, const int *idx, const char *pdir, int threads)
{
    char self[4096];
    int n = proc_self_exe(self, sizeof self) == 0;
    char **argv = NULL;
    int argc = 0, has_seed = 0;
    const char *file = o->file;
    for (int i = 0; i < s->naxes; i++)
        if (strcmp(s->axes[i].path, "pipeline") == 0)
            file = s->axes[i].values[idx[i]];
    argv_push(&argv, &argc, str_dup(n ? self : "runner"));
    argv_push(&argv, &argc, str_dup(file));
    argv_push(&argv, &argc, str_dup("--sweep-point"));
    argv_push(&argv, &argc, str_printf("--out=%s", pdir));
    argv_push(&argv, &argc, str_printf("--threads=%d", threads));
    argv_push(&argv, &argc, str_dup("--quiet"));
    for (int i = 0; i < s->nsets; i++)
        argv_push(&argv, &argc, str_printf("--set=%s", s->sets[i]));
    for (int i = 0; i < o->nsets; i++)
        argv_push(&argv, &argc, str_printf("--set=%s", o->sets[i]));
    for (int i = 0; i < s->naxes; i++) {
        has_seed |= strcmp(s->axes[i].path, "seed") == 0;
        if (strcmp(s->axes[i].path, "pipeline") != 0)
            argv_push(&argv, &argc, str_printf("--set=%s=%s", s->axes[i].path, s->axes[i].values[idx[i]]));
    }
    if (o->seed >= 0 && !has_seed)
        argv_push(&argv, &argc, str_printf("--seed=%lld", o->seed));
    for (int i = 0; i < argc; i++)
        if (!argv[i]) { /* out of memory somewhere */
            for (int j = 0; j < argc; j++)
                free(argv[j]);
            free(argv);
            return NULL;
        }
    return argv;
}

static void argv_free(char **argv)
{
    for (int i = 0; argv && argv[i]; i++)
        free(argv[i]);
    free(argv);
}

/* ---- running ---------------------------------------------------------------- */

typedef struct slot {
    pid_t pid;
    long point;
    double t0;
    char *name;
} slot;

/* sweep.json: what --collect needs of the sweep file (the summary's
 * columns), so that the tables come out the same when collected again. */
static int sweep_write_json(const sweep *s, const char *dir)
{
    json_t *root = json_object(), *cols = json_array();
    for (int i = 0; i < s->ncolumns; i++)
        json_array_append_new(cols, json_string(s->columns[i]));
    json_object_set_new(root, "columns", cols);
    char *path = str_printf("%s/sweep.json", dir);
    int rc = json_write_atomic(path, root, JSON_INDENT(2));
    free(path);
    return rc;
}

/* Start point p in slot sl unless it is finished: 1 started, 0 skipped. */
static int point_start(const sweep *s, const sweep_opts *o, const char *dir, long p, int threads, slot *sl)
{
    int *idx = calloc((size_t)s->naxes, sizeof *idx);
    char *name = NULL, *pdir = NULL, *log = NULL, **argv = NULL;
    int rc = -1;
    if (!idx) {
        err_set("out of memory");
        goto done;
    }
    point_index(s, p, idx);
    name = point_name(s, idx);
    pdir = name ? str_printf("%s/%s", dir, name) : NULL;
    log = pdir ? str_printf("%s/log.txt", pdir) : NULL;
    if (!log) {
        err_set("out of memory");
        goto done;
    }
    if (point_finished(pdir)) {
        rc = 0;
        goto done;
    }
    if (dir_make(pdir) != 0 || point_write_json(s, idx, p, pdir) != 0)
        goto done;
    unlink(log);
    if (!(argv = point_argv(s, o, idx, pdir, threads))) {
        err_set("out of memory");
        goto done;
    }
    if (proc_start((const char *const *)argv, log, &sl->pid) != 0)
        goto done;
    sl->point = p;
    sl->t0 = time_now();
    sl->name = name;
    name = NULL;
    rc = 1;
done:
    argv_free(argv);
    free(idx);
    free(name);
    free(pdir);
    free(log);
    return rc;
}

static long sweep_points(const sweep *s)
{
    long n = 1;
    for (int i = 0; i < s->naxes; i++)
        n *= s->axes[i].n;
    return n;
}

void sweep_list(const sweep *s)
{
    long total = sweep_points(s);
    int *idx = calloc((size_t)s->naxes, sizeof *idx);
    for (long p = 0; idx && p < total; p++) {
        point_index(s, p, idx);
        char *name = point_name(s, idx);
        printf("point %ld/%ld: %s\n", p + 1, total, name ? name : "?");
        free(name);
    }
    free(idx);
}

int sweep_run(const sweep *s, const sweep_opts *o)
{
    long total = sweep_points(s), next = 0;
    int jobs = o->jobs < 1 ? 1 : o->jobs, running = 0, failed = 0, skipped = 0, ran = 0;
    int threads = o->threads / jobs > 0 ? o->threads / jobs : 1;
    char *dir = o->out ? str_dup(o->out) : str_printf("results/%s/sweep", s->name ? s->name : o->name);
    slot *slots = calloc((size_t)jobs, sizeof *slots);
    if (!dir || !slots || dir_make(dir) != 0) {
        fprintf(stderr, "runner: sweep folder %s: %s\n", dir ? dir : "?", dir ? err_get() : "out of memory");
        free(dir);
        free(slots);
        return 1;
    }
    /* each point sets its own thread environment (threads.c) from its --threads */
    unsetenv("RUNNER_ENV_SET");
    printf("sweep: %ld point%s", total, total > 1 ? "s" : "");
    for (int i = 0; i < s->naxes; i++)
        printf("%s%s (%d)", i ? " x " : " = ", s->axes[i].path, s->axes[i].n);
    printf(" in %s; %d job%s of %d thread%s\n", dir, jobs, jobs > 1 ? "s" : "", threads, threads > 1 ? "s" : "");
    fflush(stdout);
    while (next < total || running > 0) {
        if (next < total && running < jobs) {
            int free_slot = 0;
            while (slots[free_slot].pid)
                free_slot++;
            int st = point_start(s, o, dir, next, threads, &slots[free_slot]);
            if (st < 0) {
                fprintf(stderr, "runner: sweep point %ld: %s\n", next + 1, err_get());
                failed++;
            } else if (st == 0) {
                skipped++;
            } else {
                running++;
                printf("[%ld/%ld] started %s\n", next + 1, total, slots[free_slot].name);
                fflush(stdout);
            }
            next++;
            continue;
        }
        pid_t pid;
        int status;
        if (proc_wait_any(&pid, &status) != 0)
            break;
        for (int j = 0; j < jobs; j++) {
            if (slots[j].pid != pid)
                continue;
            ran++;
            if (status != 0)
                failed++;
            printf("[%ld/%ld] %s %s in %.1f s%s%s%s\n", slots[j].point + 1, total, slots[j].name,
                   status == 0 ? "finished" : "FAILED", time_now() - slots[j].t0, status ? ": see " : "",
                   status ? dir : "", status ? "/<point>/log.txt" : "");
            fflush(stdout);
            free(slots[j].name);
            memset(&slots[j], 0, sizeof slots[j]);
            running--;
        }
    }
    printf("sweep: %d run, %d already finished (skipped), %d failed\n", ran, skipped, failed);
    if (sweep_write_json(s, dir) != 0)
        fprintf(stderr, "runner: sweep: %s\n", err_get());
    int rc = sweep_collect(dir, o->quiet) != 0 || failed ? 1 : 0;
    free(dir);
    free(slots);
    return rc;
}
