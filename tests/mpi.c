/* mpi.c — the runner over Open MPI (mpirun --oversubscribe -np 2): a tiny
 * Task 4 under 2 ranks gives 1 rank's per-step training losses and dev
 * metrics (within 1e-5 relative), with dropout off and on (masks keyed by
 * each example's index in the global batch; also with accumulate = 2);
 * by default through the node's shared-memory window, and with
 * train.allreduce = "mpi" (overlapping backward or after it); on two
 * (simulated) nodes auto picks MPI and "shared" is refused naming the hosts;
 * with the backbone frozen too, and only the heads'
 * gradients are sent; gradient buckets leave frozen tensors out; `embed`
 * under 2 ranks writes the 1-rank file bit for bit, `sts` the same
 * scores; a checkpoint from 2 ranks resumes under 1 and from 1 under 2,
 * ending as the uninterrupted run; ranks that diverge (different seeds),
 * bad input or a bad key on one rank end the job naming the rank; a rank
 * killed with SIGKILL ends the job non-zero, mpirun naming the rank, and
 * the last checkpoint stays whole; SIGTERM to one rank stops all after the
 * same step with 143. A missing mpirun is a failure, not a skip. Every
 * mpirun is bounded by timeout(1). */
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ddp.h"
#include "runner/kit/safetensors.h"
#include "runner/kit/util.h"
#include "tap.h"

#define DATA "../shared/datasets"

static char dir[] = "/tmp/runner-mpi-XXXXXX";
static int quiet_diff; /* same_metrics: no diagnostics (a difference is expected) */
static double tolerance = 1e-5; /* same_metrics: relative */

/* mpirun with its flags (bounded in time), or the plain runner for np 0 */
static char *launcher(int np)
{
    if (np == 0)
        return str_printf("timeout 120 %s/runner", RUNNER_BUILD_DIR);
    return str_printf("timeout 180 mpirun %s--oversubscribe --bind-to none -np %d %s/runner",
                      geteuid() == 0 ? "--allow-run-as-root " : "", np, RUNNER_BUILD_DIR);
}

/* Run the runner on dir/cfg; exit status; stderr kept in dir/name.err. */
static int run(int np, const char *cfg, const char *name, const char *args)
{
    char *l = launcher(np);
    char *cmd = str_printf("%s --threads 1 %s/%s --out %s/%s %s >%s/%s.out 2>%s/%s.err", l, dir, cfg, dir, name,
                           args, dir, name, dir, name);
    int st = system(cmd);
    free(cmd);
    free(l);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *name, const char *file)
{
    char *path = str_printf("%s/%s/%s", dir, name, file), *data = NULL;
    size_t len;
    if (file_read(path, &data, &len) != 0)
        data = NULL;
    free(path);
    return data;
}

/* The Task 4 pipeline with dropout p everywhere (backbone hidden states
 * and attention, both heads). */
static int write_cfg_p(const char *name, const char *freeze, const char *train_extra, double p)
{
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd))
        return -1;
    char *text = str_printf(
        "name = \"t4\";\nrun = \"train\";\nmodel = \"%s/tests/goldens/tiny-bert\";\n"
        "tokenizer = { plugin = \"wordpiece\"; max_len = 32; };\n"
        "backbone = { plugin = \"bert\"; hidden_dropout = %g; attention_dropout = %g; };\n"
        "pooler = { plugin = \"mean\"; };\ntasks = (\n"
        "  { name = \"topic\";\n"
        "    dataset = { plugin = \"agnews_csv\"; path = \"%s/" DATA "/ag_news/test.csv\"; dev_ratio = 0.1;\n"
        "                split_seed = 1234; limit = 64; dev_limit = 40; };\n"
        "    head = { plugin = \"mlp\"; hidden = [16]; layer_norm = true; dropout = %g; };\n"
        "    loss = { plugin = \"cross_entropy\"; }; metrics = [ \"accuracy\", \"macro_f1\" ]; },\n"
        "  { name = \"sentiment\";\n"
        "    dataset = { plugin = \"tsv\"; train = \"%s/" DATA "/sst2/train.tsv\"; dev = \"%s/" DATA "/sst2/dev.tsv\";\n"
        "                text_field = \"sentence\"; label_field = \"label\"; labels = [\"negative\", \"positive\"];\n"
        "                limit = 64; dev_limit = 40; };\n"
        "    head = { plugin = \"linear\"; dropout = %g; };\n"
        "    loss = { plugin = \"cross_entropy\"; }; metrics = [ \"accuracy\", \"macro_f1\" ]; } );\n"
        "sampler = { plugin = \"temperature\"; T = 2.0; };\nfreeze = { plugin = \"%s\"; };\n"
        "train = { batch = 8; lr = 1e-3; warmup = 0.1; log_every = 1; %s };\n",
        cwd, p, p, cwd, p, cwd, cwd, p, freeze, train_extra);
    char *path = str_printf("%s/%s", dir, name);
    int rc = file_write_atomic(path, text, strlen(text));
    free(path);
    free(text);
    return rc;
}

