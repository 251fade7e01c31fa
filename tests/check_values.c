/* check_values.c — `runner --check` judges values, not only types: every
 * value error of a pipeline (out of range, not one of the choices, an
 * integer that would wrap) is reported at once with file:line, exit 2. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"
#include "runner/kit/util.h"

static char dir[] = "/tmp/runner-check-XXXXXX";

static const char *pipeline_text =
    "name = \"bad\";\n"                                                      /* 1 */
    "run = \"train\";\n"                                                     /* 2 */
    "model = \"tests/goldens/tiny-bert\";\n"                                  /* 3 */
    "tokenizer = { plugin = \"wordpiece\"; };\n"                             /* 4 */
    "backbone = { plugin = \"bert\"; };\n"                                   /* 5 */
    "pooler = { plugin = \"mean\"; };\n"                                     /* 6 */
    "tasks = ( { name = \"t\"; dataset = { format = \"agnews\"; path = \"tests/data/tiny_rows.tsv\"; };\n" /* 7 */
    "  head = { plugin = \"linear\"; dropout = 1.5; }; } );\n"               /* 8 */
    "freeze = { plugin = \"gradual_unfreeze\"; decay = 5.0; };\n"            /* 9 */
    "train = {\n"                                                            /* 10 */
    "  schedule = \"cosin\";\n"                                              /* 11 */
    "  batch = 0;\n"                                                         /* 12 */
    "  combine = \"uncertain\";\n"                                           /* 13 */
    "  epochs = -1;\n"                                                       /* 14 */
    "  lr = -1.0;\n"                                                         /* 15 */
    "};\n"                                                                   /* 16 */
    "batch = { size = 4294967300L; };\n";                                   /* 17 */

static int run(const char *args, char **err)
{
    char *cmd = str_printf("%s/runner %s 2>%s/err >/dev/null", RUNNER_BUILD_DIR, args, dir);
    int st = system(cmd);
    free(cmd);
    char *p = str_printf("%s/err", dir);
    size_t n;
    *err = NULL;
    if (file_read(p, err, &n) != 0)
        *err = str_dup("");
    free(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(void)
{
    plan(29);
    if (!mkdtemp(dir))
        return 1;
    char *file = str_printf("%s/bad.cfg", dir);
    ok(file_write_atomic(file, pipeline_text, strlen(pipeline_text)) == 0, "pipeline with ten value errors written");
    char *args = str_printf("%s --check", file), *err = NULL;
    is(run(args, &err), 2, "--check exits 2");
    static const struct {
        int line;
        const char *what;
    } want[] = {
        {7, "tasks.[0].dataset.plugin: dataset plugin 'agnews' not found"},
        {8, "tasks.[0].head.dropout: 1.5 is out of range: must be in [0, 1)"},
        {9, "freeze.decay: 5 is out of range: must be in (0, 1]"},
        {11, "train.schedule: 'cosin' is not one of linear|cosine|constant; did you mean 'cosine'?"},
        {12, "train.batch: 0 is out of range: must be in [1, 65536]"},
        {13, "train.combine: 'uncertain' is not one of fixed|uncertainty; did you mean 'uncertainty'?"},
        {14, "train.epochs: -1 is out of range"},
        {15, "train.lr: -1 is out of range"},
        {17, "batch.size: 4294967300 is out of range: must be in [1, 65536]"},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        char *line = str_printf("%s:%d: %s", file, want[i].line, want[i].what);
        like(err, line, "line %d: %s", want[i].line, want[i].what);
        free(line);
    }
    like(err, "dataset plugin 'agnews' not found (looked for dataset_agnews.so and dataset.so in",
         "the dataset plugin: where it was looked for");
    like(err, "; did you mean 'agnews_csv'?", "... and the plugin whose name it begins");
    free(err);
    /* --set values are judged the same way, and nothing wraps */
    is(run("pipelines/task1.cfg --check --set batch.size=4294967300", &err), 2,
       "--set batch.size=4294967300 is refused, not wrapped to 4");
    free(err);
    /* train.precision: f32 or bf16 only */
    is(run("pipelines/bench_train.cfg --check --set train.precision=fp16", &err), 2,
       "train.precision = \"fp16\": exit 2");
    like(err, "train.precision: 'fp16' is not one of f32|bf16", "... naming the key and its choices");
    free(err);
    is(run("pipelines/bench_train.cfg --check --set train.precision=bf16", &err), 0,
       "train.precision = \"bf16\" passes --check");
    free(err);
    /* the backbone's keys from bert's table: every error at once, exit 2 */
    is(run("pipelines/task1.cfg --check --set backbone.precision=bf17 --set backbone.init=rand "
           "--set backbone.hidden_dropout=1 --set backbone.num_hidden_layers=0", &err), 2,
       "backbone.precision, init, hidden_dropout, num_hidden_layers out of their tables: exit 2");
    like(err, "4 errors in the pipeline", "... all four reported");
    like(err, "backbone.precision: 'bf17' is not one of f32|bf16|int8; did you mean 'bf16'?", "... precision");
    like(err, "backbone.init: 'rand' is not one of pretrained|random", "... init");
    like(err, "backbone.hidden_dropout: 1 is out of range: must be in [0, 1)", "... a dropout");
    like(err, "backbone.num_hidden_layers: 0 is out of range", "... a size");
    free(err);
    /* a misspelt plugin name: the closest plugin of its kind is suggested */
    is(run("pipelines/task1.cfg --check --set pooler.plugin=maxx", &err), 2, "pooler.plugin = \"maxx\": exit 2");
    like(err, "pooler plugin 'maxx' not found", "... naming it");
    like(err, "did you mean 'max'?", "... and suggesting the closest pooler");
    free(err);
    /* a masked-LM task (unlabeled text) reports its accuracy from the core */
    is(run("pipelines/pretrain_mlm.cfg --check", &err), 0, "train.select = \"mlm.accuracy\" of a text task passes --check");
    free(err);
    /* in a file, libconfig would wrap it before we see it: refused at load */
    char *wide = str_printf("%s/wide.cfg", dir);
    const char *wide_text = "name = \"w\";\nrun = \"embed\";\nbatch = { size = 4294967300; };\n";
    char *wide_args = str_printf("%s --check", wide);
    if (file_write_atomic(wide, wide_text, strlen(wide_text)) != 0)
        diag("cannot write %s", wide);
    is(run(wide_args, &err), 2, "a 33-bit integer without L in a file: exit 2");
    char *where = str_printf("%s:3: an integer beyond 32 bits needs an L suffix", wide);
    like(err, where, "... naming file and line");
    free(where);
    free(err);
    free(wide);
    free(wide_args);
    free(args);
    free(file);
    char *rm = str_printf("rm -rf %s", dir);
    if (system(rm) != 0)
        diag("could not remove %s", dir);
    free(rm);
    return done_testing(29);
}
