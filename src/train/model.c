/* model.c — the multi-task model (see model.h). */
#include "model.h"

#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "ddp.h"
#include "shard.h"
#include "world.h"
#include "runner/kit/nn.h"
#include "runner/kit/util.h"

void eval_values_free(eval_values *v)
{
    for (int i = 0; i < v->n; i++)
        free(v->name[i]);
    free(v->name);
    free(v->value);
    memset(v, 0, sizeof *v);
}

int eval_values_add(eval_values *v, const char *name, double value)
{
    if (v->n == v->cap) {
        int cap = v->cap ? 2 * v->cap : 16;
        char **nm = realloc(v->name, (size_t)cap * sizeof *nm);
        if (nm)
            v->name = nm;
        double *vl = nm ? realloc(v->value, (size_t)cap * sizeof *vl) : NULL;
        if (!vl)
            return err_set("out of memory");
        v->value = vl;
        v->cap = cap;
    }
    if (!(v->name[v->n] = str_dup(name)))
        return err_set("out of memory");
    v->value[v->n++] = value;
    return 0;
}

static void eval_emit(void *ctx, const char *name, double value) { eval_values_add(ctx, name, value); }

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    void *q = realloc(*p, need * elem);
    if (!q)
        return err_set("out of memory (%zu bytes)", need * elem);
    *p = q;
    *cap = need;
    return 0;
}

static void task_data_free(task_data *d)
{
    dataset_free(&d->ds);
    encoded_free(&d->enc);
    free(d->piece_label);
    free(d->cache);
    memset(d, 0, sizeof *d);
}

/* Token tasks: each word's tag goes to the first piece of the word; other
 * pieces, [CLS], [SEP] and words cut off by max_len get -1 (ignored). */
static int align_piece_labels(task_data *d, const char *task_name)
{
    const encoded *e = &d->enc;
    d->piece_label = malloc(((size_t)e->off[e->n] + 1) * sizeof *d->piece_label);
    if (!d->piece_label)
        return err_set("out of memory");
    for (int i = 0; i < e->n; i++) {
        int64_t nw = d->ds.tag_off[i + 1] - d->ds.tag_off[i];
        int prev = -1;
        for (int64_t j = e->off[i]; j < e->off[i + 1]; j++) {
            int w = e->word[j];
            int32_t lab = -1;
            if (w >= 0 && w != prev) {
                if (w >= nw)
                    return err_set("task %s, %s example %d: a piece of word %d, but the example has %lld tags",
                                   task_name, d->ds.source, i + 1, w, (long long)nw);
                lab = d->ds.tags[d->ds.tag_off[i] + w];
            }
            if (w >= 0)
                prev = w;
            d->piece_label[j] = lab;
        }
    }
    return 0;
}

static int load_split(model *m, task *t, config_setting_t *ds, data_split split, task_data *d)
{
    char slot[300];
    snprintf(slot, sizeof slot, "tasks.%s.dataset", t->name);
    int rc = dataset_load(m->pl, slot, ds, split, &d->ds);
    if (rc > 0)
        return 1; /* no test source */
    if (rc != 0)
        return err_set("task %s: %s", t->name, err_get());
    if (d->ds.skipped)
        pipeline_log(m->pl, RUNNER_LOG_WARN, "task %s: skipped %d bad rows of %s (first: %s)", t->name,
                     d->ds.skipped, d->ds.source, d->ds.n_notes ? d->ds.notes[0] : "?");
    if (d->ds.repaired)
        pipeline_log(m->pl, RUNNER_LOG_INFO, "task %s: %d rows of %s had invalid UTF-8 replaced",
                     t->name, d->ds.repaired, d->ds.source);
    if (d->ds.n == 0)
        return err_set("task %s: %s has no examples", t->name, d->ds.source);
    const char **text = malloc((size_t)d->ds.n * sizeof *text);
    if (!text)
        return err_set("out of memory");
    for (int i = 0; i < d->ds.n; i++)
        text[i] = d->ds.text + d->ds.start[i];
    rc = encode_texts(m->enc.tok, d->ds.n, text, d->ds.len, &d->enc);
    free(text);
    if (rc != 0)
        return err_set("task %s, %s: %s", t->name, d->ds.source, err_get());
    if (d->ds.tags)
        return align_piece_labels(d, t->name);
    return 0;
}

/* An MLM task's labels are the vocabulary's pieces. */
static int vocab_names(model *m, dataset *d)
{
    const runner_tokenizer_ops *tops = m->enc.tok->desc->ops;
    d->names = calloc((size_t)m->tok.vocab_size + 1, sizeof *d->names);
    if (!d->names)
        return err_set("out of memory");
    for (d->n_names = 0; d->n_names < m->tok.vocab_size; d->n_names++) {
        const char *piece = tops->token(m->enc.tok->self, d->n_names);
        if (!(d->names[d->n_names] = str_dup(piece ? piece : "?")))
            return err_set("out of memory");
    }
    return 0;
}

/* Label names of a task without loading its data: a checkpoint's metadata
 * or the dataset's `labels` setting. */
