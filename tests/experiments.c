/* experiments.c — whole-program tests of what a practitioner runs:
 * sweeps (a grid, its table, resuming), metrics.csv (one number per cell,
 * unique headers; checked with Python's csv), pictures that cannot be
 * used to run commands (gnuplot gets no shell and every text quoted), long
 * task names, train.select checked at --check, --set appending to a list,
 * @include resolution and its errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shell.h"
#include "tap.h"
#include "runner/kit/util.h"

static char dir[] = "/tmp/runner-experiments-XXXXXX";
static char cwd[4096];

/* A tiny Task 4: the shipped pipeline, tiny-bert, a few dozen rows. */
#define TINY                                                                                                    \
    "--set model=tests/goldens/tiny-bert --set tokenizer.max_len=32 --set tasks.[0].dataset.limit=40 "           \
    "--set tasks.[0].dataset.dev_limit=20 --set tasks.[1].dataset.limit=40 --set tasks.[1].dataset.dev_limit=20 " \
    "--set train.max_steps=4 --set train.eval_every=2 --set train.save_best=false --set train.save_last=false"

static char *slurp_in(const char *fmt, const char *a)
{
    char *path = str_printf(fmt, dir, a), *data = NULL;
    size_t len;
    if (!path || file_read(path, &data, &len) != 0)
        data = NULL;
    free(path);
    return data;
}

static int exists(const char *fmt, const char *a)
{
    char *path = str_printf(fmt, dir, a);
    int e = path && path_exists(path);
    free(path);
    return e;
}

static int write_file(const char *name, const char *text)
{
    char *path = str_printf("%s/%s", dir, name);
    int rc = path ? file_write_atomic(path, text, strlen(text)) : -1;
    free(path);
    return rc;
}

static int count(const char *text, const char *what)
{
    int n = 0;
    for (const char *p = text; p && (p = strstr(p, what)); p += strlen(what))
        n++;
    return n;
}

