/* loader.c — plugin discovery and checked loading with libdl. */
#include "loader.h"
#include "proc.h"

#include <ctype.h>
#include <errno.h>
#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runner/kit/util.h"

static const char *const kind_names[] = {
    [RUNNER_KIND_TOKENIZER] = "tokenizer", [RUNNER_KIND_BACKBONE] = "backbone",
    [RUNNER_KIND_POOLER] = "pooler",       [RUNNER_KIND_HEAD] = "head",
    [RUNNER_KIND_LOSS] = "loss",           [RUNNER_KIND_METRIC] = "metric",
    [RUNNER_KIND_FREEZE] = "freeze",       [RUNNER_KIND_SAMPLER] = "sampler",
    [RUNNER_KIND_DATASET] = "dataset",
};
#define KIND_MAX RUNNER_KIND_DATASET

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

/* The built-in plugins, found relative to the executable: <bin>/plugins in
 * the build tree, <prefix>/lib/runner/plugins when installed. */
static char *own_plugins_dir(void)
{
    char exe[4096];
    if (proc_self_exe(exe, sizeof exe) != 0)
        return NULL;
    char *slash = strrchr(exe, '/');
    if (!slash)
        return NULL;
    *slash = 0;
    char *p = str_printf("%s/plugins", exe);
    if (p && path_exists(p))
        return p;
    free(p);
    return str_printf("%s/../lib/runner/plugins", exe);
}

int loader_init(loader *L, const char *builtin_dir)
{
    memset(L, 0, sizeof *L);
    char *own = builtin_dir ? NULL : own_plugins_dir();
    int rc = loader_add_dir(L, builtin_dir ? builtin_dir : own);
    free(own);
    if (rc != 0)
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
        free(L->p[i].upgraded);
        free(L->p[i].keys);
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

static int check_desc(const char *path, const runner_plugin *d, runner_kind kind, const char *name)
{
    if (!d)
        return err_set("%s: the entry returned no descriptor", path);
    if (d->abi_major != RUNNER_ABI_MAJOR)
        return err_set("%s: plugin ABI %d.%d, runner ABI %d.%d: major versions differ; "
                       "rebuild the plugin against this runner's runner.h",
                       path, d->abi_major, d->abi_minor, RUNNER_ABI_MAJOR, RUNNER_ABI_MINOR);
    if (d->abi_minor > RUNNER_ABI_MINOR)
        return err_set("%s: plugin ABI %d.%d is newer than runner ABI %d.%d; "
                       "update runner or rebuild the plugin",
                       path, d->abi_major, d->abi_minor, RUNNER_ABI_MAJOR, RUNNER_ABI_MINOR);
    if (d->kind != kind)
        return err_set("%s: is a %s plugin, but a %s is needed here", path, kind_name(d->kind),
                       kind_name(kind));
    if (!d->name || !d->create || !d->destroy || !d->ops)
        return err_set("%s: descriptor lacks name, create, destroy or ops", path);
    if (name && strcmp(d->name, name) != 0)
        return err_set("%s: names itself '%s', expected '%s'", path, d->name, name);
    return 0;
}

/* The descriptor of a bundle's item named `name` of `kind`, or of its
 * first item of that kind when name is NULL. */
static const runner_plugin *bundle_find(runner_bundle_fn fn, runner_kind kind, const char *name)
{
    for (int i = 0; i < RUNNER_BUNDLE_MAX; i++) {
        const runner_plugin *d = fn(i);
        if (!d)
            break;
        if (d->kind == kind && d->name && (!name || strcmp(d->name, name) == 0))
            return d;
    }
    return NULL;
}

/* Before dlopen (which runs a library's constructors): the file must be a
 * 64-bit ELF shared object for this machine (ET_DYN without an interpreter,
 * so neither a text file nor a PIE executable). It is still code: plugin
 * folders are trusted like a Makefile (docs/robustness.md). */
int loader_check_elf(const char *path)
{
    Elf64_Ehdr eh;
    FILE *f = fopen(path, "rb");
    int rc = -1;
    if (!f)
        return err_set("%s: %s", path, strerror(errno));
    if (fread(&eh, sizeof eh, 1, f) != 1 || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
        eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB) {
        err_set("%s: not a 64-bit little-endian ELF file: not a plugin", path);
        goto done;
    }
    if (eh.e_type != ET_DYN || eh.e_machine != EM_X86_64) {
        err_set("%s: ELF type %u for machine %u, expected a shared object (ET_DYN) for x86-64", path,
                eh.e_type, eh.e_machine);
        goto done;
    }
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        if (eh.e_phentsize != sizeof ph || fseek(f, (long)(eh.e_phoff + (uint64_t)i * sizeof ph), SEEK_SET) != 0 ||
            fread(&ph, sizeof ph, 1, f) != 1) {
            err_set("%s: truncated ELF program headers", path);
            goto done;
        }
        if (ph.p_type == PT_INTERP) {
            err_set("%s: an executable (it names an ELF interpreter), not a shared object", path);
            goto done;
        }
    }
    rc = 0;
done:
    fclose(f);
    return rc;
}

