/* bert.c — backbone: a BERT encoder read from a Hugging Face model folder
 * (config.json + model.safetensors), with Hugging Face's semantics: word +
 * position + token-type embeddings, LayerNorm, post-LN blocks of
 * self-attention and an exact-erf GELU feed-forward.
 *
 * Tokens are packed: padding is dropped before the first GEMM and every
 * sentence attends over its own tokens only, so an embedding never depends
 * on its batch or its padding, and no work is spent on padding. The
 * hidden states handed to poolers are scattered back to (B,T,C) with zero
 * padding rows. A training forward keeps every layer's activations for
 * backward(); buffers grow to the largest batch seen and are reused. */
#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "runner/kit/compute.h"
#include "runner/kit/nn.h"
#include "runner/runner.h"
#include "runner/kit/safetensors.h"
#include "runner/kit/util.h"

/* tensors of one encoder layer, in the order they are registered: query,
 * key and value weights (then biases) are adjacent, so the store keeps
 * them contiguous and one GEMM computes all three */
enum {
    QW, KW, VW, QB, KB, VB, AOW, AOB, LN1W, LN1B, IW, IB, OW, OB, LN2W, LN2B, NLT
};
static const char *const layer_names[NLT] = {
    "attention.self.query.weight", "attention.self.key.weight",
    "attention.self.value.weight", "attention.self.query.bias",
    "attention.self.key.bias", "attention.self.value.bias",
    "attention.output.dense.weight", "attention.output.dense.bias",
    "attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias",
    "intermediate.dense.weight", "intermediate.dense.bias",
    "output.dense.weight", "output.dense.bias",
    "output.LayerNorm.weight", "output.LayerNorm.bias",
};
enum { WTE, WPE, WTT, ELNW, ELNB, NET };
static const char *const emb_names[NET] = {
    "embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
    "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight",
    "embeddings.LayerNorm.bias",
};

typedef struct tensor {
    char *name; /* Hugging Face name without prefix */
    int ndim;
    int64_t shape[2];
    int id;
    float *data, *grad;
    const uint16_t *bf; /* bf16 training: the bfloat16 copy of data (host param_bf16), else NULL */
} tensor;

/* Activations of one layer over N packed tokens (see layer_forward). In
 * eval one set serves every layer, in place where it can. */
typedef struct acts {
    float *x;            /* (N,C) layer input */
    float *qkv;          /* (N,3C) */
    float *probs;        /* attention probabilities; train only */
    float *att;          /* (N,C) attention output, heads concatenated */
    float *r1;           /* (N,C) dropout(att Wo + bo) + x: LayerNorm 1 input */
    float *mean1, *rstd1;
    float *x1;           /* (N,C) LayerNorm 1 output */
    float *h;            /* (N,FF) intermediate, before GELU */
    float *g;            /* (N,FF) after GELU */
    float *r2;           /* (N,C) dropout(g Wo2 + bo2) + x1: LayerNorm 2 input */
    float *mean2, *rstd2;
} acts;

typedef struct bert {
    const runner_host *h;
    char *dir;
    json_t *config;
    int C, L, NH, FF, P, TV, V;
    float eps, p_hidden, p_attn;
    tensor *t; /* NET embedding tensors, then NLT per layer */
    int nt;
    float *bqkv;  /* (L,3C) fused q/k/v biases */
    float *dbqkv; /* (3C) gradient of one layer's */

    /* packed batch */
    int B, T, N;
    int32_t *ids, *pos, *types;
    int64_t *rowmap; /* packed row -> b*T + t */
    uint64_t *tkey;  /* packed row -> dropout_key(example, t): keyed dropout */
    uint64_t *skey;  /* (B) sentence -> its example index in the global batch */
    int *off;        /* (B+1) */
    int *group;      /* (B+1) sentence groups of the eval forward */
    int64_t *poff;   /* (B) */
    int64_t nprobs;
    size_t cap_n, cap_b, cap_bt, cap_probs, cap_scratch;
    int cap_train; /* buffers hold every layer's activations */

    float *emb, *emb_mean, *emb_rstd; /* embedding sum (N,C), its LayerNorm stats */
    acts *a;                          /* L+1 sets (train) or 1 (eval); a[L].x = output */
    float *scratch;                   /* attention */
    float **hidden, **dhidden;        /* L+1 (B,T,C) */
    runner_states states;
    int trained;    /* the last forward was a training one */
    uint64_t seed;  /* its dropout seed */

    /* eval GEMMs: per layer QKV (3C,C), AO (C,C), I (FF,C, GELU fused),
     * O (C,FF) as oneDNN matmuls in precision prec; bf16 and int8 weights
     * are packed once and again after any training forward (weights may
     * have changed since) */
    compute_precision prec;
    int wp_stale;
    int lowest_read; /* this eval forward's lowest hidden state read (ABI 1.7) */
    compute_linear **lin;  /* 4 per layer (bf16, int8) */
    void *wpack;           /* their packed weights, one block (pack_memory) */
    compute_linear *f32[5]; /* float32, weights read in place: QKV, AO, I+GELU, O, I */

    int random_init;  /* init = "random": weights from the run's RNG, not from a file */
    float init_range; /* std of the random weights (initializer_range) */

    /* backward workspace */
    float *gx, *gy, *gr, *gx1, *gatt, *gqkv, *gh, *gg;
    size_t cap_grad;
} bert;

static tensor *lt(bert *m, int l, int k) { return &m->t[NET + l * NLT + k]; }

/* ---- config.json ----------------------------------------------------------------- */

/* Architecture limits: far above any BERT, low enough that every size
 * below (tables, activations, parameter counts) fits 64-bit arithmetic. */
static const struct { const char *key; int max; } dim_limits[] = {
    {"hidden_size", 1 << 16},          {"num_hidden_layers", 1 << 10}, {"num_attention_heads", 1 << 12},
    {"intermediate_size", 1 << 18},    {"max_position_embeddings", 1 << 16},
    {"type_vocab_size", 1 << 10},      {"vocab_size", 1 << 22},
};

static int json_int_key(bert *m, const char *path, const char *key, int *out)
{
    json_t *v = json_object_get(m->config, key);
    long long max = 1 << 30;
    for (size_t i = 0; i < sizeof dim_limits / sizeof *dim_limits; i++)
        if (strcmp(dim_limits[i].key, key) == 0)
            max = dim_limits[i].max;
    if (!json_is_integer(v) || json_integer_value(v) <= 0)
        return m->h->error(m->h, "%s: key %s: %s", path, key,
                           v ? "expected a positive integer" : "missing");
    if (json_integer_value(v) > max)
        return m->h->error(m->h, "%s: key %s: %lld is above this backbone's limit of %lld", path, key,
                           (long long)json_integer_value(v), max);
    *out = (int)json_integer_value(v);
    return 0;
}

static int json_prob_key(bert *m, const char *path, const char *key, double def, float *out)
{
    json_t *v = json_object_get(m->config, key);
    double x = v ? json_number_value(v) : def;
    if (v && (!json_is_number(v) || x < 0 || x >= 1))
        return m->h->error(m->h, "%s: key %s: expected a number in [0, 1)", path, key);
    *out = (float)x;
    return 0;
}

/* The architecture keys a pipeline may set over config.json's (for a
 * randomly initialised model of another size). */
static const char *const arch_keys[] = {"hidden_size", "num_hidden_layers", "num_attention_heads",
                                        "intermediate_size", "max_position_embeddings", NULL};

