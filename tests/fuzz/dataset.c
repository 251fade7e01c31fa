/* dataset.c (fuzz) — every dataset plugin on generated files, loaded as
 * the runner loads a task's dataset (a validated pipeline, then
 * dataset_load): byte 0 picks the plugin (tsv, agnews_csv, trec, conll,
 * slots, lines, delimited, delimited with CSV quoting and a header), byte
 * 1 the options (skip bad rows, dev split, a label list, a separate dev
 * file); the rest is the file. slots folders get seq.in, seq.out and
 * label from the parts between "\n==\n" separators. */
#include "fuzz.h"
#include "data.h"
#include "pipeline.h"

enum { NFMT = 8 };
static const char *const formats[NFMT] = {"tsv", "agnews_csv", "trec", "conll", "slots", "lines",
                                          "delimited", "delimited"};
static const char *const extra[NFMT] = {"", "", "", "", "", "", "label_column = \"1\"; text_column = \"0\";",
                                        ("delimiter = \",\"; quote = true; header = true; "
                                         "text_column = \"text\"; label_column = \"label\";")};

static void write_slots(const uint8_t *p, size_t n)
{
    static const char *const names[] = {"slots/seq.in", "slots/seq.out", "slots/label"};
    char *d = str_printf("%s/slots", fuzz_dir());
    dir_make(d);
    free(d);
    for (int i = 0; i < 3; i++) {
        size_t n0, n1;
        const uint8_t *rest;
        fuzz_split(p, n, "\n==\n", &n0, &rest, &n1);
        free(fuzz_file(names[i], p, n0));
        p = rest;
        n = n1;
    }
}

/* Every id the loader hands out is inside its tables. */
static void check(const dataset *d)
{
    for (int i = 0; i < d->n; i++) {
        if (d->text[d->start[i] + d->len[i]] != 0) /* NUL bytes inside are content */
            abort();
        if (d->label && (d->label[i] < 0 || d->label[i] >= d->n_names))
            abort();
        for (int64_t k = d->tags ? d->tag_off[i] : 0; d->tags && k < d->tag_off[i + 1]; k++)
            if (d->tags[k] < 0 || d->tags[k] >= d->n_names)
                abort();
    }
}

/* The pipeline text around one dataset section. */
static char *pipeline_text(int f, int opt, const char *path)
{
    int dev = (opt & 8) && f != 5;
    const char *labels = f == 1 ? "labels = [\"World\", \"Sports\", \"Business\", \"Sci/Tech\"];"
                                : "labels = [\"neg\", \"pos\"];";
    return str_printf("run = \"tokenize\";\ntasks = ( { name = \"t\"; dataset = { plugin = \"%s\"; %s = \"%s\"; "
                      "%s%s%s%s %s %s }; } );\n",
                      formats[f], dev ? "train" : "path", path, dev ? "dev = \"" : "", dev ? path : "",
                      dev ? "\";" : "", opt & 1 ? "on_error = \"skip\";" : "",
                      (opt & 4) && f != 5 && f != 3 ? labels : "", extra[f]);
}

FUZZ_TARGET(dataset)
{
    if (size < 2)
        return 0;
    fuzz_pin_bundles();
    int f = data[0] % NFMT, opt = data[1];
    char *path;
    if (f == 4) {
        write_slots(data + 2, size - 2);
        path = str_printf("%s/slots", fuzz_dir());
    } else {
        path = fuzz_file(f == 0 ? "fuzz.tsv" : "fuzz.txt", data + 2, size - 2);
    }
    char *text = pipeline_text(f, opt, path);
    pipeline pl;
    diags dg;
    diag_init(&dg);
    dataset d;
    memset(&d, 0, sizeof d);
    if (pipeline_open(&pl, NULL, FUZZ_PLUGINS) == 0) {
        pl.quiet = 1;
        if (text && config_read_string(&pl.cfg, text) && pipeline_validate(&pl, &dg) == 0 &&
            dataset_load(&pl, "ds", config_lookup(&pl.cfg, "tasks.[0].dataset"), opt & 2 ? SPLIT_DEV : SPLIT_TRAIN,
                         &d) == 0) {
            check(&d);
            dataset_free(&d);
        }
    }
    diag_free(&dg);
    pipeline_close(&pl);
    free(text);
    free(path);
    return 0;
}
