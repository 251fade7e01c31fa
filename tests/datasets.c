/* datasets.c — datasets as plugins: the generic `delimited` reader on
 * files shaped like Financial PhraseBank (sentence@label, ISO-8859-1) and
 * TweetEval (text and numeric labels in two aligned files), its parse
 * failures (missing column, bad encoding, a label file shorter than its
 * text file) with file and line; training by configuration alone through
 * the runner with a test split evaluated and reported; an out-of-tree copy
 * of the delimited plugin built with the README's cc line giving the same
 * results as the built-in one; the STS reader as the `sts` plugin (scored
 * pairs) under run = "sts"; `format` as a deprecated alias of `plugin`;
 * --check rejecting the reader's bad values. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "tap.h"
#include "dsload.h"

#define PB "tests/data/phrasebank/"
#define TW "tests/data/tweeteval/"
#define DL "tests/data/delimited/"

static char dir[] = "/tmp/runner-datasets-XXXXXX";

static const char *txt(const dataset *d, int i) { return d->text + d->start[i]; }
static const char *lab(const dataset *d, int i) { return d->names[d->label[i]]; }

static int sh(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *path)
{
    char *data = NULL;
    size_t len;
    return file_read(path, &data, &len) == 0 ? data : NULL;
}

static void test_phrasebank(void)
{
    dataset d;
    const char *pb = "ds = { plugin = \"delimited\"; delimiter = \"@\"; encoding = \"latin-1\";"
                     " path = \"" PB "Sentences_train.txt\"; dev_ratio = 0; };";
    int rc = load(pb, SPLIT_TRAIN, &d);
    ok(rc == 0, "phrasebank: sentence@label in ISO-8859-1 loads%s%s", rc ? ": " : "", rc ? err_get() : "");
    is(d.n, 24, "phrasebank: 24 rows");
    ok(d.n_names == 3 && !strcmp(d.names[0], "negative") && !strcmp(d.names[1], "neutral") &&
           !strcmp(d.names[2], "positive"), "phrasebank: labels negative, neutral, positive");
    if (d.n == 24) {
        is_str(txt(&d, 0), "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period in 2007",
               "phrasebank: first row, the CR of CRLF dropped");
        is_str(lab(&d, 0), "positive", "phrasebank: first label");
        is_str(txt(&d, 3), "Caf\xc3\xa9 chain Fazer reported a rise in quarterly profit", "latin-1 e-acute to UTF-8");
        is_str(txt(&d, 12), "Revenue for the quarter was up 8 % at \xc2\xa3" "10 mn", "latin-1 pound sign to UTF-8");
        is_str(txt(&d, 15), "Email investor@example.com saw record profits reported",
               "split = last: an @ inside the sentence stays in the text");
    }
    is(d.repaired + d.skipped, 0, "phrasebank: nothing repaired or skipped");
    dataset_free(&d);
    rc = load("ds = { plugin = \"delimited\"; delimiter = \"@\"; path = \"" PB "Sentences_train.txt\"; };",
              SPLIT_TRAIN, &d);
    ok(rc == -1, "phrasebank read as utf-8: a bad row stops the load");
    like(err_get(), PB "Sentences_train.txt:4: invalid UTF-8 (byte 0xE9); for ISO-8859-1 files set encoding = "
                       "\"latin-1\"", "... naming file, line, byte and the fix");
    rc = load("ds = { plugin = \"delimited\"; delimiter = \"@\"; path = \"" PB "Sentences_train.txt\"; dev_ratio = 0;"
              " on_error = \"skip\"; };", SPLIT_TRAIN, &d);
    ok(rc == 0 && d.n == 20 && d.skipped == 4, "on_error = skip: the 4 latin-1 rows skipped and counted (%d, %d)", d.n,
       d.skipped);
    dataset_free(&d);
    rc = load(pb, SPLIT_TEST, &d);
    is(rc, 1, "no `test`: SPLIT_TEST says there is none");
    dataset_free(&d);
}

static void test_tweeteval(void)
{
    dataset d;
    const char *tw = "ds = { plugin = \"delimited\"; text_file = \"text.txt\"; label_file = \"labels.txt\";"
                     " train = \"" TW "train_\"; dev = \"" TW "val_\"; test = \"" TW "test_\";"
                     " labels = [\"negative\", \"neutral\", \"positive\"]; };";
    int rc = load(tw, SPLIT_TRAIN, &d);
    ok(rc == 0 && d.n == 18, "tweeteval: text and labels in two aligned files (%d rows)%s%s", d.n, rc ? ": " : "",
       rc ? err_get() : "");
    if (d.n == 18) {
        is_str(txt(&d, 0), "@user I love this new phone, best purchase ever!", "tweeteval: first text");
        is_str(lab(&d, 0), "positive", "numeric label 2 named by `labels`");
        is_str(lab(&d, 1), "negative", "numeric label 0 named by `labels`");
        is_str(txt(&d, 3), "So happy the weekend is finally here \xf0\x9f\x98\x80", "UTF-8 kept as it is");
    }
    dataset_free(&d);
    rc = load(tw, SPLIT_DEV, &d);
    ok(rc == 0 && d.n == 4 && !strcmp(d.source, TW "val_"), "tweeteval dev: its own files");
    dataset_free(&d);
    rc = load(tw, SPLIT_TEST, &d);
    ok(rc == 0 && d.n == 5, "tweeteval test: 5 rows");
    if (d.n == 5)
        ok(!strcmp(lab(&d, 1), "negative") && !strcmp(lab(&d, 2), "neutral"), "tweeteval test: labels mapped");
    dataset_free(&d);
    rc = load("ds = { plugin = \"delimited\"; text_file = \"text.txt\"; label_file = \"labels.txt\";"
              " train = \"" TW "train_\"; dev_ratio = 0; };", SPLIT_TRAIN, &d);
    ok(rc == 0 && d.n_names == 3 && !strcmp(d.names[0], "0") && !strcmp(d.names[2], "2"),
       "without `labels`: the numbers are the names, in numeric order");
    dataset_free(&d);
}

static void test_failures(void)
{
    dataset d;
    int rc = load("ds = { plugin = \"delimited\"; text_file = \"short_text.txt\"; label_file = \"short_labels.txt\";"
                  " train = \"" DL "\"; dev_ratio = 0; };", SPLIT_TRAIN, &d);
    ok(rc == -1, "a label file shorter than its text file fails");
    like(err_get(), DL "short_labels.txt:4: the label file ends after 3 lines, but " DL "short_text.txt has line 4",
         "... naming both files and the line");
    rc = load("ds = { plugin = \"delimited\"; text_column = \"0\"; label_column = \"1\"; path = \"" DL
              "two_columns.tsv\"; };", SPLIT_TRAIN, &d);
    is_str(err_get(), DL "two_columns.tsv:3: missing column 1 (label_column): the row has 1 field", "missing column");
    rc = load("ds = { plugin = \"delimited\"; path = \"" DL "two_columns.tsv\"; };", SPLIT_TRAIN, &d);
    is_str(err_get(), DL "two_columns.tsv:3: no delimiter '\t': expected text<delimiter>label",
           "split mode: a row without the delimiter");
    rc = load("ds = { plugin = \"delimited\"; path = \"" DL "two_columns.tsv\"; on_error = \"skip\"; dev_ratio = 0; };",
              SPLIT_TRAIN, &d);
    ok(rc == 0 && d.n == 2 && d.skipped == 1 && d.n_notes == 1, "skip: the short row counted and noted");
    dataset_free(&d);
    rc = load("ds = { plugin = \"delimited\"; delimiter = \",\"; quote = true; header = true; text_column = \"body\";"
              " label_column = \"label\"; path = \"" DL "with_header.csv\"; };", SPLIT_TRAIN, &d);
    like(err_get(), DL "with_header.csv:1: no column 'body' in the header", "a column name not in the header");
    rc = load("ds = { plugin = \"delimited\"; text_column = \"text\"; label_column = \"1\"; path = \"" DL
              "two_columns.tsv\"; };", SPLIT_TRAIN, &d);
    like(err_get(), "text_column = \"text\" is not a 0-based column index", "a name without a header");
    rc = load("ds = { plugin = \"delimited\"; text_file = \"text.txt\"; path = \"" TW "train_\"; };", SPLIT_TRAIN, &d);
    like(err_get(), "set both text_file and label_file", "text_file without label_file");
    rc = load("ds = { plugin = \"delimited\"; text_file = \"none.txt\"; label_file = \"labels.txt\"; path = \"" TW
              "train_\"; };", SPLIT_TRAIN, &d);
    like(err_get(), TW "train_none.txt: No such file", "a missing text file named");
}

static void test_shapes(void)
{
    dataset d;
    int rc = load("ds = { plugin = \"delimited\"; delimiter = \",\"; quote = true; header = true; text_column = \"text\";"
                  " label_column = \"label\"; path = \"" DL "with_header.csv\"; dev_ratio = 0; };", SPLIT_TRAIN, &d);
    ok(rc == 0 && d.n == 3, "csv with a header, columns by name, quoting on");
    if (d.n == 3) {
        is_str(txt(&d, 0), "Hello, world", "a quoted delimiter is text");
        is_str(txt(&d, 1), "She said \"hi\"", "\"\" is a quote");
        is_str(lab(&d, 2), "farewell", "label column by name");
    }
    dataset_free(&d);
    rc = load("ds = { plugin = \"delimited\"; split = \"first\"; path = \"" DL "label_first.tsv\"; dev_ratio = 0; };",
              SPLIT_TRAIN, &d);
    ok(rc == 0 && d.n == 2, "split = first: label<TAB>text");
    if (d.n == 2) {
        is_str(txt(&d, 0), "a good\tmovie", "the text keeps later delimiters");
        is_str(lab(&d, 0), "pos", "the label is the first field");
    }
    dataset_free(&d);
    rc = load("ds = { plugin = \"delimited\"; delimiter = \"@\"; encoding = \"latin-1\"; text_column = \"0\";"
              " label_column = \"1\"; path = \"" PB "Sentences_test.txt\"; dev_ratio = 0; };", SPLIT_TRAIN, &d);
    ok(rc == 0 && d.n == 6 && !strcmp(txt(&d, 3), "Ren\xc3\xa9" "e Oy reported a record year"),
       "columns by index, latin-1");
    dataset_free(&d);
}

/* A `path` folder with train/, valid/ and test/ (slots): the test split
 * from its folder, labels and tags mapped by the training folder's. */
