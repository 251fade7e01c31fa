/* data.c — the dataset readers on the real files of ../shared/datasets
 * (row counts, label sets, spot-checked rows, the deterministic split, the
 * joint intent + slots loads) and on small broken fixtures in tests/data/
 * (every bad-row message with its file:line, skip-and-count), .gz input
 * written here with zlib, and capped reads of the Wikipedia corpus. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "data.h"
#include "pipeline.h"
#include "tap.h"
#include "dsload.h"
#include "runner/kit/util.h"

#define DS "../shared/datasets/"
#define WIKI "../shared/corpora/wikipedia_en_2015/"

static char tmpdir[] = "/tmp/runner-data-XXXXXX";

static const char *txt(const dataset *d, int i) { return d->text + d->start[i]; }
static const char *lab(const dataset *d, int i) { return d->names[d->label[i]]; }
static const char *tag(const dataset *d, int i, int w) { return d->names[d->tags[d->tag_off[i] + w]]; }

static int words(const char *s)
{
    int n = 0;
    for (const char *p = s; *p; p++)
        n += (p == s || p[-1] == ' ') && *p != ' ';
    return n;
}

/* Every example's tag count equals its word count (token tasks). */
static int tags_align(const dataset *d)
{
    for (int i = 0; i < d->n; i++)
        if (d->tag_off[i + 1] - d->tag_off[i] != words(txt(d, i)))
            return 0;
    return 1;
}

/* Same texts in the same order (and the same labels when with_labels). */
static int same_rows(const dataset *a, const dataset *b, int with_labels)
{
    if (a->n != b->n)
        return 0;
    for (int i = 0; i < a->n; i++)
        if (a->len[i] != b->len[i] || memcmp(txt(a, i), txt(b, i), a->len[i]) != 0 ||
            (with_labels && a->label && (!b->label || a->label[i] != b->label[i])))
            return 0;
    return 1;
}

static int same(const dataset *a, const dataset *b) { return same_rows(a, b, 1); }

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* train + dev, as multisets of texts, equal all. */
static int partition(const dataset *train, const dataset *dev, const dataset *all)
{
    int n = all->n, ok_ = train->n + dev->n == n;
    const char **x = malloc((size_t)n * sizeof *x), **y = malloc((size_t)n * sizeof *y);
    for (int i = 0; ok_ && i < n; i++) {
        x[i] = i < train->n ? txt(train, i) : txt(dev, i - train->n);
        y[i] = txt(all, i);
    }
    if (ok_) {
        qsort(x, (size_t)n, sizeof *x, cmp_str);
        qsort(y, (size_t)n, sizeof *y, cmp_str);
        for (int i = 0; ok_ && i < n; i++)
            ok_ = strcmp(x[i], y[i]) == 0;
    }
    free(x);
    free(y);
    return ok_;
}

static void write_file(const char *path, const char *text, size_t n)
{
    FILE *f = fopen(path, "wb");
    fwrite(text, 1, n, f);
    fclose(f);
}

static void write_gz(const char *path, const char *text)
{
    gzFile f = gzopen(path, "wb");
    gzwrite(f, text, (unsigned)strlen(text));
    gzclose(f);
}

static void test_sst2(void)
{
    dataset tr, dv;
    int rc = load("ds = { plugin = \"tsv\"; train = \"" DS "sst2/train.tsv\"; dev = \"" DS "sst2/dev.tsv\"; };",
                  SPLIT_TRAIN, &tr);
    ok(rc == 0, "sst2 train loads%s%s", rc ? ": " : "", rc ? err_get() : "");
    is(tr.n, 67349, "sst2 train: 67,349 rows");
    is(tr.n_names, 2, "sst2: 2 labels");
    if (tr.n == 67349 && tr.n_names == 2) {
        is_str(tr.names[0], "0", "sst2: label 0 is named '0'");
        is_str(txt(&tr, 0), "hide new secretions from the parental units",
               "sst2 first row, the space before the tab trimmed");
        is_str(lab(&tr, 0), "0", "sst2 first row label");
        is_str(txt(&tr, tr.n - 1),
               "this new jangle of noise , mayhem and stupidity must be a serious contender for the title .",
               "sst2 last row");
        is_str(lab(&tr, tr.n - 1), "0", "sst2 last row label");
    }
    ok(tr.tags == NULL && tr.tag_off == NULL, "sst2: a sentence task has no tags");
    is_str(tr.source, DS "sst2/train.tsv", "sst2: source names the file");
    is(tr.skipped, 0, "sst2 train: no bad rows");
    dataset_free(&tr);

    rc = load("ds = { plugin = \"tsv\"; train = \"" DS "sst2/train.tsv\"; dev = \"" DS "sst2/dev.tsv\";"
              " labels = [\"negative\", \"positive\"]; };", SPLIT_DEV, &dv);
    ok(rc == 0, "sst2 dev loads with named labels");
    is(dv.n, 872, "sst2 dev: 872 rows");
    if (dv.n == 872) {
        is_str(txt(&dv, 0), "it 's a charming and often affecting journey .", "sst2 dev first row");
        is_str(lab(&dv, 0), "positive", "sst2 dev: '1' is named by `labels`");
        is_str(lab(&dv, 1), "negative", "sst2 dev: '0' is named by `labels`");
    }
    dataset_free(&dv);

    rc = load("ds = { plugin = \"tsv\"; train = \"" DS "sst2/train.tsv\"; limit = 1000; };", SPLIT_TRAIN, &tr);
    ok(rc == 0 && tr.n == 1000, "sst2 limit = 1000 keeps 1000 rows");
    int pos = 0;
    for (int i = 0; i < tr.n; i++)
        pos += tr.label[i] == 1;
    ok(pos > 450 && pos < 650, "sst2 limit: a shuffled subsample (%d positive of 1000; the file's first 1000 hold %s)",
       pos, "a different mix");
    dataset_free(&tr);
    rc = load("ds = { plugin = \"tsv\"; train = \"" DS "sst2/test.tsv\"; };", SPLIT_TRAIN, &tr);
    ok(rc == -1, "sst2 test.tsv has no label column");
    like(err_get(), "sst2/test.tsv:1: no column 'label' in the header (columns: 'index', 'sentence')",
         "message names the header's columns");
}