static int labels_without_data(model *m, task *t, config_setting_t *ds, const char *from)
{
    char key[256];
    snprintf(key, sizeof key, "labels.%s", t->name);
    char *names = from ? checkpoint_meta(from, key) : NULL;
    if (names) {
        int n = 1;
        for (char *c = names; *c; c++)
            n += *c == '\n';
        t->train.ds.names = calloc((size_t)n, sizeof(char *));
        if (!t->train.ds.names) {
            free(names);
            return err_set("out of memory");
        }
        char *save = NULL;
        for (char *s = strtok_r(names, "\n", &save); s; s = strtok_r(NULL, "\n", &save))
            t->train.ds.names[t->train.ds.n_names++] = str_dup(s);
        free(names);
        return 0;
    }
    const config_setting_t *labels = ds ? config_setting_get_member(ds, "labels") : NULL;
    if (labels) {
        int n = config_setting_length(labels);
        t->train.ds.names = calloc((size_t)n + 1, sizeof(char *));
        if (!t->train.ds.names)
            return err_set("out of memory");
        for (int i = 0; i < n; i++)
            t->train.ds.names[t->train.ds.n_names++] = str_dup(config_setting_get_string_elem(labels, i));
        return 0;
    }
    /* last resort: read the training data for its labels */
    char slot[300];
    snprintf(slot, sizeof slot, "tasks.%s.dataset", t->name);
    if (dataset_load(m->pl, slot, ds, SPLIT_TRAIN, &t->train.ds) != 0)
        return err_set("task %s: %s", t->name, err_get());
    return 0;
}

/* A task's stages: its name (unique), head, loss (and weight), metrics. */
static int task_stages(model *m, task *t, config_setting_t *ts, int k)
{
    pipeline *pl = m->pl;
    const char *name = NULL;
    if (!config_setting_lookup_string(ts, "name", &name))
        return err_set("%s: task %d has no name", pl->file, k);
    for (int j = 0; j < k; j++)
        if (strcmp(m->t[j].name, name) == 0)
            return err_set("%s: two tasks are named '%s'", pl->file, name);
    t->name = str_dup(name);
    t->index = k;
    if (!t->name)
        return err_set("out of memory");
    char slot[300], prefix[300];
    snprintf(slot, sizeof slot, "tasks.%s.head", name);
    snprintf(prefix, sizeof prefix, "heads.%s.", name);
    t->head = pipeline_stage(pl, slot, prefix, RUNNER_KIND_HEAD, config_setting_get_member(ts, "head"));
    if (!t->head)
        return -1;
    snprintf(slot, sizeof slot, "tasks.%s.loss", name);
    snprintf(prefix, sizeof prefix, "loss.%s.", name);
    config_setting_t *ls = config_setting_get_member(ts, "loss");
    t->loss = pipeline_stage(pl, slot, prefix, RUNNER_KIND_LOSS, ls);
    if (!t->loss)
        return -1;
    double w = 1.0;
    config_setting_lookup_float(ls, "weight", &w);
    t->weight = w;
    config_setting_t *ms = config_setting_get_member(ts, "metrics");
    t->nmetrics = ms ? config_setting_length(ms) : 0;
    t->metrics = calloc((size_t)t->nmetrics + 1, sizeof *t->metrics);
    if (!t->metrics)
        return err_set("out of memory");
    for (int j = 0; j < t->nmetrics; j++) {
        snprintf(slot, sizeof slot, "tasks.%s.metrics.[%d]", name, j);
        t->metrics[j] = pipeline_stage(pl, slot, "metric.", RUNNER_KIND_METRIC, config_setting_get_elem(ms, (unsigned)j));
        if (!t->metrics[j])
            return -1;
    }
    const runner_head_ops *hops = t->head->desc->ops;
    t->per_token = hops->per_token;
    if (!t->per_token && !m->pooler)
        return err_set("%s: task %s has a sentence head, but the pipeline has no `pooler`", pl->file, name);
    return 0;
}

/* A task's train, dev and (when it has one) test splits, and what they
 * say of the task: masked-LM on unlabeled text, or labels matching the
 * head (sentence or per-token). */
static int task_load(model *m, task *t, config_setting_t *ds)
{
    if (!ds)
        return err_set("%s: task %s has no dataset", m->pl->file, t->name);
    if (load_split(m, t, ds, SPLIT_TRAIN, &t->train) != 0 || load_split(m, t, ds, SPLIT_DEV, &t->dev) != 0)
        return -1;
    int has_test = load_split(m, t, ds, SPLIT_TEST, &t->test);
    if (has_test < 0)
        return -1;
    t->has_test = has_test == 0;
    t->mlm = !t->train.ds.label && !t->train.ds.tags;
    if (t->mlm && (!t->per_token || m->tok.mask_id < 0))
        return err_set("task %s: unlabeled text trains a masked language model, which needs a per-token "
                       "head (mlm) and a vocabulary with [MASK]", t->name);
    if (t->mlm && vocab_names(m, &t->train.ds) != 0)
        return -1;
    if (!t->mlm && t->per_token != (t->train.ds.tags != NULL))
        return err_set("task %s: a %s head needs %s data, but %s has %s", t->name, t->per_token ? "per-token" : "sentence",
                       t->per_token ? "word-tagged" : "sentence-labelled", t->train.ds.source,
                       t->train.ds.tags ? "word tags" : "sentence labels");
    char test[32] = "";
    if (t->has_test)
        snprintf(test, sizeof test, " / %d test", t->test.ds.n);
    pipeline_log(m->pl, RUNNER_LOG_INFO, "task %s: %d train / %d dev%s examples, %d %s", t->name, t->train.ds.n,
                 t->dev.ds.n, test, t->train.ds.n_names, t->per_token ? "tags" : "labels");
    t->order = malloc(((size_t)t->train.ds.n + 1) * sizeof *t->order);
    if (!t->order)
        return err_set("out of memory");
    for (int i = 0; i < t->train.ds.n; i++)
        t->order[i] = i;
    return 0;
}

