/* run.c — results folder, config.cfg and run.json. */
#include "run.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runner/kit/util.h"
#include "world.h"

static time_t started;

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
    char *path = run_path(pl, "config.cfg");
    int rc = path ? file_write_atomic_with(path, write_config, pl) : err_set("out of memory");
    free(path);
    return rc;
}

static char *git_commit(void)
{
    FILE *p = popen("git rev-parse HEAD 2>/dev/null", "r");
    char buf[64] = "";
    if (!p)
        return NULL;
    if (!fgets(buf, sizeof buf, p))
        buf[0] = 0;
    pclose(p);
    buf[strcspn(buf, "\n")] = 0;
    return buf[0] ? str_dup(buf) : NULL;
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
    json_object_set_new(j, "world", json_pack("{s:i, s:o, s:I, s:I}", "size", world_size(), "hosts", hosts,
                                              "grad_allreduce_bytes", (json_int_t)world_grad_bytes(),
                                              "other_collective_bytes", (json_int_t)world_other_bytes()));
    char *text = json_dumps(j, JSON_INDENT(2));
    json_decref(j);
    char *path = run_path(pl, "run.json");
    int rc = -1;
    if (text && path) {
        size_t n = strlen(text);
        text[n] = '\n';
        rc = file_write_atomic(path, text, n + 1);
    }
    free(text);
    free(path);
    return rc;
}
