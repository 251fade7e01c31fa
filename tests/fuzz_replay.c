/* fuzz_replay.c — the fuzz harnesses of tests/fuzz/ as a regression test:
 * every saved input that once crashed, hung or leaked
 * (crash-, timeout-, leak-, oom-, slow-unit- files of tests/fuzz/corpus/NAME/) and every
 * seed (the files of tests/fuzz/seeds/NAME/) goes through its harness again, each in
 * a child process, which must exit normally. Built with the same flags as
 * the other tests (ASan + UBSan under make SAN=1). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runner/kit/util.h"
#include "tap.h"

#define HARNESSES(X) X(pipeline) X(safetensors) X(tokenizer) X(dataset) X(npy) X(state) X(bertconfig)
#define DECLARE(n) int fuzz_one_##n(const uint8_t *data, size_t size);
HARNESSES(DECLARE)
#define ENTRY(n) {#n, fuzz_one_##n},
static const struct {
    const char *name;
    int (*one)(const uint8_t *, size_t);
} harness[] = {HARNESSES(ENTRY)};

static const char *const saved[] = {"crash-", "timeout-", "leak-", "oom-", "slow-unit-", NULL};

/* One input in a child: 0 when the harness returned normally. */
static int replay(int (*one)(const uint8_t *, size_t), const char *path, char *why, size_t size)
{
    char *data = NULL;
    size_t len = 0;
    if (file_read(path, &data, &len) != 0) {
        snprintf(why, size, "%s", err_get());
        return -1;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(60);
        one((const uint8_t *)data, len);
        _exit(0);
    }
    free(data);
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        return snprintf(why, size, "fork/wait failed"), -1;
    if (WIFSIGNALED(st))
        return snprintf(why, size, "killed by signal %d", WTERMSIG(st)), -1;
    if (WEXITSTATUS(st) != 0)
        return snprintf(why, size, "exit %d", WEXITSTATUS(st)), -1;
    return 0;
}

/* Every file of folder (those starting with one of prefixes, or all);
 * with count_only, how many there are. */
static int replay_dir(int k, const char *folder, const char *const *prefixes, int count_only)
{
    DIR *d = opendir(folder);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        int take = !prefixes && e->d_name[0] != '.';
        for (int i = 0; prefixes && prefixes[i]; i++)
            take |= strncmp(e->d_name, prefixes[i], strlen(prefixes[i])) == 0;
        if (!take || (count_only && ++n))
            continue;
        char *path = str_printf("%s/%s", folder, e->d_name), why[256] = "";
        int rc = replay(harness[k].one, path, why, sizeof why);
        ok(rc == 0, "%s: %s replays cleanly%s%s", harness[k].name, e->d_name, rc ? ": " : "", why);
        free(path);
        n++;
    }
    if (d)
        closedir(d);
    return n;
}

int main(void)
{
    /* the plan: one test per seed folder, one per file of seeds and corpus */
    int total = 0;
    for (size_t k = 0; k < sizeof harness / sizeof *harness; k++) {
        char *seeds = str_printf("tests/fuzz/seeds/%s", harness[k].name);
        char *corpus = str_printf("tests/fuzz/corpus/%s", harness[k].name);
        total += 1 + replay_dir((int)k, seeds, NULL, 1) + replay_dir((int)k, corpus, saved, 1);
        free(seeds);
        free(corpus);
    }
    plan(total);
    for (size_t k = 0; k < sizeof harness / sizeof *harness; k++) {
        char *seeds = str_printf("tests/fuzz/seeds/%s", harness[k].name);
        char *corpus = str_printf("tests/fuzz/corpus/%s", harness[k].name);
        int n = replay_dir((int)k, seeds, NULL, 0);
        ok(n > 0, "%s: %d seed inputs in %s", harness[k].name, n, seeds);
        int c = replay_dir((int)k, corpus, saved, 0);
        diag("%s: %d saved crashing inputs replayed", harness[k].name, c);
        free(seeds);
        free(corpus);
    }
    return done_testing(total);
}
