/* bertconfig.c (fuzz) — the BERT backbone's config.json: the bytes are the
 * model folder's config.json; the backbone is created (init = "random", so
 * no weights are read): its limits and messages, every size it derives. */
#include "fuzz.h"
#include "pipeline.h"

FUZZ_TARGET(bertconfig)
{
    fuzz_pin_bundles();
    char *model = str_printf("%s/model", fuzz_dir());
    dir_make(model);
    free(fuzz_file("model/config.json", data, size));
    char *text = str_printf("run = \"tokenize\"; model = \"%s\";\n"
                            "backbone = { plugin = \"bert\"; init = \"random\"; };\n", model);
    pipeline pl;
    diags d;
    diag_init(&d);
    if (pipeline_open(&pl, NULL, FUZZ_PLUGINS) == 0 && text && config_read_string(&pl.cfg, text) &&
        pipeline_validate(&pl, &d) == 0) {
        pl.quiet = 1;
        stage *bb = pipeline_stage(&pl, "backbone", "backbone.", RUNNER_KIND_BACKBONE,
                                   config_lookup(&pl.cfg, "backbone"));
        if (bb) {
            runner_backbone_info info;
            ((const runner_backbone_ops *)bb->desc->ops)->info(bb->self, &info);
            if (info.dim <= 0 || info.layers <= 0 || info.vocab_size <= 0 || info.max_positions <= 0)
                abort();
        }
    }
    diag_free(&d);
    pipeline_close(&pl);
    free(text);
    free(model);
    return 0;
}
