/* loader.c — plugin discovery and checked loading with libdl. */
#include "loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

static const char *const kind_names[] = {
    [RUNNER_KIND_TOKENIZER] = "tokenizer", [RUNNER_KIND_BACKBONE] = "backbone",
    [RUNNER_KIND_POOLER] = "pooler",       [RUNNER_KIND_HEAD] = "head",
    [RUNNER_KIND_LOSS] = "loss",           [RUNNER_KIND_METRIC] = "metric",
    [RUNNER_KIND_FREEZE] = "freeze",       [RUNNER_KIND_SAMPLER] = "sampler",
};
#define KIND_MAX RUNNER_KIND_SAMPLER

const char *kind_name(runner_kind k)
{
    return k >= RUNNER_KIND_TOKENIZER && k <= KIND_MAX ? kind_names[k] : "unknown";
}

int kind_from_name(const char *s, runner_kind *k)
{
    for (int i = RUNNER_KIND_TOKENIZER; i <= KIND_MAX; i++)
        if (strcmp(s, kind_names[i]) == 0) {
            *k = (runner_kind)i;
            return 0;
        }
    return -1;
}

int loader_add_dir(loader *L, const char *dir)
{
    if (!dir || !*dir)
        return 0;
    for (int i = 0; i < L->ndirs; i++)
        if (strcmp(L->dirs[i], dir) == 0)
            return 0;
    char **d = realloc(L->dirs, (size_t)(L->ndirs + 1) * sizeof *d);
    if (!d)
        return err_set("out of memory");
    L->dirs = d;
    L->dirs[L->ndirs] = str_dup(dir);
    if (!L->dirs[L->ndirs])
        return err_set("out of memory");
    L->ndirs++;
    return 0;
}

int loader_init(loader *L, const char *build_plugins_dir)
{
    memset(L, 0, sizeof *L);
    if (loader_add_dir(L, build_plugins_dir) != 0)
        return -1;
    const char *env = getenv("RUNNER_PLUGIN_PATH");
    if (env) {
        char *copy = str_dup(env), *save = NULL;
        if (!copy)
            return err_set("out of memory");
        for (char *t = strtok_r(copy, ":", &save); t; t = strtok_r(NULL, ":", &save))
            if (loader_add_dir(L, t) != 0) {
                free(copy);
                return -1;
            }
        free(copy);
    }
    return 0;
}

void loader_free(loader *L)
{
    if (!L)
        return;
    for (int i = 0; i < L->n; i++) {
        if (L->p[i].dl)
            dlclose(L->p[i].dl);
        free(L->p[i].name);
        free(L->p[i].path);
    }
    for (int i = 0; i < L->ndirs; i++)
        free(L->dirs[i]);
    free(L->dirs);
    free(L->p);
    memset(L, 0, sizeof *L);
}