static int read_config(bert *m, const runner_cfg *cfg)
{
    char *path = str_printf("%s/config.json", m->dir);
    json_error_t jerr;
    int rc = -1;
    if (!path)
        return m->h->error(m->h, "out of memory");
    m->config = json_load_file(path, 0, &jerr);
    if (!m->config) {
        m->h->error(m->h, "%s: %s (line %d, column %d)", path, jerr.text, jerr.line, jerr.column);
        goto done;
    }
    if (!json_is_object(m->config)) {
        m->h->error(m->h, "%s: not a JSON object", path);
        goto done;
    }
    json_t *type = json_object_get(m->config, "model_type");
    if (type && (!json_is_string(type) || strcmp(json_string_value(type), "bert") != 0)) {
        m->h->error(m->h, "%s: model_type \"%s\": this backbone implements BERT only (model_type \"bert\")", path,
                    json_is_string(type) ? json_string_value(type) : "?");
        goto done;
    }
    for (int i = 0; arch_keys[i]; i++) {
        long long v;
        int got = m->h->cfg_int(cfg, arch_keys[i], &v);
        if (got < 0)
            goto done;
        if (got == 0 && (v <= 0 || v > (1 << 20))) {
            m->h->error(m->h, "%s = %lld: expected a positive integer", arch_keys[i], v);
            goto done;
        }
        if (got == 0 && json_object_set_new(m->config, arch_keys[i], json_integer(v)) != 0) {
            m->h->error(m->h, "out of memory");
            goto done;
        }
    }
    json_t *range = json_object_get(m->config, "initializer_range");
    m->init_range = json_is_number(range) ? (float)json_number_value(range) : 0.02f;
    if (json_int_key(m, path, "hidden_size", &m->C) || json_int_key(m, path, "num_hidden_layers", &m->L) ||
        json_int_key(m, path, "num_attention_heads", &m->NH) ||
        json_int_key(m, path, "intermediate_size", &m->FF) ||
        json_int_key(m, path, "max_position_embeddings", &m->P) ||
        json_int_key(m, path, "type_vocab_size", &m->TV) || json_int_key(m, path, "vocab_size", &m->V))
        goto done;
    if (m->C % m->NH) {
        m->h->error(m->h, "%s: hidden_size %d is not a multiple of num_attention_heads %d", path,
                    m->C, m->NH);
        goto done;
    }
    if (m->C % 4) {
        m->h->error(m->h, "%s: hidden_size %d: this backbone needs a multiple of 4", path, m->C);
        goto done;
    }
    json_t *eps = json_object_get(m->config, "layer_norm_eps");
    if (eps && (!json_is_number(eps) || json_number_value(eps) <= 0)) {
        m->h->error(m->h, "%s: key layer_norm_eps: expected a positive number", path);
        goto done;
    }
    m->eps = eps ? (float)json_number_value(eps) : 1e-12f;
    json_t *act = json_object_get(m->config, "hidden_act");
    if (act && (!json_is_string(act) || strcmp(json_string_value(act), "gelu") != 0)) {
        m->h->error(m->h, "%s: key hidden_act: \"%s\" is not supported (only \"gelu\", the exact "
                    "erf form)", path, json_is_string(act) ? json_string_value(act) : "?");
        goto done;
    }
    json_t *pet = json_object_get(m->config, "position_embedding_type");
    if (pet && (!json_is_string(pet) || strcmp(json_string_value(pet), "absolute") != 0)) {
        m->h->error(m->h, "%s: key position_embedding_type: only \"absolute\" is supported", path);
        goto done;
    }
    if (json_prob_key(m, path, "hidden_dropout_prob", 0.1, &m->p_hidden) ||
        json_prob_key(m, path, "attention_probs_dropout_prob", 0.1, &m->p_attn))
        goto done;
    rc = 0;
done:
    free(path);
    return rc;
}

static void free_acts(bert *m);

/* ---- create / destroy ---------------------------------------------------------- */

static void bert_destroy(void *self)
{
    bert *m = self;
    if (!m)
        return;
    for (int i = 0; i < m->nt; i++)
        free(m->t[i].name);
    free(m->t);
    free(m->dir);
    json_decref(m->config);
    mem_free(m->bqkv);
    mem_free(m->dbqkv);
    free(m->ids);
    free(m->pos);
    free(m->types);
    free(m->rowmap);
    free(m->tkey);
    free(m->skey);
    free(m->off);
    free(m->group);
    free(m->poff);
    mem_free(m->emb);
    mem_free(m->emb_mean);
    mem_free(m->emb_rstd);
    free_acts(m);
    free(m->a);
    mem_free(m->scratch);
    for (int i = 0; m->lin && i < 4 * m->L; i++)
        compute_linear_free(m->lin[i]);
    free(m->lin);
    mem_free(m->wpack);
    for (int i = 0; i < 5; i++)
        compute_linear_free(m->f32[i]);
    for (int l = 0; l <= m->L; l++) {
        if (m->hidden)
            mem_free(m->hidden[l]);
        if (m->dhidden)
            mem_free(m->dhidden[l]);
    }
    free(m->hidden);
    free(m->dhidden);
    float *grads[] = {m->gx, m->gy, m->gr, m->gx1, m->gatt, m->gqkv, m->gh, m->gg};
    for (size_t k = 0; k < sizeof grads / sizeof *grads; k++)
        mem_free(grads[k]);
    free(m);
}

static int add_tensor(bert *m, const char *name, int ndim, int64_t d0, int64_t d1)
{
    tensor *t = &m->t[m->nt];
    t->name = str_dup(name);
    if (!t->name)
        return m->h->error(m->h, "out of memory");
    m->nt++;
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = d1;
    /* biases and LayerNorm weights take no weight decay; a random model
     * starts as BERT does: N(0, initializer_range) matrices, LayerNorm 1, biases 0 */
    unsigned flags = ndim == 1 ? RUNNER_PARAM_NO_DECAY : 0;
    runner_init init = RUNNER_INIT_ZERO;
    if (m->random_init)
        init = ndim == 2 ? RUNNER_INIT_NORMAL : str_ends_with(name, "LayerNorm.weight") ? RUNNER_INIT_ONE
                                                                                        : RUNNER_INIT_ZERO;
    t->id = m->h->param_add(m->h, name, ndim, t->shape, flags, init, m->init_range, &t->data, &t->grad);
    return t->id < 0 ? -1 : 0;
}

static int read_prob_setting(bert *m, const runner_cfg *cfg, const char *key, float *p)
{
    double v;
    int rc = m->h->cfg_float(cfg, key, &v);
    if (rc < 0)
        return -1;
    if (rc == 0) {
        if (v < 0 || v >= 1)
            return m->h->error(m->h, "%s = %g: expected a probability in [0, 1)", key, v);
        *p = (float)v;
    }
    return 0;
}

