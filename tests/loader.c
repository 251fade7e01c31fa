/* loader.c — every way loading a plugin can fail, each with its message,
 * and the pipeline checks: unknown keys, wrong types, missing plugins, all
 * reported at once with file and line; the runner's exit codes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loader.h"
#include "pipeline.h"
#include "tap.h"
#include "runner/kit/util.h"

#define FIXTURES RUNNER_BUILD_DIR "/tests/plugins"

static char tmpdir[] = "/tmp/runner-loader-XXXXXX";

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static int expect_fail(loader *L, const char *name, const char *want, const char *what)
{
    const runner_plugin *d;
    int rc = loader_get(L, RUNNER_KIND_POOLER, name, &d);
    ok(rc == -1, "%s: refused", what);
    like(err_get(), want, "%s: message says so", what);
    return rc;
}

/* Run the runner; return its exit status and its stderr in buf. */
static int run(const char *args, char *buf, size_t size)
{
    char *cmd = str_printf("cd %s && RUNNER_PLUGIN_PATH=%s %s/runner %s 2>%s/stderr >%s/stdout",
                           ".", FIXTURES, RUNNER_BUILD_DIR, args, tmpdir, tmpdir);
    int st = system(cmd);
    free(cmd);
    char *path = str_printf("%s/stderr", tmpdir), *data = NULL;
    size_t len = 0;
    buf[0] = 0;
    if (file_read(path, &data, &len) == 0) {
        snprintf(buf, size, "%s", data);
        free(data);
    }
    free(path);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(void)
{
    if (!mkdtemp(tmpdir))
        return 1;
    loader L;
    loader_init(&L, FIXTURES);
    const runner_plugin *d;

    /* the good one */
    ok(loader_get(&L, RUNNER_KIND_POOLER, "good", &d) == 0, "a well-formed plugin loads");
    is_str(d ? d->name : NULL, "good", "its descriptor names it");
    ok(loader_get(&L, RUNNER_KIND_POOLER, "good", &d) == 0 && L.n == 1, "opened once, then cached");

    /* every failure path */
    expect_fail(&L, "absent", "pooler plugin 'absent' not found", "missing .so");
    like(err_get(), FIXTURES, "missing .so: the search path is named");
    char *garbage = str_printf("%s/pooler_garbage.so", tmpdir);
    write_text(garbage, "this is not an ELF file\n");
    loader_add_dir(&L, tmpdir);
    expect_fail(&L, "garbage", "not a 64-bit little-endian ELF file", "not a shared object");
    like(err_get(), "pooler_garbage.so", "not a shared object: the file is named");
    expect_fail(&L, "no_symbol", "no symbol runner_plugin_v1", "missing entry symbol");
    char want_major[128];
    snprintf(want_major, sizeof want_major, "plugin ABI 2.%d, runner ABI 1.%d", RUNNER_ABI_MINOR, RUNNER_ABI_MINOR);
    expect_fail(&L, "abi_major", want_major, "ABI major mismatch");
    ok(loader_get(&L, RUNNER_KIND_POOLER, "abi_old", &d) == 0 && d->abi_minor == 0,
       "a plugin built for an older minor (1.0) loads");
    char want[128];
    snprintf(want, sizeof want, "plugin ABI 1.%d is newer than runner ABI 1.%d",
             RUNNER_ABI_MINOR + 1, RUNNER_ABI_MINOR);
    expect_fail(&L, "abi_minor", want, "newer ABI minor");
    expect_fail(&L, "wrong_kind", "is a head plugin, but a pooler is needed", "wrong kind");
    expect_fail(&L, "misnamed", "names itself 'someone_else'", "name mismatch");
    char *path = str_printf("%s/pooler_good.so", FIXTURES);
    void *dl;
    ok(loader_open_file(path, RUNNER_KIND_HEAD, NULL, &dl, &d) == -1, "open by path checks kind");
    like(err_get(), "is a pooler plugin, but a head is needed", "... and says so");
    free(path);
    loader_free(&L);

    /* create failing, through a pipeline */
    pipeline pl;
    pipeline_open(&pl, NULL, FIXTURES);
    config_read_string(&pl.cfg, "p = { plugin = \"create_fails\"; };");
    stage *st = pipeline_stage(&pl, "pooler", "pooler.", RUNNER_KIND_POOLER,
                               config_lookup(&pl.cfg, "p"));
    ok(st == NULL, "create failing: no stage");
    like(err_get(), "pooler/create_fails: refusing to start", "create failing: its message, with origin");
    pipeline_close(&pl);

    /* unknown key, wrong type, missing plugin: all at once, with file:line */
    char *cfg = str_printf("%s/bad.cfg", tmpdir);
    write_text(cfg, "run = \"tokenize\";\n"
                    "pooler = { plugin = \"good\";\n"
                    "  count = \"three\";\n"
                    "  ratoi = 0.5;\n"
                    "};\n"
                    "poolers = [\"good\", \"nosuch\"];\n"
                    "batch = { size = 1.5; };\n"
                    "tokenzier = { plugin = \"x\"; };\n");
    diags dg;
    diag_init(&dg);
    pipeline_open(&pl, cfg, FIXTURES);
    pipeline_validate(&pl, &dg);
    is(dg.n, 5, "five errors reported at once");
    char all[8192] = "";
    for (int i = 0; i < dg.n; i++) {
        strncat(all, dg.msg[i], sizeof all - strlen(all) - 2);
        strcat(all, "\n");
    }
    like(all, "bad.cfg:3: pooler.count: is a string, expected an integer", "wrong type: file:line and key");
    like(all, "bad.cfg:4: pooler.ratoi: unknown key 'ratoi' for pooler plugin 'good'", "unknown key: file:line and key");
    like(all, "its keys: count, ratio, flag, label, sizes, required", "unknown key: the known keys listed");
    like(all, "pooler plugin 'nosuch' not found", "missing plugin in a list");
    like(all, "bad.cfg:7: batch.size: is a number, expected an integer", "float where an integer belongs");
    like(all, "bad.cfg:8: tokenzier: unknown key 'tokenzier'", "misspelt top-level key");
    like(all, "did you mean 'tokenizer'?", "misspelt key: the likely one suggested");
    like(all, "did you mean 'ratio'?", "misspelt plugin key: the likely one suggested");
    diag_free(&dg);
    pipeline_close(&pl);

    /* defaults are filled in; a string list element became a section */
    char *good = str_printf("%s/good.cfg", tmpdir);
    write_text(good, "run = \"tokenize\";\npooler = { plugin = \"good\"; };\npoolers = [\"good\"];\nbatch = {};\n");
    diag_init(&dg);
    pipeline_open(&pl, good, FIXTURES);
    is(pipeline_validate(&pl, &dg), 0, "a good pipeline validates");
    is(cfg_int(&pl, "pooler.count", -1), 3, "plugin defaults are filled in");
    is(cfg_int(&pl, "batch.size", -1), 32, "core defaults are filled in (inside present groups)");
    is_str(cfg_str(&pl, "poolers.[0].plugin"), "good", "a name in a plugin list becomes a section");
    is(cfg_int(&pl, "poolers.[0].count", -1), 3, "... with its defaults");
    diag_free(&dg);
    pipeline_close(&pl);

    /* the runner: exit codes and messages */
    char err[8192];
    char *args = str_printf("--check %s", cfg);
    is(run(args, err, sizeof err), 2, "runner: bad pipeline exits 2");
    like(err, "5 errors in the pipeline", "runner: all errors listed");
    like(err, "bad.cfg:4: pooler.ratoi: unknown key", "runner: misspelt key with file and line");
    free(args);
    args = str_printf("--check %s --set pooler.plugin=missing_one", good);
    is(run(args, err, sizeof err), 2, "runner: missing plugin exits 2");
    like(err, "--set pooler.plugin: pooler.plugin: pooler plugin 'missing_one' not found", "runner: names the plugin and where it was set");
    like(err, FIXTURES, "runner: names the search path");
    free(args);
    args = str_printf("--check %s --set nosuch.x=1", good);
    is(run(args, err, sizeof err), 2, "runner: --set on an unknown path exits 2");
    like(err, "no setting 'nosuch'", "runner: says which path");
    free(args);
    args = str_printf("--check %s --set pooler.count=7", good);
    is(run(args, err, sizeof err), 0, "runner: --check of a good pipeline exits 0");
    free(args);
    is(run("--frobnicate", err, sizeof err), 2, "runner: unknown option exits 2");
    is(run("--describe good", err, sizeof err), 0, "runner: --describe finds a plugin");
    is(run("--describe nosuch", err, sizeof err), 2, "runner: --describe of an unknown plugin exits 2");
    is(run("/nonexistent.cfg", err, sizeof err), 2, "runner: missing pipeline file exits 2");
    like(err, "/nonexistent.cfg: no such pipeline file", "runner: names the missing file");

    /* a head built for ABI 1.3 (no forward_keyed) trains, with dropout on
     * in the backbone; its bias moves */
    char cwd[4096];
    char *old = str_printf("%s/old_head.cfg", tmpdir);
    write_text(old, "");
    char *text = str_printf(
        "run = \"train\";\nmodel = \"%s/tests/goldens/tiny-bert\";\n"
        "tokenizer = { plugin = \"wordpiece\"; max_len = 16; };\nbackbone = { plugin = \"bert\"; hidden_dropout = 0.1; };\n"
        "pooler = { plugin = \"mean\"; };\ntasks = ( { name = \"s\"; head = { plugin = \"abi13\"; };\n"
        "  dataset = { plugin = \"tsv\"; train = \"%s/../shared/datasets/sst2/train.tsv\";\n"
        "    dev = \"%s/../shared/datasets/sst2/dev.tsv\"; text_field = \"sentence\"; label_field = \"label\";\n"
        "    labels = [\"negative\", \"positive\"]; limit = 16; dev_limit = 8; };\n"
        "  loss = { plugin = \"cross_entropy\"; }; metrics = [ \"accuracy\" ]; } );\n"
        "train = { batch = 4; max_steps = 2; lr = 1e-2; };\n",
        getcwd(cwd, sizeof cwd) ? cwd : ".", cwd, cwd);
    write_text(old, text);
    args = str_printf("--quiet --threads 1 %s --out %s/old_head", old, tmpdir);
    int rc = run(args, err, sizeof err);
    is(rc, 0, "runner: a head plugin built for ABI 1.3 trains (its forward, not forward_keyed)");
    if (rc != 0)
        diag("%.600s", err);
    free(args);
    free(text);
    free(old);

    free(garbage);
    free(cfg);
    free(good);
    char *rm = str_printf("rm -rf %s", tmpdir);
    if (system(rm) != 0)
        diag("could not remove %s", tmpdir);
    free(rm);
    return done_testing(53);
}