static void test_agnews(void)
{
    const char *g = "ds = { plugin = \"agnews_csv\"; path = \"" DS "ag_news/test.csv\"; dev_ratio = 0.1; };";
    dataset tr, tr2, dv, all;
    int rc = load(g, SPLIT_TRAIN, &tr);
    ok(rc == 0, "ag news train split loads%s%s", rc ? ": " : "", rc ? err_get() : "");
    load(g, SPLIT_TRAIN, &tr2);
    load(g, SPLIT_DEV, &dv);
    is(tr.n, 6840, "ag news: 6,840 train rows of 7,600");
    is(dv.n, 760, "ag news: 760 dev rows");
    ok(same(&tr, &tr2), "ag news: two loads give the same split");
    rc = load("ds = { plugin = \"agnews_csv\"; path = \"" DS "ag_news/test.csv\"; dev_ratio = 0.0; };", SPLIT_TRAIN,
              &all);
    is(all.n, 7600, "ag news: dev_ratio 0 keeps all 7,600 rows");
    ok(partition(&tr, &dv, &all), "ag news: train and dev are disjoint and cover the file");
    is(all.n_names, 4, "ag news: 4 classes");
    if (all.n == 7600 && all.n_names == 4) {
        is_str(all.names[0], "World", "class 1 is World");
        is_str(all.names[3], "Sci/Tech", "class 4 is Sci/Tech");
        int count[4] = {0};
        for (int i = 0; i < all.n; i++)
            count[all.label[i]]++;
        ok(count[0] == 1900 && count[1] == 1900 && count[2] == 1900 && count[3] == 1900,
           "ag news: 1,900 rows per class");
        is_str(txt(&all, 0),
               "Fears for T N pension after talks Unions representing workers at Turner   Newall say they are "
               "'disappointed' after talks with stricken parent firm Federal Mogul.",
               "ag news first row: title + ' ' + description");
        is_str(lab(&all, 0), "Business", "ag news first row is Business (class 3)");
        like(txt(&all, 1), "A second team of rocketeers competing for the  #36;10 million",
             "a backslash line break becomes a space");
        is_str(txt(&all, all.n - 1),
               "EBay gets into rentals EBay plans to buy the apartment and home rental service Rent.com for "
               "$415 million, adding to its already exhaustive breadth of offerings.",
               "ag news last row: \\$ is a dollar sign");
        int backslash = 0;
        for (int i = 0; i < all.n; i++)
            backslash += strchr(txt(&all, i), '\\') != NULL;
        is(backslash, 0, "ag news: no backslash is left in any text");
    }
    int differ = 0;
    dataset_free(&tr2);
    load("ds = { plugin = \"agnews_csv\"; path = \"" DS "ag_news/test.csv\"; split_seed = 7; };", SPLIT_DEV, &tr2);
    for (int i = 0; i < dv.n && i < tr2.n; i++)
        differ += strcmp(txt(&dv, i), txt(&tr2, i)) != 0;
    ok(tr2.n == 760 && differ > 0, "ag news: another split_seed holds out other rows");
    dataset_free(&tr2);
    load("ds = { plugin = \"agnews_csv\"; path = \"" DS "ag_news/test.csv\"; limit = 100; };", SPLIT_TRAIN, &tr2);
    int inside = tr2.n == 100;
    for (int i = 0, j = 0; inside && i < tr2.n; i++) { /* both in file order */
        while (j < tr.n && strcmp(txt(&tr, j), txt(&tr2, i)) != 0)
            j++;
        inside = j < tr.n;
    }
    ok(inside, "ag news: limit = 100 takes 100 rows of the train split, in file order");
    dataset_free(&tr2);
    load("ds = { plugin = \"agnews_csv\"; path = \"" DS "ag_news/test.csv\"; "
         "labels = [\"world\", \"sports\", \"business\", \"tech\"]; };", SPLIT_DEV, &tr2);
    ok(tr2.n == 760 && same(&tr2, &dv) && strcmp(tr2.names[2], "business") == 0,
       "ag news: `labels` renames classes 1..4 in order");
    dataset_free(&tr2);
    dataset_free(&tr);
    dataset_free(&dv);
    dataset_free(&all);
}