static void test_folders(void)
{
    dataset d;
    int rc = load("ds = { plugin = \"slots\"; path = \"tests/data/slots\"; target = \"slots\"; };", SPLIT_TEST, &d);
    ok(rc == 0 && d.n == 2 && d.tags && !strcmp(d.source, "tests/data/slots/test"), "slots: test/ is the test split");
    if (d.n == 2)
        is_str(d.names[d.tags[d.tag_off[1] + 4]], "B-party_size_number", "slots test: tags mapped by train's");
    dataset_free(&d);
    rc = load("ds = { plugin = \"slots\"; path = \"tests/data/slots\"; test = \"tests/data/slots/valid\";"
              " on_error = \"skip\"; };", SPLIT_TEST, &d);
    ok(rc == 0 && !strcmp(d.source, "tests/data/slots/valid"), "an explicit `test` wins over the test/ folder");
    dataset_free(&d);
}

/* The STS reader as a dataset plugin: scored sentence pairs. */
static void test_sts(void)
{
    dataset d;
    int rc = load("ds = { plugin = \"sts\"; path = \"tests/data/sts/sts-mini.csv\"; dev_ratio = 0; };", SPLIT_TRAIN, &d);
    ok(rc == 0 && d.n == 12 && d.text2 && d.score && !d.label, "sts: 12 scored pairs, no labels");
    if (d.n == 12) {
        is_str(txt(&d, 0), "A man is playing a guitar.", "sts: first sentence");
        is_str(d.text2 + d.start2[0], "A man plays the guitar.", "sts: second sentence");
        ok(d.score[0] == 4.8 && d.score[11] == 0.0, "sts: gold scores");
    }
    dataset_free(&d);
    rc = load("ds = { plugin = \"sts\"; path = \"tests/data/sts/bad.csv\"; };", SPLIT_TRAIN, &d);
    is_str(err_get(), "tests/data/sts/bad.csv:2: score 'six' is not a number from 0 to 5", "sts: a bad score");
    rc = load("ds = { plugin = \"sts\"; path = \"tests/data/sts/bad.csv\"; on_error = \"skip\"; dev_ratio = 0; };",
              SPLIT_TRAIN, &d);
    ok(rc == 0 && d.n == 1 && d.skipped == 2 && d.n_notes == 2 && strstr(d.notes[1], "bad.csv:3: expected at least 7"),
       "sts: skip counts bad rows");
    dataset_free(&d);
    char *cfg = str_printf("%s/sts.cfg", dir);
    const char *text = "name = \"sts\"; run = \"sts\"; model = \"tests/goldens/tiny-bert\";\n"
                       "tokenizer = { plugin = \"wordpiece\"; max_len = 32; }; backbone = { plugin = \"bert\"; };\n"
                       "poolers = [\"mean\", \"cls\"];\n"
                       "sts = { files = [\"tests/data/sts/sts-mini.csv\"]; };\n";
    file_write_atomic(cfg, text, strlen(text));
    char *cmd = str_printf("%s/runner --quiet %s --out %s/sts >/dev/null 2>&1", RUNNER_BUILD_DIR, cfg, dir);
    is(sh(cmd), 0, "run = sts reads its files through the sts dataset plugin");
    char *csv = str_printf("%s/sts/sts.csv", dir), *c = slurp(csv);
    like(c ? c : "", "tests/data/sts/sts-mini.csv,12,", "sts.csv: 12 pairs scored");
    free(c);
    free(csv);
    free(cmd);
    free(cfg);
}