int loader_open_file(const char *path, runner_kind kind, const char *name, void **dl,
                     const runner_plugin **desc)
{
    *dl = NULL;
    *desc = NULL;
    if (loader_check_elf(path) != 0)
        return -1;
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return err_set("%s: cannot load: %s", path, dlerror());
    const runner_plugin *d = NULL;
    void *sym = dlsym(h, RUNNER_ENTRY_NAME), *bsym = sym ? NULL : dlsym(h, RUNNER_BUNDLE_NAME);
    if (sym) {
        runner_entry_fn entry;
        memcpy(&entry, &sym, sizeof entry);
        d = entry();
    } else if (bsym) {
        runner_bundle_fn fn;
        memcpy(&fn, &bsym, sizeof fn);
        d = bundle_find(fn, kind, name);
        if (!d) {
            err_set("%s: this bundle has no %s plugin '%s'", path, kind_name(kind), name ? name : "");
            goto fail;
        }
    } else {
        err_set("%s: no symbol %s or %s: not a runner plugin (see runner/runner.h)", path,
                RUNNER_ENTRY_NAME, RUNNER_BUNDLE_NAME);
        goto fail;
    }
    if (check_desc(path, d, kind, name) != 0)
        goto fail;
    *dl = h;
    *desc = d;
    return 0;
fail:
    dlclose(h);
    return -1;
}

/* A plugin name is a name: letters, digits, '_', '-' and '.', not a path.
 * Folders go in plugin_path or RUNNER_PLUGIN_PATH. */
static int name_ok(const char *name)
{
    if (!*name || *name == '.')
        return 0;
    for (const char *c = name; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '_' && *c != '-' && *c != '.')
            return 0;
    return 1;
}

/* Bundle of every built-in plugin of a kind: <dir>/<kind>.so; a single
 * plugin: <dir>/<kind>_<name>.so. Singles come first in each folder, so a
 * user's file shadows nothing silently: the folder order decides. */
static int find_file(loader *L, runner_kind kind, const char *name, void **dl, const runner_plugin **d,
                     char **where)
{
    for (int i = 0; i < L->ndirs; i++) {
        const char *fmt[2] = {"%s/%s_%s.so", "%s/%s.so"};
        for (int j = 0; j < 2; j++) {
            char *p = j == 0 ? str_printf(fmt[0], L->dirs[i], kind_name(kind), name)
                             : str_printf(fmt[1], L->dirs[i], kind_name(kind));
            if (!p)
                return err_set("out of memory");
            if (!path_exists(p)) {
                free(p);
                continue;
            }
            int rc = loader_open_file(p, kind, name, dl, d);
            if (rc == 0) {
                *where = p;
                return 0;
            }
            free(p);
            /* a bundle without this name: keep looking; anything else is an error */
            if (j == 0 || !strstr(err_get(), "this bundle has no"))
                return -1;
        }
    }
    char buf[2048];
    return err_set("%s plugin '%s' not found (looked for %s_%s.so and %s.so in %s)", kind_name(kind), name,
                   kind_name(kind), name, kind_name(kind), loader_path_string(L, buf, sizeof buf));
}

/* A descriptor built for ABI 1.0/1.1: its key table has the shorter
 * runner_key_v1_1 stride; copy it into the current layout (no limits). */
static int upgrade(loaded_plugin *lp)
{
    const runner_key_v1_1 *old = (const runner_key_v1_1 *)(const void *)lp->desc->keys;
    int n = 0;
    while (old && old[n].name)
        n++;
    lp->upgraded = malloc(sizeof *lp->upgraded);
    lp->keys = calloc((size_t)n + 1, sizeof *lp->keys);
    if (!lp->upgraded || !lp->keys) {
        free(lp->upgraded);
        free(lp->keys);
        return -1;
    }
    for (int i = 0; i < n; i++)
        lp->keys[i] = (runner_key){old[i].name, old[i].type, old[i].def, old[i].doc, NULL};
    *lp->upgraded = *lp->desc;
    lp->upgraded->keys = old ? lp->keys : NULL;
    lp->desc = lp->upgraded;
    return 0;
}