const char *loader_path_string(const loader *L, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < L->ndirs && used < size; i++) {
        int w = snprintf(buf + used, size - used, "%s%s", i ? ":" : "", L->dirs[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    return buf;
}

int loader_open_file(const char *path, runner_kind kind, const char *name, void **dl,
                     const runner_plugin **desc)
{
    *dl = NULL;
    *desc = NULL;
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return err_set("%s: cannot load: %s", path, dlerror());
    dlerror();
    void *sym = dlsym(h, RUNNER_ENTRY_NAME);
    if (!sym) {
        err_set("%s: no symbol %s: not a runner plugin (see core/runner.h)", path,
                RUNNER_ENTRY_NAME);
        goto fail;
    }
    runner_entry_fn entry;
    memcpy(&entry, &sym, sizeof entry);
    const runner_plugin *d = entry();
    if (!d) {
        err_set("%s: %s() returned no descriptor", path, RUNNER_ENTRY_NAME);
        goto fail;
    }
    if (d->abi_major != RUNNER_ABI_MAJOR) {
        err_set("%s: plugin ABI %d.%d, runner ABI %d.%d: major versions differ; "
                "rebuild the plugin against this runner's runner.h",
                path, d->abi_major, d->abi_minor, RUNNER_ABI_MAJOR, RUNNER_ABI_MINOR);
        goto fail;
    }
    if (d->abi_minor > RUNNER_ABI_MINOR) {
        err_set("%s: plugin ABI %d.%d is newer than runner ABI %d.%d; "
                "update runner or rebuild the plugin",
                path, d->abi_major, d->abi_minor, RUNNER_ABI_MAJOR, RUNNER_ABI_MINOR);
        goto fail;
    }
    if (d->kind != kind) {
        err_set("%s: is a %s plugin, but a %s is needed here", path, kind_name(d->kind),
                kind_name(kind));
        goto fail;
    }
    if (!d->name || !d->create || !d->destroy || !d->ops) {
        err_set("%s: descriptor lacks name, create, destroy or ops", path);
        goto fail;
    }
    if (name && strcmp(d->name, name) != 0) {
        err_set("%s: names itself '%s', expected '%s'", path, d->name, name);
        goto fail;
    }
    *dl = h;
    *desc = d;
    return 0;
fail:
    dlclose(h);
    return -1;
}

int loader_get(loader *L, runner_kind kind, const char *name, const runner_plugin **desc)
{
    for (int i = 0; i < L->n; i++)
        if (L->p[i].kind == kind && strcmp(L->p[i].name, name) == 0) {
            *desc = L->p[i].desc;
            return 0;
        }
    char *path = NULL;
    if (strchr(name, '/')) {
        path = str_dup(name);
    } else {
        for (int i = 0; i < L->ndirs && !path; i++) {
            char *p = str_printf("%s/%s_%s.so", L->dirs[i], kind_name(kind), name);
            if (p && path_exists(p))
                path = p;
            else
                free(p);
        }
        if (!path) {
            char buf[2048];
            return err_set("%s plugin '%s' not found (looked for %s_%s.so in %s)",
                           kind_name(kind), name, kind_name(kind), name,
                           loader_path_string(L, buf, sizeof buf));
        }
    }
    if (!path)
        return err_set("out of memory");
    void *dl;
    const runner_plugin *d;
    if (loader_open_file(path, kind, strchr(name, '/') ? NULL : name, &dl, &d) != 0) {
        free(path);
        return -1;
    }
    if (L->n == L->cap) {
        int cap = L->cap ? 2 * L->cap : 16;
        loaded_plugin *p = realloc(L->p, (size_t)cap * sizeof *p);
        if (!p) {
            dlclose(dl);
            free(path);
            return err_set("out of memory");
        }
        L->p = p;
        L->cap = cap;
    }
    L->p[L->n] = (loaded_plugin){kind, str_dup(name), path, dl, d};
    if (!L->p[L->n].name) {
        dlclose(dl);
        free(path);
        return err_set("out of memory");
    }
    L->n++;
    *desc = d;
    return 0;
}

static int compare_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int loader_list(loader *L, int verbose)
{
    int bad = 0;
    for (int i = 0; i < L->ndirs; i++) {
        DIR *dir = opendir(L->dirs[i]);
        if (!dir)
            continue;
        char **names = NULL;
        int n = 0;
        struct dirent *e;
        while ((e = readdir(dir))) {
            if (!str_ends_with(e->d_name, ".so"))
                continue;
            char **g = realloc(names, (size_t)(n + 1) * sizeof *g);
            if (!g)
                break;
            names = g;
            names[n] = str_dup(e->d_name);
            if (names[n])
                n++;
        }
        closedir(dir);
        qsort(names, (size_t)n, sizeof *names, compare_str);
        printf("%s:\n", L->dirs[i]);
        for (int j = 0; j < n; j++) {
            char *us = strchr(names[j], '_');
            runner_kind k;
            const runner_plugin *d = NULL;
            if (us) {
                *us = 0;
                int known = kind_from_name(names[j], &k) == 0;
                char *plugin = strndup(us + 1, strlen(us + 1) - 3);
                *us = '_';
                if (known && plugin && loader_get(L, k, plugin, &d) != 0)
                    d = NULL;
                free(plugin);
            }
            if (d)
                printf("  %-10s %-18s %s\n", kind_name(d->kind), d->name,
                       d->summary ? d->summary : "");
            else {
                bad++;
                if (verbose)
                    printf("  %-29s (not loadable: %s)\n", names[j], err_get());
            }
            free(names[j]);
        }
        free(names);
    }
    return bad;
}
