/* shell.h — for tests that run the runner and Python checkers as a user
 * would: a printf-style shell command's exit status, a file's text. */
#ifndef SHELL_H
#define SHELL_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "runner/kit/util.h"

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2), unused));
static int sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
}

/* The text of dir/name (malloc'ed), or NULL. */
static char *slurp(const char *dir, const char *name) __attribute__((unused));
static char *slurp(const char *dir, const char *name)
{
    char *path = str_printf("%s/%s", dir, name), *data = NULL;
    size_t len;
    if (!path || file_read(path, &data, &len) != 0)
        data = NULL;
    free(path);
    return data;
}

#define PY "/usr/bin/python3"
#define RUNNER RUNNER_BUILD_DIR "/runner"

#endif
