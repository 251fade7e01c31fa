/* dataset.c (fuzz) — dataset_load on generated files of every format:
 * byte 0 picks the format (tsv, agnews_csv, trec, conll, slots, lines),
 * byte 1 the options (skip bad rows, dev split, a label list, a separate
 * dev file); the rest is the file. slots folders get seq.in, seq.out and
 * label from the parts between "\n==\n" separators. */
#include "fuzz.h"
#include "data.h"

static const char *const formats[] = {"tsv", "agnews_csv", "trec", "conll", "slots", "lines"};

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

FUZZ_TARGET(dataset)
{
    if (size < 2)
        return 0;
    int f = data[0] % 6, opt = data[1], dev = (opt & 8) && f != 5;
    char *path;
    if (f == 4) {
        write_slots(data + 2, size - 2);
        path = str_printf("%s/slots", fuzz_dir());
    } else {
        path = fuzz_file(f == 0 ? "fuzz.tsv" : "fuzz.txt", data + 2, size - 2);
    }
    const char *labels = f == 0 ? "labels = [\"neg\", \"pos\"];"
                         : f == 1 ? "labels = [\"World\", \"Sports\", \"Business\", \"Sci/Tech\"];" : "";
    char *text = str_printf("ds = { format = \"%s\"; %s = \"%s\"; %s%s%s%s %s };", formats[f],
                            dev ? "train" : "path", path, dev ? "dev = \"" : "", dev ? path : "", dev ? "\";" : "",
                            opt & 1 ? "on_error = \"skip\";" : "", opt & 4 ? labels : "");
    config_t cfg;
    config_init(&cfg);
    dataset d;
    memset(&d, 0, sizeof d);
    if (text && config_read_string(&cfg, text) &&
        dataset_load(config_lookup(&cfg, "ds"), opt & 2 ? SPLIT_DEV : SPLIT_TRAIN, &d) == 0) {
        check(&d);
        dataset_free(&d);
    }
    config_destroy(&cfg);
    free(text);
    free(path);
    return 0;
}