static void test_trec(void)
{
    dataset tr, dv;
    int rc = load("ds = { plugin = \"trec\"; train = \"" DS "trec/train_5500.label\"; dev = \"" DS "trec/TREC_10.label\"; };",
                  SPLIT_TRAIN, &tr);
    ok(rc == 0, "trec train loads%s%s", rc ? ": " : "", rc ? err_get() : "");
    is(tr.n, 5452, "trec train: 5,452 questions");
    is(tr.n_names, 6, "trec coarse: 6 labels");
    if (tr.n == 5452 && tr.n_names == 6) {
        is_str(tr.names[0], "ABBR", "trec coarse labels sorted: ABBR first");
        is_str(tr.names[5], "NUM", "trec coarse labels sorted: NUM last");
        is_str(txt(&tr, 0), "How did serfdom develop in and then leave Russia ?", "trec first question");
        is_str(lab(&tr, 0), "DESC", "trec first coarse label");
        is_str(txt(&tr, 65), "Which city has the oldest relationship as a sister\xEF\xBF\xBD" "city with Los Angeles ?",
               "trec line 66: the byte 0xF0 is replaced by U+FFFD");
        is(tr.repaired, 1, "trec: one row repaired");
        ok(tr.n_notes == 1 && strstr(tr.notes[0], "train_5500.label:66: invalid UTF-8 byte 0xF0"),
           "trec: the repair is noted with file:line (%s)", tr.n_notes ? tr.notes[0] : "none");
        is_str(lab(&tr, tr.n - 1), "ENTY", "trec last coarse label");
    }
    dataset_free(&tr);
    rc = load("ds = { plugin = \"trec\"; target = \"fine\"; train = \"" DS "trec/train_5500.label\"; dev = \"" DS
              "trec/TREC_10.label\"; };", SPLIT_DEV, &dv);
    ok(rc == 0, "trec dev (fine) loads");
    is(dv.n, 500, "trec dev: 500 questions");
    is(dv.n_names, 50, "trec fine: 50 labels (from train)");
    if (dv.n == 500) {
        is_str(lab(&dv, 0), "NUM:dist", "trec dev first fine label");
        is_str(txt(&dv, 0), "How far is it from Denver to Aspen ?", "trec dev first question");
    }
    dataset_free(&dv);
}

