/* run.c — results folder, config.cfg and run.json. */
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"
#include "runner/kit/util.h"
#include "world.h"

static time_t started;
static int lock_fd = -1; /* held until the process ends */

extern char **environ;

char *run_path(const pipeline *pl, const char *file)
{
    return str_printf("%s/%s", pl->out_dir, file);
}

const char *host_cpu(void)
{
    static char cpu[256];
    if (cpu[0])
        return cpu;
    snprintf(cpu, sizeof cpu, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *colon = strchr(line, ':');
            if (colon) {
                snprintf(cpu, sizeof cpu, "%s", colon + 2);
                cpu[strcspn(cpu, "\n")] = 0;
            }
            break;
        }
    }
    if (f)
        fclose(f);
    return cpu;
}

static int write_config(FILE *f, void *ctx)
{
    pipeline *pl = ctx;
    fprintf(f, "# resolved pipeline of %s (defaults and --set overrides applied)\n", pl->file);
    config_write(&pl->cfg, f);
    return ferror(f) ? err_set("write error") : 0;
}

/* Every rank names the results folder as rank 0 does (its default name
 * holds rank 0's pid), and the log names the world. */
static int share_out_dir(pipeline *pl)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", pl->out_dir);
    if (world_bcast(buf, sizeof buf, 0) != 0)
        return -1;
    free(pl->out_dir);
    if (!(pl->out_dir = str_dup(buf)))
        return err_set("out of memory");
    pipeline_log(pl, RUNNER_LOG_INFO, "world of %d ranks:", world_size());
    for (int r = 0; r < world_size(); r++)
        pipeline_log(pl, RUNNER_LOG_INFO, "  rank %d on %s", r, world_host(r));
    return 0;
}

/* One run per results folder: an exclusive flock on <out>/.runner.lock,
 * released by the kernel when this process ends (even on kill -9). A
 * second run on the same folder is refused instead of interleaving its
 * files with the first one's. */
int run_lock(const char *out_dir)
{
    char *path = str_printf("%s/%s", out_dir, RUN_LOCK_FILE);
    if (!path)
        return err_set("out of memory");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666), rc = -1;
    if (fd < 0) {
        err_set("%s: %s", path, strerror(errno));
    } else if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char pid[32] = "";
        ssize_t n = e == EWOULDBLOCK ? pread(fd, pid, sizeof pid - 1, 0) : 0;
        pid[n > 0 ? n : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        if (e == EWOULDBLOCK)
            err_set("results folder %s is in use by another run%s%s%s (it holds %s); choose another --out "
                    "or wait for it to finish", out_dir, pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "", path);
        else
            err_set("%s: flock: %s", path, strerror(e));
    } else {
        char pid[32];
        int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
        if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
            err_set("%s: %s", path, strerror(errno)); /* the lock holds even so */
        if (lock_fd >= 0)
            close(lock_fd);
        lock_fd = fd;
        fd = -1;
        rc = 0;
    }
    if (fd >= 0)
        close(fd);
    free(path);
    return rc;
}

/* HEAD of the git checkout we run in, for run.json: git is spawned with an
 * argument vector (no shell) when the run begins, and its answer read when
 * it ends, so its start-up overlaps the run's. */
static pid_t git_pid = -1;
static int git_fd = -1;

static void git_commit_start(void)
{
    static const char *const argv[] = {"git", "rev-parse", "HEAD", NULL};
    if (!proc_in_path("git") || proc_open_read(argv, &git_pid, &git_fd) != 0)
        git_pid = -1;
}

/* its answer, or NULL (no git, not a checkout, not started) */
static char *git_commit(void)
{
    char buf[64] = "";
    int status = -1;
    if (git_pid < 0)
        return NULL;
    int rc = proc_close_read(git_pid, git_fd, buf, sizeof buf, &status);
    git_pid = -1;
    git_fd = -1;
    if (rc != 0 || status != 0)
        return NULL;
    buf[strcspn(buf, "\n")] = 0;
    return buf[0] ? str_dup(buf) : NULL;
}

int run_begin(pipeline *pl, const char *out)
{
    started = time(NULL);
    if (out) {
        pl->out_dir = str_dup(out);
    } else {
        char stamp[64];
        struct tm tm;
        localtime_r(&started, &tm);
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
        pl->out_dir = str_printf("results/%s/%s-%ld", pl->name, stamp, (long)getpid());
    }
    if (!pl->out_dir)
        return err_set("out of memory");
    if (world_size() > 1 && share_out_dir(pl) != 0)
        return -1;
    if (!world_is_root()) /* rank 0 writes the results folder; the others nothing */
        return 0;
    if (dir_make(pl->out_dir) != 0)
        return err_set("results folder %s: %s", pl->out_dir, err_get());
    if (run_lock(pl->out_dir) != 0)
        return -1;
    char *path = run_path(pl, "config.cfg");
    int rc = path ? file_write_atomic_with(path, write_config, pl) : err_set("out of memory");
    free(path);
    if (rc == 0)
        git_commit_start();
    return rc;
}

static void iso_time(time_t t, char *buf, size_t size)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int run_end(pipeline *pl, int status, double seconds)
{
    if (!world_is_root())
        return 0;
    char start[32], end[32];
    iso_time(started, start, sizeof start);
    iso_time(time(NULL), end, sizeof end);
    char *commit = git_commit();
    json_t *j = json_pack("{s:s, s:s, s:s?, s:s, s:I, s:i, s:s, s:s, s:f, s:s, s:s}",
                          "runner_version", RUNNER_VERSION, "pipeline", pl->file,
                          "git_commit", commit, "name", pl->name, "seed",
                          (json_int_t)pl->seed, "threads", pl->threads, "start", start,
                          "end", end, "seconds", seconds, "cpu", host_cpu(), "status",
                          status == 0 ? "ok" : "failed");
    free(commit);
    if (!j)
        return err_set("run.json: cannot build");
    json_t *hosts = json_array();
    for (int r = 0; r < world_size(); r++)
        json_array_append_new(hosts, json_string(world_host(r)));
    json_object_set_new(j, "world", json_pack("{s:i, s:o, s:s?, s:s?, s:I, s:I}", "size", world_size(), "hosts", hosts,
                                              "grad_sum", world_grad_method(), "optimizer", world_grad_optimizer(),
                                              "grad_allreduce_bytes", (json_int_t)world_grad_bytes(),
                                              "other_collective_bytes", (json_int_t)world_other_bytes()));
    return run_write_json(pl, "run.json", j, JSON_INDENT(2));
}

int json_write_atomic(const char *path, json_t *j, size_t flags)
{
    char *text = j ? json_dumps(j, flags) : NULL;
    json_decref(j);
    int rc = text && path ? 0 : err_set("out of memory");
    if (rc == 0) {
        size_t n = strlen(text);
        text[n] = '\n'; /* the NUL becomes the final newline */
        rc = file_write_atomic(path, text, n + 1);
    }
    free(text);
    return rc;
}

int run_write_json(const pipeline *pl, const char *file, json_t *j, size_t flags)
{
    char *path = run_path(pl, file);
    int rc = json_write_atomic(path, j, flags);
    free(path);
    return rc;
}
