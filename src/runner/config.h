/* config.h — pipeline files: libconfig loading with @include, --set
 * overrides, deep copies of settings, where a setting came from, and a
 * list of diagnostics so that every error in a file is reported at once. */
#ifndef CONFIG_H
#define CONFIG_H

#include <libconfig.h>

typedef struct diags {
    char **msg;
    int n, cap;
} diags;

void diag_init(diags *d);
void diag_free(diags *d);
void diag_add(diags *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* file:line of a setting ("--set PATH" for overrides, "<defaults>" for
 * defaults the host filled in). Returns buf. */
const char *setting_where(const config_setting_t *s, char *buf, size_t size);
/* Dotted path of a setting ("tasks.[0].head.plugin"). Returns buf. */
const char *setting_path(const config_setting_t *s, char *buf, size_t size);
const char *setting_type_name(int type);

/* Load a pipeline file; @include resolves relative to the file's folder. */
int config_load(config_t *cfg, const char *path);
/* Apply one --set PATH=VALUE (VALUE in libconfig syntax). origins keeps
 * the "--set PATH" strings the new settings point to; free it after cfg. */
int config_override(config_t *cfg, const char *assignment, diags *origins);
/* Parse a libconfig value ("128", "[1, 2]", "\"x\"") into a new member
 * `name` of group parent (replacing an existing member). */
config_setting_t *setting_set_from_text(config_setting_t *parent, const char *name,
                                        const char *text, const char *origin);
/* Deep-copy src into parent as member `name` (NULL name in lists). */
config_setting_t *setting_copy(config_setting_t *parent, const char *name,
                               const config_setting_t *src);

#endif
