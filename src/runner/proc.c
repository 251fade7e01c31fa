/* proc.c — child processes without a shell (see proc.h). */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runner/kit/util.h"

extern char **environ;

int proc_in_path(const char *program)
{
    const char *path = getenv("PATH");
    if (strchr(program, '/'))
        return access(program, X_OK) == 0;
    while (path && *path) {
        size_t n = strcspn(path, ":");
        char *full = str_printf("%.*s/%s", (int)n, n ? path : ".", program);
        int found = full && access(full, X_OK) == 0;
        free(full);
        if (found)
            return 1;
        path += n + (path[n] == ':');
    }
    return 0;
}

static int exit_code(int st) { return WIFEXITED(st) ? WEXITSTATUS(st) : -1; }

static int wait_child(pid_t pid, int *status)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return err_set("waiting for a child process: %s", strerror(errno));
    *status = exit_code(st);
    return 0;
}

/* Spawn argv with stdin from in_fd (or /dev/null), stdout to out_fd (or
 * /dev/null or log), stderr to /dev/null or log. */
static int spawn(const char *const *argv, int in_fd, int out_fd, const char *log, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    int flags = O_WRONLY | O_CREAT | O_APPEND;
    if (in_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
    else
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (out_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    else
        posix_spawn_file_actions_addopen(&fa, 1, log ? log : "/dev/null", log ? flags : O_WRONLY, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, log ? log : "/dev/null", log ? flags : O_WRONLY, 0644);
    /* the child starts with no signal blocked (ours are, see signals.c) and
     * SIGINT, SIGTERM and SIGPIPE at their default actions */
    posix_spawnattr_t at;
    sigset_t none, dflt;
    sigemptyset(&none);
    sigemptyset(&dflt);
    sigaddset(&dflt, SIGINT);
    sigaddset(&dflt, SIGTERM);
    sigaddset(&dflt, SIGPIPE);
    posix_spawnattr_init(&at);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &dflt);
    int e = posix_spawnp(pid, argv[0], &fa, &at, (char *const *)argv, environ);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    return e ? err_set("cannot start %s: %s", argv[0], strerror(e)) : 0;
}

int proc_feed(const char *const *argv, const char *input, size_t len, int *status)
{
    int fd[2];
    pid_t pid;
    if (pipe2(fd, O_CLOEXEC) != 0)
        return err_set("pipe: %s", strerror(errno));
    int rc = spawn(argv, fd[0], -1, NULL, &pid);
    close(fd[0]);
    if (rc != 0) {
        close(fd[1]);
        return -1;
    }
    struct sigaction ign = {0}, old;
    ign.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ign, &old);
    for (size_t at = 0; at < len;) {
        ssize_t w = write(fd[1], input + at, len - at);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break; /* the child stopped reading: its status says why */
        at += (size_t)w;
    }
    close(fd[1]);
    sigaction(SIGPIPE, &old, NULL);
    return wait_child(pid, status);
}

int proc_open_read(const char *const *argv, pid_t *pid, int *fd)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return err_set("pipe: %s", strerror(errno));
    int rc = spawn(argv, -1, p[1], NULL, pid);
    close(p[1]);
    if (rc != 0) {
        close(p[0]);
        return -1;
    }
    *fd = p[0];
    return 0;
}

int proc_close_read(pid_t pid, int fd, char *buf, size_t cap, int *status)
{
    size_t used = 0;
    for (;;) {
        char tmp[4096];
        ssize_t r = read(fd, tmp, sizeof tmp);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        size_t take = (size_t)r < cap - 1 - used ? (size_t)r : cap - 1 - used;
        memcpy(buf + used, tmp, take);
        used += take;
    }
    buf[used] = 0;
    close(fd);
    return wait_child(pid, status);
}

int proc_start(const char *const *argv, const char *log, pid_t *pid)
{
    return spawn(argv, -1, -1, log, pid);
}

int proc_wait_any(pid_t *pid, int *status)
{
    int st;
    pid_t p;
    while ((p = waitpid(-1, &st, 0)) < 0)
        if (errno != EINTR)
            return err_set("waiting for a child process: %s", strerror(errno));
    *pid = p;
    *status = exit_code(st);
    return 0;
}

int proc_self_exe(char *buf, size_t size)
{
    if (size < 2)
        return -1;
    ssize_t n = readlink("/proc/self/exe", buf, size - 1);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    const char *tail = " (deleted)";
    size_t t = strlen(tail);
    if ((size_t)n > t && strcmp(buf + n - t, tail) == 0) {
        buf[n - t] = 0;
        if (access(buf, X_OK) != 0)
            buf[n - t] = tail[0]; /* nothing there now: keep the kernel's name */
    }
    return 0;
}