static int bert_create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    bert *m = calloc(1, sizeof *m);
    if (!m)
        return h->error(h, "out of memory");
    m->h = h;
    const char *dir = NULL, *precision = NULL;
    if (h->cfg_string(cfg, "model", &dir) < 0 || h->cfg_string(cfg, "precision", &precision) < 0)
        goto fail;
    if (!dir)
        dir = h->pipeline_string(h, "model");
    if (!dir) {
        h->error(h, "no model folder: set the pipeline's `model` or the backbone's `model`");
        goto fail;
    }
    if (precision && compute_precision_parse(precision) < 0) {
        h->error(h, "precision \"%s\": expected \"f32\", \"bf16\" or \"int8\"", precision);
        goto fail;
    }
    m->prec = precision ? (compute_precision)compute_precision_parse(precision) : COMPUTE_F32;
    m->wp_stale = 1;
    m->dir = str_dup(dir);
    if (!m->dir) {
        h->error(h, "out of memory");
        goto fail;
    }
    const char *init = NULL;
    if (h->cfg_string(cfg, "init", &init) < 0)
        goto fail;
    if (init && strcmp(init, "pretrained") != 0 && strcmp(init, "random") != 0) {
        h->error(h, "init \"%s\": expected \"pretrained\" (weights from model.safetensors) or \"random\"", init);
        goto fail;
    }
    m->random_init = init && strcmp(init, "random") == 0;
    if (read_config(m, cfg) != 0)
        goto fail;
    if (read_prob_setting(m, cfg, "hidden_dropout", &m->p_hidden) ||
        read_prob_setting(m, cfg, "attention_dropout", &m->p_attn))
        goto fail;
    m->t = calloc((size_t)(NET + NLT * m->L), sizeof *m->t);
    m->bqkv = mem_alloc(3 * (size_t)m->C * (size_t)m->L * sizeof(float));
    m->dbqkv = mem_alloc(3 * (size_t)m->C * sizeof(float));
    if (!m->t || !m->bqkv || !m->dbqkv) {
        h->error(h, "out of memory");
        goto fail;
    }
    const int64_t C = m->C, FF = m->FF;
    if (add_tensor(m, emb_names[WTE], 2, m->V, C) || add_tensor(m, emb_names[WPE], 2, m->P, C) ||
        add_tensor(m, emb_names[WTT], 2, m->TV, C) || add_tensor(m, emb_names[ELNW], 1, C, 0) ||
        add_tensor(m, emb_names[ELNB], 1, C, 0))
        goto fail;
    for (int l = 0; l < m->L; l++) {
        for (int k = 0; k < NLT; k++) {
            char name[128];
            snprintf(name, sizeof name, "encoder.layer.%d.%s", l, layer_names[k]);
            int64_t rows = k == IW || k == IB ? FF : C, cols = k == IW ? C : k == OW ? FF : C;
            int is_matrix = k == QW || k == KW || k == VW || k == AOW || k == IW || k == OW;
            if (add_tensor(m, name, is_matrix ? 2 : 1, rows, is_matrix ? cols : 0) != 0)
                goto fail;
        }
    }
    *self = m;
    return 0;
fail:
    bert_destroy(m);
    return -1;
}

static void bert_info(void *self, runner_backbone_info *out)
{
    bert *m = self;
    *out = (runner_backbone_info){m->C, m->L, m->V, m->P};
}

/* ---- load ------------------------------------------------------------------------- */

static const st_tensor *find_tensor(const safetensors *st, const char *name)
{
    const st_tensor *t = st_find(st, name);
    char alt[160];
    if (!t) {
        snprintf(alt, sizeof alt, "bert.%s", name);
        t = st_find(st, alt);
    }
    if (!t && str_ends_with(name, "LayerNorm.weight")) { /* old TF-converted names */
        snprintf(alt, sizeof alt, "%.*sgamma", (int)(strlen(name) - 6), name);
        t = find_tensor(st, alt);
    } else if (!t && str_ends_with(name, "LayerNorm.bias")) {
        snprintf(alt, sizeof alt, "%.*sbeta", (int)(strlen(name) - 4), name);
        t = find_tensor(st, alt);
    }
    return t;
}

static int load_tensor(bert *m, const safetensors *st, tensor *t)
{
    const st_tensor *s = find_tensor(st, t->name);
    if (!s)
        return m->h->error(m->h, "%s: tensor %s is missing", st->path, t->name);
    int same = s->ndim == t->ndim;
    for (int d = 0; same && d < t->ndim; d++)
        same = s->shape[d] == t->shape[d];
    if (!same) {
        char got[96] = "", want[64];
        size_t used = 0;
        for (int d = 0; d < s->ndim && used < sizeof got; d++)
            used += (size_t)snprintf(got + used, sizeof got - used, "%s%lld", d ? "," : "",
                                     (long long)s->shape[d]);
        if (t->ndim == 2)
            snprintf(want, sizeof want, "%lld,%lld", (long long)t->shape[0], (long long)t->shape[1]);
        else
            snprintf(want, sizeof want, "%lld", (long long)t->shape[0]);
        return m->h->error(m->h, "%s: tensor %s has shape [%s], expected [%s] (from config.json)",
                           st->path, s->name, got, want);
    }
    if (strcmp(s->dtype, "F32") && strcmp(s->dtype, "F16") && strcmp(s->dtype, "BF16"))
        return m->h->error(m->h, "%s: tensor %s has dtype %s, expected F32, F16 or BF16",
                           st->path, s->name, s->dtype);
    int64_t i;
    if (st_to_f32_finite(st, s, t->data, &i) != 0)
        return m->h->error(m->h, "%s", err_get());
    st_release(st, s);
    if (i >= 0)
        return m->h->error(m->h, "%s: tensor %s: element %lld is %g: non-finite weights", st->path,
                           s->name, (long long)i, (double)t->data[i]);
    return 0;
}

static int is_known(bert *m, const char *name)
{
    if (strncmp(name, "bert.", 5) == 0)
        name += 5;
    for (int i = 0; i < m->nt; i++) {
        const char *n = m->t[i].name;
        size_t k = strlen(n);
        if (strcmp(name, n) == 0)
            return 1;
        /* LayerNorm.gamma / .beta stand for .weight / .bias */
        if (str_ends_with(n, "LayerNorm.weight") && strncmp(name, n, k - 6) == 0 &&
            strcmp(name + k - 6, "gamma") == 0)
            return 1;
        if (str_ends_with(n, "LayerNorm.bias") && strncmp(name, n, k - 4) == 0 &&
            strcmp(name + k - 4, "beta") == 0)
            return 1;
    }
    return 0;
}

static int bert_load(void *self)
{
    bert *m = self;
    if (m->random_init) {
        m->h->log(m->h, RUNNER_LOG_INFO, "random initialisation (std %g): %d layers x %d, %d heads, "
                  "intermediate %d", m->init_range, m->L, m->C, m->NH, m->FF);
        return 0;
    }
    char *marker = str_printf("%s/RANDOM_WEIGHTS", m->dir);
    if (marker && path_exists(marker))
        m->h->log(m->h, RUNNER_LOG_WARN, "%s holds the RANDOM-WEIGHT stand-in (see %s): embeddings and "
                  "scores mean nothing; run `make model` with network access for the real weights",
                  m->dir, marker);
    free(marker);
    safetensors st;
    char *path = str_printf("%s/model.safetensors", m->dir);
    if (!path)
        return m->h->error(m->h, "out of memory");
    if (st_open(&st, path) != 0) {
        free(path);
        return m->h->error(m->h, "%s", err_get());
    }
    free(path);
    int rc = -1;
    for (int i = 0; i < m->nt; i++)
        if (load_tensor(m, &st, &m->t[i]) != 0)
            goto done;
    int pooler = 0, other = 0, heads = 0;
    const char *example = NULL;
    for (int i = 0; i < st.n; i++) {
        const char *n = st.t[i].name;
        const char *base = strncmp(n, "bert.", 5) == 0 ? n + 5 : n;
        if (strcmp(base, "embeddings.position_ids") == 0 || is_known(m, n))
            continue;
        if (strncmp(base, "pooler.dense.", 13) == 0) {
            pooler++;
        } else if (strncmp(n, "heads.", 6) == 0 || strncmp(n, "combiner.", 9) == 0) {
            heads++; /* a runner checkpoint: its heads are loaded by the checkpoint, not here */
        } else {
            other++;
            example = example ? example : n;
        }
    }
    if (pooler)
        m->h->log(m->h, RUNNER_LOG_INFO, "skipping pooler.dense.* (%d tensors): the tanh pooler "
                  "is not used for sentence embeddings", pooler);
    if (heads)
        m->h->log(m->h, RUNNER_LOG_INFO, "%s is a runner checkpoint: %d task-head tensors left to it",
                  st.path, heads);
    if (other)
        m->h->log(m->h, RUNNER_LOG_WARN, "%s: %d tensors that a BERT encoder does not use are "
                  "ignored (e.g. %s)", st.path, other, example);
    for (int l = 0; l < m->L; l++) {
        const int64_t CC = (int64_t)m->C * m->C;
        if (lt(m, l, KW)->data != lt(m, l, QW)->data + CC || lt(m, l, VW)->data != lt(m, l, KW)->data + CC) {
            m->h->error(m->h, "internal: query/key/value weights of layer %d are not adjacent "
                        "in the parameter store", l);
            goto done;
        }
    }
    rc = 0;
done:
    st_close(&st);
    return rc;
}