static const char *pipeline_fmt =
    "name = \"%s\"; run = \"train\"; model = \"tests/goldens/tiny-bert\";\n"
    "tokenizer = { plugin = \"wordpiece\"; max_len = 32; };\n"
    "backbone = { plugin = \"bert\"; }; pooler = { plugin = \"mean\"; };\n"
    "tasks = ( { name = \"sentiment\";\n  dataset = { %s };\n"
    "  head = { plugin = \"linear\"; }; loss = { plugin = \"cross_entropy\"; }; metrics = [\"accuracy\", \"macro_f1\"]; } );\n"
    "train = { epochs = 2; batch = 8; lr = 1e-3; log_every = 1; };\n";

/* Train name with the dataset section's body; exit status. */
static int train(const char *name, const char *dataset_body, const char *env)
{
    char *cfg = str_printf("%s/%s.cfg", dir, name), *text = str_printf(pipeline_fmt, name, dataset_body);
    file_write_atomic(cfg, text, strlen(text));
    char *cmd = str_printf("%s %s/runner --threads 1 --quiet %s --out %s/%s >%s/%s.out 2>%s/%s.err", env ? env : "",
                           RUNNER_BUILD_DIR, cfg, dir, name, dir, name, dir, name);
    int rc = sh(cmd);
    free(cmd);
    free(text);
    free(cfg);
    return rc;
}