int loader_get(loader *L, runner_kind kind, const char *name, const runner_plugin **desc)
{
    for (int i = 0; i < L->n; i++)
        if (L->p[i].kind == kind && strcmp(L->p[i].name, name) == 0) {
            *desc = L->p[i].desc;
            return 0;
        }
    if (!name_ok(name))
        return err_set("%s plugin '%s': a plugin name is a name (letters, digits, '_', '-', '.'), "
                       "not a path; put its folder in plugin_path or RUNNER_PLUGIN_PATH",
                       kind_name(kind), name);
    void *dl;
    const runner_plugin *d;
    char *path = NULL;
    if (find_file(L, kind, name, &dl, &d, &path) != 0)
        return -1;
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
    loaded_plugin *lp = &L->p[L->n];
    *lp = (loaded_plugin){kind, str_dup(name), path, dl, d, NULL, NULL};
    if (!lp->name || (d->abi_minor < 2 && upgrade(lp) != 0)) {
        free(lp->name);
        dlclose(dl);
        free(path);
        return err_set("out of memory");
    }
    L->n++;
    *desc = lp->desc;
    return 0;
}

static int compare_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list_line(const runner_plugin *d)
{
    printf("  %-10s %-18s %s\n", kind_name(d->kind), d->name, d->summary ? d->summary : "");
}

/* One file of a plugin folder: a bundle (<kind>.so) lists all its items. */
static int list_file(loader *L, const char *dir, char *file, int verbose)
{
    char *stem = strndup(file, strlen(file) - 3), *us = stem ? strchr(stem, '_') : NULL;
    runner_kind k;
    int bad = 0;
    if (!stem)
        return 1;
    if (us)
        *us = 0;
    if (kind_from_name(stem, &k) != 0) {
        bad = 1;
        if (verbose)
            printf("  %-29s (not a plugin file name: <kind>.so or <kind>_<name>.so)\n", file);
    } else if (us) {
        const runner_plugin *d;
        if (loader_get(L, k, us + 1, &d) == 0)
            list_line(d);
        else if ((bad = 1) && verbose)
            printf("  %-29s (not loadable: %s)\n", file, err_get());
    } else {
        char *path = str_printf("%s/%s", dir, file);
        int elf = path && loader_check_elf(path) == 0;
        void *h = elf ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
        void *sym = h ? dlsym(h, RUNNER_BUNDLE_NAME) : NULL;
        if (sym) {
            runner_bundle_fn fn;
            memcpy(&fn, &sym, sizeof fn);
            for (int i = 0; i < RUNNER_BUNDLE_MAX && fn(i); i++) {
                const runner_plugin *d = fn(i);
                if (check_desc(path, d, k, NULL) == 0)
                    list_line(d);
                else if ((bad = 1) && verbose)
                    printf("  %-29s (not loadable: %s)\n", file, err_get());
            }
        } else if ((bad = 1) && verbose)
            printf("  %-29s (not a plugin bundle: %s)\n", file,
                   h ? "no " RUNNER_BUNDLE_NAME : elf ? dlerror() : err_get());
        if (h)
            dlclose(h);
        free(path);
    }
    free(stem);
    return bad;
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
            bad += list_file(L, L->dirs[i], names[j], verbose);
            free(names[j]);
        }
        free(names);
    }
    return bad;
}

/* Names of every plugin of a kind on the search path (for "did you mean"):
 * the items of each <kind>.so bundle and each <kind>_<name>.so file. The
 * names are malloc'ed into out (at most max); returns how many. */
int loader_kind_names(loader *L, runner_kind kind, char **out, int max)
{
    int n = 0;
    const char *kn = kind_name(kind);
    size_t kl = strlen(kn);
    for (int i = 0; i < L->ndirs && n < max; i++) {
        DIR *dir = opendir(L->dirs[i]);
        struct dirent *e;
        while (dir && (e = readdir(dir)) && n < max) {
            const char *f = e->d_name;
            if (strncmp(f, kn, kl) != 0 || !str_ends_with(f, ".so"))
                continue;
            if (f[kl] == '_') {
                out[n] = strndup(f + kl + 1, strlen(f + kl + 1) - 3);
                n += out[n] != NULL;
                continue;
            }
            if (strcmp(f + kl, ".so") != 0)
                continue;
            char *path = str_printf("%s/%s", L->dirs[i], f);
            void *h = path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
            void *sym = h ? dlsym(h, RUNNER_BUNDLE_NAME) : NULL;
            runner_bundle_fn fn;
            memcpy(&fn, &sym, sizeof fn);
            for (int j = 0; sym && j < RUNNER_BUNDLE_MAX && fn(j) && n < max; j++)
                if (fn(j)->kind == kind && fn(j)->name) {
                    out[n] = str_dup(fn(j)->name);
                    n += out[n] != NULL;
                }
            if (h)
                dlclose(h);
            free(path);
        }
        if (dir)
            closedir(dir);
    }
    return n;
}