/* ---- buffers ------------------------------------------------------------------------ */

/* *p = n floats (contents lost); huge: a block kept for long (an eval
 * forward's, allocated at the first, longest batch), in huge pages */
static int grow_in(bert *m, float **p, size_t n, int huge)
{
    mem_free(*p);
    size_t bytes = (n ? n : 1) * sizeof(float);
    *p = huge ? mem_alloc_huge(bytes) : mem_alloc(bytes);
    return *p ? 0 : m->h->error(m->h, "out of memory (%zu floats)", n);
}

static int grow(bert *m, float **p, size_t n) { return grow_in(m, p, n, 0); }

static int grow_raw(bert *m, void **p, size_t n, size_t size)
{
    free(*p);
    *p = malloc((n ? n : 1) * size);
    return *p ? 0 : m->h->error(m->h, "out of memory");
}

static void free_acts(bert *m)
{
    int sets = m->cap_train ? m->L + 1 : 1;
    for (int i = 0; m->a && i < sets; i++) {
        acts *a = &m->a[i];
        float **all[] = {&a->x, &a->qkv, &a->probs, &a->att, &a->r1, &a->mean1, &a->rstd1,
                         &a->h, &a->r2, &a->mean2, &a->rstd2};
        for (size_t k = 0; k < sizeof all / sizeof *all; k++) {
            mem_free(*all[k]);
            *all[k] = NULL;
        }
        if (m->cap_train) {
            mem_free(a->x1);
            mem_free(a->g);
        }
        a->x1 = a->g = NULL;
    }
}

/* Activation buffers for N tokens and nprobs attention probabilities. */
static int ensure_acts(bert *m, int train)
{
    size_t N = (size_t)m->N, C = (size_t)m->C, FF = (size_t)m->FF;
    int full = train || m->cap_train; /* probabilities and LayerNorm statistics kept */
    if (N <= m->cap_n && (!full || (size_t)m->nprobs <= m->cap_probs) && (!train || m->cap_train))
        return 0;
    free_acts(m);
    size_t n = N > m->cap_n ? N + N / 4 : m->cap_n;
    size_t np = (size_t)m->nprobs > m->cap_probs ? (size_t)m->nprobs + (size_t)m->nprobs / 4 : m->cap_probs;
    m->cap_n = m->cap_probs = 0;
    m->cap_train = 0;
    const int huge = !full; /* eval: kept from the first (longest) batch on */
#define G(p, count) grow_in(m, p, count, huge)
    free(m->a);
    m->a = calloc((size_t)m->L + 1, sizeof *m->a);
    if (!m->a)
        return m->h->error(m->h, "out of memory");
    if (G(&m->emb, n * C) || G(&m->emb_mean, n) || G(&m->emb_rstd, n))
        return -1;
    int sets = full ? m->L + 1 : 1;
    m->cap_train = full;
    for (int i = 0; i < sets; i++) {
        acts *a = &m->a[i];
        if (G(&a->x, n * C))
            return -1;
        if (i == m->L)
            break; /* the last set only holds the output */
        if (G(&a->qkv, 3 * n * C) || G(&a->att, n * C) || G(&a->r1, n * C) ||
            G(&a->h, n * FF) || G(&a->r2, n * C))
            return -1;
        if (full && (G(&a->probs, np) || G(&a->mean1, n) || G(&a->rstd1, n) ||
                     G(&a->x1, n * C) || G(&a->g, n * FF) ||
                     G(&a->mean2, n) || G(&a->rstd2, n)))
            return -1;
        if (!full) { /* eval: LayerNorm and GELU in place */
            a->x1 = a->r1;
            a->g = a->h;
        }
    }
#undef G
    m->cap_n = n;
    m->cap_probs = full ? np : 0;
    return 0;
}

/* Hidden-state outputs (B,T,C), dhidden when training, index arrays. */
static int ensure_batch(bert *m, int train)
{
    size_t B = (size_t)m->B, BT = (size_t)m->B * (size_t)m->T, C = (size_t)m->C;
    if (!m->hidden) {
        m->hidden = calloc((size_t)m->L + 1, sizeof *m->hidden);
        m->dhidden = calloc((size_t)m->L + 1, sizeof *m->dhidden);
        if (!m->hidden || !m->dhidden)
            return m->h->error(m->h, "out of memory");
    }
    if (BT > m->cap_bt || (train && !m->dhidden[0])) {
        size_t cap = BT > m->cap_bt ? BT + BT / 4 : m->cap_bt;
        int with_grad = train || m->dhidden[0];
        m->cap_bt = 0;
        for (int l = 0; l <= m->L; l++) {
            if (grow_in(m, &m->hidden[l], cap * C, !with_grad))
                return -1;
            if (with_grad && grow(m, &m->dhidden[l], cap * C))
                return -1;
        }
        if (grow_raw(m, (void **)&m->ids, cap, sizeof *m->ids) ||
            grow_raw(m, (void **)&m->pos, cap, sizeof *m->pos) ||
            grow_raw(m, (void **)&m->types, cap, sizeof *m->types) ||
            grow_raw(m, (void **)&m->rowmap, cap, sizeof *m->rowmap) ||
            grow_raw(m, (void **)&m->tkey, cap, sizeof *m->tkey))
            return -1;
        m->cap_bt = cap;
    }
    if (B + 1 > m->cap_b) {
        m->cap_b = 0;
        if (grow_raw(m, (void **)&m->off, B + 1, sizeof *m->off) ||
            grow_raw(m, (void **)&m->group, B + 1, sizeof *m->group) ||
            grow_raw(m, (void **)&m->poff, B + 1, sizeof *m->poff) ||
            grow_raw(m, (void **)&m->skey, B + 1, sizeof *m->skey))
            return -1;
        m->cap_b = B + 1;
    }
    return 0;
}

/* ---- forward ------------------------------------------------------------------------- */

/* Dropout seed of one site (layer, place) of this forward. */
static uint64_t site_seed(const bert *m, int layer, int site)
{
    return m->seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(4 * (layer + 1) + site + 1));
}

/* 1 in a run that only evaluates (ABI 1.6): the weights do not change */
static int eval_only(const bert *m) { return m->h->abi_minor >= 6 && m->h->eval_only(m->h); }

/* Once layer l's weight `kind` is packed in an eval-only run, its float32
 * values are given back (QW: the query, key and value tensors it spans). */
static int release_weight(bert *m, int l, int kind)
{
    const int qkv[3] = {QW, KW, VW};
    const int *k = kind == QW ? qkv : &kind;
    for (int i = 0; i < (kind == QW ? 3 : 1); i++)
        if (m->h->param_release(m->h, lt(m, l, k[i])->id) != 0)
            return -1;
    return 0;
}

/* One block for every layer's packed weights, in 2 MiB pages where the
 * kernel grants them: each layer's own block (under 1 MiB in bf16 and
 * int8) took 4 KiB pages, a page fault each, about 14 us on this project's
 * virtual Zen 5 (a bf16 load took about 4,000 of them). 0 when nothing
 * packs. */