/* The loss's outputs for the task's labels, then the head's parameters. */
static int task_bind(model *m, task *t)
{
    t->n_labels = t->train.ds.n_names;
    if (t->n_labels < 1)
        return err_set("task %s: no label names", t->name);
    const runner_loss_ops *lops = t->loss->desc->ops;
    if (lops->outputs(t->loss->self, t->n_labels, &t->n_out) != 0)
        return -1;
    const runner_head_ops *hops = t->head->desc->ops;
    return hops->bind(t->head->self, t->per_token ? m->enc.info.dim : m->D, t->n_out);
}

/* Joint batches need tasks that share their sentences, in order. */
static void joint_check(model *m)
{
    m->joint_ok = m->with_data;
    for (int k = 1; m->with_data && k < m->ntasks && m->joint_ok; k++) {
        const dataset *a = &m->t[0].train.ds, *b = &m->t[k].train.ds;
        m->joint_ok = a->n == b->n;
        for (int i = 0; m->joint_ok && i < a->n; i++)
            m->joint_ok = a->len[i] == b->len[i] && memcmp(a->text + a->start[i], b->text + b->start[i], a->len[i]) == 0;
    }
}

int model_open(pipeline *pl, model *m, int with_data, const char *labels_from)
{
    memset(m, 0, sizeof *m);
    m->pl = pl;
    m->with_data = with_data;
    if (encoder_open(pl, &m->enc) != 0)
        return -1;
    const runner_tokenizer_ops *tops = m->enc.tok->desc->ops;
    tops->info(m->enc.tok->self, &m->tok);
    config_setting_t *tasks = config_lookup(&pl->cfg, "tasks");
    m->ntasks = tasks ? config_setting_length(tasks) : 0;
    if (m->ntasks == 0)
        return err_set("%s: `tasks` lists no task", pl->file);
    m->t = calloc((size_t)m->ntasks, sizeof *m->t);
    if (!m->t)
        return err_set("out of memory");
    config_setting_t *pooler = config_lookup(&pl->cfg, "pooler");
    if (pooler) {
        m->pooler = pipeline_stage(pl, "pooler", "pooler.", RUNNER_KIND_POOLER, pooler);
        if (!m->pooler)
            return -1;
        m->D = pooler_dim(&m->enc, m->pooler);
    }
    const char *combine = cfg_str(pl, "train.combine"); /* fixed | uncertainty: checked by the schema */
    m->uncertainty = combine && strcmp(combine, "uncertainty") == 0;
    for (int k = 0; k < m->ntasks; k++) {
        task *t = &m->t[k];
        config_setting_t *ts = config_setting_get_elem(tasks, (unsigned)k);
        config_setting_t *ds = config_setting_get_member(ts, "dataset");
        if (task_stages(m, t, ts, k) != 0 ||
            (with_data ? task_load(m, t, ds) : labels_without_data(m, t, ds, labels_from)) != 0 ||
            task_bind(m, t) != 0)
            return -1;
    }
    if (m->uncertainty) {
        int64_t shape[1] = {m->ntasks};
        if (params_add(&pl->P, "combiner.log_var", 1, shape, RUNNER_PARAM_NO_DECAY, RUNNER_INIT_ZERO, 0,
                       &m->log_var, &m->dlog_var) < 0)
            return -1;
    }
    joint_check(m);
    return 0;
}

void model_close(model *m)
{
    for (int k = 0; m->t && k < m->ntasks; k++) {
        task *t = &m->t[k];
        free(t->name);
        free(t->metrics);
        task_data_free(&t->train);
        task_data_free(&t->dev);
        task_data_free(&t->test);
        free(t->order);
        free(t->logits);
        free(t->dlogits);
        free(t->labels);
    }
    free(m->t);
    batch_free(&m->bt);
    free(m->pooled);
    free(m->dpooled);
    free(m->sel);
    free(m->sel_label);
    free(m->xsel);
    free(m->keys);
    free(m->dxsel);
    memset(m, 0, sizeof *m);
}

