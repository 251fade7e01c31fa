/* config.c — libconfig pipelines: load, override, copy, locate. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runner/kit/util.h"

void diag_init(diags *d) { memset(d, 0, sizeof *d); }

void diag_free(diags *d)
{
    for (int i = 0; i < d->n; i++)
        free(d->msg[i]);
    free(d->msg);
    diag_init(d);
}

void diag_add(diags *d, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (d->n == d->cap) {
        int cap = d->cap ? 2 * d->cap : 16;
        char **m = realloc(d->msg, (size_t)cap * sizeof *m);
        if (!m)
            return;
        d->msg = m;
        d->cap = cap;
    }
    d->msg[d->n] = str_dup(buf);
    if (d->msg[d->n])
        d->n++;
}

const char *setting_where(const config_setting_t *s, char *buf, size_t size)
{
    for (const config_setting_t *p = s; p; p = config_setting_parent(p)) {
        const char *origin = config_setting_get_hook(p);
        if (origin) {
            snprintf(buf, size, "%s", origin);
            return buf;
        }
        const char *file = config_setting_source_file(p);
        int line = (int)config_setting_source_line(p);
        if (file && line > 0) {
            snprintf(buf, size, "%s:%d", file, line);
            return buf;
        }
    }
    snprintf(buf, size, "<pipeline>");
    return buf;
}

const char *setting_path(const config_setting_t *s, char *buf, size_t size)
{
    const config_setting_t *chain[64];
    int n = 0;
    for (const config_setting_t *p = s; p && config_setting_parent(p) && n < 64;
         p = config_setting_parent(p))
        chain[n++] = p;
    size_t used = 0;
    buf[0] = 0;
    for (int i = n - 1; i >= 0 && used < size; i--) {
        const char *name = config_setting_name(chain[i]);
        const char *dot = used ? "." : "";
        int w = name ? snprintf(buf + used, size - used, "%s%s", dot, name)
                     : snprintf(buf + used, size - used, "%s[%d]", dot,
                                config_setting_index(chain[i]));
        if (w < 0)
            break;
        used += (size_t)w;
    }
    return buf;
}

const char *setting_type_name(int type)
{
    switch (type) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64: return "an integer";
    case CONFIG_TYPE_FLOAT: return "a number";
    case CONFIG_TYPE_STRING: return "a string";
    case CONFIG_TYPE_BOOL: return "a boolean";
    case CONFIG_TYPE_ARRAY: return "an array";
    case CONFIG_TYPE_LIST: return "a list";
    case CONFIG_TYPE_GROUP: return "a group";
    default: return "nothing";
    }
}

/* libconfig wraps an integer literal beyond 32 bits silently (4294967300
 * reads as 4) unless it ends in L. Find such a literal in text (outside
 * strings and comments): its line, or 0 when there is none. *at gets the
 * offset just past its digits. */
static int wide_literal(const char *text, size_t *at)
{
    int line = 1;
    for (size_t i = 0; text[i]; i++) {
        char c = text[i];
        if (c == '\n')
            line++;
        else if (c == '"') {
            for (i++; text[i] && text[i] != '"'; i++)
                if (text[i] == '\\' && text[i + 1])
                    i++;
                else if (text[i] == '\n')
                    line++;
            if (!text[i])
                break;
        } else if (c == '#' || (c == '/' && text[i + 1] == '/')) {
            while (text[i + 1] && text[i + 1] != '\n')
                i++;
        } else if (c == '/' && text[i + 1] == '*') {
            for (i += 2; text[i] && !(text[i] == '*' && text[i + 1] == '/'); i++)
                line += text[i] == '\n';
            if (!text[i])
                break;
            i++;
        } else if (isdigit((unsigned char)c) && (i == 0 || (!isalnum((unsigned char)text[i - 1]) &&
                                                           text[i - 1] != '.' && text[i - 1] != '_'))) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(text + i, &end, 0);
            size_t n = (size_t)(end - (text + i));
            int is_float = *end == '.' || *end == 'e' || *end == 'E';
            if (!is_float && *end != 'L' && (errno == ERANGE || v > 2147483647ULL)) {
                *at = i + n;
                return line;
            }
            i += n ? n - 1 : 0;
        }
    }
    return 0;
}

