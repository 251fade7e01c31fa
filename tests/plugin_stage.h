/* plugin_stage.h — for tests of plugins: a pipeline from a libconfig
 * string, validated (so plugin defaults are filled in), and stages built
 * from its sections through the core, as the runner builds them. */
#ifndef PLUGIN_STAGE_H
#define PLUGIN_STAGE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"
#include "runner/kit/util.h"

/* 0 when the text parses and validates; prints every problem otherwise. */
static inline int pipeline_from_text(pipeline *pl, const char *text)
{
    if (pipeline_open(pl, NULL, RUNNER_BUILD_DIR "/plugins") != 0) {
        printf("# pipeline_open: %s\n", err_get());
        return -1;
    }
    if (!config_read_string(&pl->cfg, text)) {
        printf("# config line %d: %s\n", config_error_line(&pl->cfg), config_error_text(&pl->cfg));
        return -1;
    }
    diags d;
    diag_init(&d);
    int rc = pipeline_validate(pl, &d);
    for (int i = 0; i < d.n; i++)
        printf("# %s\n", d.msg[i]);
    diag_free(&d);
    return rc;
}

/* Every problem validation finds in text, joined by newlines (malloc'd;
 * "" when it validates, NULL when it does not even parse). */
static inline char *validate_errors(const char *text)
{
    pipeline pl;
    char *out = NULL;
    if (pipeline_open(&pl, NULL, RUNNER_BUILD_DIR "/plugins") != 0)
        return NULL;
    if (config_read_string(&pl.cfg, text)) {
        diags d;
        diag_init(&d);
        pipeline_validate(&pl, &d);
        size_t n = 1;
        for (int i = 0; i < d.n; i++)
            n += strlen(d.msg[i]) + 1;
        out = calloc(1, n);
        for (int i = 0; out && i < d.n; i++) {
            strcat(out, d.msg[i]);
            strcat(out, "\n");
        }
        diag_free(&d);
    }
    pipeline_close(&pl);
    return out;
}

/* The stage of a top-level section ("sampler"), or of member `member` of
 * the task named `task` ("loss"; "metrics" with index >= 0 for one of
 * the list). NULL with the error in err_get(). */
static inline stage *stage_of_task(pipeline *pl, const char *task_name, const char *member, int index,
                                   runner_kind kind)
{
    config_setting_t *tasks = config_lookup(&pl->cfg, "tasks"), *section = NULL;
    for (int i = 0; tasks && i < config_setting_length(tasks); i++) {
        config_setting_t *t = config_setting_get_elem(tasks, (unsigned)i);
        const char *name = NULL;
        if (config_setting_lookup_string(t, "name", &name) && strcmp(name, task_name) == 0)
            section = config_setting_get_member(t, member);
    }
    if (section && index >= 0)
        section = config_setting_get_elem(section, (unsigned)index);
    char slot[256], prefix[256];
    snprintf(slot, sizeof slot, "tasks.%s.%s", task_name, member);
    snprintf(prefix, sizeof prefix, "heads.%s.", task_name);
    return pipeline_stage(pl, slot, prefix, kind, section);
}

#endif