static int write_cfg(const char *name, const char *freeze, const char *train_extra)
{
    return write_cfg_p(name, freeze, train_extra, 0.0);
}

/* metrics.csv of two runs: same rows, numbers within tolerance (1e-5) relative (the
 * sentences/s columns aside). Returns the rows compared, or -1. */
static int same_metrics(const char *a, const char *b)
{
    char *x = slurp(a, "metrics.csv"), *y = slurp(b, "metrics.csv");
    int rows = 0, ok = x && y;
    char *sx = NULL, *sy = NULL, timing[256] = {0};
    for (char *lx = x ? strtok_r(x, "\n", &sx) : NULL, *ly = y ? strtok_r(y, "\n", &sy) : NULL; ok && (lx || ly);
         lx = strtok_r(NULL, "\n", &sx), ly = strtok_r(NULL, "\n", &sy), rows++) {
        if (!lx || !ly) {
            ok = 0;
            break;
        }
        char *fx = NULL, *fy = NULL;
        int col = 0;
        for (char *cx = strsep(&lx, ","), *cy = strsep(&ly, ","); ok && (cx || cy);
             cx = strsep(&lx, ","), cy = strsep(&ly, ","), col++) {
            if (rows == 0 && col < 256 && cx)
                timing[col] = strstr(cx, "per_s") != NULL; /* sentences per second: not compared */
            if (!cx || !cy || (col < 256 && timing[col]))
                continue;
            double vx = strtod(cx, &fx), vy = strtod(cy, &fy);
            if (fx == cx || fy == cy)
                ok = strcmp(cx, cy) == 0;
            else
                ok = fabs(vx - vy) <= tolerance * fmax(fabs(vx), fabs(vy)) + 1e-12;
            if (!ok && !quiet_diff)
                diag("row %d column %d: %s vs %s", rows, col, cx, cy);
        }
    }
    free(x);
    free(y);
    return ok ? rows : -1;
}

static long long json_int(const char *name, const char *key)
{
    char *j = slurp(name, "run.json");
    char *at = j ? strstr(j, key) : NULL;
    long long v = at ? atoll(at + strlen(key) + 2) : -1;
    free(j);
    return v;
}

static int err_has(const char *name, const char *needle)
{
    char *path = str_printf("%s/%s.err", dir, name), *data = NULL;
    size_t len;
    int found = file_read(path, &data, &len) == 0 && strstr(data, needle);
    if (!found && data)
        diag("%s.err: %.600s", name, data);
    free(data);
    free(path);
    return found;
}

/* "N released before backward ended" from a run's log, or -1. */
static int started_early(const char *name)
{
    char *path = str_printf("%s/%s.err", dir, name), *data = NULL;
    size_t len;
    int n = -1;
    const char *at = file_read(path, &data, &len) == 0 ? strstr(data, " released before backward ended") : NULL;
    if (at) {
        while (at > data && at[-1] >= '0' && at[-1] <= '9')
            at--;
        n = atoi(at);
    }
    free(data);
    free(path);
    return n;
}

static int same_file(const char *a, const char *b, const char *file, size_t *bytes);

/* err_has without diagnostics (for text that must be absent) */
static int err_has_quiet(const char *name, const char *needle)
{
    char *path = str_printf("%s/%s.err", dir, name), *data = NULL;
    size_t len;
    int found = file_read(path, &data, &len) == 0 && strstr(data, needle);
    free(data);
    free(path);
    return found;
}

static int json_has(const char *name, const char *needle)
{
    char *j = slurp(name, "run.json");
    int found = j && strstr(j, needle);
    free(j);
    return found;
}