/* The text of metrics.json's object `key` ("test": {...}) of a run. */
static char *section(const char *name, const char *key)
{
    char *path = str_printf("%s/%s/metrics.json", dir, name), *json = slurp(path), *out = NULL;
    char *at = json ? strstr(json, key) : NULL, *end = at ? strchr(at, '}') : NULL;
    if (end)
        out = str_printf("%.*s", (int)(end - at + 1), at);
    free(json);
    free(path);
    return out;
}

static void test_training(void)
{
    const char *pb = "plugin = \"delimited\"; delimiter = \"@\"; encoding = \"latin-1\"; path = \"" PB
                     "Sentences_train.txt\"; dev_ratio = 0.25; test = \"" PB "Sentences_test.txt\";";
    is(train("phrasebank", pb, NULL), 0, "phrasebank trains by configuration alone");
    char *t = section("phrasebank", "\"test\"");
    ok(t && strstr(t, "\"accuracy\"") && strstr(t, "\"examples\": 6"), "metrics.json: a test section, 6 examples");
    char *out = str_printf("%s/phrasebank.out", dir), *o = slurp(out);
    /* the best step depends on the run's dropout masks: any step */
    ok(o && strstr(o, "test (step ") && strstr(o, ", 6 examples): accuracy"), "stdout: the test line, apart from dev");
    free(o);
    free(out);
    free(t);
    const char *tw = "plugin = \"delimited\"; text_file = \"text.txt\"; label_file = \"labels.txt\"; train = \"" TW
                     "train_\"; dev = \"" TW "val_\"; test = \"" TW "test_\"; labels = [\"negative\", \"neutral\", "
                     "\"positive\"];";
    is(train("tweeteval", tw, NULL), 0, "tweeteval trains by configuration alone");
    t = section("tweeteval", "\"test\"");
    ok(t && strstr(t, "\"examples\": 5"), "tweeteval: test section, 5 examples");
    free(t);

    /* the same plugin built out of tree under another name */
    char *cc = str_printf("sed 's/RUNNER_DEFINE_PLUGIN(dataset, delimited,/RUNNER_DEFINE_PLUGIN(dataset, delim_copy,/' "
                          "plugins/dataset/delimited.c > %s/delim_copy.c && export PKG_CONFIG_PATH=%s; cc -shared -fPIC "
                          "-fvisibility=hidden $(pkg-config --cflags runner) -o %s/dataset_delim_copy.so "
                          "%s/delim_copy.c $(pkg-config --libs runner)", dir, RUNNER_BUILD_DIR, dir, dir);
    is(sh(cc), 0, "a copy of plugins/dataset/delimited.c builds out of tree with the README's cc line");
    char *nm = str_printf("nm -D --defined-only %s/dataset_delim_copy.so | grep -c ' T ' | grep -qx 1", dir);
    is(sh(nm), 0, "it exports one function, the entry symbol");
    char *env = str_printf("RUNNER_PLUGIN_PATH=%s", dir);
    char *body = str_printf("plugin = \"delim_copy\";%s", strchr(tw, ';') + 1);
    is(train("tweeteval_oot", body, env), 0, "tweeteval trains with the out-of-tree plugin found on RUNNER_PLUGIN_PATH");
    char *a = section("tweeteval", "\"test\""), *b = section("tweeteval_oot", "\"test\"");
    char *c = section("tweeteval", "\"best\""), *e = section("tweeteval_oot", "\"best\"");
    ok(a && b && !strcmp(a, b) && c && e && !strcmp(c, e), "its dev and test results equal the built-in one's");
    is(train("tweeteval_nopath", body, NULL), 2, "without RUNNER_PLUGIN_PATH: not found, exit 2");
    free(a);
    free(b);
    free(c);
    free(e);
    free(body);
    free(env);
    free(nm);
    free(cc);
}