static void test_sweep(void)
{
    const char *sw = "--sweep 'pooler.plugin=[mean,cls]' --sweep 'seed=[1,2]'";
    is(sh("%s/runner pipelines/task4.cfg " TINY " %s --jobs 2 --threads 2 --quiet --out %s/sweep >%s/sweep1 2>&1",
          RUNNER_BUILD_DIR, sw, dir, dir),
       0, "sweep: 2 poolers x 2 seeds of a tiny Task 4 run");
    char *out = slurp_in("%s/%s", "sweep1"), *md = slurp_in("%s/%s", "sweep/summary.md");
    is(count(out, "] started "), 4, "sweep: 4 runs started");
    ok(md && strstr(md, "4 finished runs in 2 groups"), "sweep: one table of 4 runs in 2 groups");
    like(md, "| mean | 2 | ", "sweep: the mean pooler's row averages 2 seeds");
    like(md, "| cls | 2 | ", "sweep: the cls pooler's row averages 2 seeds");
    ok(md && count(md, " ± ") >= 4, "sweep: mean ± std cells");
    ok(md && strstr(md, "**"), "sweep: the best group is marked");
    char *csv = slurp_in("%s/%s", "sweep/tables/topic.accuracy.csv");
    ok(csv && count(csv, "\n") == 3 && strstr(csv, "runs,mean,std,best,trainable_parameters,wall_s"),
       "sweep: tables/topic.accuracy.csv has a header and 2 rows");
    ok(exists("%s/%s", "sweep/tables/topic.accuracy.json") && exists("%s/%s", "sweep/tables/topic.accuracy.md"),
       "sweep: the JSON and markdown tables");
    ok(exists("%s/%s", "sweep/pooler.plugin=cls,seed=2/metrics.json"), "sweep: one sub-folder per point");
    free(out);
    is(sh("%s/runner pipelines/task4.cfg " TINY " %s --quiet --out %s/sweep >%s/sweep2 2>&1", RUNNER_BUILD_DIR, sw,
          dir, dir),
       0, "sweep: run again");
    out = slurp_in("%s/%s", "sweep2");
    is(count(out, "] started "), 0, "sweep: re-running starts no new run");
    like(out, "4 already finished", "sweep: ... and says the 4 points are finished");
    free(out);
    is(sh("%s/runner --collect %s/sweep --quiet >/dev/null 2>&1", RUNNER_BUILD_DIR, dir), 0, "--collect DIR");
    write_file("sweep/sweep.json", "{\"columns\": [\"sentiment.accuracy\", \"topic.accuracy\", \"topic.nosuch\"]}");
    is(sh("%s/runner --collect %s/sweep --quiet >/dev/null 2>&1", RUNNER_BUILD_DIR, dir), 0,
       "--collect with sweep.json's columns");
    md = (free(md), slurp_in("%s/%s", "sweep/summary.md"));
    like(md, "| pooler.plugin | runs | sentiment.accuracy | topic.accuracy | topic.nosuch | trainable params | wall s |",
         "... the summary shows those columns, in that order (an unknown one empty)");
    write_file("groupsweep.cfg", "name = \"g\";\nsweep = { axes = ( { set = \"pooler\"; values = ( { plugin = \"mean\"; },"
                                 " { plugin = \"max\"; }, { plugin = \"mean\"; layer = -2; } ); } ); };\n");
    is(sh("%s/runner %s/groupsweep.cfg --check >%s/groupsweep.out 2>&1", RUNNER_BUILD_DIR, dir, dir), 0,
       "a sweep over whole stages (groups) checks");
    out = slurp_in("%s/%s", "groupsweep.out");
    ok(out && strstr(out, "point 1/3: pooler=mean") && strstr(out, "point 2/3: pooler=max") &&
           strstr(out, "point 3/3: pooler=mean_3"), "... its points named by plugin, a repeated one numbered");
    free(out);
    write_file("colsweep.cfg", "name = \"c\";\nsweep = { columns = [ 1 ];\n axes = ( { set = \"seed\"; values = [1]; } ); };\n");
    is(sh("%s/runner %s/colsweep.cfg --check >/dev/null 2>%s/colsweep.err", RUNNER_BUILD_DIR, dir, dir), 2,
       "sweep.columns not a list of strings: exit 2");
    out = slurp_in("%s/%s", "colsweep.err");
    like(out, "colsweep.cfg:2: sweep.columns: expected a list of metric names", "... naming file, line and key");
    free(out);
    is(sh("%s/runner --collect %s/nothing >/dev/null 2>&1", RUNNER_BUILD_DIR, dir), 1,
       "--collect of a folder without runs: exit 1");
    is(sh("%s/runner pipelines/task4.cfg --sweep 'seed' --check >/dev/null 2>&1", RUNNER_BUILD_DIR), 2,
       "--sweep without values: exit 2");
    is(sh("%s/runner pipelines/task4.cfg " TINY " --sweep 'pooler.plugin=[mean,nosuch]' --quiet --out %s/failing "
          ">%s/failing.out 2>&1",
          RUNNER_BUILD_DIR, dir, dir),
       1, "a sweep with a failing point: exit 1");
    out = slurp_in("%s/%s", "failing.out");
    like(out, "pooler.plugin=nosuch FAILED", "... naming the point");
    free(out);
    out = slurp_in("%s/%s", "failing/pooler.plugin=nosuch/log.txt");
    like(out, "nosuch", "... whose log.txt says why");
    free(out);
    out = slurp_in("%s/%s", "failing/summary.md");
    like(out, "1 finished run in 1 group", "... and the table holds the point that succeeded");
    free(out);
    is(sh("%s/runner pipelines/task4.cfg " TINY " --sweep 'pooler.plugin=[mean,nosuch]' --quiet --out %s/failing "
          ">%s/failing.out 2>&1",
          RUNNER_BUILD_DIR, dir, dir),
       1, "re-running it tries the failed point again");
    out = slurp_in("%s/%s", "failing.out");
    like(out, "1 run, 1 already finished (skipped), 1 failed", "... and skips the finished one");
    free(out);
    is(sh("%s/runner pipelines/sweeps/task3.cfg --check >%s/t3check 2>&1", RUNNER_BUILD_DIR, dir), 0,
       "pipelines/sweeps/task3.cfg: --check lists its points");
    out = slurp_in("%s/%s", "t3check");
    like(out, "point 30/30: backbone.init=random,pipeline=transfer,seed=3", "... 2 backbones x 5 scenarios x 3 seeds");
    free(out);
    write_file("badsweep.cfg", "name = \"b\";\nsweep = { axes = ( { set = \"seed\"; values = [1]; } ); jobs = 2; };\n");
    is(sh("%s/runner %s/badsweep.cfg --check >/dev/null 2>%s/badsweep.err", RUNNER_BUILD_DIR, dir, dir), 2,
       "an unknown key in a sweep section: exit 2");
    out = slurp_in("%s/%s", "badsweep.err");
    like(out, "badsweep.cfg:2: sweep.jobs: unknown key", "... naming file, line and key");
    free(out);
    free(md);
    free(csv);
}

