/* hostile.c — hostile input (issue 12), each defect with a test that failed
 * before its fix: whole-program runs for the header-only TSV, a NUL byte
 * in a label, two runs on one results folder, a trainer state with bad
 * indices / RNG words / sizes, model dimensions, NaN weights and
 * tokenizer/model mismatches; unit tests for file_read on a folder, .npy
 * and safetensors shapes, a failed checkpoint write, GSL errors, the
 * loader's name and ELF checks and linear parameter registration. */
#include <errno.h>
#include <fcntl.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "checkpoint.h"
#include "gslerr.h"
#include "loader.h"
#include "params.h"
#include "run.h"
#include "runner/kit/npy.h"
#include "runner/kit/safetensors.h"
#include "runner/kit/util.h"
#include "tap.h"

#define TINY "tests/goldens/tiny-bert"

static char dir[] = "/tmp/runner-hostile-XXXXXX";
static char err_text[8192];

static int write_bytes(const char *path, const void *data, size_t len)
{
    return file_write_atomic(path, data, len);
}

static int write_text(const char *path, const char *text) { return write_bytes(path, text, strlen(text)); }

static char *in_dir(const char *name) { return str_printf("%s/%s", dir, name); }

/* The runner with args (a shell word list built here from safe strings);
 * stderr into err_text. Returns the exit status, or 128 + signal. */
static int runner(const char *args)
{
    char *errp = in_dir("stderr");
    char *cmd = str_printf("%s/runner --quiet --threads 1 %s >/dev/null 2>%s", RUNNER_BUILD_DIR, args, errp);
    int st = system(cmd);
    char *e = NULL;
    size_t n = 0;
    err_text[0] = 0;
    if (file_read(errp, &e, &n) == 0)
        snprintf(err_text, sizeof err_text, "%s", e);
    free(e);
    free(cmd);
    free(errp);
    return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
}

static void runner_says(int got, int want, const char *needle, const char *what)
{
    int good = got == want && strstr(err_text, needle) && !strstr(err_text, "Sanitizer");
    ok(good, "%s: exit %d naming \"%s\"", what, want, needle);
    if (!good)
        diag("exit %d, stderr: %s", got, err_text);
}

/* A training pipeline on the tiny model (vocab 64, 32 positions). */
static char *train_cfg(const char *name, const char *data, const char *extra)
{
    char cwd[1024];
    if (!getcwd(cwd, sizeof cwd))
        return NULL;
    char *text = str_printf(
        "name = \"%s\";\nrun = \"train\";\nmodel = \"%s/" TINY "\";\n"
        "tokenizer = { plugin = \"wordpiece\"; max_len = 16; };\n"
        "backbone = { plugin = \"bert\"; };\npooler = { plugin = \"mean\"; };\n"
        "tasks = ( { name = \"s\";\n"
        "  dataset = { plugin = \"tsv\"; path = \"%s\"; dev_ratio = 0.25;\n"
        "              text_field = \"sentence\"; label_field = \"label\"; labels = [\"neg\", \"pos\"]; };\n"
        "  head = { plugin = \"linear\"; }; loss = { plugin = \"cross_entropy\"; }; metrics = [\"accuracy\"]; } );\n"
        "freeze = { plugin = \"none\"; };\n"
        "train = { batch = 4; epochs = 2; lr = 1e-3; warmup = 0.0; schedule = \"constant\"; log_every = 100; %s };\n",
        name, cwd, data, extra);
    char *path = str_printf("%s/%s.cfg", dir, name);
    write_text(path, text);
    free(text);
    return path;
}

static const char *rows16 =
    "sentence\tlabel\n"
    "a good film\tpos\nthe worst\tneg\nfine fun\tpos\nbad bad\tneg\n"
    "good good\tpos\nawful\tneg\nnice one\tpos\ndull\tneg\n"
    "great cast\tpos\nboring\tneg\nlovely\tpos\nugly plot\tneg\n"
    "warm\tpos\ncold\tneg\nbright\tpos\ngrim\tneg\n";

/* ---- 3. a header-only TSV: a clear error, not SIGABRT from GSL ----------------------- */