/* Default (auto, one node): the sum through the shared-memory window;
 * train.allreduce = "mpi": the bucketed all-reduce, overlapping backward
 * or after it; both give 1 rank's losses. */
static void test_task4(void)
{
    ok(write_cfg("t4.cfg", "none", "max_steps = 12; eval_every = 6;") == 0, "task 4 pipeline written");
    is(run(0, "t4.cfg", "one", ""), 0, "task 4: one process");
    is(run(2, "t4.cfg", "two", ""), 0, "task 4: mpirun -np 2");
    cmp_ok(same_metrics("one", "two"), ==, 13, "2 ranks: the 12 per-step losses and both evaluations equal 1 rank's");
    ok(err_has("two", "gradient sum: shared") && json_has("two", "\"grad_sum\": \"shared\""),
       "auto on one node: the log and run.json say the shared-memory sum ran");
    is(run(2, "t4.cfg", "mpi", "--set train.allreduce=\\\"mpi\\\""), 0, "task 4: 2 ranks, train.allreduce = \"mpi\"");
    cmp_ok(same_metrics("one", "mpi"), ==, 13, "... the same losses and metrics");
    ok(err_has("mpi", "gradient sum: mpi (all-reduce overlapping") && json_has("mpi", "\"grad_sum\": \"mpi\""),
       "... the log and run.json say the MPI all-reduce ran");
    cmp_ok(started_early("mpi"), >=, 2, "the heads' and the top layer's buckets are released before backward ends");
    is(run(2, "t4.cfg", "serial", "--set train.allreduce=\\\"mpi\\\" --set train.overlap=false"), 0,
       "task 4: 2 ranks, all-reduce after backward");
    cmp_ok(same_metrics("one", "serial"), ==, 13, "... the same losses and metrics");
    is(started_early("serial"), 0, "... no bucket started during backward");
    ok(err_has("two", "optimizer sharded over the 2 ranks") && json_has("two", "\"optimizer\": \"sharded\""),
       "shared sum: the optimizer is sharded (the log and run.json say so)");
    is(run(2, "t4.cfg", "repl", "--set train.shard_optimizer=false"), 0, "task 4: 2 ranks, train.shard_optimizer = false");
    size_t bytes;
    ok(json_has("repl", "\"optimizer\": \"replicated\"") && !err_has_quiet("repl", "optimizer sharded"),
       "... every rank runs the whole optimizer (run.json says so)");
    ok(same_file("two", "repl", "last/model.safetensors", &bytes) && bytes > 0,
       "... and the sharded optimizer's weights are bit for bit the replicated one's");
    setenv("RUNNER_TEST_SHARE_FAIL", "1", 1);
    is(run(2, "t4.cfg", "nosh", ""), 0, "rank 1 cannot map the shared values: the run goes on");
    ok(err_has("nosh", "every rank updates the whole store: the values could not be shared") &&
       json_has("nosh", "\"optimizer\": \"replicated\""), "... with a warning, replicated");
    ok(same_file("two", "nosh", "last/model.safetensors", &bytes) && bytes > 0, "... and the same weights");
    unsetenv("RUNNER_TEST_SHARE_FAIL");
    /* no room for the window where Open MPI keeps it (Docker's 64 MB /dev/shm, by the test switch) */
    setenv("RUNNER_TEST_SHM_FREE", "1000000", 1);
    is(run(2, "t4.cfg", "noroom", ""), 0, "no room in /dev/shm: auto still trains");
    ok(err_has("noroom", "summing with the MPI all-reduce, not in shared memory: /dev/shm has 0 MB free") &&
       err_has("noroom", "--shm-size") && json_has("noroom", "\"grad_sum\": \"mpi\"") &&
       same_metrics("one", "noroom") == 13, "... with the MPI all-reduce, a warning naming the fix, 1 rank's losses");
    is(run(2, "t4.cfg", "noroom-sh", "--set train.allreduce=\\\"shared\\\""), 1,
       "no room and train.allreduce = \"shared\": exit 1");
    ok(err_has("noroom-sh", "train.allreduce = \"shared\": /dev/shm has 0 MB free"), "... saying so");
    unsetenv("RUNNER_TEST_SHM_FREE");
    /* three ranks: the sum's general path (more than two segments) */
    is(run(3, "t4.cfg", "three", ""), 0, "task 4: 3 ranks");
    is(run(3, "t4.cfg", "three-r", "--set train.shard_optimizer=false"), 0, "task 4: 3 ranks, AdamW replicated");
    ok(same_metrics("one", "three") == 13 && same_file("three", "three-r", "last/model.safetensors", &bytes),
       "3 ranks: 1 rank's losses and metrics, and the sharded weights are the replicated ones bit for bit");
    is(json_int("two", "\"size\""), 2, "run.json names a world of 2");
    ok(json_has("two", "\"hosts\""), "run.json names each rank's host");
    is(run(2, "t4.cfg", "badsum", "--set train.allreduce=\\\"nccl\\\""), 2, "train.allreduce = \"nccl\": exit 2");
    ok(err_has("badsum", "train.allreduce"), "... naming the key");
}