static void test_metrics_csv(void)
{
    is(sh("%s/runner pipelines/task4.cfg " TINY " --set train.log_every=1 --quiet --out %s/t4 >/dev/null 2>&1",
          RUNNER_BUILD_DIR, dir),
       0, "metrics.csv: the shipped task4.cfg with tiny limits runs");
    is(sh("python3 -c \"import csv,sys\n"
          "rows = list(csv.reader(open(sys.argv[1])))\n"
          "h = rows[0]\n"
          "assert len(h) == len(set(h)), 'duplicate headers'\n"
          "assert 'topic.per_class.macro_f1' in h and 'topic.macro_f1' in h, h\n"
          "assert len(rows) > 2\n"
          "for r in rows[1:]:\n"
          "    assert len(r) == len(h), r\n"
          "    [float(c) for c in r if c != '']\n"
          "dev = [r for r in rows[1:] if r[h.index('topic.accuracy')] != '']\n"
          "assert dev and all(float(r[h.index('topic.dev_sentences_per_s')]) > 0 for r in dev)\n"
          "\" %s/t4/metrics.csv 2>%s/pyerr",
          dir, dir),
       0, "metrics.csv parses with Python's csv: unique headers, every cell empty or a number, dev sentences/s");
    char *json = slurp_in("%s/%s", "t4/metrics.json");
    ok(json && strstr(json, "\"history\"") == NULL && strstr(json, "\"test\": null"),
       "metrics.json: a test placeholder per task");
    free(json);
}

/* Nothing in --out or a task name reaches a shell or a gnuplot expression. */
static void test_injection(void)
{
    is(sh("cd %s && %s/runner %s/pipelines/task1.cfg --set model=%s/models/all-MiniLM-L6-v2 "
          "--set input=%s/datasets/sentences.txt --quiet --out \"x';touch PWNED;'\" >/dev/null 2>&1",
          dir, RUNNER_BUILD_DIR, cwd, cwd, cwd),
       0, "--out with quotes and a command: the run succeeds");
    ok(!exists("%s/%s", "PWNED"), "--out \"x';touch PWNED;'\" creates no file PWNED");
    ok(exists("%s/%s", "x';touch PWNED;'/similarity.png"), "... and its similarity.png is drawn");
    /* gnuplot would run system() in the runner's working folder: this one */
    ok(!path_exists("PWNED"), "no file PWNED in the working folder before");
    is(sh("%s/runner pipelines/task4.cfg " TINY " --set \"tasks.[0].name=\\\"s'.system('touch PWNED').'\\\"\" "
          "--quiet --out %s/evil >/dev/null 2>%s/evil.err",
          RUNNER_BUILD_DIR, dir, dir),
       0, "a task named s'.system('touch PWNED').' trains");
    ok(!path_exists("PWNED") && !exists("%s/%s", "evil/PWNED"), "... and creates no file PWNED");
    ok(exists("%s/%s", "evil/confusion_s'.system('touch PWNED').'.png"), "... its confusion matrix is drawn");
    unlink("PWNED");
    ok(exists("%s/%s", "evil/loss.png"), "... its loss.png is drawn");
}