static void header_only_tsv(void)
{
    char *data = in_dir("header.tsv");
    write_text(data, "sentence\tlabel\n");
    char *cfg = train_cfg("header", data, "");
    char *args = str_printf("%s --out %s/header", cfg, dir);
    runner_says(runner(args), 1, "has no examples", "header-only TSV");
    ok(strstr(err_text, "header.tsv") != NULL, "header-only TSV: the file is named");
    free(args);
    free(cfg);
    free(data);

    gsl_errors_return();
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    err_clear();
    unsigned long x = gsl_rng_uniform_int(r, 0); /* GSL's default handler: abort() */
    ok(x == 0 && strstr(err_get(), "GSL"), "a GSL error is returned and recorded, not an abort (%s)", err_get());
    gsl_rng_free(r);
}

/* ---- 4. a label holding a NUL byte: no out-of-bounds read ----------------------------- */

static size_t fnv(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return (size_t)h;
}

static void nul_label(void)
{
    /* "pos\0<k>" hashing to the slot of "pos" (64 slots): strtab_find compares
     * the two and, before the fix, read "pos"'s copy past its end */
    char label[16] = "pos";
    size_t n = 0;
    for (int k = 0; k < 100000 && !n; k++) {
        int len = snprintf(label + 4, sizeof label - 4, "%d", k);
        if ((fnv(label, 4 + (size_t)len) & 63) == (fnv("pos", 3) & 63))
            n = 4 + (size_t)len;
    }
    ok(n > 0, "NUL label: a colliding label was found");
    char buf[1024];
    size_t at = 0;
    at += (size_t)snprintf(buf, sizeof buf, "sentence\tlabel\na good film\tpos\nbad\tneg\nfine\tpos\nugly\tneg\nnice\t");
    memcpy(buf + at, label, n);
    at += n;
    at += (size_t)snprintf(buf + at, sizeof buf - at, "\nwarm\tpos\ncold\tneg\nlovely\tpos\ngrim\tneg\n");
    char *data = in_dir("nul.tsv");
    write_bytes(data, buf, at);
    char *cfg = train_cfg("nul", data, "");
    char *args = str_printf("%s --out %s/nul", cfg, dir);
    int st = runner(args);
    ok((st == 0 || st == 1) && !strstr(err_text, "Sanitizer"), "NUL byte in a label: a clean exit (%d)", st);
    if (st > 1 || strstr(err_text, "Sanitizer"))
        diag("%s", err_text);
    free(args);
    free(cfg);
    free(data);
}

/* ---- 6. two runs on one results folder ------------------------------------------------ */

static void concurrent_runs(void)
{
    char *data = in_dir("rows.tsv");
    write_text(data, rows16);
    char *cfg = train_cfg("lock", data, "");
    char *out = in_dir("locked");
    char *lock = str_printf("%s/%s", out, RUN_LOCK_FILE);
    dir_make(out);
    int fd = open(lock, O_RDWR | O_CREAT, 0666);
    ok(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0, "lock: this test holds the folder as a first run would");
    if (fd >= 0 && pwrite(fd, "4242\n", 5, 0) != 5)
        diag("pwrite: %s", strerror(errno));
    char *args = str_printf("%s --out %s", cfg, out);
    runner_says(runner(args), 1, "is in use by another run (pid 4242)", "second run on the same --out");
    char *cc = str_printf("%s/config.cfg", out);
    ok(!path_exists(cc), "second run: it wrote nothing into the folder (no config.cfg)");
    if (fd >= 0)
        close(fd);
    is(runner(args), 0, "the folder released: the next run proceeds");
    ok(path_exists(cc), "that run wrote its config.cfg");
    free(cc);
    free(args);
    free(lock);
    free(out);
    free(cfg);
    free(data);
}

/* ---- 5. trainer state with a valid CRC but bad content -------------------------------- */