static int pack_memory(bert *m)
{
    size_t total = 0;
    for (int i = 0; i < 4 * m->L; i++)
        total += (compute_linear_pack_size(m->lin[i]) + 63) & ~(size_t)63;
    if (!total)
        return 0;
    if (!(m->wpack = mem_alloc_huge(total)))
        return m->h->error(m->h, "out of memory for %zu bytes of packed weights", total);
    char *at = m->wpack;
    for (int i = 0; i < 4 * m->L; i++) {
        size_t n = compute_linear_pack_size(m->lin[i]);
        if (n && compute_linear_pack_memory(m->lin[i], at))
            return m->h->error(m->h, "%s", err_get());
        at += (n + 63) & ~(size_t)63;
    }
    return 0;
}

/* The matmuls, created at prepare (ABI 1.7) or the first forward, with
 * one info line naming oneDNN's kernels: float32 ones reading the weights
 * in place for every precision (training, and eval in f32 while a run
 * trains), and one per layer weight in eval, packed (bf16, int8, and f32
 * when the run only evaluates), packed again when stale (after a training
 * forward). In an eval-only run the packed weights are the only copy kept. */
static int ensure_linears(bert *m, int train)
{
    const int C = m->C, FF = m->FF;
    const int shape[5][2] = {{C, 3 * C}, {C, C}, {C, FF}, {FF, C}, {C, FF}};
    const int wk[4] = {QW, AOW, IW, OW};
    int fresh = !m->f32[0], fresh_lin = !m->lin;
    for (int w = 0; w < 5; w++)
        if (!m->f32[w] && compute_linear_create(&m->f32[w], lt(m, 0, wk[w % 4])->name, shape[w][0],
                                                shape[w][1], COMPUTE_F32,
                                                w == 2 ? COMPUTE_POST_GELU : COMPUTE_POST_NONE))
            return m->h->error(m->h, "%s", err_get());
    const int packed_eval = m->prec != COMPUTE_F32 || eval_only(m);
    if (!train && packed_eval) {
        if (!m->lin && !(m->lin = calloc((size_t)4 * m->L, sizeof *m->lin)))
            return m->h->error(m->h, "out of memory");
        for (int l = 0; l < m->L; l++)
            for (int w = 0; w < 4; w++) {
                compute_linear **p = &m->lin[4 * l + w];
                int post = (w == 2 ? COMPUTE_POST_GELU : COMPUTE_POST_NONE) | COMPUTE_PACKED;
                if (!*p && compute_linear_create(p, lt(m, l, wk[w])->name, shape[w][0], shape[w][1], m->prec, post))
                    return m->h->error(m->h, "%s", err_get());
            }
        if (!m->wpack && pack_memory(m))
            return -1;
        for (int l = 0; l < m->L; l++)
            for (int w = 0; w < 4; w++) {
                compute_linear **p = &m->lin[4 * l + w];
                if (m->wp_stale && compute_linear_pack(*p, lt(m, l, wk[w])->data))
                    return m->h->error(m->h, "%s", err_get());
                if (m->wp_stale && eval_only(m) && compute_linear_bytes(*p) > 0 && release_weight(m, l, wk[w]))
                    return -1;
            }
        m->wp_stale = 0;
    }
    /* once, at the first forward that uses the backbone's precision */
    if (packed_eval ? fresh_lin && m->lin : fresh) {
        compute_linear **k = packed_eval ? m->lin : m->f32;
        compute_precision runs = compute_linear_precision(k[0]);
        m->h->log(m->h, RUNNER_LOG_INFO, "precision %s%s%s on %s; kernels: QKV %s, FFN up "
                  "(+GELU) %s, FFN down %s; training f32 %s", compute_precision_name(m->prec),
                  runs != m->prec ? ", computed in " : "", runs != m->prec ?
                  compute_precision_name(runs) : "", compute_describe(), compute_linear_impl(k[0]),
                  compute_linear_impl(k[2]), compute_linear_impl(k[3]), compute_linear_impl(m->f32[4]));
    }
    return 0;
}

/* inputs and outputs of weight `which` (as in layer_linear) */
static void linear_dims(const bert *m, int which, int *in, int *out)
{
    const int C = m->C, FF = m->FF;
    const int shape[5][2] = {{C, 3 * C}, {C, C}, {C, FF}, {FF, C}, {C, FF}};
    *in = shape[which][0];
    *out = shape[which][1];
}

/* y (N,out) = x W^T + b for weight `which` of layer l (0 QKV, 1 attention
 * output, 2 intermediate with GELU fused, 3 output, 4 intermediate without
 * GELU): in eval the backbone's precision, in training (tp) float32, or
 * bfloat16 inputs with float32 sums when the trainer keeps a bf16 copy of
 * the weights (train.precision = "bf16") */
static int layer_linear(const bert *m, int l, int which, const tensor *W, const float *b,
                        float *y, const float *x, int N, int tp)
{
    if (tp && W->bf) {
        int in, out;
        linear_dims(m, which, &in, &out);
        return compute_linear_bf16_forward(y, x, W->bf, b, N, in, out);
    }
    const compute_linear *k = !tp && m->lin ? m->lin[4 * l + which] : m->f32[which];
    return compute_linear_forward(k, y, x, W->data, b, N);
}

/* One encoder layer over the rows of sentences [s0, s1): a->x -> out,
 * both (N,C) packed. Pointers are to row 0; the rows of the slice are
 * off[s0] .. off[s1]. scratch: attention scratch of the calling team. */
static int layer_forward(bert *m, int l, const acts *a, float *out, int train, int s0, int s1,
                         float *scratch, int f32_only)
{
    const int C = m->C, FF = m->FF, r0 = m->off[s0], N = m->off[s1] - r0;
    const int64_t o = (int64_t)r0 * C;
    float ph = train ? m->p_hidden : 0, pa = train ? m->p_attn : 0;
    float *x = a->x + o, *qkv = a->qkv + 3 * o, *att = a->att + o, *r1 = a->r1 + o;
    float *x1 = a->x1 + o, *h = a->h + (int64_t)r0 * FF, *g = a->g + (int64_t)r0 * FF;
    float *r2 = a->r2 + o, *y = out + o;
    float *mean1 = train ? a->mean1 : NULL, *rstd1 = train ? a->rstd1 : NULL;
    float *mean2 = train ? a->mean2 : NULL, *rstd2 = train ? a->rstd2 : NULL;
    const int tp = f32_only; /* a training forward: every GEMM in float32 */
    int rc = layer_linear(m, l, 0, lt(m, l, QW), m->bqkv + 3 * l * C, qkv, x, N, tp);  // (N,3C)
    attention_forward_keyed(a->att, train ? a->probs : NULL, a->qkv, m->off + s0, m->poff + s0,
                            s1 - s0, C, m->NH, pa, site_seed(m, l, 0), m->skey + s0, scratch);
    rc |= layer_linear(m, l, 1, lt(m, l, AOW), lt(m, l, AOB)->data, r1, att, N, tp);
    if (ph > 0)
        dropout_rows_forward(r1, r1, N, C, ph, site_seed(m, l, 1), m->tkey + r0);
    residual_layernorm_forward(x1, train ? r1 : NULL, mean1, rstd1, r1, x, lt(m, l, LN1W)->data,
                               lt(m, l, LN1B)->data, N, C, m->eps);
    if (!train && !tp && m->lin) { /* packed eval: up and down a block of rows at a time */
        rc |= compute_ffn_forward(m->lin[4 * l + 2], m->lin[4 * l + 3], r2, x1, lt(m, l, IB)->data,
                                  lt(m, l, OB)->data, g, N);                          // (N,C)
    } else {
        if (train) { /* h kept for backward */
            rc |= layer_linear(m, l, 4, lt(m, l, IW), lt(m, l, IB)->data, h, x1, N, tp);
            gelu_forward(g, h, (int64_t)N * FF);
        } else { /* GELU fused into the matmul */
            rc |= layer_linear(m, l, 2, lt(m, l, IW), lt(m, l, IB)->data, g, x1, N, tp); // (N,FF)
        }
        rc |= layer_linear(m, l, 3, lt(m, l, OW), lt(m, l, OB)->data, r2, g, N, tp); // (N,C)
    }
    if (ph > 0)
        dropout_rows_forward(r2, r2, N, C, ph, site_seed(m, l, 2), m->tkey + r0);
    residual_layernorm_forward(y, train ? r2 : NULL, mean2, rstd2, r2, x1, lt(m, l, LN2W)->data,
                               lt(m, l, LN2B)->data, N, C, m->eps);
    return rc;
}

