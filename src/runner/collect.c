/* collect.c — a sweep folder's tables (see sweep.h): the points' best dev
 * values and test values (metrics.json), wall time (run.json) and trainable parameters,
 * grouped by every axis except `seed`, as mean ± sample standard
 * deviation over the seeds; the best group of each metric marked (losses
 * lowest, scores highest). */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot.h"
#include "sbuf.h"
#include "sweep.h"
#include "runner/kit/util.h"

typedef struct point {
    long index;
    json_t *axes, *metrics; /* point.json's axes; metrics.json (or NULL) */
    double seconds;
    int group;
} point;

typedef struct table {
    point *p;
    int np;
    int *first; /* per group: its first point */
    int ng;
    char **metric; /* "task.metric" */
    int nm;
    json_t *columns; /* sweep.json's "columns" (the summary's), or NULL: every metric */
} table;

static int is_seed(json_t *axis) { return strcmp(json_string_value(json_object_get(axis, "set")), "seed") == 0; }

static const char *axis_label(const point *p, size_t i)
{
    return json_string_value(json_object_get(json_array_get(p->axes, i), "label"));
}

static int same_group(const point *a, const point *b)
{
    for (size_t i = 0; i < json_array_size(a->axes); i++)
        if (!is_seed(json_array_get(a->axes, i)) && strcmp(axis_label(a, i), axis_label(b, i)) != 0)
            return 0;
    return 1;
}

static int by_index(const void *a, const void *b)
{
    const point *x = a, *y = b;
    return (x->index > y->index) - (x->index < y->index);
}

static json_t *load(const char *dir, const char *sub, const char *file)
{
    char *path = str_printf("%s/%s/%s", dir, sub, file);
    json_t *j = path ? json_load_file(path, 0, NULL) : NULL;
    free(path);
    return j;
}

static int add_metric(table *t, const char *name)
{
    for (int i = 0; i < t->nm; i++)
        if (strcmp(t->metric[i], name) == 0)
            return 0;
    char **m = realloc(t->metric, (size_t)(t->nm + 1) * sizeof *m);
    if (!m || !(m[t->nm] = str_dup(name)))
        return err_set("out of memory");
    t->metric = m;
    t->nm++;
    return 0;
}

/* The metrics of one task's "best" (prefix "") or "test" (prefix "test.")
 * values, named task.metric or test.task.metric (metrics with a dot in
 * their own name, such as per-class F1s, are left out of the tables). */
static int add_metrics(table *t, const char *task, json_t *values, const char *prefix)
{
    const char *metric;
    json_t *v;
    json_object_foreach(values, metric, v) {
        if (!json_is_number(v) || !strcmp(metric, "examples") || !strcmp(metric, "step"))
            continue; /* the test split's size and the checkpoint's step: not metrics */
        char *name = strchr(metric, '.') ? NULL : str_printf("%s%s.%s", prefix, task, metric);
        int bad = name && add_metric(t, name) != 0;
        free(name);
        if (bad)
            return -1;
    }
    return 0;
}

/* Every point folder's files; the groups; the metrics (tasks' best values
 * without a dot in their name: per-class values stay in metrics.json). */