static int rewrite_state(const char *path, size_t at, const void *val, size_t n, uint64_t raw_override)
{
    char *d = NULL;
    size_t len = 0;
    if (file_read(path, &d, &len) != 0 || len < 32)
        return -1;
    uint64_t raw, packed;
    memcpy(&raw, d + 16, 8);
    memcpy(&packed, d + 24, 8);
    uint8_t *s = malloc(raw);
    uLongf out = (uLongf)raw;
    if (!s || uncompress(s, &out, (Bytef *)d + 32, (uLong)packed) != Z_OK || at + n > raw)
        return -1;
    memcpy(s + at, val, n);
    uLongf clen = compressBound((uLong)raw);
    uint8_t *z = malloc(32 + clen);
    compress2(z + 32, &clen, s, (uLong)raw, 1);
    uint32_t crc = (uint32_t)crc32(0L, s, (uInt)raw);
    uint64_t packed2 = clen, raw2 = raw_override ? raw_override : raw;
    memcpy(z, d, 12);
    memcpy(z + 12, &crc, 4);
    memcpy(z + 16, &raw2, 8);
    memcpy(z + 24, &packed2, 8);
    int rc = write_bytes(path, z, 32 + clen);
    free(z);
    free(s);
    free(d);
    return rc;
}

static void bad_state(void)
{
    char *data = in_dir("rows.tsv");
    write_text(data, rows16);
    char *cfg = train_cfg("state", data, "stop_after = 2; eval_every = 2;");
    char *args = str_printf("%s --out %s/part", cfg, dir);
    is(runner(args), 0, "state: a run interrupted after step 2 leaves last/");
    free(args);
    char *orig = str_printf("%s/part/last/trainer_state.bin", dir), *keep = NULL;
    size_t keep_len = 0;
    ok(file_read(orig, &keep, &keep_len) == 0, "state: trainer_state.bin is there");
    char *cfg2 = train_cfg("resume", data, "eval_every = 2;");
    /* layout (state.c): step, opt.t, best, best_step (8 bytes each), bad_evals, evals,
     * rng_size (4 each), the RNG (mt19937: 624 words + index), ntasks, then per task n,
     * cursor (8), passes, order[n] */
    uint32_t rng_size = 0;
    {
        char *d = NULL;
        size_t len;
        file_read(orig, &d, &len);
        uint64_t raw, packed;
        memcpy(&raw, d + 16, 8);
        memcpy(&packed, d + 24, 8);
        uint8_t *s = malloc(raw);
        uLongf o = (uLongf)raw;
        if (s && uncompress(s, &o, (Bytef *)d + 32, (uLong)packed) == Z_OK)
            memcpy(&rng_size, s + 40, 4);
        free(s);
        free(d);
    }
    ok(rng_size > 2500, "state: the RNG state is %u bytes", rng_size);
    size_t task0 = 44 + rng_size + 4, order0 = task0 + 4 + 8 + 4;
    struct { const char *what; size_t at; int64_t val; size_t n; uint64_t raw; const char *needle; } cases[] = {
        {"row index out of range", order0, 1000000, 4, 0, "is not a permutation"},
        {"cursor out of range", task0 + 4, (int64_t)1 << 40, 8, 0, "at row"},
        {"RNG word above 32 bits", 44 + 8, (int64_t)0x7fffffffffff, 8, 0, "above 32 bits"},
        {"16 GiB asked by the header", 0, 0, 8, (uint64_t)16 << 30, "bytes inflate from"},
        {"negative step", 0, -5, 8, 0, "corrupted trainer state: step -5"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_bytes(orig, keep, keep_len);
        int64_t v = cases[i].val;
        if (cases[i].raw) {
            int64_t step = 2;
            rewrite_state(orig, 0, &step, 8, cases[i].raw);
        } else if (rewrite_state(orig, cases[i].at, &v, cases[i].n, 0) != 0) {
            ok(0, "state: cannot rewrite the state for %s", cases[i].what);
            continue;
        }
        char *a = str_printf("%s --out %s/resumed%zu --resume %s/part/last", cfg2, dir, i, dir);
        char what[128];
        snprintf(what, sizeof what, "--resume, %s", cases[i].what);
        runner_says(runner(a), 1, cases[i].needle, what);
        free(a);
    }
    write_bytes(orig, keep, keep_len);
    char *a = str_printf("%s --out %s/resumed_ok --resume %s/part/last", cfg2, dir, dir);
    is(runner(a), 0, "--resume of the untouched state still works");
    free(a);
    free(keep);
    free(orig);
    free(cfg2);
    free(cfg);
    free(data);
}

/* ---- 7. model limits, NaN weights, tokenizer/model mismatches ------------------------- */

static char *tiny_copy(const char *name, const char *config_from, const char *config_to)
{
    static const char *const files[] = {"config.json", "model.safetensors", "vocab.txt"};
    char *to_dir = in_dir(name);
    dir_make(to_dir);
    for (int i = 0; i < 3; i++) {
        char *from = str_printf(TINY "/%s", files[i]), *to = str_printf("%s/%s", to_dir, files[i]);
        char *d = NULL;
        size_t n = 0;
        if (file_read(from, &d, &n) == 0) {
            char *p = i == 0 && config_from ? strstr(d, config_from) : NULL;
            if (p) {
                char *e = str_printf("%.*s%s%s", (int)(p - d), d, config_to, p + strlen(config_from));
                free(d);
                d = e;
                n = strlen(e);
            }
            write_bytes(to, d, n);
        }
        free(d);
        free(from);
        free(to);
    }
    return to_dir;
}

static char *embed_args(const char *model, const char *extra)
{
    char *input = in_dir("input.txt");
    write_text(input, "a sentence\nanother one\n");
    char *cfg = str_printf("%s/embed.cfg", dir);
    char *text = str_printf("name = \"e\";\nrun = \"embed\";\nmodel = \"%s\";\ninput = \"%s\";\n"
                            "tokenizer = { plugin = \"wordpiece\"; max_len = 16; };\n"
                            "backbone = { plugin = \"bert\"; };\npooler = { plugin = \"mean\"; };\n",
                            model, input);
    write_text(cfg, text);
    char *args = str_printf("%s --out %s/embed_out %s", cfg, dir, extra);
    free(text);
    free(cfg);
    free(input);
    return args;
}

static void model_limits(void)
{
    char *m = tiny_copy("layers", "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 134217728");
    char *a = embed_args(m, "");
    runner_says(runner(a), 1, "config.json: key num_hidden_layers: 134217728 is above", "2^27 layers");
    free(a);
    free(m);
    m = tiny_copy("vocab", "\"vocab_size\": 64", "\"vocab_size\": 9000000000");
    a = embed_args(m, "");
    runner_says(runner(a), 1, "key vocab_size", "a vocabulary of 9e9");
    free(a);
    free(m);

    /* NaN in one weight */
    m = tiny_copy("nan", NULL, NULL);
    char *st_path = str_printf("%s/model.safetensors", m);
    safetensors st;
    long off = -1;
    if (st_open(&st, st_path) == 0) {
        const st_tensor *t = st_find(&st, "encoder.layer.1.output.dense.weight");
        if (t)
            off = (long)(t->data - st.map) + 4 * 5;
        st_close(&st);
    }
    FILE *f = fopen(st_path, "r+b");
    float nan = NAN;
    ok(off > 0 && f && fseek(f, off, SEEK_SET) == 0 && fwrite(&nan, 4, 1, f) == 1, "NaN written into a weight");
    if (f)
        fclose(f);
    a = embed_args(m, "");
    runner_says(runner(a), 1, "tensor encoder.layer.1.output.dense.weight: element 5 is nan", "NaN weight");
    free(a);
    free(st_path);
    free(m);

    /* finite weights whose products overflow: a run-time warning naming the sentence and the
     * first state that went wrong; in layer 0 too, whose state the mean pooler does not read
     * (the batch runs again with every state kept, ABI 1.7 lowest_read) */
    static const char *const over_w[2] = {"encoder.layer.1.output.dense.weight",
                                          "encoder.layer.0.output.dense.weight"};
    static const char *const over_say[2] = {
        "input sentence 1 (counting from 1): non-finite values (NaN or infinity) from layer 2 on",
        "input sentence 1 (counting from 1): non-finite values (NaN or infinity) from layer 1 on"};
    for (int w = 0; w < 2; w++) {
        m = tiny_copy(w ? "overflow0" : "overflow", NULL, NULL);
        st_path = str_printf("%s/model.safetensors", m);
        off = -1;
        if (st_open(&st, st_path) == 0) {
            const st_tensor *t = st_find(&st, over_w[w]);
            if (t)
                off = (long)(t->data - st.map);
            st_close(&st);
        }
        f = fopen(st_path, "r+b");
        int wrote = off > 0 && f && fseek(f, off, SEEK_SET) == 0;
        for (int i = 0; wrote && i < 64; i++) {
            float big = 3e38f;
            wrote = fwrite(&big, 4, 1, f) == 1;
        }
        ok(wrote, "3e38 written into a row of %s (finite, but its products overflow)", over_w[w]);
        if (f)
            fclose(f);
        a = embed_args(m, "");
        runner_says(runner(a), 0, over_say[w], "overflowing activations: a warning naming the sentence and layer");
        free(a);
        free(st_path);
        free(m);
    }

    a = embed_args(TINY, "--set tokenizer.vocab=\\\"../shared/models/minilm-l6-random/vocab.txt\\\"");
    runner_says(runner(a), 1, "has 30522 pieces but the model's embedding table", "vocab larger than the model");
    free(a);
    a = embed_args(TINY, "--set tokenizer.max_len=64");
    runner_says(runner(a), 1, "max_position_embeddings = 32", "max_len beyond the position table");
    free(a);
    a = embed_args(TINY, "");
    is(runner(a), 0, "the same model with a fitting vocabulary and max_len embeds");
    free(a);
}

/* ---- units: file_read, npy, safetensors, checkpoint, loader, params ------------------- */

static void units_files(void)
{
    char *d = NULL;
    size_t n;
    ok(file_read(dir, &d, &n) != 0 && strstr(err_get(), "is a folder"), "file_read on a folder: %s", err_get());

    static const char *const shapes[] = {"(-4, 2)", "(4611686018427387904, 4)", "(9223372036854775807, 9)",
                                         "(99999999999999999999999, 1)", "(2, -1)", "(-1,)"};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        char hdr[128], buf[256];
        int h = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }", shapes[i]);
        memcpy(buf, "\x93NUMPY\x01\x00", 8);
        buf[8] = (char)(h + 1);
        buf[9] = 0;
        memcpy(buf + 10, hdr, (size_t)h);
        buf[10 + h] = '\n';
        int64_t r, c;
        float *x = NULL;
        int rc = npy_parse_f32("t.npy", buf, (size_t)h + 11, &r, &c, &x);
        ok(rc != 0 && x == NULL, ".npy shape %s refused: %s", shapes[i], err_get());
        free(x);
    }

    /* a tensor of 2^40 x 2^40 floats in 0 bytes: the product wrapped to 0 before */
    const char *json = "{\"t\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776,16384],"
                       "\"data_offsets\":[0,0]}}";
    char *p = in_dir("wrap.safetensors");
    uint64_t hl = strlen(json);
    char *file = malloc(8 + hl);
    memcpy(file, &hl, 8);
    memcpy(file + 8, json, hl);
    write_bytes(p, file, 8 + hl);
    safetensors st;
    ok(st_open(&st, p) != 0 && strstr(err_get(), "shape too large"), "safetensors wrapping shape refused: %s",
       err_get());
    free(file);
    free(p);
}