static int lowest_trainable(bert *m);

/* dst (n floats) = src, or zeros when src is NULL, split between the
 * team's threads: a training step's buffers are megabytes each, and one
 * thread's memset left the other waiting */
static void team_fill(float *dst, const float *src, int64_t n)
{
#pragma omp parallel
    {
        int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
        int64_t lo = n * t / T, hi = n * (t + 1) / T;
        if (src)
            memcpy(dst + lo, src + lo, (size_t)(hi - lo) * sizeof *dst);
        else
            memset(dst + lo, 0, (size_t)(hi - lo) * sizeof *dst);
    }
}

/* packed rows of sentences [s0, s1) -> hidden (B,T,C), zero padding rows */
static void scatter(bert *m, float *dst, const float *src, int s0, int s1)
{
    const int C = m->C, T = m->T;
#pragma omp parallel for schedule(static)
    for (int b = s0; b < s1; b++) {
        int n = m->off[b + 1] - m->off[b], r = m->off[b];
        float *row0 = dst + (int64_t)b * T * C;
        if (n > 0 && m->rowmap[r + n - 1] == (int64_t)b * T + n - 1) { /* tokens first: one copy */
            memcpy(row0, src + (int64_t)r * C, (size_t)n * C * sizeof *src);
            memset(row0 + (int64_t)n * C, 0, (size_t)(T - n) * C * sizeof *dst);
            continue;
        }
        memset(row0, 0, (size_t)T * C * sizeof *dst);
        for (int i = 0; i < n; i++)
            memcpy(dst + m->rowmap[r + i] * C, src + (int64_t)(r + i) * C, (size_t)C * sizeof *src);
    }
}

/* Embeddings and every layer for sentences [s0, s1); in eval all layers
 * share the activation set a[0], in training each keeps its own; eval
 * writes only the hidden states from lowest_read up (with the mean pooler
 * the copies of the states below took 4-10 % of an int8 or bf16 encode
 * on a Zen 5, 0-1 % of f32). The
 * dropout rule: in training, the levels below the lowest trainable one
 * (lo: -1 embeddings, 0..L-1 layers) run exactly as in evaluation — no
 * dropout — so a frozen lower stack is a fixed, deterministic feature
 * extractor whose outputs do not depend on the step. */
static int forward_slice(bert *m, int train, int lo, int s0, int s1, float *scratch)
{
    const int C = m->C, r0 = m->off[s0], N = m->off[s1] - r0;
    const int64_t o = (int64_t)r0 * C;
    acts *a0 = &m->a[0];
    embeddings_forward(m->emb + o, m->ids + r0, m->pos + r0, m->types + r0, N, C,
                       m->t[WTE].data, m->t[WPE].data, m->t[WTT].data);             // (N,C)
    layernorm_forward(a0->x + o, train ? m->emb_mean : NULL, train ? m->emb_rstd : NULL,
                      m->emb + o, m->t[ELNW].data, m->t[ELNB].data, N, C, m->eps);
    if (train && lo < 0 && m->p_hidden > 0)
        dropout_rows_forward(a0->x + o, a0->x + o, N, C, m->p_hidden, site_seed(m, -1, 0),
                             m->tkey + r0);
    const int keep = train ? 0 : m->lowest_read; /* eval: the states below are not read */
    if (keep == 0)
        scatter(m, m->hidden[0], a0->x, s0, s1);
    int rc = 0;
    for (int l = 0; l < m->L && !rc; l++) {
        const acts *a = train ? &m->a[l] : a0;
        float *y = train ? m->a[l + 1].x : a0->x;
        rc = layer_forward(m, l, a, y, train && l >= lo, s0, s1, scratch, train);
        if (l + 1 >= keep)
            scatter(m, m->hidden[l + 1], y, s0, s1);
    }
    return rc;
}

/* Sentence groups of the eval forward: one per thread, contiguous runs of
 * sentences with about equal token counts. One large group per thread is
 * best: a GEMM streams its weights once per block of rows, so larger
 * groups read them fewer times, and sharing each operation between
 * threads costs a barrier after every kernel. Two groups per thread
 * balanced the threads on the AMX Xeon (int8 benchmark encode, 2 threads:
 * 0.57 s against 0.56-0.66 s for one), but measured on the Zen 5 after
 * the activations stopped being reallocated, one group per thread is
 * faster: int8 +2.4 % and +5.8 %, bf16 +2.7 % (medians of 7 alternating
 * runs), three groups 7 % slower. 0 when there are fewer than 2 sentences
 * per thread: then the kernels share each operation. */
static int make_groups(bert *m, int threads)
{
    if (threads < 2 || m->B < 2 * threads)
        return 0;
    const int groups = threads;
    m->group[0] = 0;
    for (int g = 1; g < groups; g++) {
        int64_t target = (int64_t)m->N * g / groups;
        int s = m->group[g - 1] + 1;
        while (s < m->B - (groups - g) && m->off[s] < target)
            s++;
        m->group[g] = s;
    }
    m->group[groups] = m->B;
    return groups;
}

/* Pack the batch's real tokens; checks ids, types and positions. */
static int pack(bert *m, const runner_batch *b)
{
    int N = 0, maxlen = 0;
    for (int s = 0; s < b->B; s++) {
        m->off[s] = N;
        m->skey[s] = (uint64_t)(b->row0 + s);
        for (int t = 0; t < b->T; t++) {
            int64_t k = (int64_t)s * b->T + t;
            if (!b->mask[k])
                continue;
            int32_t id = b->ids[k], ty = b->type_ids ? b->type_ids[k] : 0;
            if (id < 0 || id >= m->V)
                return m->h->error(m->h, "batch row %d, token %d: id %d is outside the "
                                   "vocabulary (0..%d)", s, t, id, m->V - 1);
            if (ty < 0 || ty >= m->TV)
                return m->h->error(m->h, "batch row %d, token %d: token type %d is outside "
                                   "0..%d", s, t, ty, m->TV - 1);
            if (t >= m->P)
                return m->h->error(m->h, "batch row %d: token %d is past max_position_embeddings "
                                   "(%d)", s, t, m->P);
            m->ids[N] = id;
            m->types[N] = ty;
            m->pos[N] = t;
            m->rowmap[N] = k;
            m->tkey[N] = dropout_key(b->row0 + s, t);
            N++;
        }
        if (N - m->off[s] > maxlen)
            maxlen = N - m->off[s];
    }
    m->off[b->B] = N;
    m->N = N;
    m->nprobs = attention_probs_size(m->off, b->B, m->NH, m->poff);
    size_t need = (size_t)attention_scratch(b->T, m->C, m->NH) * (size_t)omp_get_max_threads();
    if (need > m->cap_scratch) {
        m->cap_scratch = 0;
        if (grow(m, &m->scratch, need))
            return -1;
        m->cap_scratch = need;
    }
    return 0;
}