static void test_slots(void)
{
    dataset in_tr, sl_tr, in_dv, sl_dv;
    int rc = load("ds = { plugin = \"slots\"; path = \"" DS "snips\"; target = \"intent\"; };", SPLIT_TRAIN, &in_tr);
    ok(rc == 0, "snips intents load%s%s", rc ? ": " : "", rc ? err_get() : "");
    rc = load("ds = { plugin = \"slots\"; path = \"" DS "snips\"; target = \"slots\"; };", SPLIT_TRAIN, &sl_tr);
    ok(rc == 0, "snips slots load");
    load("ds = { plugin = \"slots\"; path = \"" DS "snips\"; };", SPLIT_DEV, &in_dv);
    load("ds = { plugin = \"slots\"; path = \"" DS "snips\"; target = \"slots\"; };", SPLIT_DEV, &sl_dv);
    is(in_tr.n, 13084, "snips train: 13,084 sentences");
    is(in_dv.n, 700, "snips valid: 700 sentences");
    is(in_tr.n_names, 7, "snips: 7 intents");
    is(sl_tr.n_names, 72, "snips: 72 slot tags");
    is(sl_dv.n_names, 72, "snips valid uses the train tag map");
    ok(in_tr.label && !in_tr.tags, "target intent: sentence labels");
    ok(sl_tr.tags && !sl_tr.label, "target slots: word tags");
    ok(same_rows(&in_tr, &sl_tr, 0) && same_rows(&in_dv, &sl_dv, 0),
       "joint model: both targets read the same texts in the same order");
    ok(tags_align(&sl_tr) && tags_align(&sl_dv), "snips: one tag per word in every sentence");
    if (in_tr.n == 13084 && sl_tr.n == 13084) {
        is_str(txt(&in_tr, 0), "listen to westbam alumb allergic on google music", "snips first sentence");
        is_str(lab(&in_tr, 0), "PlayMusic", "snips first intent");
        is_str(tag(&sl_tr, 0, 2), "B-artist", "snips first sentence, word 3 tag");
        is_str(tag(&sl_tr, 0, 7), "I-service", "snips first sentence, last tag");
        is_str(txt(&in_tr, 1), "add step to me to the 50 cl\xC3\xA1sicos playlist", "snips trailing space dropped");
        is_str(txt(&in_tr, in_tr.n - 1), "rate richard carvel 4 out of 6", "snips last sentence");
        is_str(lab(&in_tr, in_tr.n - 1), "RateBook", "snips last intent");
        is_str(sl_tr.names[0], "O", "tag names: O first");
    }
    dataset_free(&in_tr);
    dataset_free(&sl_tr);
    dataset_free(&in_dv);
    dataset_free(&sl_dv);

    rc = load("ds = { plugin = \"slots\"; path = \"" DS "atis\"; };", SPLIT_TRAIN, &in_tr);
    ok(rc == 0 && in_tr.n == 4478 && in_tr.n_names == 21, "atis train: 4,478 sentences, 21 intents");
    dataset_free(&in_tr);
    rc = load("ds = { plugin = \"slots\"; path = \"" DS "atis\"; target = \"slots\"; };", SPLIT_TRAIN, &sl_tr);
    ok(rc == 0 && sl_tr.n_names == 120 && tags_align(&sl_tr), "atis train: 120 slot tags, aligned");
    dataset_free(&sl_tr);
    rc = load("ds = { plugin = \"slots\"; path = \"" DS "atis\"; };", SPLIT_DEV, &in_dv);
    ok(rc == -1, "atis valid, on_error = stop: a tag unseen in train stops the load");
    like(err_get(), "atis/valid/seq.out:17: unknown tag 'I-return_date.day_number' at word 27", "with file:line");
    rc = load("ds = { plugin = \"slots\"; path = \"" DS "atis\"; on_error = \"skip\"; };", SPLIT_DEV, &in_dv);
    rc |= load("ds = { plugin = \"slots\"; path = \"" DS "atis\"; on_error = \"skip\"; target = \"slots\"; };",
               SPLIT_DEV, &sl_dv);
    ok(rc == 0 && in_dv.n == 498 && sl_dv.n == 498, "atis valid, skip: 500 - 2 rows for both targets");
    ok(in_dv.skipped == 2 && sl_dv.skipped == 2, "atis valid: 2 skipped rows counted");
    ok(in_dv.n_notes == 2 && strstr(in_dv.notes[0], "atis/valid/seq.out:17:") &&
           strstr(in_dv.notes[1], "atis/valid/label:418: unknown label 'atis_airfare#atis_flight_time'"),
       "atis valid: both noted with file:line");
    ok(same_rows(&in_dv, &sl_dv, 0), "atis valid: the two targets still align");
    dataset_free(&in_dv);
    dataset_free(&sl_dv);
}

static void test_conll(void)
{
    dataset tr, dv;
    int rc = load("ds = { plugin = \"conll\"; train = \"" DS "conll2003/eng.train\"; dev = \"" DS "conll2003/eng.testa\"; };",
                  SPLIT_TRAIN, &tr);
    ok(rc == 0, "conll train loads%s%s", rc ? ": " : "", rc ? err_get() : "");
    is(tr.n, 14041, "conll train: 14,041 sentences");
    is(tr.n_names, 8, "conll NER: 8 IOB1 tags");
    ok(tags_align(&tr), "conll: one tag per word");
    if (tr.n == 14041 && tr.n_names == 8) {
        is_str(txt(&tr, 0), "EU rejects German call to boycott British lamb .", "conll first sentence");
        is_str(tag(&tr, 0, 0), "I-ORG", "conll first tag (IOB1 kept)");
        is_str(tag(&tr, 0, 2), "I-MISC", "conll third tag");
        is_str(txt(&tr, tr.n - 1), "Swansea 1 Lincoln 2", "conll last sentence");
        is_str(tr.names[0], "O", "conll tags: O first");
        is_str(tr.names[1], "B-LOC", "conll tags: then sorted");
    }
    dataset_free(&tr);
    rc = load("ds = { plugin = \"conll\"; train = \"" DS "conll2003/eng.train\"; dev = \"" DS "conll2003/eng.testa\"; };",
              SPLIT_DEV, &dv);
    ok(rc == 0 && dv.n == 3250 && tags_align(&dv), "conll testa: 3,250 sentences");
    if (dv.n == 3250)
        is_str(txt(&dv, dv.n - 1), "-- Dhaka Newsroom 880-2-506363", "conll testa last sentence");
    dataset_free(&dv);
    rc = load("ds = { plugin = \"conll\"; target = \"pos\"; train = \"" DS "conll2003/eng.train\"; };", SPLIT_TRAIN, &tr);
    ok(rc == 0 && tr.n_names == 45, "conll target pos: 45 POS tags (%d)", tr.n_names);
    dataset_free(&tr);
}