int model_meta(const model *m, char ***meta, int *nmeta)
{
    char **kv = calloc(2 * (size_t)m->ntasks + 1, sizeof *kv);
    if (!kv)
        return err_set("out of memory");
    static const dataset no_names; /* an MLM task's labels are the vocabulary: vocab.txt holds it */
    for (int k = 0; k < m->ntasks; k++) {
        const dataset *d = m->t[k].mlm ? &no_names : &m->t[k].train.ds;
        size_t len = 1;
        for (int i = 0; i < d->n_names; i++)
            len += strlen(d->names[i]) + 1;
        char *v = calloc(len, 1);
        kv[2 * k] = str_printf("labels.%s", m->t[k].name);
        kv[2 * k + 1] = v;
        if (!v || !kv[2 * k]) {
            model_meta_free(kv, 2 * k + 2);
            return err_set("out of memory");
        }
        for (int i = 0; i < d->n_names; i++) {
            if (i)
                strcat(v, "\n");
            strcat(v, d->names[i]);
        }
    }
    *meta = kv;
    *nmeta = m->ntasks;
    return 0;
}

void model_meta_free(char **meta, int nmeta)
{
    for (int i = 0; meta && i < 2 * nmeta; i++)
        free(meta[i]);
    free(meta);
}

int model_backbone_trains(const model *m)
{
    return m->pl->P.grad && params_count(&m->pl->P, "backbone.*", 1) > 0;
}

static int head_trains(const model *m, const task *t)
{
    char glob[300];
    snprintf(glob, sizeof glob, "heads.%s.*", t->name);
    return m->pl->P.grad && params_count(&m->pl->P, glob, 1) > 0;
}

/* Buffers of task t for N rows. */
static int task_buffers(task *t, size_t N)
{
    size_t cap = t->cap;
    if (N <= cap)
        return 0;
    size_t c1 = cap, c2 = cap;
    if (grow((void **)&t->logits, &cap, N * (size_t)t->n_out, sizeof(float)) != 0 ||
        grow((void **)&t->dlogits, &c1, N * (size_t)t->n_out, sizeof(float)) != 0 ||
        grow((void **)&t->labels, &c2, N, sizeof(int32_t)) != 0)
        return -1;
    t->cap = N;
    return 0;
}

static int pooled_buffers(model *m, size_t B)
{
    size_t need = B * (size_t)(m->D ? m->D : 1), c = m->cap_pooled;
    if (need <= m->cap_pooled)
        return 0;
    if (grow((void **)&m->pooled, &c, need, sizeof(float)) != 0)
        return -1;
    c = m->cap_pooled;
    if (grow((void **)&m->dpooled, &c, need, sizeof(float)) != 0)
        return -1;
    m->cap_pooled = need;
    return 0;
}

/* Labels of a batch for task t: sentence labels (B) or piece labels (B*T). */
static void batch_labels(const task *t, const task_data *d, const batch *bt)
{
    const runner_batch *b = &bt->b;
    if (!t->per_token) {
        for (int i = 0; i < b->B; i++)
            t->labels[i] = d->ds.label[bt->rows[i]];
        return;
    }
    for (int i = 0; i < b->B; i++) {
        const int32_t *pl = d->piece_label + d->enc.off[bt->rows[i]];
        for (int j = 0; j < b->T; j++)
            t->labels[(size_t)i * b->T + j] = j < b->len[i] ? pl[j] : -1;
    }
}

/* BERT's masking of the current batch for an MLM task: each word piece
 * (not [CLS], [SEP] or padding) is selected with probability MLM_SELECT;
 * a selected piece becomes [MASK] (80%), a random piece (10%) or stays
 * (10%), and its label is the original id; every other label is -1. */
static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double unit(uint64_t *x) { return (double)(splitmix(x) >> 11) * (1.0 / 9007199254740992.0); }

/* Each example's draws come from its own stream, seeded by the batch's
 * seed and the example's position in the global batch (first + i), so the
 * masks do not depend on how the batch is split over ranks. */
static void mlm_mask(model *m, uint64_t seed, int64_t first, int32_t *labels)
{
    batch *bt = &m->bt;
    const runner_batch *b = &bt->b;
    for (int i = 0; i < b->B; i++) {
        uint64_t x = seed ^ ((uint64_t)(first + i) * 0xd1b54a32d192ed03ull);
        for (int j = 0; j < b->T; j++) {
            size_t p = (size_t)i * b->T + j;
            int32_t id = bt->ids[p];
            labels[p] = -1;
            if (j >= b->len[i] || id == m->tok.cls_id || id == m->tok.sep_id || id == m->tok.pad_id)
                continue;
            if (unit(&x) >= MLM_SELECT)
                continue;
            labels[p] = id;
            double u = unit(&x);
            if (u < MLM_MASK)
                bt->ids[p] = m->tok.mask_id;
            else if (u < MLM_MASK + MLM_RANDOM)
                bt->ids[p] = (int32_t)(splitmix(&x) % (uint64_t)m->tok.vocab_size);
        }
    }
}

/* Prediction without labels: mark the first piece of every word. */
static void first_piece_marks(const model *m, int32_t *labels)
{
    const runner_batch *b = &m->bt.b;
    for (int i = 0; i < b->B; i++) {
        int prev = -1;
        for (int j = 0; j < b->T; j++) {
            int w = j < b->len[i] ? b->word[(size_t)i * b->T + j] : -1;
            labels[(size_t)i * b->T + j] = w >= 0 && w != prev ? 0 : -1;
            if (w >= 0)
                prev = w;
        }
    }
}