static int bert_forward(void *self, const runner_batch *b, int train, const runner_states **out)
{
    bert *m = self;
    if (b->B < 1 || b->T < 1)
        return m->h->error(m->h, "empty batch (%d x %d)", b->B, b->T);
    m->B = b->B;
    m->T = b->T;
    const int lowest = train || m->h->abi_minor < 7 ? 0 : b->lowest_read;
    m->lowest_read = lowest < 0 ? 0 : lowest > m->L ? m->L : lowest;
    if (ensure_batch(m, train) || pack(m, b) || ensure_acts(m, train))
        return -1;
    const int C = m->C;
    m->trained = train;
    m->seed = train ? m->h->rng_u64(m->h) : 0;
    for (int l = 0; l < m->L; l++)
        for (int k = 0; k < 3; k++)
            memcpy(m->bqkv + (3 * l + k) * C, lt(m, l, QB + k)->data, (size_t)C * sizeof(float));
    int threads = omp_get_max_threads();
    int groups = train ? 0 : make_groups(m, threads);
    if (train)
        m->wp_stale = 1;
    /* bf16 training: the trainer's bfloat16 copies of the weights */
    const int bf = train && m->h->abi_minor >= 5 && m->h->param_bf16;
    for (int i = 0; i < m->nt; i++)
        m->t[i].bf = bf && m->t[i].ndim == 2 ? m->h->param_bf16(m->h, m->t[i].id) : NULL;
    if (ensure_linears(m, train))
        return -1;
    int rc = 0;
    if (groups) {
        /* independent groups of sentences, one thread each, through all
         * layers: no barrier between operations, single-threaded GEMMs */
        int64_t per = attention_scratch(m->T, C, m->NH);
#pragma omp parallel for schedule(dynamic, 1) reduction(| : rc)
        for (int g = 0; g < groups; g++) {
            int tid = omp_get_thread_num();
            rc |= forward_slice(m, 0, m->L, m->group[g], m->group[g + 1], m->scratch + per * tid);
        }
    } else {
        rc = forward_slice(m, train, train ? lowest_trainable(m) : m->L, 0, m->B, m->scratch);
    }
    if (rc)
        return m->h->error(m->h, "forward: %s", err_get());
    if (train)
        for (int l = 0; l <= m->L; l++)
            team_fill(m->dhidden[l], NULL, (int64_t)m->B * m->T * C);
    m->states = (runner_states){m->L, m->B, m->T, C, m->hidden, train ? m->dhidden : NULL};
    *out = &m->states;
    return 0;
}

/* ---- backward ------------------------------------------------------------------------ */

static int trainable(bert *m, const tensor *t) { return m->h->param_trainable(m->h, t->id); }
static float *grad_of(bert *m, const tensor *t) { return trainable(m, t) ? t->grad : NULL; }

/* Lowest level with a trainable tensor: -1 embeddings, 0..L-1 layers, L none. */
static int lowest_trainable(bert *m)
{
    for (int i = 0; i < NET; i++)
        if (trainable(m, &m->t[i]))
            return -1;
    for (int l = 0; l < m->L; l++)
        for (int k = 0; k < NLT; k++)
            if (trainable(m, lt(m, l, k)))
                return l;
    return m->L;
}

/* packed dx (N,C) += rows of dhidden (B,T,C) */
static void gather_add(bert *m, float *dx, const float *dh)
{
    const int C = m->C;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < m->N; r++) {
        const float *src = dh + m->rowmap[r] * C;
        float *d = dx + (int64_t)r * C;
#pragma omp simd
        for (int c = 0; c < C; c++)
            d[c] += src[c];
    }
}

/* backward of y = x W^T + b with weight `which` (see layer_linear): the
 * bfloat16 GEMMs when the forward ran them */
static int linear_back(bert *m, int which, float *dx, float *dW, float *db, const float *dy,
                       const float *x, const tensor *W)
{
    int in, out;
    linear_dims(m, which, &in, &out);
    if (W->bf)
        return compute_linear_bf16_backward(dx, dW, db, dy, x, W->bf, m->N, in, out);
    linear_backward(dx, dW, db, dy, x, W->data, m->N, in, out);
    return 0;
}

/* dy (N,C): gradient of layer l's output (used as scratch). want_dx:
 * also the gradient of its input, written (not added) into m->gx. */
static int layer_backward(bert *m, int l, float *dy, int want_dx)
{
    const int N = m->N, C = m->C, FF = m->FF;
    const int64_t NC = (int64_t)N * C;
    acts *a = &m->a[l];
    /* out = LN2(r2), r2 = drop(g Wo2 + bo2) + x1 */
    team_fill(m->gr, NULL, NC);
    layernorm_backward(m->gr, grad_of(m, lt(m, l, LN2W)), grad_of(m, lt(m, l, LN2B)), dy, a->r2,
                       lt(m, l, LN2W)->data, a->mean2, a->rstd2, N, C);
    team_fill(m->gx1, m->gr, NC);
    if (m->p_hidden > 0) {
        /* the backward of dropout is the forward's mask on the gradient: in place */
        dropout_rows_forward(m->gr, m->gr, N, C, m->p_hidden, site_seed(m, l, 2), m->tkey);
    }
    team_fill(m->gg, NULL, (int64_t)N * FF);
    int rc = linear_back(m, 3, m->gg, grad_of(m, lt(m, l, OW)), grad_of(m, lt(m, l, OB)), m->gr,
                         a->g, lt(m, l, OW));
    team_fill(m->gh, NULL, (int64_t)N * FF);
    gelu_backward(m->gh, a->h, m->gg, (int64_t)N * FF);
    rc = rc ? rc : linear_back(m, 4, m->gx1, grad_of(m, lt(m, l, IW)), grad_of(m, lt(m, l, IB)),
                               m->gh, a->x1, lt(m, l, IW));
    /* x1 = LN1(r1), r1 = drop(att Wo + bo) + x */
    team_fill(m->gr, NULL, NC);
    layernorm_backward(m->gr, grad_of(m, lt(m, l, LN1W)), grad_of(m, lt(m, l, LN1B)), m->gx1,
                       a->r1, lt(m, l, LN1W)->data, a->mean1, a->rstd1, N, C);
    if (want_dx)
        team_fill(m->gx, m->gr, NC);
    if (m->p_hidden > 0) {
        /* the backward of dropout is the forward's mask on the gradient: in place */
        dropout_rows_forward(m->gr, m->gr, N, C, m->p_hidden, site_seed(m, l, 1), m->tkey);
    }
    team_fill(m->gatt, NULL, NC);
    rc = rc ? rc : linear_back(m, 1, m->gatt, grad_of(m, lt(m, l, AOW)), grad_of(m, lt(m, l, AOB)),
                               m->gr, a->att, lt(m, l, AOW));
    team_fill(m->gqkv, NULL, NC * 3);
    attention_backward_keyed(m->gqkv, m->gatt, a->qkv, a->probs, m->off, m->poff, m->B, C, m->NH,
                             m->p_attn, site_seed(m, l, 0), m->skey, m->scratch);
    /* fused q/k/v: their gradients are adjacent in the store like their values */
    int any_w = trainable(m, lt(m, l, QW)) || trainable(m, lt(m, l, KW)) || trainable(m, lt(m, l, VW));
    int any_b = trainable(m, lt(m, l, QB)) || trainable(m, lt(m, l, KB)) || trainable(m, lt(m, l, VB));
    memset(m->dbqkv, 0, 3 * (size_t)C * sizeof(float));
    rc = rc ? rc : linear_back(m, 0, want_dx ? m->gx : NULL, any_w ? lt(m, l, QW)->grad : NULL,
                               any_b ? m->dbqkv : NULL, m->gqkv, a->x, lt(m, l, QW));
    for (int k = 0; k < 3; k++) {
        float *db = grad_of(m, lt(m, l, QB + k));
        for (int c = 0; db && c < C; c++)
            db[c] += m->dbqkv[k * C + c];
    }
    return rc;
}