/* train.precision = "bf16" (where oneDNN has bf16 matmuls): the shared
 * path trains as the MPI path does. Within 1e-3: the paths sum the
 * clipping norm's squares in different orders, and bfloat16 rounding
 * widens that last-bit difference to ~2e-5 over 12 steps; a real fault
 * (tried: half of the bfloat16 copy left stale) differs by ~1e-2. */
static void test_bf16(void)
{
    is(run(2, "t4.cfg", "bf-shm", "--set train.precision=\\\"bf16\\\""), 0, "bf16: 2 ranks, shared");
    is(run(2, "t4.cfg", "bf-mpi", "--set train.precision=\\\"bf16\\\" --set train.allreduce=\\\"mpi\\\""), 0,
       "bf16: 2 ranks, mpi");
    tolerance = 1e-3;
    cmp_ok(same_metrics("bf-shm", "bf-mpi"), ==, 13,
           "bf16: the shared path's losses and metrics are the MPI path's (within 1e-3)");
    tolerance = 1e-5;
}

/* Ranks on several nodes (every rank a node of its own, by the test
 * switch): auto falls back to MPI, "shared" is refused naming the hosts. */
static void test_nodes(void)
{
    setenv("RUNNER_TEST_SPLIT_NODES", "1", 1);
    is(run(2, "t4.cfg", "nodes", ""), 0, "2 ranks on 2 nodes: auto");
    ok(err_has("nodes", "gradient sum: mpi") && same_metrics("one", "nodes") == 13,
       "... sums with the MPI all-reduce, the same losses and metrics");
    is(run(2, "t4.cfg", "nodes-shm", "--set train.allreduce=\\\"shared\\\""), 1,
       "train.allreduce = \"shared\" on 2 nodes: exit 1");
    ok(err_has("nodes-shm", "span several (rank 0 on ") && err_has("nodes-shm", "rank 1 on "),
       "... naming every rank's host");
    unsetenv("RUNNER_TEST_SPLIT_NODES");
}

/* Dropout on (0.1: the backbone's hidden states and attention, both
 * heads): masks follow each example's index in the global batch, so 2
 * ranks still give 1 rank's losses and metrics; with accumulate = 2 too. */
static void test_dropout(void)
{
    ok(write_cfg_p("d.cfg", "none", "max_steps = 12; eval_every = 6;", 0.1) == 0, "dropout pipeline written");
    is(run(0, "d.cfg", "d1", ""), 0, "dropout on: one process");
    is(run(2, "d.cfg", "d2", ""), 0, "dropout on: 2 ranks");
    cmp_ok(same_metrics("d1", "d2"), ==, 13, "dropout on: 2 ranks' 12 per-step losses and both evaluations equal 1 rank's");
    quiet_diff = 1;
    is(same_metrics("d1", "one"), -1, "... and dropout did act (the losses differ from the dropout-off run's)");
    quiet_diff = 0;
    ok(write_cfg_p("da.cfg", "none", "max_steps = 6; eval_every = 3; accumulate = 2;", 0.1) == 0,
       "accumulate = 2 pipeline written");
    is(run(0, "da.cfg", "da1", ""), 0, "dropout on, accumulate = 2: one process");
    is(run(2, "da.cfg", "da2", ""), 0, "dropout on, accumulate = 2: 2 ranks");
    cmp_ok(same_metrics("da1", "da2"), ==, 7, "... the 6 per-step losses and both evaluations equal 1 rank's");
}

/* The last column of name/metrics.csv when the header ends with col: its
 * non-empty values into v (at most 16); the count, -1 without it. */
