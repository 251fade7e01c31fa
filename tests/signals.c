/* signals.c — SIGTERM and SIGINT end runs cleanly. Training: the current
 * step finishes, last/ is written with the trainer state, the runner exits
 * 143 (130 for SIGINT) with a line saying how to resume, and --resume
 * continues from that step. Encoding: exit 143 and no output file, not
 * even a temporary one. The signal is sent once the run is under way
 * (its folder, or its first last/, exists); waits are bounded, nothing is
 * timed. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <unistd.h>

#include "shell.h"
#include "tap.h"

extern char **environ;

static char dir[] = "/tmp/runner-signals-XXXXXX";

/* Start the runner with argv (stderr to dir/err.<tag>, stdin from fd in
 * when in >= 0); -1 on failure. */
static pid_t start_in(char *const argv[], const char *tag, int in)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (in >= 0)
        posix_spawn_file_actions_adddup2(&fa, in, 0);
    char *err = str_printf("%s/err.%s", dir, tag);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    int rc = posix_spawn(&pid, RUNNER, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    free(err);
    return rc == 0 ? pid : -1;
}

static pid_t start(char *const argv[], const char *tag)
{
    return start_in(argv, tag, -1);
}

/* Wait (at most 300 s) for path to exist while pid runs. */
static int appears(const char *path, pid_t pid)
{
    for (int i = 0; i < 3000; i++) {
        if (path_exists(path))
            return 1;
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return 0;
        usleep(100000);
    }
    return 0;
}

static int exit_code(pid_t pid)
{
    int st;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1000 + WTERMSIG(st);
}

/* Files in d whose names contain needle. */
static int count_files(const char *d, const char *needle)
{
    DIR *dd = opendir(d);
    struct dirent *e;
    int n = 0;
    while (dd && (e = readdir(dd)))
        n += strstr(e->d_name, needle) != NULL;
    if (dd)
        closedir(dd);
    return n;
}

static void encoding(void)
{
    char *in = str_printf("%s/many.txt", dir), *out = str_printf("%s/embed", dir);
    is(sh("for i in $(seq 3000); do echo \"sentence number $i of a long input that keeps the encoder busy\"; done >%s",
          in), 0, "setup: 3000 sentences");
    char *set_in = str_printf("input=%s", in);
    char *argv[] = {"runner", "pipelines/task1.cfg", "--threads", "1", "--set",
                    "model=../shared/models/minilm-l6-random", "--set", set_in, "--out", out, NULL};
    pid_t pid = start(argv, "embed");
    char *cfg = str_printf("%s/config.cfg", out);
    ok(pid > 0 && appears(cfg, pid), "embed: the run is under way");
    if (pid > 0)
        kill(pid, SIGTERM);
    is(pid > 0 ? exit_code(pid) : -1, 143, "SIGTERM while encoding: exit 143");
    ok(count_files(out, "embeddings") == 0 && count_files(out, "similarity") == 0 && count_files(out, ".tmp") == 0,
       "no embeddings, no similarity file, no temporary file");
    char *err = slurp(dir, "err.embed");
    like(err, "stopped by SIGTERM", "... and it says why");
    free(err);
    free(cfg);
    free(set_in);
    free(in);
    free(out);
}

/* input = "-" and a stdin that never ends: the signal still ends the run. */
static void blocked_stdin(void)
{
    int fds[2];
    char *out = str_printf("%s/stdin", dir), *cfg = str_printf("%s/stdin/config.cfg", dir);
    char *argv[] = {"runner", "pipelines/task1.cfg", "--set", "model=../shared/models/minilm-l6-random",
                    "--set", "input=-", "--out", out, NULL};
    pid_t pid = pipe(fds) == 0 ? start_in(argv, "stdin", fds[0]) : -1;
    ok(pid > 0 && appears(cfg, pid), "embed from a stdin that stays open: under way");
    if (pid > 0)
        kill(pid, SIGTERM);
    is(pid > 0 ? exit_code(pid) : -1, 143, "SIGTERM while reading stdin: exit 143");
    char *err = slurp(dir, "err.stdin");
    like(err, "stdin: stopped by SIGTERM", "... saying so");
    free(err);
    close(fds[0]);
    close(fds[1]);
    free(out);
    free(cfg);
}

static void training(void)
{
    char *data = str_printf("%s/data.tsv", dir), *cfg = str_printf("%s/train.cfg", dir);
    is(sh("head -65 ../shared/datasets/sst2/train.tsv > %s", data), 0, "setup: 64 SST-2 rows");
    char *text = str_printf(
        "name = \"tiny\";\nrun = \"train\";\nmodel = \"tests/goldens/tiny-bert\";\n"
        "tokenizer = { plugin = \"wordpiece\"; max_len = 32; };\nbackbone = { plugin = \"bert\"; };\n"
        "pooler = { plugin = \"mean\"; };\n"
        "tasks = ( { name = \"sentiment\"; dataset = { format = \"tsv\"; train = \"%s\"; dev = \"%s\";\n"
        "    text_field = \"sentence\"; label_field = \"label\"; labels = [\"neg\", \"pos\"]; };\n"
        "  head = { plugin = \"linear\"; }; loss = { plugin = \"cross_entropy\"; }; } );\n"
        "train = { batch = 16; epochs = 100000; eval_every = 3; };\n", data, data);
    file_write_atomic(cfg, text, strlen(text));
    char *out = str_printf("%s/train", dir), *state = str_printf("%s/train/last/trainer_state.bin", dir);
    char *argv[] = {"runner", cfg, "--threads", "1", "--out", out, NULL};
    pid_t pid = start(argv, "train");
    ok(pid > 0 && appears(state, pid), "train: under way, a first last/ written");
    if (pid > 0)
        kill(pid, SIGTERM);
    int code = pid > 0 ? exit_code(pid) : -1;
    is(code, 143, "SIGTERM while training: exit 143");
    char *err = slurp(dir, "err.train");
    if (code != 143) /* to stderr, which prove shows: why it ended otherwise */
        fprintf(stderr, "# training run ended with %d (1000 + n: killed by signal n); its stderr:\n%s\n", code,
                err ? err : "(none)");
    like(err, "stopped by SIGTERM after step ", "it names the signal and the step");
    like(err, "last written: continue with: runner ", "... and how to resume");
    long long step = -1;
    const char *at = err ? strstr(err, "after step ") : NULL;
    if (at)
        step = atoll(at + 11);
    ok(path_exists(state) && count_files(out, ".tmp") == 0 && count_files(out, ".old") == 0,
       "last/ is whole: trainer state, no .tmp or .old left");
    free(err);
    is(sh("%s %s --threads 1 --resume %s/last --set train.max_steps=%lld --out %s/resumed >/dev/null 2>%s/err.resume",
          RUNNER, cfg, out, step + 2, dir, dir), 0, "--resume from that last/ runs on to the end");
    err = slurp(dir, "err.resume");
    char want[64];
    snprintf(want, sizeof want, "at step %lld", step);
    like(err, want, "... from the step the signal stopped at");
    free(err);
    char *args[] = {"runner", cfg, "--threads", "1", "--out", out, NULL};
    sh("rm -rf %s", out);
    pid = start(args, "int");
    ok(pid > 0 && appears(state, pid), "train again: under way");
    if (pid > 0)
        kill(pid, SIGINT);
    is(pid > 0 ? exit_code(pid) : -1, 130, "SIGINT while training: exit 130");
    free(text);
    free(cfg);
    free(data);
    free(out);
    free(state);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    encoding();
    blocked_stdin();
    training();
    sh("rm -rf %s", dir);
    return done_testing(18);
}