/* The rows a per-token head sees: positions whose label is >= 0, their
 * states from h (N, C) gathered into xsel (M, C), and their labels. */
static int select_rows(model *m, const int32_t *labels, int N, int C, const float *h, int *M)
{
    size_t c = m->cap_sel;
    if (grow((void **)&m->sel, &c, (size_t)N, sizeof *m->sel) != 0)
        return -1;
    c = m->cap_sel;
    if (grow((void **)&m->sel_label, &c, (size_t)N, sizeof *m->sel_label) != 0)
        return -1;
    if ((size_t)N > m->cap_sel)
        m->cap_sel = (size_t)N;
    c = m->cap_xsel;
    if (grow((void **)&m->xsel, &c, (size_t)N * C, sizeof(float)) != 0)
        return -1;
    c = m->cap_xsel;
    if (grow((void **)&m->dxsel, &c, (size_t)N * C, sizeof(float)) != 0)
        return -1;
    if ((size_t)N * C > m->cap_xsel)
        m->cap_xsel = (size_t)N * C;
    int n = 0;
    for (int p = 0; p < N; p++) {
        if (labels[p] < 0)
            continue;
        m->sel[n] = p;
        m->sel_label[n] = labels[p];
        memcpy(m->xsel + (size_t)n * C, h + (size_t)p * C, (size_t)C * sizeof(float));
        n++;
    }
    *M = n;
    return 0;
}

/* Forward of the shared encoder for the current batch of data d: states
 * (when a token task needs them or nothing is cached) and pooled rows. */
static int encoder_forward(model *m, const task_data *d, int need_states, int need_pooled, int train,
                           const runner_states **s)
{
    const runner_batch *b = &m->bt.b;
    *s = NULL;
    int cached = need_pooled && d->cache && !train;
    if (need_states || (need_pooled && !cached)) {
        const runner_backbone_ops *bops = m->enc.backbone->desc->ops;
        if (bops->forward(m->enc.backbone->self, b, train, s) != 0)
            return -1;
    }
    if (!need_pooled)
        return 0;
    if (pooled_buffers(m, (size_t)b->B) != 0)
        return -1;
    if (cached) {
        for (int i = 0; i < b->B; i++)
            memcpy(m->pooled + (size_t)i * m->D, d->cache + (size_t)m->bt.rows[i] * m->D,
                   (size_t)m->D * sizeof(float));
        return 0;
    }
    const runner_pooler_ops *pops = m->pooler->desc->ops;
    return pops->forward(m->pooler->self, b, *s, m->pooled);
}

/* The dropout keys of the rows head t sees in training: a sentence's
 * index in the step's global batch, or (that index, position) for the
 * selected tokens of a per-token head, whichever rank holds them. */
static int row_keys(model *m, const task *t, int rows)
{
    const runner_batch *b = &m->bt.b;
    if (grow((void **)&m->keys, &m->cap_keys, (size_t)rows + 1, sizeof *m->keys) != 0)
        return -1;
    for (int i = 0; i < rows; i++)
        m->keys[i] = t->per_token ? dropout_key(b->row0 + m->sel[i] / b->T, m->sel[i] % b->T)
                                  : (uint64_t)(b->row0 + i);
    return 0;
}

/* Head and loss of task t on the current batch (labels in t->labels,
 * B or B*T of them): the rows the head sees, their logits, and with_loss
 * the mean loss over labelled rows and (dlogits != NULL) its gradient.
 * Returns the rows in *rows_out; per-token heads see only the selected
 * rows (for prediction without labels, t->labels marks them with 0). */
static int head_loss(model *m, task *t, const runner_states *s, int train, int with_loss, float *dlogits,
                     double *loss, int *rows_out, const float **x_out, const int32_t **labels_out)
{
    const runner_batch *b = &m->bt.b;
    const float *x = m->pooled;
    const int32_t *labels = t->labels;
    int rows = b->B;
    if (t->per_token) {
        if (select_rows(m, t->labels, b->B * b->T, s->C, s->hidden[s->L], &rows) != 0)
            return -1;
        x = m->xsel;
        labels = m->sel_label;
    }
    *rows_out = rows;
    *x_out = x;
    *labels_out = labels;
    *loss = 0;
    const runner_head_ops *hops = t->head->desc->ops;
    const runner_loss_ops *lops = t->loss->desc->ops;
    int keyed = train && t->head->desc->abi_minor >= 4 && hops->forward_keyed;
    if (rows == 0 && !keyed)
        return 0;
    if (keyed ? row_keys(m, t, rows) != 0 ||
                    hops->forward_keyed(t->head->self, rows, x, t->logits, train, m->keys) != 0
              : hops->forward(t->head->self, rows, x, t->logits, train) != 0)
        return -1;
    if (!with_loss || rows == 0)
        return 0;
    return lops->forward(t->loss->self, rows, t->n_out, t->logits, labels, loss, dlogits);
}