static int last_column(const char *name, const char *col, double *v)
{
    char *csv = slurp(name, "metrics.csv"), *save = NULL;
    int n = -1;
    for (char *line = csv ? strtok_r(csv, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
        char *last = strrchr(line, ',');
        if (n < 0 && (!last || strcmp(last + 1, col) != 0))
            break;
        if (n >= 0 && last && last[1] && n < 16)
            v[n++] = atof(last + 1);
        else if (n < 0)
            n = 0;
    }
    free(csv);
    return n;
}

/* train.grad_cosine_every under 2 ranks: every rank measures the same
 * batches (no gradient sums), nothing waits, training is unchanged. */
static void test_grad_cosine(void)
{
    double one[16], two[16];
    is(run(0, "t4.cfg", "gc1", "--set train.grad_cosine_every=4"), 0, "grad_cosine_every = 4: one process");
    is(run(2, "t4.cfg", "gc2", "--set train.grad_cosine_every=4"), 0, "grad_cosine_every = 4: 2 ranks, no deadlock");
    int n1 = last_column("gc1", "grad_cosine.topic.sentiment", one), n2 = last_column("gc2", "grad_cosine.topic.sentiment", two);
    is(n2, 4, "2 ranks: grad_cosine.topic.sentiment at steps 1, 4, 8, 12");
    ok(n1 == 4 && n2 == 4 && fabs(one[0] - two[0]) < 1e-4, "2 ranks: step 1's cosine is 1 rank's (%g, %g)",
       n1 > 0 ? one[0] : NAN, n2 > 0 ? two[0] : NAN);
    char *a = str_printf("%s/two/last/model.safetensors", dir), *b = str_printf("%s/gc2/last/model.safetensors", dir);
    char *x = NULL, *y = NULL;
    size_t lx = 0, ly = 0;
    ok(file_read(a, &x, &lx) == 0 && file_read(b, &y, &ly) == 0 && lx == ly && memcmp(x, y, lx) == 0,
       "2 ranks: the weights bit-identical to the run without the measurement");
    free(x);
    free(y);
    free(a);
    free(b);
}

static void test_frozen(void)
{
    ok(write_cfg("frozen.cfg", "backbone", "max_steps = 10; eval_every = 5;") == 0, "frozen pipeline written");
    is(run(0, "frozen.cfg", "f1", ""), 0, "frozen backbone: one process");
    is(run(2, "frozen.cfg", "f2", ""), 0, "frozen backbone: 2 ranks");
    cmp_ok(same_metrics("f1", "f2"), ==, 11, "frozen backbone: 2 ranks equal 1 rank");
    /* heads: topic mlp 32x16 + 16 + LayerNorm 2x16 + 16x4 + 4, sentiment 32x2 + 2 */
    long long heads = 32 * 16 + 16 + 32 + 16 * 4 + 4 + 32 * 2 + 2;
    is(json_int("f2", "\"grad_allreduce_bytes\""), 10 * 4 * heads,
       "frozen backbone: only the heads' gradients are sent (%lld bytes a step)", 4 * heads);
    ok(json_int("two", "\"grad_allreduce_bytes\"") > 12 * 4 * heads * 10, "full fine-tuning sends the backbone's");
}

/* The first n lines of a shared data file into dir/name (first_field:
 * only the text before the first tab, and no header); its path. */
static char *head_of(const char *src, const char *name, int n, int first_field)
{
    char *path = str_printf("%s/%s", dir, name);
    FILE *in = fopen(src, "r"), *out = fopen(path, "w");
    char line[4096];
    for (int i = 0; in && out && i < n + first_field && fgets(line, sizeof line, in); i++)
        if (!first_field)
            fputs(line, out);
        else if (i > 0)
            fprintf(out, "%s\n", strtok(line, "\t"));
    if (in)
        fclose(in);
    if (out)
        fclose(out);
    return path;
}

/* An inference pipeline on the tiny BERT: run, then the rest of its text. */
static int write_infer(const char *name, const char *run_kind, const char *rest)
{
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd))
        return -1;
    char *text = str_printf("name = \"%s\";\nrun = \"%s\";\nmodel = \"%s/tests/goldens/tiny-bert\";\n"
                            "tokenizer = { plugin = \"wordpiece\"; max_len = 32; };\n"
                            "backbone = { plugin = \"bert\"; };\n%s",
                            run_kind, run_kind, cwd, rest);
    char *path = str_printf("%s/%s", dir, name);
    int rc = file_write_atomic(path, text, strlen(text));
    free(path);
    free(text);
    return rc;
}