static void test_long_names(void)
{
    char name[221];
    memset(name, 'n', 220);
    name[220] = 0;
    char *text = str_printf("name = \"long\";\nrun = \"train\";\nmodel = \"%s/tests/goldens/tiny-bert\";\n"
                            "tokenizer = { plugin = \"wordpiece\"; max_len = 32; };\nbackbone = { plugin = \"bert\"; };\n"
                            "pooler = { plugin = \"mean\"; };\nsampler = { plugin = \"round_robin\"; };\n"
                            "train = { max_steps = 9; batch = 4; save_best = false; save_last = false; };\ntasks = (",
                            cwd);
    for (int k = 0; k < 9 && text; k++) {
        name[0] = (char)('a' + k);
        char *more = str_printf("%s%s { name = \"%s\"; dataset = { format = \"tsv\"; train = \"%s/tests/data/tiny_rows.tsv\";"
                                " dev = \"%s/tests/data/tiny_rows.tsv\"; text_field = \"sentence\"; label_field = \"label\"; };"
                                " head = { plugin = \"linear\"; }; loss = { plugin = \"cross_entropy\"; };"
                                " metrics = [\"accuracy\", \"macro_f1\"]; }",
                                text, k ? "," : "", name, cwd, cwd);
        free(text);
        text = more;
    }
    char *full = text ? str_printf("%s\n);\n", text) : NULL;
    write_file("long.cfg", full ? full : "");
    free(text);
    free(full);
    is(sh("%s/runner %s/long.cfg --quiet --threads 2 --out %s/long >/dev/null 2>%s/long.err", RUNNER_BUILD_DIR, dir,
          dir, dir),
       0, "9 tasks with 220-character names: no crash");
    ok(exists("%s/%s", "long/run.json") && exists("%s/%s", "long/loss.png"), "... run.json and loss.png written");
    /* git is started when the run begins and read when it ends */
    char head[64] = "";
    FILE *g = popen("git rev-parse HEAD 2>/dev/null", "r");
    if (g && !fgets(head, sizeof head, g))
        head[0] = 0;
    if (g)
        pclose(g);
    head[strcspn(head, "\n")] = 0;
    char *rj = slurp_in("%s/%s", "long/run.json");
    if (head[0])
        like(rj, head, "run.json: git_commit is the checkout's HEAD");
    else
        ok(rj && !strstr(rj, "git_commit"), "run.json: no git_commit outside a git checkout");
    free(rj);
}

static void test_select(void)
{
    const char *base = "pipelines/task4.cfg " TINY;
    is(sh("%s/runner %s --set train.select=topic.acuracy --check >/dev/null 2>%s/sel.err", RUNNER_BUILD_DIR, base,
          dir),
       2, "a misspelt train.select: exit 2 at --check");
    char *err = slurp_in("%s/%s", "sel.err");
    like(err, "train.select: 'topic.acuracy' names no metric", "... naming the key and the value");
    like(err, "topic.accuracy", "... and listing the choices");
    free(err);
    is(sh("%s/runner %s --set train.select=topic.per_class.macro_f1 --check >/dev/null 2>&1", RUNNER_BUILD_DIR, base),
       0, "train.select = topic.per_class.macro_f1 is accepted");
    is(sh("%s/runner %s --set train.select=sentiment.loss --set train.log_every=1 --set train.eval_every=1 --quiet "
          "--out %s/sel >/dev/null 2>&1",
          RUNNER_BUILD_DIR, base, dir),
       0, "train.select = sentiment.loss runs");
    is(sh("python3 -c \"import csv,json,sys\n"
          "rows = list(csv.DictReader(open(sys.argv[1] + '/metrics.csv')))\n"
          "dev = [(float(r['sentiment.dev_loss']), int(r['step'])) for r in rows if r['sentiment.dev_loss']]\n"
          "best = json.load(open(sys.argv[1] + '/metrics.json'))['best_step']\n"
          "assert best == min(dev)[1], (dev, best)\n"
          "\" %s/sel 2>%s/pyerr2",
          dir, dir),
       0, "... and keeps the step of the lowest dev loss (losses are minimised)");
}

/* A resumed run's metrics.csv starts at step 1, not at the resume step. */
static void test_resume_history(void)
{
    const char *base = "pipelines/task4.cfg " TINY " --set train.save_last=true --set train.log_every=1 --quiet";
    is(sh("%s/runner %s --set train.stop_after=2 --out %s/res >/dev/null 2>&1", RUNNER_BUILD_DIR, base, dir), 0,
       "resume: a run stopped after step 2");
    is(sh("%s/runner %s --resume %s/res/last --out %s/res2 >/dev/null 2>%s/res.err", RUNNER_BUILD_DIR, base, dir,
          dir, dir),
       0, "resume: continued with --resume");
    char *csv = slurp_in("%s/%s", "res2/metrics.csv");
    char *first = csv ? strchr(csv, '\n') : NULL;
    ok(first && strncmp(first + 1, "1,", 2) == 0, "resume: metrics.csv keeps the history from step 1");
    ok(csv && strstr(csv, "\n4,"), "... and goes on to step 4");
    free(csv);
}