/* The mean loss of a batch split over ranks: *loss (this rank's mean over
 * its counted rows) becomes the global mean, and *share the weight of this
 * rank's gradient in it (counted / global count). One process: unchanged. */
static int global_loss(double *loss, int counted, double *share)
{
    if (world_size() == 1)
        return 0;
    double s[2] = {*loss * counted, counted};
    if (world_sum_f64(s, 2) != 0)
        return -1;
    *loss = s[1] > 0 ? s[0] / s[1] : 0.0;
    *share = s[1] > 0 ? counted / s[1] : 0.0;
    return 0;
}

/* The backbone's backward (when it trains), with the data-parallel
 * gradient sums around it on a step's last batch: the heads' buckets
 * start before it, the layers' ones during it. */
static int backbone_backward(model *m, int bb_trains)
{
    int sync = m->ddp && m->sync;
    if (sync && ddp_backward_begin(m->ddp) != 0)
        return -1;
    if (bb_trains) {
        const runner_backbone_ops *bops = m->enc.backbone->desc->ops;
        if (bops->backward(m->enc.backbone->self, &m->bt.b) != 0) {
            if (m->ddp) /* the job ends: no waiting for the others */
                m->ddp->P->watch = NULL;
            return -1;
        }
    }
    return sync ? ddp_backward_end(m->ddp) : 0;
}

int model_train_batch(model *m, int which, const int *rows, int n, int accumulate, double *total)
{
    if (which < 0 && !m->joint_ok)
        return err_set("joint batches need tasks that share their sentences (same dataset, same order)");
    int first = which < 0 ? 0 : which, last = which < 0 ? m->ntasks - 1 : which;
    task_data *d = &m->t[first].train;
    if (batch_fill(&m->bt, &d->enc, rows, n) != 0)
        return -1;
    m->bt.b.row0 = m->row0; /* keyed dropout: examples by their global index */
    const runner_batch *b = &m->bt.b;
    int need_states = 0, need_pooled = 0;
    for (int k = first; k <= last; k++) {
        task *t = &m->t[k];
        need_states |= t->per_token;
        need_pooled |= !t->per_token;
        if (task_buffers(t, (size_t)b->B * b->T) != 0)
            return -1;
        if (t->mlm) { /* before the forward pass: it changes the ids */
            uint64_t seed = ((uint64_t)gsl_rng_get(m->pl->rng) << 32) ^ gsl_rng_get(m->pl->rng);
            mlm_mask(m, seed, m->row0, t->labels);
        }
        else
            batch_labels(t, &t->train, &m->bt);
    }
    int bb_trains = model_backbone_trains(m);
    const runner_states *s;
    if (encoder_forward(m, d, need_states, need_pooled, bb_trains, &s) != 0)
        return -1;
    if (bb_trains && need_pooled)
        memset(m->dpooled, 0, (size_t)b->B * (size_t)m->D * sizeof(float));
    *total = 0;
    for (int k = first; k <= last; k++) {
        task *t = &m->t[k];
        int N;
        const float *x;
        const int32_t *labels;
        double loss;
        if (head_loss(m, t, s, head_trains(m, t), 1, t->dlogits, &loss, &N, &x, &labels) != 0)
            return -1;
        int counted = 0;
        for (int i = 0; i < N; i++)
            counted += labels[i] >= 0;
        double share = 1.0; /* this rank's part of the global mean */
        if (global_loss(&loss, counted, &share) != 0)
            return -1;
        t->batch_loss = loss;
        t->batch_count = counted;
        if (N == 0)
            continue;
        double scale;
        if (m->measure) /* gradient measurements: the raw task loss, weight 1 */
            scale = 1.0;
        else if (m->uncertainty) {
            double e = exp(-(double)m->log_var[k]);
            *total += e * loss + 0.5 * m->log_var[k];
            scale = e;
            if (m->dlog_var && world_is_root()) /* summed over ranks: counted once */
                m->dlog_var[k] += (float)((-e * loss + 0.5) / accumulate);
        } else {
            *total += t->weight * loss;
            scale = t->weight;
        }
        float f = (float)(scale / accumulate * share);
        for (size_t i = 0; i < (size_t)N * (size_t)t->n_out; i++)
            t->dlogits[i] *= f;
        float *dx = NULL;
        if (bb_trains) {
            dx = t->per_token ? m->dxsel : m->dpooled;
            if (t->per_token)
                memset(dx, 0, (size_t)N * (size_t)s->C * sizeof(float));
        }
        const runner_head_ops *hops = t->head->desc->ops;
        if (hops->backward(t->head->self, N, x, t->dlogits, dx) != 0)
            return -1;
        if (bb_trains && t->per_token) /* scatter the selected rows back */
            for (int r = 0; r < N; r++) {
                float *dh = s->dhidden[s->L] + (size_t)m->sel[r] * s->C;
                const float *g = m->dxsel + (size_t)r * s->C;
                for (int c = 0; c < s->C; c++)
                    dh[c] += g[c];
            }
    }
    if (bb_trains && need_pooled) {
        const runner_pooler_ops *pops = m->pooler->desc->ops;
        if (pops->backward(m->pooler->self, b, s, m->dpooled) != 0)
            return -1;
    }
    return backbone_backward(m, bb_trains);
}

