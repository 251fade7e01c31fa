/* config.c — pipeline files: @include, --set overrides (paths, list
 * elements, libconfig values, errors) and where a setting came from. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "tap.h"
#include "runner/kit/util.h"

static char dir[] = "/tmp/runner-config-XXXXXX";

static void write_text(const char *name, const char *text)
{
    char *p = str_printf("%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
    free(p);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    write_text("shared.cfg", "tokenizer = { plugin = \"wordpiece\"; max_len = 128; };\n");
    write_text("main.cfg", "name = \"t\";\n@include \"shared.cfg\"\n"
                           "pooler = { plugin = \"mean\"; };\n"
                           "tasks = ( { name = \"a\"; head = { plugin = \"mlp\"; hidden = [64]; }; } );\n");
    char *main_cfg = str_printf("%s/main.cfg", dir);
    config_t cfg;
    config_init(&cfg);
    ok(config_load(&cfg, main_cfg) == 0, "a pipeline with @include loads");
    int v = 0;
    ok(config_lookup_int(&cfg, "tokenizer.max_len", &v) && v == 128, "@include: the included section is there");

    diags origins;
    diag_init(&origins);
    const char *s = NULL;
    ok(config_override(&cfg, "pooler.plugin=\"max\"", &origins) == 0, "--set a string");
    ok(config_lookup_string(&cfg, "pooler.plugin", &s) && strcmp(s, "max") == 0, "... took effect");
    ok(config_override(&cfg, "tasks.[0].head.hidden=[256,128]", &origins) == 0, "--set inside a list element");
    const config_setting_t *h = config_lookup(&cfg, "tasks.[0].head.hidden");
    ok(h && config_setting_length(h) == 2 && config_setting_get_int_elem(h, 0) == 256 &&
           config_setting_get_int_elem(h, 1) == 128, "... an array of two integers");
    ok(config_override(&cfg, "pooler.normalize=true", &origins) == 0, "--set a new key in a group");
    ok(config_lookup_bool(&cfg, "pooler.normalize", &v) && v == 1, "... it is there");
    ok(config_override(&cfg, "seed=7", &origins) == 0, "--set a top-level key");
    ok(config_lookup_int(&cfg, "seed", &v) && v == 7, "... it is there");
    ok(config_override(&cfg, "tokenizer={ plugin = \"x\"; }", &origins) == 0, "--set a whole group");
    ok(config_lookup_string(&cfg, "tokenizer.plugin", &s) && strcmp(s, "x") == 0 &&
           !config_lookup(&cfg, "tokenizer.max_len"), "... it replaced the old one");

    char where[256];
    is_str(setting_where(config_lookup(&cfg, "pooler.plugin"), where, sizeof where),
           "--set pooler.plugin", "an overridden setting knows it came from --set");
    char *want = str_printf("%s:3", main_cfg);
    is_str(setting_where(config_lookup(&cfg, "pooler"), where, sizeof where), want,
           "a setting from the file knows its file and line");
    free(want);
    char path[256];
    is_str(setting_path(config_lookup(&cfg, "tasks.[0].head.hidden"), path, sizeof path),
           "tasks.[0].head.hidden", "a setting's dotted path");

    ok(config_override(&cfg, "nosuch.key=1", &origins) == -1, "unknown parent path refused");
    like(err_get(), "no setting 'nosuch'", "... naming it");
    ok(config_override(&cfg, "pooler.plugin", &origins) == -1, "missing '=' refused");
    like(err_get(), "expected PATH=VALUE", "... saying what is expected");
    ok(config_override(&cfg, "pooler.layer=[1,", &origins) == -1, "a malformed value refused");
    like(err_get(), "is not a libconfig value", "... saying why");
    ok(config_override(&cfg, "tasks.[0]=1", &origins) == -1, "replacing a list element refused");
    like(err_get(), "set the members of a list element", "... saying what to do instead");
    ok(config_override(&cfg, "name.x=1", &origins) == -1, "a scalar is not a group");
    like(err_get(), "is not a group", "... saying so");

    config_destroy(&cfg);
    diag_free(&origins);

    write_text("broken.cfg", "a = 1;\nb = ;\n");
    char *broken = str_printf("%s/broken.cfg", dir);
    config_init(&cfg);
    ok(config_load(&cfg, broken) == -1, "a syntax error is refused");
    like(err_get(), "broken.cfg:2:", "... with file and line");
    config_destroy(&cfg);
    write_text("inc.cfg", "@include \"missing.cfg\"\n");
    char *inc = str_printf("%s/inc.cfg", dir);
    config_init(&cfg);
    ok(config_load(&cfg, inc) == -1, "a missing @include is refused");
    like(err_get(), "inc.cfg:1:", "... with file and line");
    config_destroy(&cfg);

    free(broken);
    free(inc);
    free(main_cfg);
    char *rm = str_printf("rm -rf %s", dir);
    if (system(rm) != 0)
        diag("could not remove %s", dir);
    free(rm);
    return done_testing(29);
}