/* The same file of two run folders identical bit for bit? */
static int same_file(const char *a, const char *b, const char *file, size_t *bytes)
{
    char *pa = str_printf("%s/%s/%s", dir, a, file), *pb = str_printf("%s/%s/%s", dir, b, file);
    char *da = NULL, *db = NULL;
    size_t nb = 0;
    *bytes = 0;
    int same = file_read(pa, &da, bytes) == 0 && file_read(pb, &db, &nb) == 0 && *bytes == nb &&
               memcmp(da, db, nb) == 0;
    free(da);
    free(db);
    free(pa);
    free(pb);
    return same;
}

static void test_embed(void)
{
    char *lines = head_of(DATA "/sst2/dev.tsv", "lines.txt", 60, 1);
    char *rest = str_printf("input = \"%s\";\npooler = { plugin = \"mean\"; };\nbatch = { size = 4; };\n", lines);
    ok(write_infer("embed.cfg", "embed", rest) == 0, "embed pipeline written");
    is(run(0, "embed.cfg", "e1", "--quiet"), 0, "embed: one process");
    is(run(2, "embed.cfg", "e2", "--quiet"), 0, "embed: 2 ranks");
    size_t n;
    int same = same_file("e1", "e2", "embeddings.npy", &n);
    ok(same && n > 60 * 32 * 4, "embed: 2 ranks write the 1-rank embeddings.npy bit for bit (%zu bytes)", n);
    free(rest);
    free(lines);
}

static void test_sts(void)
{
    char *pairs = head_of(DATA "/stsbenchmark/sts-dev.csv", "sts.csv", 150, 0);
    char *rest = str_printf("poolers = ( { plugin = \"mean\"; }, { plugin = \"cls\"; } );\n"
                            "sts = { files = [ \"%s\" ]; };\nbatch = { size = 8; };\n",
                            pairs);
    ok(write_infer("sts.cfg", "sts", rest) == 0, "sts pipeline written");
    is(run(0, "sts.cfg", "s1", "--quiet"), 0, "sts: one process");
    is(run(2, "sts.cfg", "s2", "--quiet"), 0, "sts: 2 ranks");
    size_t n;
    ok(same_file("s1", "s2", "sts.csv", &n) && n > 0, "sts: 2 ranks write the 1-rank sts.csv");
    free(rest);
    free(pairs);
}

/* Every task's "final" block of a run's metrics.json, one after the
 * other (tasks in pipeline order), and their count; NULL if none. */
static char *finals(const char *name, int *count)
{
    char *j = slurp(name, "metrics.json"), *out = NULL;
    size_t used = 0;
    *count = 0;
    for (char *at = j ? strstr(j, "\"final\"") : NULL; at; at = strstr(at + 1, "\"final\"")) {
        char *end = strchr(at, '}');
        char *grown = end ? realloc(out, used + (size_t)(end - at) + 1) : NULL;
        if (!grown)
            break;
        out = grown;
        memcpy(out + used, at, (size_t)(end - at));
        used += (size_t)(end - at);
        out[used] = 0;
        (*count)++;
    }
    free(j);
    return out;
}

static void test_resume(void)
{
    ok(write_cfg("r.cfg", "none", "max_steps = 12; eval_every = 4;") == 0, "resume pipeline written");
    is(run(0, "r.cfg", "whole", ""), 0, "uninterrupted run (1 rank)");
    is(run(2, "r.cfg", "a2", "--set train.stop_after=4"), 0, "2 ranks stop after step 4");
    char *args = str_printf("--resume %s/a2/last", dir);
    is(run(0, "r.cfg", "a1", args), 0, "... resumed under 1 rank");
    free(args);
    is(run(0, "r.cfg", "b1", "--set train.stop_after=8"), 0, "1 rank stops after step 8");
    args = str_printf("--resume %s/b1/last", dir);
    is(run(2, "r.cfg", "b2", args), 0, "... resumed under 2 ranks");
    free(args);
    int nw, nx, ny;
    char *w = finals("whole", &nw), *x = finals("a1", &nx), *y = finals("b2", &ny);
    ok(w && x && y && nw == 2 && nx == 2 && ny == 2, "final dev metrics of both tasks in the three runs");
    /* the dev metrics are printed to 4-6 digits: equal text */
    ok(w && x && strcmp(w, x) == 0, "2 ranks -> 1 rank ends with the uninterrupted run's final metrics");
    ok(w && y && strcmp(w, y) == 0, "1 rank -> 2 ranks ends with the uninterrupted run's final metrics");
    free(w);
    free(x);
    free(y);
}