/* Predictions of task t for the rows of the current batch: per sentence
 * (sentence task), per word (token task, words of sentence r at
 * word_off[r]; a word cut off by max_len gets -1), or, for MLM, the count
 * of correctly predicted masked pieces. */
static void batch_predict(const model *m, const task *t, const task_data *d, int nrows, int32_t *label,
                          float *prob, const int64_t *word_off, int64_t *mlm_correct)
{
    const runner_batch *b = &m->bt.b;
    const runner_loss_ops *lops = t->loss->desc->ops;
    if (!t->per_token) {
        for (int i = 0; i < b->B; i++) {
            int r = m->bt.rows[i];
            lops->predict(t->loss->self, t->n_out, t->logits + (size_t)i * t->n_out, &label[r], &prob[r]);
        }
        return;
    }
    if (!t->mlm)
        for (int i = 0; i < b->B; i++) {
            int r = m->bt.rows[i];
            for (int64_t w = word_off[r]; w < word_off[r + 1]; w++) {
                label[w] = -1;
                prob[w] = 0;
            }
        }
    for (int q = 0; q < nrows; q++) {
        int i = m->sel[q] / b->T, j = m->sel[q] % b->T;
        int32_t got;
        float p;
        lops->predict(t->loss->self, t->n_out, t->logits + (size_t)q * t->n_out, &got, &p);
        if (t->mlm) {
            *mlm_correct += got == m->sel_label[q];
            continue;
        }
        int r = m->bt.rows[i];
        int w = d->enc.word[d->enc.off[r] + j];
        if (w >= 0 && w < word_off[r + 1] - word_off[r]) {
            label[word_off[r] + w] = got;
            prob[word_off[r] + w] = p;
        }
    }
}

/* Sum an evaluation over the ranks: each filled the predictions of its
 * batches and left the others zero. */
static int eval_reduce(const task *t, const task_data *d, int32_t *label, float *prob, const int64_t *word_off,
                       double *sums)
{
    int64_t npred = t->mlm ? 0 : t->per_token ? word_off[d->enc.n] : d->enc.n;
    if (world_sum_i32(label, npred) != 0 || world_sum_f32(prob, npred) != 0)
        return -1;
    return world_sum_f64(sums, 3);
}

/* Forward task t (eval mode) over the sentences of encoded data d, in
 * length-sorted batches: predictions, the mean loss over labelled rows
 * (when d has labels), and for MLM the masked-piece accuracy (masks drawn
 * from a fixed seed, so every evaluation sees the same ones). shard: each
 * rank runs a contiguous run of the batches and the results are summed
 * over ranks (the same batches as one process, so the same numbers). */
static int run_eval(model *m, task *t, task_data *d, int32_t *label, float *prob, const int64_t *word_off,
                    double *mean_loss, double *mlm_accuracy, int shard)
{
    int B = (int)cfg_int(m->pl, "train.batch", 32);
    int *order = encoded_order(&d->enc, 1);
    double sums[3] = {0, 0, 0}; /* loss x rows, labelled rows, correct MLM pieces */
    int has_labels = d->ds.label || d->piece_label || t->mlm;
    /* token heads read the last state; the pooler its own */
    const int lowest = m->pooler ? poolers_lowest(&m->enc, &m->pooler, 1) : m->enc.info.layers;
    if (!order)
        return err_set("out of memory");
    int64_t nb = ((int64_t)d->enc.n + B - 1) / B, b0 = 0, b1 = nb;
    if (shard && world_size() > 1) {
        world_share(nb, &b0, &b1);
        int64_t npred = t->mlm ? 0 : t->per_token ? word_off[d->enc.n] : d->enc.n;
        memset(label, 0, (size_t)npred * sizeof *label);
        memset(prob, 0, (size_t)npred * sizeof *prob);
    }
    for (int at = (int)(b0 * B); at < d->enc.n && at < b1 * B; at += B) {
        int n = d->enc.n - at < B ? d->enc.n - at : B;
        if (batch_fill(&m->bt, &d->enc, order + at, n) != 0)
            goto fail;
        m->bt.b.lowest_read = lowest;
        const runner_batch *b = &m->bt.b;
        if (task_buffers(t, (size_t)b->B * b->T) != 0)
            goto fail;
        if (t->mlm)
            mlm_mask(m, 20181011, at, t->labels);
        else if (has_labels)
            batch_labels(t, d, &m->bt);
        else if (t->per_token)
            first_piece_marks(m, t->labels);
        const runner_states *s;
        if (encoder_forward(m, d, t->per_token, !t->per_token, 0, &s) != 0)
            goto fail;
        int N;
        const float *x;
        const int32_t *labels;
        double loss;
        if (head_loss(m, t, s, 0, has_labels, NULL, &loss, &N, &x, &labels) != 0)
            goto fail;
        if (has_labels) {
            int c = 0;
            for (int i = 0; i < N; i++)
                c += labels[i] >= 0;
            sums[0] += loss * c;
            sums[1] += c;
        }
        int64_t correct = 0;
        batch_predict(m, t, d, N, label, prob, word_off, &correct);
        sums[2] += (double)correct;
    }
    free(order);
    if (shard && eval_reduce(t, d, label, prob, word_off, sums) != 0)
        return -1;
    if (mean_loss)
        *mean_loss = sums[1] > 0 ? sums[0] / sums[1] : 0.0;
    if (mlm_accuracy)
        *mlm_accuracy = sums[1] > 0 ? sums[2] / sums[1] : 0.0;
    return 0;
fail:
    free(order);
    return -1;
}