static int ensure_grads(bert *m)
{
    size_t n = m->cap_n, C = (size_t)m->C, FF = (size_t)m->FF;
    if (m->cap_grad >= n)
        return 0;
    m->cap_grad = 0;
    if (grow(m, &m->gx, n * C) || grow(m, &m->gy, n * C) || grow(m, &m->gr, n * C) || grow(m, &m->gx1, n * C) ||
        grow(m, &m->gatt, n * C) || grow(m, &m->gqkv, 3 * n * C) || grow(m, &m->gh, n * FF) ||
        grow(m, &m->gg, n * FF))
        return -1;
    m->cap_grad = n;
    return 0;
}

static int bert_backward(void *self, const runner_batch *b)
{
    bert *m = self;
    (void)b;
    if (!m->trained)
        return m->h->error(m->h, "backward without a training forward before it");
    int lo = lowest_trainable(m);
    if (lo >= m->L)
        return 0;
    if (ensure_grads(m))
        return -1;
    const int N = m->N, C = m->C;
    const int64_t NC = (int64_t)N * C;
    /* gx: gradient of the current layer's output, then of its input */
    team_fill(m->gx, NULL, NC);
    gather_add(m, m->gx, m->dhidden[m->L]);
    for (int l = m->L - 1; l >= (lo < 0 ? 0 : lo); l--) {
        team_fill(m->gy, m->gx, NC);
        if (layer_backward(m, l, m->gy, l > lo) != 0)
            return m->h->error(m->h, "backward of layer %d: %s", l, err_get());
        if (l > lo)
            gather_add(m, m->gx, m->dhidden[l]);
    }
    if (lo < 0) { /* x0 = drop(LN(emb)) */
        team_fill(m->gr, NULL, NC);
        if (m->p_hidden > 0)
            dropout_rows_backward(m->gr, m->gx, N, C, m->p_hidden, site_seed(m, -1, 0), m->tkey);
        else
            team_fill(m->gr, m->gx, NC);
        team_fill(m->gx1, NULL, NC);
        layernorm_backward(m->gx1, grad_of(m, &m->t[ELNW]), grad_of(m, &m->t[ELNB]), m->gr, m->emb,
                           m->t[ELNW].data, m->emb_mean, m->emb_rstd, N, C);
        embeddings_backward(grad_of(m, &m->t[WTE]), grad_of(m, &m->t[WPE]), grad_of(m, &m->t[WTT]),
                            m->gx1, m->ids, m->pos, m->types, N, C);
    }
    return 0;
}

/* ---- save ---------------------------------------------------------------------------- */

struct json_out { json_t *j; };

static int write_json(FILE *f, void *ctx)
{
    struct json_out *o = ctx;
    if (json_dumpf(o->j, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9)) != 0 || fputc('\n', f) == EOF)
        return err_set("write error");
    return 0;
}

/* config.json as read (HF keys and values), into dir (created) */
static int bert_save_config(void *self, const char *dir)
{
    bert *m = self;
    char *path = str_printf("%s/config.json", dir);
    struct json_out jo = {m->config};
    int rc = !path ? m->h->error(m->h, "out of memory")
             : dir_make(dir) != 0 || file_write_atomic_with(path, write_json, &jo) != 0
                 ? m->h->error(m->h, "%s", err_get())
                 : 0;
    free(path);
    return rc;
}

/* model.safetensors under Hugging Face's names, and config.json */
static int bert_save(void *self, const char *dir)
{
    bert *m = self;
    st_out *out = calloc((size_t)m->nt, sizeof *out);
    char *path = str_printf("%s/model.safetensors", dir);
    int rc = -1;
    if (!out || !path) {
        m->h->error(m->h, "out of memory");
        goto done;
    }
    if (bert_save_config(self, dir) != 0)
        goto done;
    for (int i = 0; i < m->nt; i++) {
        const tensor *t = &m->t[i];
        out[i] = (st_out){t->name, t->ndim, {t->shape[0], t->shape[1]}, t->data};
    }
    const char *meta[] = {"format", "pt"};
    if (st_write(path, out, m->nt, meta, 1) != 0) {
        m->h->error(m->h, "%s", err_get());
        goto done;
    }
    rc = 0;
done:
    free(out);
    free(path);
    return rc;
}

static const runner_key keys[] = {
    {"model", RUNNER_T_STRING, NULL,
     "Hugging Face model folder (config.json, model.safetensors); unset: the pipeline's `model`"},
    {"init", RUNNER_T_STRING, "\"pretrained\"",
     "\"pretrained\": weights from model.safetensors; \"random\": BERT's initialisation from the "
     "run's seed (config.json gives the architecture, no weights file needed)", "pretrained|random"},
    {"hidden_size", RUNNER_T_INT, NULL, "override config.json's hidden_size (for a model of another size)", "[1, 1048576]"},
    {"num_hidden_layers", RUNNER_T_INT, NULL, "override config.json's num_hidden_layers", "[1, 1048576]"},
    {"num_attention_heads", RUNNER_T_INT, NULL, "override config.json's num_attention_heads", "[1, 1048576]"},
    {"intermediate_size", RUNNER_T_INT, NULL, "override config.json's intermediate_size", "[1, 1048576]"},
    {"max_position_embeddings", RUNNER_T_INT, NULL, "override config.json's max_position_embeddings", "[1, 1048576]"},
    {"precision", RUNNER_T_STRING, "\"f32\"",
     "eval GEMMs on oneDNN (kernels picked from the CPU's features, named in an info line): "
     "\"f32\"; \"bf16\": bfloat16 weights packed once, bfloat16 activations, float32 sums "
     "(native on AVX512_BF16 or AMX, emulated on older AVX-512); \"int8\": dynamic "
     "quantization like ONNX Runtime's, per-channel symmetric int8 weights quantized at load, "
     "uint8 activations with a scale and zero point per row (VNNI or AMX when present). "
     "In runs that only evaluate (embed, sts, predict) every precision packs the weights once "
     "and keeps only that copy. Training: train.precision",
     "f32|bf16|int8"},
    {"hidden_dropout", RUNNER_T_FLOAT, NULL,
     "dropout after embeddings and each sub-layer when training; unset: config.json's "
     "hidden_dropout_prob", "[0, 1)"},
    {"attention_dropout", RUNNER_T_FLOAT, NULL,
     "dropout on attention probabilities when training; unset: config.json's "
     "attention_probs_dropout_prob", "[0, 1)"},
    {0},
};

/* Layer group g, bottom to top: the embeddings, then encoder.layer.N. */
static int bert_group(void *self, int g, char *buf, size_t size)
{
    bert *m = self;
    if (g < 0 || g > m->L)
        return -1;
    if (g == 0)
        snprintf(buf, size, "embeddings.*");
    else
        snprintf(buf, size, "encoder.layer.%d.*", g - 1);
    return 0;
}

/* ABI 1.7: the eval kernels and packed weights now, not at the first batch */
static int bert_prepare(void *self) { return ensure_linears(self, 0); }

static const runner_backbone_ops ops = {
    .info = bert_info,
    .load = bert_load,
    .forward = bert_forward,
    .backward = bert_backward,
    .save = bert_save,
    .save_config = bert_save_config,
    .group = bert_group,
    .prepare = bert_prepare,
};

RUNNER_DEFINE_PLUGIN(backbone, bert,
    "BERT encoder from a Hugging Face folder (safetensors), every layer's states exposed",
    keys, bert_create, bert_destroy, &ops)