/* pid of the rank with this tag in its environment, or 0 */
static pid_t find_rank(const char *tag, int rank)
{
    char want_tag[128], want_rank[64];
    snprintf(want_tag, sizeof want_tag, "RUNNER_TEST_TAG=%s", tag);
    snprintf(want_rank, sizeof want_rank, "OMPI_COMM_WORLD_RANK=%d", rank);
    DIR *d = opendir("/proc");
    struct dirent *e;
    pid_t found = 0;
    while (d && !found && (e = readdir(d))) {
        char path[300], buf[65536];
        snprintf(path, sizeof path, "/proc/%s/environ", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        int has_tag = 0, has_rank = 0;
        for (size_t at = 0; at < n; at += strlen(buf + at) + 1) {
            buf[n] = 0;
            has_tag |= strcmp(buf + at, want_tag) == 0;
            has_rank |= strcmp(buf + at, want_rank) == 0;
        }
        if (has_tag && has_rank)
            found = (pid_t)atoi(e->d_name);
    }
    if (d)
        closedir(d);
    return found;
}

/* A long 2-rank run; once its first checkpoint is there, signal rank 1.
 * Returns mpirun's exit status. */
static int signal_rank(const char *name, int sig)
{
    char tag[64], cfg[64];
    snprintf(tag, sizeof tag, "%d-%s", (int)getpid(), name);
    snprintf(cfg, sizeof cfg, "%s.cfg", name);
    setenv("RUNNER_TEST_TAG", tag, 1);
    pid_t child = fork();
    if (child == 0)
        _exit(run(2, cfg, name, ""));
    char *last = str_printf("%s/%s/last/model.safetensors", dir, name);
    for (int waited = 0; access(last, F_OK) != 0 && waited < 600; waited++)
        usleep(100000);
    usleep(300000);
    pid_t victim = find_rank(tag, 1);
    ok(victim > 0, "%s: rank 1 found (pid %d) after the first checkpoint", name, (int)victim);
    if (victim > 0)
        kill(victim, sig);
    int st = 0;
    waitpid(child, &st, 0);
    unsetenv("RUNNER_TEST_TAG");
    free(last);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* last/ of a run is whole and resumes under one rank. */
static void resumes(const char *name)
{
    char *last = str_printf("%s/%s/last/model.safetensors", dir, name);
    safetensors s = {0};
    ok(st_open(&s, last) == 0, "%s: last/model.safetensors is whole", name);
    st_close(&s);
    char *args = str_printf("--resume %s/%s/last --set train.epochs=1", dir, name);
    char *again = str_printf("%s-resumed", name);
    char *cfg = str_printf("%s.cfg", name);
    is(run(0, cfg, again, args), 0, "%s: and resumes", name);
    free(cfg);
    free(again);
    free(args);
    free(last);
}

static void test_kill(void)
{
    ok(write_cfg("k.cfg", "none", "epochs = 100000; eval_every = 5;") == 0, "long pipeline written");
    int code = signal_rank("k", SIGKILL);
    ok(code != 0 && code != 124, "SIGKILL: mpirun exits non-zero (%d), not by the time limit", code);
    ok(err_has("k", "process rank 1") && err_has("k", "signal 9"), "mpirun names the failing rank and the cause");
    resumes("k");
}

/* SIGTERM reaching one rank: every rank stops after the same step, last/
 * written, exit 128 + 15. */
static void test_term(void)
{
    ok(write_cfg("term.cfg", "none", "epochs = 100000; eval_every = 5;") == 0, "long pipeline written");
    is(signal_rank("term", SIGTERM), 143, "SIGTERM to rank 1: the job ends with 143");
    ok(err_has("term", "stopped by SIGTERM after step"), "... after a whole step, saying how to resume");
    resumes("term");
}

/* Two ranks started with different arguments (MPMD); exit status. */
static int run_mpmd(const char *cfg, const char *name, const char *args0, const char *args1)
{
    char *l = launcher(1);
    char *cmd = str_printf("%s --threads 1 %s/%s --out %s/%s %s : -np 1 %s/runner --threads 1 %s/%s --out %s/%s %s "
                           ">%s/%s.out 2>%s/%s.err",
                           l, dir, cfg, dir, name, args0, RUNNER_BUILD_DIR, dir, cfg, dir, name, args1, dir, name,
                           dir, name);
    int st = system(cmd);
    free(cmd);
    free(l);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_failures(void)
{
    int rc = run_mpmd("t4.cfg", "seeds", "", "--seed 7");
    ok(rc != 0 && rc != 124, "ranks started with different seeds: the job fails (%d)", rc);
    ok(err_has("seeds", "ranks diverged") && err_has("seeds", "rank 1 (") && err_has("seeds", "before the first step"),
       "... naming the rank that differs, before the first step");
    rc = run_mpmd("t4.cfg", "badinput", "", "--set tasks.[1].dataset.dev=\\\"/nonexistent.tsv\\\"");
    ok(rc == 1, "bad input on rank 1 only: the job ends with exit 1 (%d)", rc);
    ok(err_has("badinput", "rank 1 of 2") && err_has("badinput", "/nonexistent.tsv"),
       "... naming the rank and the cause");
    rc = run_mpmd("t4.cfg", "badkey", "", "--set train.bogus=1");
    ok(rc == 2, "a configuration error on rank 1 only: exit 2, no hang (%d)", rc);
}

/* Buckets: trainable tensors only, from the end of the store, one layer
 * each, at most bucket_mb (here the 1024-float floor). */
static void test_buckets(void)
{
    params P;
    params_init(&P);
    static const char *const names[] = {"backbone.embeddings.word", "backbone.encoder.layer.0.a",
                                        "backbone.encoder.layer.0.b", "backbone.encoder.layer.1.a", "heads.t.w"};
    float *data[5], *grad[5];
    for (int i = 0; i < 5; i++) {
        int64_t shape[1] = {1000};
        params_add(&P, names[i], 1, shape, 0, RUNNER_INIT_ZERO, 0, &data[i], &grad[i]);
    }
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    ok(params_alloc(&P, 1, r) == 0, "a store of 5 tensors");
    params_set(&P, "backbone.encoder.layer.1.*", 0, -1);
    ddp d;
    ddp_open(&d, &P, 1, 0.001, 1, NULL); /* no host: layers by BERT's names are not needed here */
    ok(ddp_plan(&d) == 0, "buckets planned");
    is(d.g.n, 4, "4 buckets: heads, layer 0 in two (1024-float cap), embeddings; frozen layer 1 in none");
    const param *p = P.p;
    int64_t want[4][2] = {{p[4].offset, p[4].offset + 1000}, {p[2].offset, p[2].offset + 1000},
                          {p[1].offset, p[1].offset + 1000}, {p[0].offset, p[0].offset + 1000}};
    int same = d.g.n == 4;
    for (int b = 0; same && b < 4; b++)
        same = d.g.lo[b] == want[b][0] && d.g.hi[b] == want[b][1];
    ok(same, "in reverse order of the store, the frozen tensor left out");
    is(d.floats, 4000, "4000 floats a step");
    ddp_close(&d);
    params_free(&P);
    gsl_rng_free(r);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    /* Open MPI keeps its allocations to the end: no leak check in the ranks
     * (appended, so CI's other ASAN_OPTIONS stay) */
    const char *asan = getenv("ASAN_OPTIONS");
    char *opts = str_printf("%s%sdetect_leaks=0", asan ? asan : "", asan && *asan ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    free(opts);
    /* containers often forbid process_vm_readv (Docker without CAP_SYS_PTRACE) */
    setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 0);
    int have = system("command -v mpirun >/dev/null 2>&1") == 0;
    ok(have, "mpirun is installed (scripts/install-deps.sh: openmpi-bin)");
    if (!have)
        return done_testing(97);
    test_buckets();
    test_task4();
    test_nodes();
    test_bf16();
    test_dropout();
    test_grad_cosine();
    test_frozen();
    test_embed();
    test_sts();
    test_resume();
    test_failures();
    test_kill();
    test_term();
    char *rm = str_printf("rm -rf %s", dir);
    if (system(rm) != 0)
        diag("could not remove %s", dir);
    free(rm);
    return done_testing(97);
}