/* A metric's value under its own name, or "<metric>.<name>" when an
 * earlier metric already reported that name (per_class's macro_f1 after
 * macro_f1's): every name of a task's evaluation is unique. */
struct metric_emit {
    eval_values *out;
    const char *metric;
};

static void eval_emit_unique(void *ctx, const char *name, double value)
{
    const struct metric_emit *me = ctx;
    for (int i = 0; i < me->out->n; i++)
        if (strcmp(me->out->name[i], name) == 0) {
            char *q = str_printf("%s.%s", me->metric, name);
            if (q)
                eval_emit(me->out, q, value);
            free(q);
            return;
        }
    eval_emit(me->out, name, value);
}
static int evaluate_data(model *m, task *t, task_data *d, eval_values *out, int32_t *pred, float *prob);

int model_evaluate(model *m, int k, eval_values *out, int32_t *pred, float *prob)
{
    return evaluate_data(m, &m->t[k], &m->t[k].dev, out, pred, prob);
}

int model_evaluate_test(model *m, int k, eval_values *out, int32_t *pred, float *prob)
{
    if (!m->t[k].has_test)
        return err_set("task %s has no test source", m->t[k].name);
    return evaluate_data(m, &m->t[k], &m->t[k].test, out, pred, prob);
}

static int evaluate_data(model *m, task *t, task_data *d, eval_values *out, int32_t *pred, float *prob)
{
    int64_t npred = t->mlm ? 0 : t->per_token ? d->ds.tag_off[d->ds.n] : d->ds.n;
    int32_t *p = pred ? pred : malloc(((size_t)npred + 1) * sizeof *p);
    float *q = prob ? prob : malloc(((size_t)npred + 1) * sizeof *q);
    double loss = 0;
    int rc = -1;
    memset(out, 0, sizeof *out);
    if (!p || !q) {
        err_set("out of memory");
        goto done;
    }
    double mlm_accuracy = 0;
    if (run_eval(m, t, d, p, q, d->ds.tag_off, &loss, &mlm_accuracy, 1) != 0)
        goto done;
    if (t->mlm) /* metrics over a 30,522-way vocabulary: the core counts */
        eval_emit(out, "accuracy", mlm_accuracy);
    for (int j = 0; !t->mlm && j < t->nmetrics; j++) {
        const runner_metric_ops *mo = t->metrics[j]->desc->ops;
        void *self = t->metrics[j]->self;
        if (mo->reset(self, t->n_labels, (const char *const *)t->train.ds.names) != 0)
            goto done;
        if (!t->per_token) {
            if (mo->add(self, d->ds.n, d->ds.label, p) != 0)
                goto done;
        } else {
            for (int i = 0; i < d->ds.n; i++) {
                int64_t w0 = d->ds.tag_off[i];
                if (mo->add(self, (int)(d->ds.tag_off[i + 1] - w0), d->ds.tags + w0, p + w0) != 0)
                    goto done;
            }
        }
        struct metric_emit me = {out, t->metrics[j]->desc->name};
        if (mo->report(self, eval_emit_unique, &me) != 0)
            goto done;
    }
    eval_emit(out, "loss", loss);
    rc = 0;
done:
    if (!pred)
        free(p);
    if (!prob)
        free(q);
    return rc;
}

int model_build_cache(model *m)
{
    for (int k = 0; k < m->ntasks; k++) {
        task *t = &m->t[k];
        if (t->per_token)
            continue;
        task_data *ds[2] = {&t->train, &t->dev};
        for (int j = 0; j < 2; j++) {
            if (ds[j]->cache)
                continue;
            ds[j]->cache = malloc(((size_t)ds[j]->enc.n + 1) * (size_t)m->D * sizeof(float));
            if (!ds[j]->cache)
                return err_set("out of memory caching %d embeddings", ds[j]->enc.n);
            if (shard_embed(&m->enc, &ds[j]->enc, &m->pooler, 1, &ds[j]->cache, 1) != 0)
                return -1;
        }
    }
    return 0;
}

void model_drop_cache(model *m)
{
    for (int k = 0; k < m->ntasks; k++) {
        free(m->t[k].train.cache);
        free(m->t[k].dev.cache);
        m->t[k].train.cache = m->t[k].dev.cache = NULL;
    }
}

int model_predict_sentences(model *m, const encoded *e, int k, int32_t *label, float *prob,
                            const int64_t *word_off)
{
    task_data d = {0};
    d.enc = *e;
    return run_eval(m, &m->t[k], &d, label, prob, word_off, NULL, NULL, 0);
}