static int table_read(table *t, const char *dir)
{
    json_t *sj = load(dir, ".", "sweep.json"), *cols = sj ? json_object_get(sj, "columns") : NULL;
    if (json_is_array(cols) && json_array_size(cols) > 0)
        t->columns = json_incref(cols);
    json_decref(sj);
    for (size_t i = 0; t->columns && i < json_array_size(t->columns); i++)
        if (!json_is_string(json_array_get(t->columns, i)))
            return err_set("%s/sweep.json: columns[%zu] is not a metric name", dir, i);
    DIR *d = opendir(dir);
    struct dirent *e;
    if (!d)
        return err_set("%s: cannot open the sweep folder", dir);
    while ((e = readdir(d))) {
        json_t *pj = e->d_name[0] == '.' ? NULL : load(dir, e->d_name, "point.json");
        json_t *rj = pj ? load(dir, e->d_name, "run.json") : NULL;
        const char *status = rj ? json_string_value(json_object_get(rj, "status")) : NULL;
        if (!status || strcmp(status, "ok") != 0) {
            json_decref(pj);
            json_decref(rj);
            continue;
        }
        point *p = realloc(t->p, (size_t)(t->np + 1) * sizeof *p);
        if (!p) {
            closedir(d);
            return err_set("out of memory");
        }
        t->p = p;
        p = &t->p[t->np++];
        p->index = (long)json_integer_value(json_object_get(pj, "index"));
        p->axes = json_incref(json_object_get(pj, "axes"));
        p->metrics = load(dir, e->d_name, "metrics.json");
        p->seconds = json_number_value(json_object_get(rj, "seconds"));
        json_decref(pj);
        json_decref(rj);
    }
    closedir(d);
    qsort(t->p, (size_t)t->np, sizeof *t->p, by_index);
    t->first = calloc((size_t)t->np + 1, sizeof *t->first);
    if (!t->first)
        return err_set("out of memory");
    for (int i = 0; i < t->np; i++) {
        int g = 0;
        while (g < t->ng && !same_group(&t->p[t->first[g]], &t->p[i]))
            g++;
        if (g == t->ng)
            t->first[t->ng++] = i;
        t->p[i].group = g;
        const char *task;
        json_t *tv;
        json_object_foreach(json_object_get(t->p[i].metrics, "tasks"), task, tv)
            if (add_metrics(t, task, json_object_get(tv, "best"), "") != 0)
                return -1;
        json_object_foreach(json_object_get(t->p[i].metrics, "tasks"), task, tv)
            if (add_metrics(t, task, json_object_get(tv, "test"), "test.") != 0)
                return -1;
    }
    return 0;
}

static void table_free(table *t)
{
    for (int i = 0; i < t->np; i++) {
        json_decref(t->p[i].axes);
        json_decref(t->p[i].metrics);
    }
    for (int i = 0; i < t->nm; i++)
        free(t->metric[i]);
    json_decref(t->columns);
    free(t->p);
    free(t->first);
    free(t->metric);
}

/* A point's value of "task.metric" (its best dev value) or
 * "test.task.metric" (its test value), NAN when missing. */
