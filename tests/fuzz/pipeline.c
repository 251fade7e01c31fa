/* pipeline.c (fuzz) — a pipeline file and --set strings: config_load,
 * config_override, pipeline_validate (plugin schemas from the real
 * bundles). Input: the pipeline text, then optionally "\n--set\n" and one
 * assignment per line. @include is left out: it reads other files (and
 * belongs to config.c's own tests). */
#include "fuzz.h"
#include "config.h"
#include "pipeline.h"

FUZZ_TARGET(pipeline)
{
    size_t n0, n1;
    const uint8_t *sets;
    fuzz_pin_bundles();
    if (memmem(data, size, "@include", 8))
        return 0;
    fuzz_split(data, size, "\n--set\n", &n0, &sets, &n1);
    char *path = fuzz_file("fuzz.cfg", data, n0);
    pipeline pl;
    diags d;
    diag_init(&d);
    if (pipeline_open(&pl, NULL, FUZZ_PLUGINS) == 0 && config_load(&pl.cfg, path) == 0) {
        char *list = strndup((const char *)sets, n1);
        for (char *line = list, *next; line && *line; line = next) {
            next = strchr(line, '\n');
            if (next)
                *next++ = 0;
            if (config_override(&pl.cfg, line, &pl.origins) != 0)
                diag_add(&d, "%s", err_get());
        }
        free(list);
        pipeline_validate(&pl, &d);
        static FILE *null;
        if (!null)
            null = fopen("/dev/null", "w");
        if (null)
            config_write(&pl.cfg, null); /* the resolved pipeline, as config.cfg gets it */
    }
    diag_free(&d);
    pipeline_close(&pl);
    free(path);
    return 0;
}
