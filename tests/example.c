/* example.c — the README's out-of-tree plugin: examples/pooler_first.c
 * built with the one `cc` line the README gives, found through
 * RUNNER_PLUGIN_PATH, used by pipelines/task1.cfg, and giving exactly what
 * the built-in cls pooler gives (both read the first token's state). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runner/kit/npy.h"
#include "tap.h"
#include "runner/kit/util.h"

static char dir[] = "/tmp/runner-example-XXXXXX";

static int sh(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    char *cc = str_printf("export PKG_CONFIG_PATH=%s; cc -shared -fPIC -fvisibility=hidden $(pkg-config --cflags runner) "
                          "-o %s/pooler_first.so examples/pooler_first.c $(pkg-config --libs runner)", RUNNER_BUILD_DIR, dir);
    is(sh(cc), 0, "the README's cc line builds the example plugin");
    char *nm = str_printf("nm -D --defined-only %s/pooler_first.so | grep -c ' T ' | grep -qx 1", dir);
    is(sh(nm), 0, "it exports exactly one function, the entry symbol");
    const char *common = "pipelines/task1.cfg --quiet --set model=../shared/models/minilm-l6-random";
    char *run_first = str_printf("RUNNER_PLUGIN_PATH=%s %s/runner %s --set 'pooler={ plugin = \"first\"; }' "
                                 "--out %s/first >/dev/null 2>%s/err", dir, RUNNER_BUILD_DIR, common, dir, dir);
    is(sh(run_first), 0, "task1 runs with the out-of-tree pooler found through RUNNER_PLUGIN_PATH");
    char *run_cls = str_printf("%s/runner %s --set 'pooler={ plugin = \"cls\"; }' --out %s/cls >/dev/null 2>&1",
                               RUNNER_BUILD_DIR, common, dir);
    is(sh(run_cls), 0, "the same with the built-in cls pooler");
    char *a = str_printf("%s/first/embeddings.npy", dir), *b = str_printf("%s/cls/embeddings.npy", dir);
    int64_t ra, ca, rb, cb;
    float *x = NULL, *y = NULL;
    ok(npy_read_f32(a, &ra, &ca, &x) == 0 && npy_read_f32(b, &rb, &cb, &y) == 0 && ra == 8 && ca == 384 &&
           ra == rb && ca == cb && memcmp(x, y, (size_t)(ra * ca) * sizeof *x) == 0,
       "its embeddings equal the cls pooler's, bit for bit");
    char *without = str_printf("%s/runner %s --set 'pooler={ plugin = \"first\"; }' --check >/dev/null 2>%s/err",
                               RUNNER_BUILD_DIR, common, dir);
    is(sh(without), 2, "without RUNNER_PLUGIN_PATH it is not found: exit 2");
    char *errp = str_printf("%s/err", dir), *err = NULL;
    size_t len;
    if (file_read(errp, &err, &len) == 0)
        like(err, "pooler plugin 'first' not found", "... naming the plugin");
    else
        ok(0, "stderr readable");
    free(err);
    free(errp);
    free(x);
    free(y);
    free(a);
    free(b);
    free(cc);
    free(nm);
    free(run_first);
    free(run_cls);
    free(without);
    /* the bundles: one exported symbol each, no kit code inside */
    char *nm_all = str_printf("for f in %s/plugins/*.so; do n=$(nm -D --defined-only $f | grep -c ' [TDBR] '); "
                              "[ \"$n\" = 1 ] && nm -D --defined-only $f | grep -q ' T runner_bundle_v1$' || exit 1; "
                              "done", RUNNER_BUILD_DIR);
    is(sh(nm_all), 0, "every bundle exports runner_bundle_v1 and nothing else (no kit symbol)");
    char *needed = str_printf("for f in %s/plugins/*.so; do ldd -r $f 2>&1 | grep -q 'undefined symbol' && exit 1; done; "
                              "ldd %s/runner | grep -q 'librunner.so.1 => .*/lib/librunner.so.1'", RUNNER_BUILD_DIR, RUNNER_BUILD_DIR);
    is(sh(needed), 0, "every bundle resolves all its symbols; the runner uses the one kit library, librunner.so.1");
    free(nm_all);
    free(needed);

    /* a copy of an in-tree plugin (the MLP head) built out of tree with the
     * same one line, renamed, gives the built-in plugin's results exactly */
    char *copy = str_printf("sed 's/RUNNER_DEFINE_PLUGIN(head, mlp,/RUNNER_DEFINE_PLUGIN(head, mlp_copy,/' "
                            "plugins/head/mlp.c > %s/head_mlp_copy.c && export PKG_CONFIG_PATH=%s; "
                            "cc -shared -fPIC -fvisibility=hidden $(pkg-config --cflags runner) -o %s/head_mlp_copy.so "
                            "%s/head_mlp_copy.c $(pkg-config --libs runner)", dir, RUNNER_BUILD_DIR, dir, dir);
    is(sh(copy), 0, "a copy of plugins/head/mlp.c builds out of tree with the README's line");
    const char *tiny = "pipelines/task4.cfg --quiet --set model=\\\"tests/goldens/tiny-bert\\\" --set tokenizer.max_len=32 "
                       "--set tasks.[0].dataset.limit=64 --set tasks.[0].dataset.dev_limit=32 "
                       "--set tasks.[1].dataset.limit=64 --set tasks.[1].dataset.dev_limit=32 "
                       "--set train.max_steps=4 --set train.batch=8";
    char *run_copy = str_printf("RUNNER_PLUGIN_PATH=%s %s/runner %s --set 'tasks.[0].head.plugin=\"mlp_copy\"' "
                                "--out %s/mlp_copy >/dev/null 2>&1", dir, RUNNER_BUILD_DIR, tiny, dir);
    char *run_mlp = str_printf("%s/runner %s --out %s/mlp >/dev/null 2>&1", RUNNER_BUILD_DIR, tiny, dir);
    is(sh(run_copy), 0, "task4 (tiny) trains with the out-of-tree copy as topic head");
    is(sh(run_mlp), 0, "... and with the built-in mlp");
    char *same = str_printf("cmp %s/mlp/predictions_topic.csv %s/mlp_copy/predictions_topic.csv && "
                            "python3 -c 'import csv,sys\n"
                            "rows=[[{k:v for k,v in r.items() if \"per_s\" not in k and \"second\" not in k} for r in csv.DictReader(open(f))] for f in sys.argv[1:]]\n"
                            "sys.exit(rows[0]!=rows[1] or not rows[0])' %s/mlp/metrics.csv %s/mlp_copy/metrics.csv",
                            dir, dir, dir, dir);
    is(sh(same), 0, "identical predictions and metrics");
    free(copy);
    free(run_copy);
    free(run_mlp);
    free(same);

    /* the example metric: built out of tree, named in a task's metrics,
     * reported in metrics.json */
    char *met = str_printf("export PKG_CONFIG_PATH=%s; cc -shared -fPIC -fvisibility=hidden $(pkg-config --cflags runner) "
                           "-o %s/metric_balanced_accuracy.so examples/metric_balanced_accuracy.c $(pkg-config --libs runner) && "
                           "RUNNER_PLUGIN_PATH=%s %s/runner %s --set 'tasks.[1].metrics=[\"accuracy\",\"balanced_accuracy\"]' "
                           "--out %s/bal >/dev/null 2>&1 && grep -q balanced_accuracy %s/bal/metrics.json",
                           RUNNER_BUILD_DIR, dir, dir, RUNNER_BUILD_DIR, tiny, dir, dir);
    is(sh(met), 0, "the example metric plugin builds out of tree and reports balanced_accuracy in a task");
    free(met);

    /* installed: the runner finds its plugins and kit relative to itself,
     * and the installed runner.pc builds the example */
    char *inst = str_printf("make -s install BUILD=%s PREFIX=%s/inst >/dev/null 2>&1 && "
                            "%s/inst/bin/runner --list-plugins | grep -q 'pooler     mean' && "
                            "%s/inst/bin/runner --describe mlp | grep -q hidden", RUNNER_BUILD_DIR, dir, dir, dir);
    is(sh(inst), 0, "make install PREFIX=...: the installed runner finds its plugins beside itself");
    char *inst_pc = str_printf("export PKG_CONFIG_PATH=%s/inst/lib/pkgconfig; "
                               "cc -shared -fPIC -fvisibility=hidden $(pkg-config --cflags runner) -o %s/inst_first.so "
                               "examples/pooler_first.c $(pkg-config --libs runner) && "
                               "pkg-config --cflags runner | grep -q '%s/inst/include'", dir, dir, dir);
    is(sh(inst_pc), 0, "... and its runner.pc builds the example plugin against the installed headers");
    free(inst);
    free(inst_pc);

    char *rm = str_printf("rm -rf %s", dir);
    if (system(rm) != 0)
        diag("could not remove %s", dir);
    free(rm);
    return done_testing(16);
}