static void test_lines(void)
{
    dataset tr, dv, tr2;
    int rc = load("ds = { plugin = \"lines\"; files = [\"" WIKI "wiki_*.txt.gz\"]; limit = 3000; dev_ratio = 0.0; };",
                  SPLIT_TRAIN, &tr);
    ok(rc == 0, "wikipedia: capped read through zlib%s%s", rc ? ": " : "", rc ? err_get() : "");
    is(tr.n, 3000, "wikipedia: limit caps the lines");
    if (tr.n == 3000) {
        ok(strncmp(txt(&tr, 0), "Anarchism is a political philosophy", 35) == 0, "wikipedia: the first paragraph");
        int empty = 0;
        for (int i = 0; i < tr.n; i++)
            empty += tr.len[i] == 0;
        is(empty, 0, "wikipedia: blank lines between articles are skipped");
    }
    ok(!tr.label && !tr.tags && !tr.names, "lines: no labels");
    dataset_free(&tr);
    const char *g = "ds = { plugin = \"lines\"; files = [\"" WIKI "wiki_00.txt.gz\", \"" WIKI "wiki_01.txt.gz\"]; "
                    "limit = 900; dev_limit = 100; };";
    rc = load(g, SPLIT_TRAIN, &tr);
    rc |= load(g, SPLIT_DEV, &dv);
    rc |= load(g, SPLIT_TRAIN, &tr2);
    ok(rc == 0 && tr.n == 900 && dv.n == 100, "wikipedia: 900 train and 100 held-out lines");
    ok(same(&tr, &tr2), "wikipedia: the hold-out is deterministic");
    int shared = 0;
    for (int i = 0; i < dv.n; i++)
        for (int j = 0; j < tr.n; j++)
            shared += strcmp(txt(&dv, i), txt(&tr, j)) == 0;
    is(shared, 0, "wikipedia: held-out lines are not training lines");
    dataset_free(&tr);
    dataset_free(&dv);
    dataset_free(&tr2);

    rc = load("ds = { plugin = \"lines\"; files = [\"tests/data/lines.txt\"]; dev_ratio = 0.0;"
              " train_text_from = ( { plugin = \"tsv\"; train = \"tests/data/tiny_rows.tsv\"; },"
              " { plugin = \"slots\"; path = \"tests/data/slots\"; } ); };", SPLIT_TRAIN, &tr);
    ok(rc == 0, "lines + the training text of other datasets%s%s", rc ? ": " : "", rc ? err_get() : "");
    is(tr.n, 3 + 3 + 3, "3 paragraphs (markup and blank lines skipped) + 3 tsv rows + 3 slots sentences");
    if (tr.n == 9) {
        is_str(txt(&tr, 0), "First paragraph of A.", "lines: first paragraph, trailing space trimmed");
        is_str(txt(&tr, 2), "Only paragraph of B.", "lines: <doc> lines skipped");
        is_str(txt(&tr, 3), "good fun", "then the tsv training rows");
        is_str(txt(&tr, 8), "what is the weather", "then the slots training sentences (never valid/)");
    }
    dataset_free(&tr);
    rc = load("ds = { plugin = \"lines\"; files = [\"tests/data/lines.txt\"]; dev = \"tests/data/lines.txt\";"
              " train_text_from = ( { plugin = \"tsv\"; train = \"tests/data/tiny_rows.tsv\"; } ); };", SPLIT_DEV, &dv);
    ok(rc == 0 && dv.n == 3, "lines dev: only the dev file, never other datasets' text");
    dataset_free(&dv);
    rc = load("ds = { plugin = \"lines\"; files = []; };", SPLIT_TRAIN, &tr);
    like(err_get(), "dataset.files: is empty", "lines: an empty list of files fails");
    rc = load("ds = { plugin = \"lines\"; train = \"tests/data/lines.txt\"; dev_ratio = 0; };", SPLIT_TRAIN, &tr);
    ok(rc == 0 && tr.n == 3, "lines: `train` names one file instead of `files`");
    dataset_free(&tr);
    rc = load("ds = { plugin = \"lines\"; files = [\"tests/data/none_*.txt\"]; };", SPLIT_TRAIN, &tr);
    ok(rc == -1, "lines: a glob matching nothing fails");
    like(err_get(), "tests/data/none_*.txt: no file matches", "and says so");
}