static void test_check(void)
{
    const char *alias = "format = \"delimited\"; delimiter = \"@\"; encoding = \"latin-1\"; path = \"" PB
                        "Sentences_train.txt\";";
    char *cfg = str_printf("%s/alias.cfg", dir), *text = str_printf(pipeline_fmt, "alias", alias);
    file_write_atomic(cfg, text, strlen(text));
    char *cmd = str_printf("%s/runner %s --check >/dev/null 2>%s/alias.err", RUNNER_BUILD_DIR, cfg, dir);
    is(sh(cmd), 0, "`format` still works: --check passes");
    char *ep = str_printf("%s/alias.err", dir), *err = slurp(ep);
    like(err ? err : "", "`format` is deprecated in dataset sections: write `plugin = \"delimited\";`",
         "... with a deprecation warning");
    free(err);
    free(ep);
    free(cmd);
    free(text);
    free(cfg);
    const char *bad = "plugin = \"delimited\"; split = \"middle\"; encoding = \"latin1\"; header = 1; path = \"x\";";
    cfg = str_printf("%s/bad.cfg", dir);
    text = str_printf(pipeline_fmt, "bad", bad);
    file_write_atomic(cfg, text, strlen(text));
    cmd = str_printf("%s/runner %s --check >/dev/null 2>%s/bad.err", RUNNER_BUILD_DIR, cfg, dir);
    is(sh(cmd), 2, "--check: bad values of the reader's keys exit 2");
    ep = str_printf("%s/bad.err", dir);
    err = slurp(ep);
    like(err ? err : "", "bad.cfg:5: tasks.[0].dataset.split: 'middle' is not one of first|last", "split, with file:line");
    like(err ? err : "", "tasks.[0].dataset.encoding: 'latin1' is not one of utf-8|latin-1", "encoding");
    like(err ? err : "", "tasks.[0].dataset.header: is an integer, expected a boolean", "header");
    free(err);
    free(ep);
    free(cmd);
    free(text);
    free(cfg);
}