static void units_checkpoint(void)
{
    pipeline pl;
    if (pipeline_open(&pl, NULL, RUNNER_BUILD_DIR "/plugins") != 0)
        diag("pipeline_open: %s", err_get());
    /* the checkpoint copies its model folder's config.json */
    config_setting_t *model = config_setting_add(config_root_setting(&pl.cfg), "model", CONFIG_TYPE_STRING);
    config_setting_set_string(model, "tests/goldens/tiny-bert");
    params P;
    float *data, *grad;
    int64_t shape[2] = {256, 256};
    params_add(&pl.P, "w", 2, shape, 0, RUNNER_INIT_ZERO, 0, &data, &grad);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    params_alloc(&pl.P, 0, r);
    char *ck = in_dir("ck"), *tmp = in_dir("ck.tmp");
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 4096; /* writes beyond 4 KB fail with EFBIG, as on a full disk */
    signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &lim);
    int rc = checkpoint_save(ck, &pl, NULL, NULL, NULL, 0);
    setrlimit(RLIMIT_FSIZE, &old);
    ok(rc != 0, "checkpoint on a full disk: the write fails (%s)", err_get());
    ok(!path_exists(tmp), "checkpoint on a full disk: no ck.tmp/ left behind");
    ok(!path_exists(ck), "checkpoint on a full disk: no half checkpoint");
    int saved = checkpoint_save(ck, &pl, NULL, NULL, NULL, 0);
    ok(saved == 0 && path_exists(ck), "with room, it saves%s%s", saved ? ": " : "", saved ? err_get() : "");
    params_release(&pl.P, 0); /* as an eval-only run's packed weights do */
    char *ck2 = in_dir("ck2");
    ok(checkpoint_save(ck2, &pl, NULL, NULL, NULL, 0) != 0 && strstr(err_get(), "given back") && !path_exists(ck2),
       "values given back (params_release): no checkpoint is saved (%s)", err_get());
    free(ck2);
    free(ck);
    free(tmp);
    gsl_rng_free(r);
    pipeline_close(&pl);

    /* 20,000 names register (linear: a hash index) and are all found */
    params_init(&P);
    int good = 1;
    int64_t one = 1;
    for (int i = 0; i < 20000 && good; i++) {
        char name[32];
        snprintf(name, sizeof name, "layer.%d.w", i);
        good = params_add(&P, name, 1, &one, 0, RUNNER_INIT_ZERO, 0, NULL, NULL) == i;
    }
    good = good && params_find(&P, "layer.0.w") == 0 && params_find(&P, "layer.19999.w") == 19999 &&
           params_find(&P, "layer.20000.w") == -1;
    ok(good, "20,000 parameters registered and found by name");
    ok(params_add(&P, "layer.7.w", 1, &one, 0, RUNNER_INIT_ZERO, 0, NULL, NULL) < 0, "a name registered twice is refused");
    int64_t huge[2] = {(int64_t)1 << 40, (int64_t)1 << 40};
    ok(params_add(&P, "huge", 2, huge, 0, RUNNER_INIT_ZERO, 0, NULL, NULL) < 0 && strstr(err_get(), "more than"),
       "a parameter of 2^80 floats is refused: %s", err_get());
    params_free(&P);
}