static void test_errors(void)
{
    dataset d;
    int rc = load("ds = { plugin = \"tsv\"; train = \"tests/data/nope.tsv\"; };", SPLIT_TRAIN, &d);
    ok(rc == -1, "missing file fails");
    is_str(err_get(), "tests/data/nope.tsv: No such file or directory", "missing file: path and reason");
    rc = load("ds = { plugin = \"slots\"; path = \"tests/data/nope\"; };", SPLIT_TRAIN, &d);
    like(err_get(), "tests/data/nope/seq.in: No such file", "missing slots folder: the file looked for");

    rc = load("ds = { plugin = \"tsv\"; train = \"tests/data/bad.tsv\"; };", SPLIT_TRAIN, &d);
    ok(rc == -1, "tsv: a bad row stops the load by default");
    is_str(err_get(), "tests/data/bad.tsv:3: expected 2 tab-separated fields, got 3", "tsv: wrong column count");
    rc = load("ds = { plugin = \"tsv\"; train = \"tests/data/bad.tsv\"; on_error = \"skip\"; };", SPLIT_TRAIN, &d);
    ok(rc == 0 && d.n == 3, "tsv skip: 3 good rows kept");
    is(d.skipped, 2, "tsv skip: 2 bad rows counted");
    ok(d.n_notes == 2 && strcmp(d.notes[1], "tests/data/bad.tsv:5: missing label (column 'label' is empty)") == 0,
       "tsv: missing field noted with file:line (%s)", d.n_notes > 1 ? d.notes[1] : "none");
    if (d.n == 3)
        is_str(txt(&d, 2), "the end", "tsv: the blank line is not a row");
    dataset_free(&d);
    rc = load("ds = { plugin = \"tsv\"; train = \"tests/data/tiny_rows.tsv\"; dev = \"tests/data/tiny_dev_rows.tsv\"; };", SPLIT_DEV, &d);
    ok(rc == -1, "tsv dev: a label unseen in train fails");
    is_str(err_get(), "tests/data/tiny_dev_rows.tsv:3: unknown label 'maybe' (known: neg, pos)", "unknown label, known ones listed");
    rc = load("ds = { plugin = \"tsv\"; train = \"tests/data/tiny_rows.tsv\"; labels = [\"pos\"]; on_error = \"skip\"; };",
              SPLIT_TRAIN, &d);
    ok(rc == 0 && d.n == 2 && d.skipped == 1 && d.n_notes == 1 &&
           strstr(d.notes[0], "tiny_rows.tsv:3: unknown label 'neg' (known: pos)"),
       "tsv: `labels` fixes the label set; others are bad rows");
    dataset_free(&d);
    rc = load("ds = { plugin = \"tsv\"; train = \"tests/data/tiny_rows.tsv\"; text_field = \"text\"; };", SPLIT_TRAIN, &d);
    like(err_get(), "tests/data/tiny_rows.tsv:1: no column 'text' in the header", "tsv: text_field not in the header");

    rc = load("ds = { plugin = \"agnews_csv\"; path = \"tests/data/bad.csv\"; };", SPLIT_TRAIN, &d);
    is_str(err_get(), "tests/data/bad.csv:2: expected 3 comma-separated fields (class, title, description), got 2",
           "csv: wrong field count");
    rc = load("ds = { plugin = \"agnews_csv\"; path = \"tests/data/bad.csv\"; on_error = \"skip\"; dev_ratio = 0; };",
              SPLIT_TRAIN, &d);
    ok(rc == 0 && d.n == 2 && d.skipped == 4, "csv skip: 2 good records, 4 bad ones counted");
    if (d.n == 2 && d.n_notes == 4) {
        is_str(txt(&d, 0), "Wall St. Bears Claw Back Reuters - Short-sellers, Wall Street's dwindling band of "
                           "ultra-cynics, are seeing green again at $20 a share.", "csv: escapes undone");
        is_str(txt(&d, 1), "Two \"quoted\" lines first line second line next paragraph",
               "csv: a quoted field spanning lines, \"\" and \\\\");
        is_str(lab(&d, 1), "Sports", "csv: class 2");
        /* noted as found: format errors while reading, then unknown labels */
        like(d.notes[1], "bad.csv:6: unexpected character after a closing quote", "csv: stray quote");
        like(d.notes[2], "bad.csv:7: unterminated quoted field", "csv: unterminated quote");
        like(d.notes[3], "bad.csv:3: unknown label '7' (known: World, Sports, Business, Sci/Tech)", "csv: unknown class");
    }
    dataset_free(&d);

    rc = load("ds = { plugin = \"trec\"; train = \"tests/data/bad.label\"; };", SPLIT_TRAIN, &d);
    like(err_get(), "tests/data/bad.label:2: expected 'COARSE:fine question', got 'NUMcount", "trec: no colon");
    rc = load("ds = { plugin = \"trec\"; train = \"tests/data/bad.label\"; on_error = \"skip\"; };", SPLIT_TRAIN, &d);
    ok(rc == 0 && d.n == 2 && d.skipped == 2 && d.n_notes == 2 && strstr(d.notes[1], "bad.label:3:"),
       "trec skip: missing question counted at its line");
    dataset_free(&d);

    rc = load("ds = { plugin = \"slots\"; path = \"tests/data/slots\"; target = \"slots\"; };", SPLIT_DEV, &d);
    is_str(err_get(), "tests/data/slots/valid/seq.out:2: unknown tag 'B-thing' at word 3 (known: O, B-genre, "
                      "B-party_size_number)", "slots: unknown tag with file:line and word");
    rc = load("ds = { plugin = \"slots\"; path = \"tests/data/slots\"; on_error = \"skip\"; };", SPLIT_DEV, &d);
    ok(rc == 0 && d.n == 1 && d.skipped == 2, "slots skip: rows with an unknown tag or intent dropped");
    dataset_free(&d);
    char *dir = str_printf("%s/mis", tmpdir), *p;
    dir_make(dir);
    p = str_printf("%s/seq.in", dir);
    write_file(p, "a b c\nd e f g\n", 14);
    free(p);
    p = str_printf("%s/seq.out", dir);
    write_file(p, "O O O\nO O O\n", 12);
    free(p);
    p = str_printf("%s/label", dir);
    write_file(p, "X\nY\n", 4);
    free(p);
    char *g = str_printf("ds = { plugin = \"slots\"; path = \"%s\"; dev_ratio = 0; };", dir);
    rc = load(g, SPLIT_TRAIN, &d);
    char *want = str_printf("%s/seq.out:2: seq.in has 4 words but seq.out has 3 tags", dir);
    is_str(err_get(), want, "slots: misaligned tags at file:line");
    free(want);
    free(g);
    free(dir);
    rc = load("ds = { plugin = \"slots\"; path = \"tests/data/slots_short\"; };", SPLIT_TRAIN, &d);
    ok(rc == -1, "slots: files of different lengths fail whatever on_error says");
    like(err_get(), "slots_short/label has 1 lines but seq.in has more", "and say which");

    rc = load("ds = { plugin = \"conll\"; train = \"tests/data/conll/bad.txt\"; };", SPLIT_TRAIN, &d);
    is_str(err_get(), "tests/data/conll/bad.txt:7: expected 4 space-separated columns (word POS chunk NER), got 2",
           "conll: wrong column count");
    rc = load("ds = { plugin = \"conll\"; train = \"tests/data/conll/bad.txt\"; on_error = \"skip\"; };", SPLIT_TRAIN, &d);
    ok(rc == 0 && d.n == 2 && d.skipped == 1, "conll skip: the bad sentence dropped, counted once");
    if (d.n == 2) {
        is_str(txt(&d, 1), "BRUSSELS", "conll: the last sentence needs no blank line after it");
        ok(tags_align(&d) && d.tag_off[2] == 3, "conll skip: no tag of the dropped sentence is left");
    }
    dataset_free(&d);

    rc = load("ds = { plugin = \"json\"; path = \"x\"; };", SPLIT_TRAIN, &d);
    like(err_get(), "tasks.[0].dataset.plugin: dataset plugin 'json' not found", "unknown dataset plugin");
    rc = load("ds = { plugin = \"trec\"; path = \"x\"; target = \"medium\"; };", SPLIT_TRAIN, &d);
    like(err_get(), "tasks.[0].dataset.target: 'medium' is not one of coarse|fine", "unknown target");
    rc = load("ds = { plugin = \"trec\"; path = \"x\"; text_field = \"q\"; };", SPLIT_TRAIN, &d);
    like(err_get(), "dataset.text_field: unknown key 'text_field' for dataset plugin 'trec'", "text_field outside tsv");
    rc = load("ds = { plugin = \"tsv\"; path = \"x\"; train = \"y\"; };", SPLIT_TRAIN, &d);
    like(err_get(), "set `path` (one source to split) or `train`, not both", "path and train");
    rc = load("ds = { plugin = \"tsv\"; path = \"x\"; on_error = \"ignore\"; };", SPLIT_TRAIN, &d);
    like(err_get(), "dataset.on_error: 'ignore' is not one of stop|skip", "on_error value");
    rc = load("ds = { plugin = \"tsv\"; path = \"tests/data/tiny_rows.tsv\"; labels = [\"a\", \"b\", \"a\"]; };",
              SPLIT_TRAIN, &d);
    like(err_get(), "dataset.labels: 'a' is listed twice", "labels listed twice");
    rc = load("ds = { plugin = \"tsv\"; path = \"x\"; dev_ratio = 1.5; };", SPLIT_TRAIN, &d);
    like(err_get(), "dataset.dev_ratio: 1.5 is out of range: must be in [0, 1)", "dev_ratio range");
    ok(rc == -1 && d.n == 0 && d.text == NULL, "a failed load leaves an empty dataset");
}