static double value_of(const point *p, const char *name)
{
    const char *dot = strrchr(name, '.'), *which = "best";
    if (strncmp(name, "test.", 5) == 0 && strchr(name + 5, '.')) {
        name += 5;
        which = "test";
    }
    char *task = strndup(name, (size_t)(dot - name));
    json_t *v = json_object_get(json_object_get(json_object_get(json_object_get(p->metrics, "tasks"), task), which),
                                dot + 1);
    free(task);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

typedef struct stat {
    int n;
    double mean, std, wall;
    long long params;
} stat;

static stat group_stat(const table *t, int g, const char *metric)
{
    stat s = {0, 0, 0, 0, -1};
    double sum = 0, sq = 0, wall = 0;
    int nw = 0;
    for (int i = 0; i < t->np; i++) {
        const point *p = &t->p[i];
        if (p->group != g)
            continue;
        wall += p->seconds;
        nw++;
        if (s.params < 0 && json_is_integer(json_object_get(p->metrics, "trainable_parameters")))
            s.params = json_integer_value(json_object_get(p->metrics, "trainable_parameters"));
        double v = metric ? value_of(p, metric) : NAN;
        if (isfinite(v)) {
            sum += v;
            sq += v * v;
            s.n++;
        }
    }
    s.mean = s.n ? sum / s.n : NAN;
    s.std = s.n > 1 ? sqrt(fmax(0, (sq - sum * sum / s.n) / (s.n - 1))) : 0;
    s.wall = nw ? wall / nw : NAN;
    return s;
}

static int minimised(const char *metric) { return str_ends_with(metric, "loss"); }

static int best_group(const table *t, const char *metric)
{
    int best = -1;
    double bv = 0;
    for (int g = 0; g < t->ng; g++) {
        stat s = group_stat(t, g, metric);
        if (!s.n)
            continue;
        if (best < 0 || (minimised(metric) ? s.mean < bv : s.mean > bv)) {
            best = g;
            bv = s.mean;
        }
    }
    return best;
}

static void md_text(sbuf *b, const char *s)
{
    for (; s && *s; s++)
        sb_append(b, *s == '|' ? "\\|" : s, *s == '|' ? 2 : 1);
}

static void csv_text(sbuf *b, const char *s)
{
    sb_append(b, "\"", 1);
    for (; s && *s; s++)
        sb_append(b, *s == '"' ? "\"\"" : s, *s == '"' ? 2 : 1);
    sb_append(b, "\"", 1);
}

/* The non-seed axes' labels of group g, in columns. */
static void md_axes(sbuf *b, const table *t, int g, int header)
{
    const point *p = &t->p[t->first[g]];
    for (size_t i = 0; i < json_array_size(p->axes); i++) {
        json_t *ax = json_array_get(p->axes, i);
        if (is_seed(ax))
            continue;
        sb_append(b, "| ", 2);
        md_text(b, header ? json_string_value(json_object_get(ax, "set")) : axis_label(p, i));
        sb_append(b, " ", 1);
    }
}

static void fmt_params(sbuf *b, long long v)
{
    if (v < 0) {
        sb_printf(b, "–");
        return;
    }
    char digits[32], out[48];
    int n = snprintf(digits, sizeof digits, "%lld", v), o = 0;
    for (int i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = 0;
    sb_printf(b, "%s", out);
}

static int write_text(const char *dir, const char *file, sbuf *b)
{
    char *path = str_printf("%s/%s", dir, file);
    int rc = !path || b->failed ? err_set("out of memory") : file_write_atomic(path, b->s ? b->s : "", b->n);
    free(path);
    sb_free(b);
    return rc;
}

/* summary.md: one row per group, every metric as mean ± std (x100 for
 * scores in [0, 1] is not applied: values as the runs wrote them). */
/* The summary's column m: sweep.columns' name, or the m-th metric. */
static const char *column(const table *t, int m)
{
    return t->columns ? json_string_value(json_array_get(t->columns, (size_t)m)) : t->metric[m];
}

static int write_summary(const table *t, const char *dir)
{
    sbuf b = {0};
    int nc = t->columns ? (int)json_array_size(t->columns) : t->nm;
    sb_printf(&b, "# Sweep %s\n\n%d finished run%s in %d group%s; values: the best dev evaluation of each run, "
                  "mean ± sample standard deviation over the runs of a group (seeds); **bold**: the best group "
                  "(lowest loss, highest score). Per metric: tables/<metric>.md, .csv, .json, .png.\n\n",
              dir, t->np, t->np == 1 ? "" : "s", t->ng, t->ng == 1 ? "" : "s");
    md_axes(&b, t, 0, 1);
    sb_printf(&b, "| runs ");
    for (int m = 0; m < nc; m++)
        sb_printf(&b, "| %s ", column(t, m));
    sb_printf(&b, "| trainable params | wall s |\n");
    for (size_t i = 0; i < json_array_size(t->p[0].axes); i++)
        sb_printf(&b, "%s", is_seed(json_array_get(t->p[0].axes, i)) ? "" : "|---");
    for (int m = 0; m < nc + 3; m++)
        sb_printf(&b, "|---");
    sb_printf(&b, "|\n");
    for (int g = 0; g < t->ng; g++) {
        stat s0 = group_stat(t, g, NULL);
        int runs = 0;
        for (int i = 0; i < t->np; i++)
            runs += t->p[i].group == g;
        md_axes(&b, t, g, 0);
        sb_printf(&b, "| %d ", runs);
        for (int m = 0; m < nc; m++) {
            stat s = group_stat(t, g, column(t, m));
            const char *bold = best_group(t, column(t, m)) == g ? "**" : "";
            if (s.n)
                sb_printf(&b, "| %s%.4f ± %.4f%s ", bold, s.mean, s.std, bold);
            else
                sb_printf(&b, "| – ");
        }
        sb_printf(&b, "| ");
        fmt_params(&b, s0.params);
        sb_printf(&b, " | %.1f |\n", s0.wall);
    }
    return write_text(dir, "summary.md", &b);
}

/* The metric's file name: task.metric with anything unusual as '_'. */
static char *metric_file(const char *metric, const char *ext)
{
    char *f = str_printf("tables/%s.%s", metric, ext);
    for (char *c = f ? f + 7 : NULL; c && *c && c < f + 7 + strlen(metric); c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' ||
              *c == '-' || *c == '_'))
            *c = '_';
    return f;
}

/* Bottom margin of a metric's plot, in character heights: room for its
 * longest x label (a group's non-seed axis labels joined by ", ", cut at 60
 * characters) rotated by 30 degrees. */
static int label_margin(const table *t)
{
    size_t longest = 3; /* "all" */
    for (int g = 0; g < t->ng; g++) {
        const point *p = &t->p[t->first[g]];
        size_t n = 0, k = 0;
        for (size_t i = 0; i < json_array_size(p->axes); i++)
            if (!is_seed(json_array_get(p->axes, i)))
                n += strlen(axis_label(p, i)) + (k++ ? 2 : 0);
        longest = n > longest ? n : longest;
    }
    longest = longest > 63 ? 63 : longest;
    int m = 2 + (int)(longest + 3) / 4;
    return m < 4 ? 4 : m;
}

static int write_metric(const table *t, const char *dir, const char *metric)
{
    sbuf md = {0}, csv = {0}, plot = {0};
    json_t *rows = json_array();
    int best = best_group(t, metric), rc = -1;
    sb_printf(&md, "# %s (%s is better)\n\n", metric, minimised(metric) ? "lower" : "higher");
    md_axes(&md, t, 0, 1);
    sb_printf(&md, "| runs | mean ± std | best | trainable params | wall s |\n");
    for (size_t i = 0; i < json_array_size(t->p[0].axes); i++)
        if (!is_seed(json_array_get(t->p[0].axes, i))) {
            sb_printf(&md, "|---");
            csv_text(&csv, json_string_value(json_object_get(json_array_get(t->p[0].axes, i), "set")));
            sb_printf(&csv, ",");
        }
    sb_printf(&md, "|---|---|---|---|---|\n");
    sb_printf(&csv, "runs,mean,std,best,trainable_parameters,wall_s\n");
    sb_printf(&plot, "set grid ytics\nset title ");
    sb_quote(&plot, metric, 0);
    sb_printf(&plot, "\nset ylabel '%s: mean and std over seeds'\nset xrange [-0.5:%d.5]\n"
                     "set xtics rotate by 30 right\nset bmargin %d\nset lmargin 24\nset xtics (",
              strncmp(metric, "test.", 5) == 0 ? "test value of the selected checkpoint" : "best dev value", t->ng - 1,
              label_margin(t));
    for (int g = 0; g < t->ng; g++) {
        stat s = group_stat(t, g, metric);
        json_t *axes = json_object();
        const point *p = &t->p[t->first[g]];
        sbuf label = {0};
        for (size_t i = 0; i < json_array_size(p->axes); i++)
            if (!is_seed(json_array_get(p->axes, i))) {
                json_object_set_new(axes, json_string_value(json_object_get(json_array_get(p->axes, i), "set")),
                                    json_string(axis_label(p, i)));
                csv_text(&csv, axis_label(p, i));
                sb_printf(&csv, ",");
                sb_printf(&label, "%s%s", label.n ? ", " : "", axis_label(p, i));
            }
        sb_printf(&plot, "%s", g ? ", " : "");
        sb_quote(&plot, label.s ? label.s : "all", 60);
        sb_printf(&plot, " %d", g);
        sb_free(&label);
        md_axes(&md, t, g, 0);
        sb_printf(&md, "| %d | %s%.4f ± %.4f%s | %s | ", s.n, g == best ? "**" : "", s.mean, s.std,
                  g == best ? "**" : "", g == best ? "best" : "");
        fmt_params(&md, s.params);
        sb_printf(&md, " | %.1f |\n", s.wall);
        sb_printf(&csv, "%d,%.6g,%.6g,%d,%lld,%.3f\n", s.n, s.mean, s.std, g == best, s.params, s.wall);
        json_array_append_new(rows, json_pack("{s:o, s:i, s:f, s:f, s:b, s:I, s:f}", "axes", axes, "runs", s.n,
                                              "mean", s.n ? s.mean : 0.0, "std", s.std, "best", g == best,
                                              "trainable_parameters", (json_int_t)s.params, "wall_s", s.wall));
    }
    sb_printf(&plot, ")\n$d << EOD\n");
    for (int g = 0; g < t->ng; g++) {
        stat s = group_stat(t, g, metric);
        if (s.n)
            sb_printf(&plot, "%d %.10g %.10g\n", g, s.mean, s.std);
    }
    stat sb = best >= 0 ? group_stat(t, best, metric) : (stat){0};
    sb_printf(&plot, "EOD\n$best << EOD\n%d %.10g %.10g\nEOD\n", best, sb.mean, sb.std);
    sb_printf(&plot, "set key top right\nplot $d using 1:2:3 with yerrorbars pt 7 ps 1.5 lw 2 lc rgb '#1f77b4' notitle%s\n",
              best >= 0 ? ", $best using 1:2 with points pt 6 ps 3 lw 2 lc rgb '#d62728' title 'best'" : "");
    json_t *root = json_pack("{s:s, s:s, s:o}", "metric", metric, "better", minimised(metric) ? "lower" : "higher",
                             "rows", rows);
    char *text = root ? json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(root);
    char *fmd = metric_file(metric, "md"), *fcsv = metric_file(metric, "csv"), *fjson = metric_file(metric, "json");
    char *fpng = metric_file(metric, "png"), *tables = str_printf("%s/tables", dir);
    sbuf js = {0};
    if (text)
        sb_printf(&js, "%s\n", text);
    int ok;
    if (!text || !fmd || !fcsv || !fjson || !fpng || !tables || write_text(dir, fmd, &md) != 0 ||
        write_text(dir, fcsv, &csv) != 0 || write_text(dir, fjson, &js) != 0 || plot.failed ||
        plot_file(tables, fpng + 7, 900, 600, plot.s, &ok) != 0)
        goto done;
    rc = 0;
done:
    sb_free(&md);
    sb_free(&csv);
    sb_free(&js);
    sb_free(&plot);
    free(text);
    free(fmd);
    free(fcsv);
    free(fjson);
    free(fpng);
    free(tables);
    return rc;
}

int sweep_collect(const char *dir, int quiet)
{
    table t = {0};
    int rc = 1;
    char *tables = str_printf("%s/tables", dir);
    if (table_read(&t, dir) != 0 || !tables || dir_make(tables) != 0) {
        fprintf(stderr, "runner: --collect %s: %s\n", dir, err_get());
        goto done;
    }
    if (t.np == 0) {
        fprintf(stderr, "runner: --collect %s: no finished runs (sub-folders with point.json and an ok run.json)\n",
                dir);
        goto done;
    }
    if (write_summary(&t, dir) != 0)
        goto fail;
    for (int m = 0; m < t.nm; m++)
        if (write_metric(&t, dir, t.metric[m]) != 0)
            goto fail;
    printf("collected %d run%s in %d group%s: %s/summary.md, %d metric tables in %s\n", t.np, t.np == 1 ? "" : "s",
           t.ng, t.ng == 1 ? "" : "s", dir, t.nm, tables);
    if (!quiet) {
        char *path = str_printf("%s/summary.md", dir), *text = NULL;
        size_t len;
        if (path && file_read(path, &text, &len) == 0)
            fputs(text, stdout);
        free(text);
        free(path);
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "runner: --collect %s: %s\n", dir, err_get());
done:
    free(tables);
    table_free(&t);
    return rc;
}