static void units_loader(void)
{
    loader L;
    const runner_plugin *d;
    loader_init(&L, NULL);
    ok(loader_get(&L, RUNNER_KIND_POOLER, "../../tmp/evil", &d) != 0 && strstr(err_get(), "is a name"),
       "a plugin name with '/' is refused: %s", err_get());
    ok(loader_get(&L, RUNNER_KIND_POOLER, "/tmp/evil", &d) != 0 && strstr(err_get(), "not a path"),
       "an absolute plugin path is refused");
    char *text = in_dir("pooler.so");
    write_text(text, "#!/bin/sh\necho pwned\n");
    ok(loader_check_elf(text) != 0 && strstr(err_get(), "not a 64-bit"), "a text file is not dlopen'ed: %s", err_get());
    char *exe = str_printf("%s/runner", RUNNER_BUILD_DIR);
    ok(loader_check_elf(exe) != 0 && strstr(err_get(), "executable"), "an executable is not dlopen'ed: %s", err_get());
    char *bundle = str_printf("%s/plugins/pooler.so", RUNNER_BUILD_DIR);
    ok(loader_check_elf(bundle) == 0, "a real bundle passes the ELF check");
    /* --list-plugins over a folder holding that text file: listed as not a plugin, nothing runs */
    char *cfg = in_dir("list.cfg");
    char *ctext = str_printf("plugin_path = [\"%s\"];\n", dir);
    write_text(cfg, ctext);
    char *args = str_printf("%s --list-plugins", cfg);
    int st = runner(args);
    ok(st <= 1, "--list-plugins with a text file named pooler.so: no crash (%d)", st);
    free(args);
    free(ctext);
    free(cfg);
    free(bundle);
    free(exe);
    free(text);
    loader_free(&L);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        ok(0, "mkdtemp: %s", strerror(errno));
        return done_testing(52);
    }
    header_only_tsv();
    nul_label();
    concurrent_runs();
    bad_state();
    model_limits();
    units_files();
    units_checkpoint();
    units_loader();
    char *rm = str_printf("rm -rf %s", dir);
    if (system(rm) != 0)
        diag("could not remove %s", dir);
    free(rm);
    return done_testing(52);
}