static void test_gz(void)
{
    char *plain = str_printf("%s/t.tsv", tmpdir), *gz = str_printf("%s/t.tsv.gz", tmpdir);
    const char *text = "sentence\tlabel\nfirst one \t1\nsecond one \t0\nbad\xF0 byte\t1\n";
    write_file(plain, text, strlen(text));
    write_gz(gz, text);
    char *g1 = str_printf("ds = { plugin = \"tsv\"; train = \"%s\"; };", plain);
    char *g2 = str_printf("ds = { plugin = \"tsv\"; train = \"%s\"; };", gz);
    dataset a, b;
    int rc = load(g1, SPLIT_TRAIN, &a);
    rc |= load(g2, SPLIT_TRAIN, &b);
    ok(rc == 0 && a.n == 3 && same(&a, &b), ".gz reads like the plain file");
    if (b.n == 3) {
        is_str(txt(&b, 2), "bad\xEF\xBF\xBD byte", ".gz: invalid byte replaced");
        is(b.repaired, 1, ".gz: repair counted");
    }
    dataset_free(&a);
    dataset_free(&b);
    char *trunc = str_printf("%s/cut.tsv.gz", tmpdir), *data = NULL;
    size_t len = 0;
    file_read(gz, &data, &len);
    write_file(trunc, data, len - 12);
    free(data);
    char *g3 = str_printf("ds = { plugin = \"tsv\"; train = \"%s\"; };", trunc);
    rc = load(g3, SPLIT_TRAIN, &a);
    ok(rc == -1, "a truncated .gz fails");
    like(err_get(), "cut.tsv.gz:", "and names the file");
    dataset_free(&a);
    free(g1);
    free(g2);
    free(g3);
    free(trunc);
    free(plain);
    free(gz);
}

