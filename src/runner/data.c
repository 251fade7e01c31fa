/* data.c — the host side of datasets. The section's plugin reads each
 * source into rows (text, the line the row starts on, raw label strings
 * interned; see runner/kit/rows.h). Label maps then fix the ids (from
 * `labels`, the plugin's fixed classes, or the training source), unknown
 * labels become bad rows (labels.c), and a deterministic shuffle (GSL's MT19937,
 * split_seed) picks the held-out share and the `limit` subsample.
 * The rules are written up in docs/data.md. */
#include "data.h"

#include <glob.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "config.h"
#include "labels.h"
#include "runner/kit/rows.h"
#include "runner/kit/util.h"

/* ---- what the dataset section asks for ------------------------------------ */

typedef struct spec {
    pipeline *pl;
    const char *slot;
    config_setting_t *ds;
    stage *st;
    const runner_dataset_ops *ops;
    const config_setting_t *labels, *files, *sources;
    char *train, *dev, *test; /* resolved sources; dev NULL: split train; test NULL: none */
    double dev_ratio, test_ratio; /* shares carved from the training source when dev/test has none */
    unsigned long seed;
    long long limit, dev_limit;
    int skip;
} spec;

static int cfg_fail(const config_setting_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int cfg_fail(const config_setting_t *s, const char *fmt, ...)
{
    char where[512], path[512], msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return err_set("%s: %s: %s", setting_where(s, where, sizeof where), setting_path(s, path, sizeof path), msg);
}

/* 0 absent, 1 found; -1 with a message when it has the wrong type. */
static int get_str(const config_setting_t *ds, const char *key, const char **out)
{
    const config_setting_t *s = config_setting_get_member(ds, key);
    *out = NULL;
    if (!s)
        return 0;
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return cfg_fail(s, "expected a string");
    *out = config_setting_get_string(s);
    return 1;
}

static int get_int(const config_setting_t *ds, const char *key, long long def, long long *out)
{
    const config_setting_t *s = config_setting_get_member(ds, key);
    *out = def;
    if (!s)
        return 0;
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
        return cfg_fail(s, "expected an integer");
    *out = config_setting_get_int64(s);
    return 1;
}

static int get_num(const config_setting_t *ds, const char *key, double def, double *out)
{
    const config_setting_t *s = config_setting_get_member(ds, key);
    *out = def;
    if (!s)
        return 0;
    int t = config_setting_type(s);
    if (t == CONFIG_TYPE_FLOAT)
        *out = config_setting_get_float(s);
    else if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64)
        *out = (double)config_setting_get_int64(s);
    else
        return cfg_fail(s, "expected a number");
    return 1;
}

static int get_list(const config_setting_t *ds, const char *key, int of_groups, const config_setting_t **out)
{
    const config_setting_t *s = config_setting_get_member(ds, key);
    *out = NULL;
    if (!s)
        return 0;
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST)
        return cfg_fail(s, "expected a list");
    for (int i = 0; i < config_setting_length(s); i++) {
        int et = config_setting_type(config_setting_get_elem(s, (unsigned)i));
        if (et != (of_groups ? CONFIG_TYPE_GROUP : CONFIG_TYPE_STRING))
            return cfg_fail(s, "expected a list of %s", of_groups ? "groups" : "strings");
    }
    *out = s;
    return 1;
}

int dataset_format_alias(config_setting_t *ds)
{
    config_setting_t *f = ds && config_setting_type(ds) == CONFIG_TYPE_GROUP ? config_setting_get_member(ds, "format")
                                                                             : NULL;
    if (!f || config_setting_get_member(ds, "plugin") || config_setting_type(f) != CONFIG_TYPE_STRING)
        return 0;
    char *name = str_dup(config_setting_get_string(f));
    config_setting_t *p = name ? config_setting_add(ds, "plugin", CONFIG_TYPE_STRING) : NULL;
    int ok = p && config_setting_set_string(p, name);
    if (ok) {
        config_setting_set_hook(p, config_setting_get_hook(f)); /* messages keep the line of `format` */
        config_setting_remove(ds, "format");
    }
    free(name);
    return ok;
}

