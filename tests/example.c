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
    char *rm = str_printf("rm -rf %s", dir);
    if (system(rm) != 0)
        diag("could not remove %s", dir);
    free(rm);
    return done_testing();
}