/* --set appends to a list; @include resolves relative to the including
 * file, then the top pipeline's folder, then $RUNNER_INCLUDE_PATH. */
static void test_composition(void)
{
    char *extra = "--set 'tasks.[+]={ name = \"third\"; dataset = { format = \"tsv\"; "
                  "train = \"tests/data/tiny_rows.tsv\"; dev = \"tests/data/tiny_rows.tsv\"; text_field = \"sentence\"; "
                  "label_field = \"label\"; }; head = { plugin = \"linear\"; }; loss = { plugin = \"cross_entropy\"; }; }'";
    is(sh("%s/runner pipelines/task4.cfg %s --check >%s/append.out 2>&1", RUNNER_BUILD_DIR, extra, dir), 0,
       "--set tasks.[+]=... appends a task to the included list");
    char *out = slurp_in("%s/%s", "append.out");
    ok(out && strstr(out, "name = \"topic\"") && strstr(out, "name = \"third\""), "... the list keeps its tasks and gains one");
    free(out);
    is(sh("%s/runner pipelines/task4.cfg --set 'seed.[+]=1' --check >/dev/null 2>&1", RUNNER_BUILD_DIR), 2,
       "appending to a non-list: exit 2");
    char *sub = str_printf("%s/sub", dir), *lib = str_printf("%s/lib", dir);
    dir_make(sub);
    dir_make(lib);
    write_file("sub/inner.cfg", "@include \"leaf.cfg\"\n");
    write_file("sub/leaf.cfg", "seed = 11;\n");
    write_file("lib/shared.cfg", "show_dims = 3;\n");
    write_file("top.cfg", "name = \"inc\";\nrun = \"embed\";\n@include \"sub/inner.cfg\"\n@include \"shared.cfg\"\n");
    is(sh("RUNNER_INCLUDE_PATH=/nonexistent:%s %s/runner %s/top.cfg --check >%s/inc.out 2>&1", lib, RUNNER_BUILD_DIR,
          dir, dir),
       0, "@include relative to the including file, and through RUNNER_INCLUDE_PATH");
    out = slurp_in("%s/%s", "inc.out");
    ok(out && strstr(out, "seed = 11") && strstr(out, "show_dims = 3"), "... both included files' settings are there");
    free(out);
    char *abs = str_printf("name = \"abs\";\nrun = \"embed\";\n@include \"%s/sub/leaf.cfg\"\n", dir);
    write_file("abs.cfg", abs);
    free(abs);
    is(sh("%s/runner %s/abs.cfg --check >/dev/null 2>&1", RUNNER_BUILD_DIR, dir), 0, "@include of an absolute path");
    static const char *const bad[][3] = {
        {"folder.cfg", "name = \"x\";\n@include \"sub\"\n", "folder.cfg:2: @include \"sub\" is a folder"},
        {"empty.cfg", "name = \"x\";\n\n@include \"\"\n", "empty.cfg:3: @include \"\": no file named"},
        {"missing.cfg", "@include \"nope.cfg\"\n", "missing.cfg:1: @include \"nope.cfg\": no such file"},
    };
    for (int i = 0; i < 3; i++) {
        write_file(bad[i][0], bad[i][1]);
        is(sh("%s/runner %s/%s --check >/dev/null 2>%s/inc.err", RUNNER_BUILD_DIR, dir, bad[i][0], dir), 2,
           "%s: exit 2", bad[i][0]);
        char *err = slurp_in("%s/%s", "inc.err");
        like(err, bad[i][2], "... naming file and line");
        free(err);
    }
    free(sub);
    free(lib);
}

int main(void)
{
    if (!mkdtemp(dir) || !getcwd(cwd, sizeof cwd)) {
        ok(0, "temporary folder");
        return done_testing(68);
    }
    test_sweep();
    test_metrics_csv();
    test_injection();
    test_long_names();
    test_select();
    test_composition();
    test_resume_history();
    if (!tap_failed && sh("rm -rf %s", dir) != 0)
        diag("could not remove %s", dir);
    return done_testing(68);
}