/* test_ratio: a test split carved from the training source, disjoint from
 * dev and train; dev is the same rows as without it. */
static void test_test_ratio(void)
{
    dataset tr, dv, te, dv0;
    const char *base = "ds = { plugin = \"delimited\"; delimiter = \"@\"; encoding = \"latin-1\";"
                       " path = \"" PB "Sentences_train.txt\"; dev_ratio = 0.25; %s };";
    char *with = str_printf(base, "test_ratio = 0.25;"), *without = str_printf(base, "");
    int rc = load(with, SPLIT_TRAIN, &tr) | load(with, SPLIT_DEV, &dv) | load(with, SPLIT_TEST, &te) |
             load(without, SPLIT_DEV, &dv0);
    ok(rc == 0, "test_ratio: train, dev and test load%s%s", rc ? ": " : "", rc ? err_get() : "");
    ok(tr.n == 12 && dv.n == 6 && te.n == 6, "24 rows: 12 train, 6 dev, 6 test (%d, %d, %d)", tr.n, dv.n, te.n);
    int overlap = 0, same_dev = dv.n == dv0.n;
    for (int i = 0; i < te.n; i++) {
        for (int j = 0; j < tr.n; j++)
            overlap += !strcmp(txt(&te, i), txt(&tr, j));
        for (int j = 0; j < dv.n; j++)
            overlap += !strcmp(txt(&te, i), txt(&dv, j));
    }
    for (int i = 0; same_dev && i < dv.n; i++)
        same_dev = !strcmp(txt(&dv, i), txt(&dv0, i));
    is(overlap, 0, "test rows are in neither train nor dev");
    ok(same_dev, "dev holds the same rows with and without test_ratio");
    dataset_free(&tr);
    dataset_free(&dv);
    dataset_free(&te);
    dataset_free(&dv0);
    free(with);
    free(without);
    char *bad = str_printf(base, "test_ratio = 0.8;");
    rc = load(bad, SPLIT_TRAIN, &tr);
    like(err_get(), "test_ratio: is 0.8, expected 0 <= test_ratio and dev_ratio + test_ratio < 1",
         "dev_ratio + test_ratio >= 1 refused, naming the key");
    free(bad);
    rc = load("ds = { plugin = \"lines\"; files = [\"" PB "Sentences_train.txt\"]; test_ratio = 0.1; };",
              SPLIT_TRAIN, &tr);
    like(err_get(), "unlabeled text has no test split", "test_ratio on unlabeled text refused");
}

int main(void)
{
    ok(mkdtemp(dir) != NULL, "a scratch folder");
    test_phrasebank();
    test_tweeteval();
    test_failures();
    test_test_ratio();
    test_shapes();
    test_folders();
    test_sts();
    load_done();
    test_training();
    test_check();
    char *rm = str_printf("rm -rf %s", dir);
    if (system(rm) != 0)
        diag("could not remove %s", dir);
    free(rm);
    return done_testing(73);
}