static int is_folder(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void spec_free(spec *S)
{
    free(S->train);
    free(S->dev);
    free(S->test);
    memset(S, 0, sizeof *S);
}

/* The section's plugin instance: made once per section, then reused. */
static int spec_stage(spec *S)
{
    for (int i = 0; i < S->pl->nstages && !S->st; i++)
        if (S->pl->stages[i]->cfg.group == S->ds && S->pl->stages[i]->desc->kind == RUNNER_KIND_DATASET)
            S->st = S->pl->stages[i];
    if (!S->st && !(S->st = pipeline_stage(S->pl, S->slot, NULL, RUNNER_KIND_DATASET, S->ds)))
        return -1;
    S->ops = S->st->desc->ops;
    if (!S->ops || !S->ops->read)
        return err_set("%s: dataset plugin '%s' has no read()", S->slot, S->st->desc->name);
    return 0;
}

/* A `path` folder holding the plugin's split folders (train/, valid/, ...). */
static int spec_folders(spec *S, const char *path)
{
    const char *const *f = S->ops->folders;
    char *sub[3] = {0};
    for (int k = 0; k < 3 && f[k]; k++) {
        char *p = str_printf("%s/%s", path, f[k]);
        if (!p)
            return err_set("out of memory");
        if (k == 0 || is_folder(p))
            sub[k] = p;
        else
            free(p);
    }
    S->train = sub[0];
    S->dev = sub[1];
    S->test = sub[2];
    return 0;
}

static int dup_to(char **dst, const char *src)
{
    if (src && !(*dst = str_dup(src)))
        return err_set("out of memory");
    return 0;
}

/* Where the rows come from: `path` (one source to split, or a folder of
 * split folders), or `train` with `dev`; `test` with either; `files` for
 * unlabeled text. */
static int spec_sources(spec *S, const char *path, const char *train, const char *dev, const char *test)
{
    config_setting_t *ds = S->ds;
    int text = S->ops->flags & RUNNER_DATASET_TEXT;
    if (path && train)
        return cfg_fail(ds, "set `path` (one source to split) or `train`, not both");
    if (!path && !train && !(text && S->files))
        return cfg_fail(ds, text ? "no `files` (text files or globs, one example per line), `path` or `train`"
                                 : "no `path` or `train`: where are the examples?");
    if (S->files && (path || train))
        return cfg_fail(ds, "set `files` or `%s`, not both", path ? "path" : "train");
    if (path && dev && !text)
        return cfg_fail(ds, "`dev` goes with `train`; `path` is split by dev_ratio");
    if (path && S->ops->folders && is_folder(path)) {
        char *first = str_printf("%s/%s", path, S->ops->folders[0]);
        int layout = first && is_folder(first);
        free(first);
        if (layout && spec_folders(S, path) != 0)
            return -1;
    }
    if (!S->train && dup_to(&S->train, path ? path : train) != 0)
        return -1;
    if (!S->dev && dup_to(&S->dev, dev) != 0)
        return -1;
    if (test) { /* an explicit test source wins over a test/ folder */
        free(S->test);
        S->test = NULL;
    }
    return dup_to(&S->test, test);
}

/* The section's checks beyond types and limits (the validator's). */
static int spec_check(spec *S, const char *on_error)
{
    int text = S->ops->flags & RUNNER_DATASET_TEXT;
    if (!text && (S->files || S->sources))
        return cfg_fail(config_setting_get_member(S->ds, S->files ? "files" : "train_text_from"),
                        "only unlabeled-text datasets (plugin lines) read a list of files and other datasets' text");
    if (text && S->labels)
        return cfg_fail(config_setting_get_member(S->ds, "labels"), "unlabeled text has no labels");
    if (S->labels && config_setting_length(S->labels) == 0)
        return cfg_fail(S->labels, "is empty");
    if (S->files && config_setting_length(S->files) == 0)
        return cfg_fail(S->files, "is empty");
    if (on_error && strcmp(on_error, "stop") != 0 && strcmp(on_error, "skip") != 0)
        return cfg_fail(config_setting_get_member(S->ds, "on_error"), "is '%s', expected \"stop\" or \"skip\"",
                        on_error);
    S->skip = on_error && strcmp(on_error, "skip") == 0;
    if (!(S->dev_ratio >= 0 && S->dev_ratio < 1))
        return cfg_fail(config_setting_get_member(S->ds, "dev_ratio"), "is %g, expected 0 <= dev_ratio < 1",
                        S->dev_ratio);
    if (!(S->test_ratio >= 0 && S->test_ratio < 1 && S->dev_ratio + S->test_ratio < 1))
        return cfg_fail(config_setting_get_member(S->ds, "test_ratio"),
                        "is %g, expected 0 <= test_ratio and dev_ratio + test_ratio < 1", S->test_ratio);
    if (text && S->test_ratio > 0)
        return cfg_fail(config_setting_get_member(S->ds, "test_ratio"),
                        "unlabeled text has no test split (set `test` to a file instead)");
    if (S->limit < 0 || S->limit > INT_MAX || S->dev_limit < 0 || S->dev_limit > INT_MAX)
        return cfg_fail(config_setting_get_member(S->ds, S->limit < 0 || S->limit > INT_MAX ? "limit" : "dev_limit"),
                        "expected 0 (all) or a positive count");
    return 0;
}

static int spec_read(pipeline *pl, const char *slot, config_setting_t *ds, spec *S)
{
    const char *on_error, *path, *train, *dev, *test;
    long long seed;
    memset(S, 0, sizeof *S);
    S->pl = pl;
    S->slot = slot;
    S->ds = ds;
    if (!ds || config_setting_type(ds) != CONFIG_TYPE_GROUP)
        return err_set("%s: expected a dataset section { plugin = \"tsv\"; ... }", slot);
    dataset_format_alias(ds);
    if (get_str(ds, "on_error", &on_error) < 0 || get_str(ds, "path", &path) < 0 ||
        get_str(ds, "train", &train) < 0 || get_str(ds, "dev", &dev) < 0 || get_str(ds, "test", &test) < 0 ||
        get_list(ds, "labels", 0, &S->labels) < 0 || get_list(ds, "files", 0, &S->files) < 0 ||
        get_list(ds, "train_text_from", 1, &S->sources) < 0 || get_num(ds, "dev_ratio", 0.1, &S->dev_ratio) < 0 ||
        get_num(ds, "test_ratio", 0, &S->test_ratio) < 0 || get_int(ds, "split_seed", 1234, &seed) < 0 || get_int(ds, "limit", 0, &S->limit) < 0 ||
        get_int(ds, "dev_limit", 0, &S->dev_limit) < 0)
        return -1;
    if (seed < 0)
        return cfg_fail(config_setting_get_member(ds, "split_seed"), "expected a seed >= 0");
    S->seed = (unsigned long)seed;
    if (spec_stage(S) != 0 || spec_check(S, on_error) != 0)
        return -1;
    return spec_sources(S, path, train, dev, test);
}

/* One source's rows through the plugin. */
static int read_source(const spec *S, const char *src, runner_rows *R)
{
    if (rows_files(R, src, src) != 0)
        return -1;
    err_clear();
    if (S->ops->read(S->st->self, src, R) != 0) {
        if (!err_get()[0] || strcmp(err_get(), "unknown error") == 0)
            err_set("%s/%s: reading %s failed without a message", S->slot, S->st->desc->name, src);
        return -1;
    }
    return 0;
}

/* ---- splits -------------------------------------------------------------------- */

static int by_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Which of m good rows this split keeps, in file order. When R is the
 * training source, the rows are shuffled with the seed and split in this
 * order: round(m*dev_ratio) dev rows (unless dev has its own source), then
 * round(m*test_ratio) test rows (unless test has its own source), the rest
 * train. `separate`: R is the split's own source, kept whole. `limit`
 * keeps the first rows of the (shuffled) part. */
static int *split_rows(const spec *S, data_split split, int m, int separate, int *count)
{
    long long limit = split == SPLIT_TRAIN ? S->limit : S->dev_limit;
    int *idx = malloc(((size_t)m + 1) * sizeof *idx);
    if (!idx) {
        err_set("out of memory");
        return NULL;
    }
    for (int i = 0; i < m; i++)
        idx[i] = i;
    int from = 0, n = m;
    if (!separate) {
        int n_dev = S->dev ? 0 : (int)((double)m * S->dev_ratio + 0.5);
        int n_test = S->test ? 0 : (int)((double)m * S->test_ratio + 0.5);
        if (n_dev + n_test > m)
            n_test = m - n_dev;
        if (split == SPLIT_DEV)
            n = n_dev;
        else if (split == SPLIT_TEST)
            from = n_dev, n = n_test;
        else
            from = n_dev + n_test, n = m - n_dev - n_test;
    }
    if (m > 0 && (!separate || (limit > 0 && limit < n))) {
        gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
        if (!rng) {
            free(idx);
            err_set("out of memory");
            return NULL;
        }
        gsl_rng_set(rng, S->seed);
        gsl_ran_shuffle(rng, idx, (size_t)m, sizeof *idx);
        gsl_rng_free(rng);
    }
    if (limit > 0 && limit < n)
        n = (int)limit;
    memmove(idx, idx + from, (size_t)n * sizeof *idx);
    qsort(idx, (size_t)n, sizeof *idx, by_int);
    *count = n;
    return idx;
}

/* ---- the dataset ---------------------------------------------------------------- */

void dataset_free(dataset *d)
{
    if (!d)
        return;
    free(d->text);
    free(d->start);
    free(d->len);
    free(d->label);
    free(d->tag_off);
    free(d->tags);
    free(d->text2);
    free(d->start2);
    free(d->len2);
    free(d->score);
    for (int i = 0; i < d->n_names; i++)
        free(d->names[i]);
    free(d->names);
    for (int i = 0; i < d->n_notes; i++)
        free(d->notes[i]);
    free(d->notes);
    free(d->source);
    memset(d, 0, sizeof *d);
}

int dataset_label_id(const dataset *d, const char *name)
{
    for (int i = 0; i < d->n_names; i++)
        if (strcmp(d->names[i], name) == 0)
            return i;
    return -1;
}

/* The rows' counts and notes move to d. */
static int take_notes(dataset *d, runner_rows *R)
{
    d->skipped += R->bad;
    d->repaired += R->repaired;
    if (R->n_notes) {
        char **m = realloc(d->notes, (size_t)(d->n_notes + R->n_notes) * sizeof *m);
        if (!m)
            return err_set("out of memory");
        d->notes = m;
        for (int i = 0; i < R->n_notes && d->n_notes < DATASET_MAX_NOTES; i++) {
            d->notes[d->n_notes++] = R->notes[i];
            R->notes[i] = NULL;
        }
    }
    for (int i = 0; i < R->n_notes; i++)
        free(R->notes[i]);
    R->n_notes = 0;
    return 0;
}

/* The second sentences and scores of pairs sel[0..n) of R into d. */
static int build_pairs(const runner_rows *R, const int *sel, int n, dataset *d)
{
    size_t bytes = 0, at = 0;
    for (int i = 0; i < n; i++)
        bytes += R->len2[sel[i]] + 1;
    d->text2 = malloc(bytes + 1);
    d->start2 = malloc(((size_t)n + 1) * sizeof *d->start2);
    d->len2 = malloc(((size_t)n + 1) * sizeof *d->len2);
    d->score = malloc(((size_t)n + 1) * sizeof *d->score);
    if (!d->text2 || !d->start2 || !d->len2 || !d->score)
        return err_set("out of memory");
    for (int i = 0; i < n; i++) {
        int r = sel[i];
        memcpy(d->text2 + at, R->text2.p + R->start2[r], R->len2[r] + 1);
        d->start2[i] = at;
        d->len2[i] = R->len2[r];
        d->score[i] = R->score[r];
        at += R->len2[r] + 1;
    }
    d->text2[at] = 0;
    return 0;
}

/* Copy rows sel[0..n) of R into d. */
static int build(const runner_rows *R, const int *sel, int n, int with_label, int with_tags, dataset *d)
{
    size_t bytes = 0, ntags = 0;
    for (int i = 0; i < n; i++) {
        bytes += R->len[sel[i]] + 1;
        ntags += (size_t)(R->tag_off[sel[i] + 1] - R->tag_off[sel[i]]);
    }
    d->n = n;
    d->text = malloc(bytes + 1);
    d->start = malloc(((size_t)n + 1) * sizeof *d->start);
    d->len = malloc(((size_t)n + 1) * sizeof *d->len);
    if (!d->text || !d->start || !d->len)
        return err_set("out of memory");
    if (with_label && !(d->label = malloc(((size_t)n + 1) * sizeof *d->label)))
        return err_set("out of memory");
    if (with_tags && (!(d->tag_off = malloc(((size_t)n + 1) * sizeof *d->tag_off)) ||
                      !(d->tags = malloc((ntags + 1) * sizeof *d->tags))))
        return err_set("out of memory");
    size_t at = 0, t = 0;
    for (int i = 0; i < n; i++) {
        int r = sel[i];
        memcpy(d->text + at, R->text.p + R->start[r], R->len[r] + 1);
        d->start[i] = at;
        d->len[i] = R->len[r];
        at += R->len[r] + 1;
        if (with_label)
            d->label[i] = R->label[r];
        if (with_tags) {
            d->tag_off[i] = (int64_t)t;
            for (int64_t j = R->tag_off[r]; j < R->tag_off[r + 1]; j++)
                d->tags[t++] = R->tags[j];
        }
    }
    if (with_tags)
        d->tag_off[n] = (int64_t)t;
    d->text[at] = 0;
    return (R->what & ROWS_PAIRS) ? build_pairs(R, sel, n, d) : 0;
}

static void names_to(dataset *d, labelmap *M)
{
    d->names = M->names;
    d->n_names = M->n;
    M->names = NULL;
    M->n = 0;
}

/* The label map of one kind: `labels` for the target, else the plugin's
 * fixed classes, else the training source's labels. */
static int make_map(const spec *S, const runner_rows *T, int tags, int is_target, labelmap *M)
{
    if (is_target && S->labels) {
        M->base = T->classes && !tags ? T->class_base : 0;
        return map_from_config(S->labels, M);
    }
    if (T->classes && !tags) {
        M->numeric = 1;
        M->base = T->class_base;
        return map_set(M, (const char *const *)T->classes, T->n_classes);
    }
    return map_from_table(tags ? &T->tagtab : &T->labtab, tags, M);
}

/* The rows of R that survive the label maps, then the split's share. */
static int select_rows(const spec *S, data_split split, runner_rows *R, const labelmap *LM, const labelmap *TM,
                       int separate, int **sel, int *n)
{
    char *keep = malloc((size_t)R->n + 1);
    int *good = malloc(((size_t)R->n + 1) * sizeof *good), m = 0, rc = -1;
    if (!keep || !good) {
        err_set("out of memory");
        goto done;
    }
    if (rows_map(R, LM, TM, keep) != 0)
        goto done;
    for (int i = 0; i < R->n; i++)
        if (keep[i])
            good[m++] = i;
    if (!(*sel = split_rows(S, split, m, separate, n)))
        goto done;
    for (int i = 0; i < *n; i++)
        (*sel)[i] = good[(*sel)[i]];
    rc = 0;
done:
    free(keep);
    free(good);
    return rc;
}

static int load_labeled(const spec *S, data_split split, dataset *out)
{
    runner_rows T, D;
    labelmap LM = {0}, TM = {0};
    int *sel = NULL, rc = -1, n = 0;
    const char *own = split == SPLIT_TEST ? S->test : split == SPLIT_DEV ? S->dev : NULL;
    rows_init(&T, S->skip);
    rows_init(&D, S->skip);
    if (own && read_source(S, own, &D) != 0)
        goto done;
    /* the training source fixes the label names unless `labels` does (for
     * the target; rows with labels and tags need it for the other kind) */
    int need_train = !own || !S->labels || ((D.what & ROWS_LABELS) && (D.what & ROWS_TAGS));
    if (need_train && read_source(S, S->train, &T) != 0)
        goto done;
    runner_rows *R = own ? &D : &T, *K = need_train ? &T : &D;
    int tag_target = (K->what & ROWS_TAG_TARGET) != 0;
    if ((K->what & ROWS_LABELS) && make_map(S, K, 0, !tag_target, &LM) != 0)
        goto done;
    if ((K->what & ROWS_TAGS) && make_map(S, K, 1, tag_target, &TM) != 0)
        goto done;
    if (select_rows(S, split, R, (K->what & ROWS_LABELS) ? &LM : NULL, (K->what & ROWS_TAGS) ? &TM : NULL,
                    own != NULL, &sel, &n) != 0)
        goto done;
    if (build(R, sel, n, (K->what & ROWS_LABELS) && !tag_target, tag_target, out) != 0)
        goto done;
    names_to(out, tag_target ? &TM : &LM);
    if (!(out->source = str_dup(own ? own : S->train))) {
        err_set("out of memory");
        goto done;
    }
    rc = take_notes(out, R);
done:
    rows_free(&T);
    rows_free(&D);
    map_free(&LM);
    map_free(&TM);
    free(sel);
    return rc;
}

/* ---- unlabeled text ---------------------------------------------------------------- */

/* Dev lines are held out as they come: u < dev_ratio goes to dev. */
typedef struct draw {
    gsl_rng *rng;
    double ratio;
    int dev;
} draw;

static int draw_accept(void *ctx)
{
    draw *d = ctx;
    return (gsl_rng_uniform(d->rng) < d->ratio) == d->dev;
}

/* Files matching one pattern (a path or a glob), sorted. 1: a plain path
 * (the reader says why it cannot be opened). */
static int expand(const char *pattern, glob_t *g)
{
    int rc = glob(pattern, 0, NULL, g);
    if (rc == 0)
        return 0;
    globfree(g);
    if (rc == GLOB_NOMATCH && !strpbrk(pattern, "*?["))
        return 1;
    if (rc == GLOB_NOMATCH)
        return err_set("%s: no file matches", pattern);
    return err_set("%s: cannot list the files (glob error %d)", pattern, rc);
}

/* The rows of every file one pattern matches, until the sink is full. */
static int text_from(const spec *S, const char *pattern, runner_rows *R, txt_buf *source)
{
    glob_t g;
    memset(&g, 0, sizeof g);
    int e = expand(pattern, &g), rc = 0;
    if (e < 0)
        return -1;
    size_t nfiles = e ? 1 : g.gl_pathc;
    for (size_t k = 0; k < nfiles && rc == 0 && !rows_full(R); k++)
        rc = read_source(S, e ? pattern : g.gl_pathv[k], R);
    if (!e)
        globfree(&g);
    if (rc == 0 && ((source->n && txt_buf_add(source, ", ", 2) != 0) || txt_buf_add(source, pattern, strlen(pattern))))
        return -1;
    return rc;
}

/* Texts of the training split of another dataset (never its dev rows). */
static int text_of_dataset(const spec *S, int i, runner_rows *R, txt_buf *source)
{
    config_setting_t *src = config_setting_get_elem(S->sources, (unsigned)i);
    char *slot = str_printf("%s.train_text_from.[%d]", S->slot, i);
    dataset sub;
    int rc = slot ? dataset_load(S->pl, slot, src, SPLIT_TRAIN, &sub) : err_set("out of memory");
    free(slot);
    if (rc != 0)
        return -1;
    int (*accept)(void *) = R->accept;
    long long left = R->left;
    R->accept = NULL;
    R->left = -1;
    for (int j = 0; j < sub.n && rc == 0; j++)
        rc = rows_add(R, sub.source, 0, sub.text + sub.start[j], sub.len[j], NULL, 0);
    R->accept = accept;
    R->left = left;
    R->bad += sub.skipped;
    R->repaired += sub.repaired;
    for (int j = 0; j < sub.n_notes; j++)
        rows_note(R, "%s", sub.notes[j]);
    if (rc == 0 && ((source->n && txt_buf_add(source, ", ", 2) != 0) ||
                    txt_buf_add(source, sub.source, strlen(sub.source)) != 0))
        rc = -1;
    dataset_free(&sub);
    return rc;
}

/* The sources of one split of unlabeled text into R. */
static int text_rows(const spec *S, data_split split, runner_rows *R, txt_buf *source)
{
    const char *own = split == SPLIT_TEST ? S->test : split == SPLIT_DEV ? S->dev : NULL;
    if (own)
        return text_from(S, own, R, source);
    if (split == SPLIT_TRAIN || R->accept) {
        int n = S->files ? config_setting_length(S->files) : 1;
        for (int i = 0; i < n; i++)
            if (text_from(S, S->files ? config_setting_get_string_elem(S->files, i) : S->train, R, source) != 0)
                return -1;
    }
    for (int i = 0; split == SPLIT_TRAIN && S->sources && i < config_setting_length(S->sources); i++)
        if (text_of_dataset(S, i, R, source) != 0)
            return -1;
    return 0;
}

static int load_text(const spec *S, data_split split, dataset *out)
{
    runner_rows R;
    txt_buf source = {0};
    draw dr = {NULL, S->dev_ratio, split == SPLIT_DEV};
    int rc = -1;
    long long limit = split == SPLIT_TRAIN ? S->limit : S->dev_limit;
    rows_init(&R, S->skip);
    R.left = limit > 0 ? limit : -1;
    if (split != SPLIT_TEST && !(split == SPLIT_DEV && S->dev) && S->dev_ratio > 0) {
        if (!(dr.rng = gsl_rng_alloc(gsl_rng_mt19937))) {
            err_set("out of memory");
            goto done;
        }
        gsl_rng_set(dr.rng, S->seed);
        R.accept = draw_accept;
        R.accept_ctx = &dr;
    }
    if (text_rows(S, split, &R, &source) != 0)
        goto done;
    /* every row is kept: the sink's arrays become the dataset's (no copy
     * of a large corpus) */
    out->n = R.n;
    out->text = R.text.p ? R.text.p : str_dup("");
    out->start = R.start;
    out->len = R.len;
    R.text.p = NULL;
    R.start = R.len = NULL;
    out->source = source.p ? source.p : str_dup("");
    source.p = NULL;
    rc = out->text && out->source ? take_notes(out, &R) : err_set("out of memory");
done:
    gsl_rng_free(dr.rng);
    txt_buf_free(&source);
    rows_free(&R);
    return rc;
}

/* ---- entry --------------------------------------------------------------------- */

int dataset_load_source(pipeline *pl, const char *slot, config_setting_t *ds, const char *source, dataset *out)
{
    spec S;
    const char *on_error = NULL;
    memset(out, 0, sizeof *out);
    memset(&S, 0, sizeof S);
    S.pl = pl;
    S.slot = slot;
    S.ds = ds;
    dataset_format_alias(ds);
    int rc = get_str(ds, "on_error", &on_error) < 0 || get_list(ds, "labels", 0, &S.labels) < 0 ||
                     spec_stage(&S) != 0 || spec_check(&S, on_error) != 0 || dup_to(&S.train, source) != 0
                 ? -1
                 : 0;
    if (rc == 0) /* one source, dev_ratio 0: every row, in file order */
        rc = (S.ops->flags & RUNNER_DATASET_TEXT) ? load_text(&S, SPLIT_TRAIN, out) : load_labeled(&S, SPLIT_TRAIN, out);
    spec_free(&S);
    if (rc != 0)
        dataset_free(out);
    return rc;
}

int dataset_load(pipeline *pl, const char *slot, config_setting_t *ds, data_split split, dataset *out)
{
    spec S;
    memset(out, 0, sizeof *out);
    int rc = spec_read(pl, slot, ds, &S);
    if (rc == 0 && split == SPLIT_TEST && !S.test && !(S.test_ratio > 0))
        rc = 1;
    else if (rc == 0)
        rc = (S.ops->flags & RUNNER_DATASET_TEXT) ? load_text(&S, split, out) : load_labeled(&S, split, out);
    spec_free(&S);
    if (rc != 0)
        dataset_free(out);
    return rc;
}