/* The core schema declares the keys `lines` needs. */
static void test_schema(void)
{
    const schema *task = NULL, *dsk = NULL;
    for (const schema *k = pipeline_schema; k->name; k++)
        if (strcmp(k->name, "tasks") == 0)
            task = k->sub;
    for (const schema *k = task; k && k->name; k++)
        if (strcmp(k->name, "dataset") == 0)
            dsk = k->sub;
    int files = 0, from = 0;
    for (const schema *k = dsk; k && k->name; k++) {
        files |= strcmp(k->name, "files") == 0 && k->type == RUNNER_T_STRING_LIST;
        from |= strcmp(k->name, "train_text_from") == 0 && k->shape == S_SECTIONS && k->sub && k->sub != dsk;
    }
    ok(files, "schema: dataset.files is a list of strings");
    ok(from, "schema: dataset.train_text_from is a list of dataset sections (its own core keys, no recursion)");

    /* through the pipeline checks: defaults filled, nested keys checked */
    const char *text =
        "run = \"tokenize\";\n"
        "tasks = ( { name = \"mlm\"; dataset = { plugin = \"lines\"; files = [\"tests/data/lines.txt\"];\n"
        "  train_text_from = ( { plugin = \"tsv\"; train = \"tests/data/tiny_rows.tsv\"; },\n"
        "                      { plugin = \"tsv\"; train = \"tests/data/tiny_rows.tsv\"; dev = \"x\"; } ); }; } );\n";
    pipeline pl;
    diags dg;
    diag_init(&dg);
    pipeline_open(&pl, NULL, RUNNER_BUILD_DIR "/plugins");
    int parsed = config_read_string(&pl.cfg, text);
    int rc = parsed ? pipeline_validate(&pl, &dg) : -2;
    ok(rc == -1 && dg.n == 1 && strstr(dg.msg[0], "tasks.[0].dataset.train_text_from.[1].dev: unknown key 'dev'"),
       "pipeline check: a nested source takes no dev (%s)", dg.n ? dg.msg[0] : "no message");
    config_setting_t *src = config_lookup(&pl.cfg, "tasks.[0].dataset.train_text_from");
    config_setting_remove_elem(src, 1);
    diag_free(&dg);
    diag_init(&dg);
    ok(pipeline_validate(&pl, &dg) == 0, "pipeline check: the dataset group validates");
    double ratio = 0;
    ok(config_lookup_float(&pl.cfg, "tasks.[0].dataset.train_text_from.[0].dev_ratio", &ratio) && ratio == 0.1,
       "pipeline check: nested defaults filled in");
    dataset d;
    rc = dataset_load(&pl, "tasks.mlm.dataset", config_lookup(&pl.cfg, "tasks.[0].dataset"), SPLIT_TRAIN, &d);
    ok(rc == 0 && d.n >= 3, "the validated group loads (%d lines)", d.n);
    dataset_free(&d);
    diag_free(&dg);
    pipeline_close(&pl);
}

int main(void)
{
    if (!mkdtemp(tmpdir))
        return 1;
    test_errors();
    test_gz();
    test_schema();
    if (path_exists(DS "README.md")) {
        test_sst2();
        test_agnews();
        test_trec();
        test_slots();
        test_conll();
        test_lines();
    } else {
        skip(1, "../shared/datasets is not there");
    }
    load_done();
    char *rm = str_printf("rm -rf %s", tmpdir);
    if (system(rm) != 0)
        diag("could not remove %s", tmpdir);
    free(rm);
    return done_testing(164);
}