/* ---- @include ----------------------------------------------------------------
 * libconfig 1.5 (Debian bookworm) has no include hook and resolves every
 * @include against one folder, so the runner resolves includes itself:
 * each file is parsed on its own with its @include lines blanked (line
 * numbers kept), the included files are merged first, then the file's
 * own settings (which replace included ones of the same name). Every
 * setting carries "file:line" as its hook, for messages. Where a path
 * resolves: include_resolve. @include lines stand at the top level of a
 * file (not inside a group). */

/* "file:line" strings live as long as the process (settings point to them). */
static const char *intern(const char *file, int line)
{
    static char **pool;
    static int n, cap;
    char *s = str_printf("%s:%d", file, line);
    if (!s)
        return NULL;
    for (int i = 0; i < n; i++)
        if (strcmp(pool[i], s) == 0) {
            free(s);
            return pool[i];
        }
    if (n == cap) {
        char **p = realloc(pool, (size_t)(cap ? 2 * cap : 64) * sizeof *p);
        if (!p) {
            free(s);
            return NULL;
        }
        pool = p;
        cap = cap ? 2 * cap : 64;
    }
    return pool[n++] = s;
}

static void hook_tree(config_setting_t *dst, const config_setting_t *src, const char *file)
{
    config_setting_set_hook(dst, (void *)intern(file, (int)config_setting_source_line(src)));
    if (!config_setting_is_aggregate(src))
        return;
    for (int i = 0; i < config_setting_length(src); i++)
        hook_tree(config_setting_get_elem(dst, (unsigned)i), config_setting_get_elem(src, (unsigned)i), file);
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The file an @include on line `line` of chain[n-1] names (chain: the
 * files from the top pipeline down to the including one), or NULL with
 * the error. Relative names are looked for beside the including file,
 * then beside each file that included it up to the top pipeline (so a
 * shared file may name its siblings as the top pipeline sees them), then
 * in each folder of $RUNNER_INCLUDE_PATH. */
static char *include_resolve(const char *name, const char *const *chain, int n, int line)
{
    const char *from = chain[n - 1];
    char *found = NULL;
    if (!name[0]) {
        err_set("%s:%d: @include \"\": no file named", from, line);
        return NULL;
    }
    if (name[0] == '/')
        found = is_file(name) ? str_dup(name) : NULL;
    for (int i = n - 1; !found && name[0] != '/' && i >= 0; i--) {
        char *c = str_dup(chain[i]), *p = c ? str_printf("%s/%s", dirname(c), name) : NULL;
        if (p && is_file(p))
            found = p;
        else
            free(p);
        free(c);
    }
    const char *env = getenv("RUNNER_INCLUDE_PATH");
    while (!found && name[0] != '/' && env && *env) {
        size_t len = strcspn(env, ":");
        char *p = str_printf("%.*s/%s", (int)len, env, name);
        if (p && is_file(p))
            found = p;
        else
            free(p);
        env += len + (env[len] == ':');
    }
    if (!found) {
        struct stat st;
        char *c = str_dup(from), *p = name[0] == '/' ? str_dup(name) : c ? str_printf("%s/%s", dirname(c), name) : NULL;
        if (p && stat(p, &st) == 0 && S_ISDIR(st.st_mode))
            err_set("%s:%d: @include \"%s\" is a folder, not a file", from, line, name);
        else if (name[0] == '/')
            err_set("%s:%d: @include \"%s\": no such file", from, line, name);
        else
            err_set("%s:%d: @include \"%s\": no such file beside %s, the files including it or in "
                    "$RUNNER_INCLUDE_PATH", from, line, name, from);
        free(p);
        free(c);
    }
    return found;
}

/* Blank the @include lines of text (in place); their names and lines. */
static int include_lines(char *text, char ***names, int **lines, int *n)
{
    int line = 1;
    for (char *p = text; *p; line++) {
        char *eol = strchr(p, '\n'), *q = p;
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        while (q < p + len && (*q == ' ' || *q == '\t'))
            q++;
        if (strncmp(q, "@include", 8) == 0) {
            char *a = strchr(q, '"'), *b = a ? strchr(a + 1, '"') : NULL;
            char **nn = realloc(*names, (size_t)(*n + 1) * sizeof *nn);
            int *nl = nn ? realloc(*lines, (size_t)(*n + 1) * sizeof *nl) : NULL;
            if (nn)
                *names = nn;
            if (!nl)
                return err_set("out of memory");
            *lines = nl;
            if (!a || !b || b > p + len)
                return err_set("line %d: expected @include \"FILE\"", line);
            nn[*n] = strndup(a + 1, (size_t)(b - a - 1));
            nl[(*n)++] = line;
            memset(q, ' ', (size_t)(p + len - q));
        }
        p = eol ? eol + 1 : p + len;
    }
    return 0;
}

static int load_file(config_t *cfg, const char **chain, int depth)
{
    const char *path = chain[depth];
    char *text = NULL, **names = NULL;
    int *lines = NULL, n = 0, rc = -1;
    size_t len;
    config_t own;
    config_init(&own);
    if (depth >= 16) {
        err_set("%s: @include nested more than 16 deep (a cycle?)", path);
        goto done;
    }
    if (file_read(path, &text, &len) != 0)
        goto done;
    size_t at;
    int wide = wide_literal(text, &at);
    if (wide) {
        err_set("%s:%d: an integer beyond 32 bits needs an L suffix (e.g. 4294967296L); libconfig would wrap it",
                path, wide);
        goto done;
    }
    if (include_lines(text, &names, &lines, &n) != 0) {
        err_set("%s: %s", path, err_get());
        goto done;
    }
    for (int i = 0; i < n; i++) {
        char *inc = include_resolve(names[i], chain, depth + 1, lines[i]);
        chain[depth + 1] = inc;
        int bad = !inc || load_file(cfg, chain, depth + 1) != 0;
        free(inc);
        if (bad)
            goto done;
    }
    if (config_read_string(&own, text) != CONFIG_TRUE) {
        err_set("%s:%d: %s", path, config_error_line(&own), config_error_text(&own));
        goto done;
    }
    config_setting_t *root = config_root_setting(&own), *dst = config_root_setting(cfg);
    for (int i = 0; i < config_setting_length(root); i++) {
        const config_setting_t *src = config_setting_get_elem(root, (unsigned)i);
        config_setting_remove(dst, config_setting_name(src));
        config_setting_t *made = setting_copy(dst, config_setting_name(src), src);
        if (!made) {
            err_set("%s: out of memory", path);
            goto done;
        }
        hook_tree(made, src, path);
    }
    rc = 0;
done:
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(lines);
    free(text);
    config_destroy(&own);
    return rc;
}

int config_load(config_t *cfg, const char *path)
{
    if (!path_exists(path))
        return err_set("%s: no such pipeline file", path);
    if (!is_file(path))
        return err_set("%s: is not a file", path);
    const char *chain[17] = {path};
    return load_file(cfg, chain, 0);
}

config_setting_t *setting_copy(config_setting_t *parent, const char *name,
                               const config_setting_t *src)
{
    int type = config_setting_type(src);
    config_setting_t *dst = config_setting_add(parent, name, type);
    if (!dst)
        return NULL;
    switch (type) {
    case CONFIG_TYPE_INT: config_setting_set_int(dst, config_setting_get_int(src)); break;
    case CONFIG_TYPE_INT64: config_setting_set_int64(dst, config_setting_get_int64(src)); break;
    case CONFIG_TYPE_FLOAT: config_setting_set_float(dst, config_setting_get_float(src)); break;
    case CONFIG_TYPE_BOOL: config_setting_set_bool(dst, config_setting_get_bool(src)); break;
    case CONFIG_TYPE_STRING: config_setting_set_string(dst, config_setting_get_string(src)); break;
    default: {
        int n = config_setting_length(src);
        for (int i = 0; i < n; i++) {
            const config_setting_t *e = config_setting_get_elem(src, (unsigned)i);
            const char *en = type == CONFIG_TYPE_GROUP ? config_setting_name(e) : NULL;
            if (!setting_copy(dst, en, e))
                return NULL;
        }
    }
    }
    return dst;
}

config_setting_t *setting_set_from_text(config_setting_t *parent, const char *name,
                                        const char *text, const char *origin)
{
    config_t tmp;
    config_init(&tmp);
    config_setting_t *made = NULL;
    /* --set x=4294967300: wide integers become 64-bit ones (never wrap) */
    char *src = str_printf("value = %s;", text);
    size_t at, from = 0;
    while (src && wide_literal(src + from, &at)) {
        char *next = str_printf("%.*sL%s", (int)(from + at), src, src + from + at);
        free(src);
        src = next;
        from += at + 1;
    }
    if (!src) {
        err_set("out of memory");
        goto done;
    }
    if (config_read_string(&tmp, src) != CONFIG_TRUE) {
        err_set("'%s' is not a libconfig value: %s", text, config_error_text(&tmp));
        goto done;
    }
    const config_setting_t *v = config_lookup(&tmp, "value");
    if (config_setting_type(parent) == CONFIG_TYPE_GROUP)
        config_setting_remove(parent, name);
    made = setting_copy(parent, name, v);
    if (!made) {
        err_set("cannot set %s to %s here (a list or array holds one type)", name, text);
        goto done;
    }
    if (origin)
        config_setting_set_hook(made, (void *)origin);
done:
    free(src);
    config_destroy(&tmp);
    return made;
}

int config_override(config_t *cfg, const char *assignment, diags *origins)
{
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment)
        return err_set("--set %s: expected PATH=VALUE", assignment);
    char *path = strndup(assignment, (size_t)(eq - assignment));
    char *parent_path = NULL;
    int rc = -1;
    if (!path)
        return err_set("out of memory");
    char *dot = strrchr(path, '.');
    const char *key = dot ? dot + 1 : path;
    config_setting_t *parent = config_root_setting(cfg);
    if (dot) {
        parent_path = strndup(path, (size_t)(dot - path));
        parent = parent_path ? config_lookup(cfg, parent_path) : NULL;
        if (!parent) {
            err_set("--set %s: no setting '%s' in the pipeline", assignment, parent_path);
            goto done;
        }
    }
    int append = strcmp(key, "[+]") == 0;
    if (append && (!dot || config_setting_type(parent) != CONFIG_TYPE_LIST)) {
        err_set("--set %s: '%s' is not a list ( ... ) to append to", assignment, parent_path ? parent_path : "");
        goto done;
    }
    if (key[0] == '[' && !append) {
        err_set("--set %s: set the members of a list element, e.g. tasks.[0].name=\"x\", or append "
                "with %s.[+]=VALUE", assignment, parent_path ? parent_path : "list");
        goto done;
    }
    if (!append && config_setting_type(parent) != CONFIG_TYPE_GROUP) {
        err_set("--set %s: '%s' is not a group", assignment, parent_path ? parent_path : "");
        goto done;
    }
    /* the origin string lives as long as the config: origins owns it */
    diag_add(origins, "--set %s", path);
    if (!setting_set_from_text(parent, append ? NULL : key, eq + 1, origins->msg[origins->n - 1])) {
        err_set("--set %s: %s", path, err_get());
        goto done;
    }
    rc = 0;
done:
    free(path);
    free(parent_path);
    return rc;
}
