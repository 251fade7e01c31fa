/* dsload.h — for the dataset tests: a dataset section given as text
 * ("ds = { plugin = ...; };") loaded as the runner loads it: a task's
 * dataset in a pipeline, validated (plugin keys, core keys, defaults),
 * then read by its plugin. Include after tap.h. */
#ifndef DSLOAD_H
#define DSLOAD_H

#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "pipeline.h"
#include "runner/kit/util.h"

static pipeline tpl;
static int pl_open;
/* Load split of the section `ds = { ... };` given in libconfig text: it
 * becomes a task's dataset in a pipeline, validated as the runner does
 * (plugin keys, core keys, defaults), then loaded. Validation problems
 * come back as -1 with the messages in err_get(). */
static int load(const char *text, data_split split, dataset *d)
{
    memset(d, 0, sizeof *d);
    if (pl_open)
        pipeline_close(&tpl);
    pl_open = pipeline_open(&tpl, NULL, RUNNER_BUILD_DIR "/plugins") == 0;
    tpl.quiet = 1;
    const char *body = strchr(text, '{'), *end = strrchr(text, '}');
    char *cfg = body && end ? str_printf("run = \"tokenize\";\ntasks = ( { name = \"t\"; dataset = %.*s; } );\n",
                                          (int)(end - body + 1), body) : NULL;
    if (!pl_open || !cfg || !config_read_string(&tpl.cfg, cfg)) {
        diag("config text: line %d: %s", config_error_line(&tpl.cfg), config_error_text(&tpl.cfg));
        free(cfg);
        return -2;
    }
    free(cfg);
    diags dg;
    diag_init(&dg);
    int rc = pipeline_validate(&tpl, &dg);
    if (rc != 0) {
        err_set("%s", dg.n ? dg.msg[0] : "validation failed without a message");
        diag_free(&dg);
        return -1;
    }
    diag_free(&dg);
    return dataset_load(&tpl, "ds", config_lookup(&tpl.cfg, "tasks.[0].dataset"), split, d);
}

/* Close the pipeline of the last load. */
static void load_done(void)
{
    if (pl_open)
        pipeline_close(&tpl);
    pl_open = 0;
}

#endif
