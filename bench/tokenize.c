/* tokenize.c — benchmark of tokenizer/wordpiece: MB/s and sentences/s on
 * one core over the SST-2 training sentences (first column of train.tsv,
 * header skipped), the median of several runs, beside the pure-Python BERT
 * tokenizer (bench/tokenize_ref.py, run once) whose ids are also compared
 * with ours.
 *   build/bench/tokenize [--runs N] [--no-python] [--file TSV] [--model DIR]
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline.h"
#include "text.h"
#include "runner/kit/util.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The first tab-separated column of every line after the header. */
static int read_tsv(const char *path, lines *L)
{
    if (lines_read(path, L) != 0)
        return -1;
    if (L->n < 2)
        return err_set("%s: no sentences", path);
    for (int i = 1; i < L->n; i++) {
        const char *tab = memchr(L->data + L->start[i], '\t', L->len[i]);
        if (tab)
            L->len[i] = (size_t)(tab - (L->data + L->start[i]));
        L->start[i - 1] = L->start[i];
        L->len[i - 1] = L->len[i];
    }
    L->n--;
    return 0;
}

static stage *open_tokenizer(pipeline *pl, const char *model)
{
    char *text = str_printf("run = \"tokenize\"; model = \"%s\";\n"
                            "tokenizer = { plugin = \"wordpiece\"; };\n",
                            model);
    diags d;
    diag_init(&d);
    stage *st = NULL;
    if (!text)
        goto done;
    pl->quiet = 1;
    if (!config_read_string(&pl->cfg, text)) {
        err_set("%s", config_error_text(&pl->cfg));
        goto done;
    }
    if (pipeline_validate(pl, &d) != 0) {
        err_set("%s", d.n ? d.msg[0] : "invalid pipeline");
        goto done;
    }
    st = pipeline_stage(pl, "tokenizer", "tokenizer.", RUNNER_KIND_TOKENIZER,
                        config_lookup(&pl->cfg, "tokenizer"));
done:
    diag_free(&d);
    free(text);
    return st;
}

/* One pass over every sentence; returns the pieces made (or -1). */
static long long encode_all(stage *st, const lines *L, int32_t *ids, int cap)
{
    const runner_tokenizer_ops *ops = st->desc->ops;
    long long pieces = 0;
    for (int i = 0; i < L->n; i++) {
        int n;
        if (ops->encode(st->self, L->data + L->start[i], L->len[i], ids, NULL, cap, &n) != 0)
            return -1;
        pieces += n;
    }
    return pieces;
}

/* Our ids, one line per sentence, compared with the Python reference's. */
static int compare_ids(stage *st, const lines *L, const char *ref_path, int *first_diff)
{
    const runner_tokenizer_ops *ops = st->desc->ops;
    runner_tokenizer_info info;
    ops->info(st->self, &info);
    lines R;
    if (lines_read(ref_path, &R) != 0)
        return -1;
    int32_t *ids = malloc((size_t)info.max_len * sizeof *ids);
    char *line = malloc((size_t)info.max_len * 12 + 1);
    *first_diff = R.n == L->n ? -1 : (R.n < L->n ? R.n : L->n);
    for (int i = 0; ids && line && i < L->n && i < R.n && *first_diff < 0; i++) {
        int n;
        ops->encode(st->self, L->data + L->start[i], L->len[i], ids, NULL, info.max_len, &n);
        size_t used = 0;
        for (int k = 0; k < n; k++)
            used += (size_t)sprintf(line + used, "%s%d", k ? " " : "", (int)ids[k]);
        if (used != R.len[i] || memcmp(line, R.data + R.start[i], used) != 0)
            *first_diff = i;
    }
    int rc = ids && line ? 0 : err_set("out of memory");
    free(ids);
    free(line);
    lines_free(&R);
    return rc;
}

/* bench/tokenize_ref.py once: its seconds, and its ids in ids_path. */
static double python_seconds(const char *vocab, const char *file, int max_len, const char *ids_path)
{
    char *cmd = str_printf("/usr/bin/python3 bench/tokenize_ref.py '%s' '%s' --tsv --max-len %d "
                           "--out '%s'",
                           vocab, file, max_len, ids_path);
    FILE *p = cmd ? popen(cmd, "r") : NULL;
    free(cmd);
    if (!p)
        return -1;
    char buf[512];
    double s = -1;
    while (fgets(buf, sizeof buf, p)) {
        const char *at = strstr(buf, "seconds=");
        if (at)
            s = atof(at + 8);
    }
    return pclose(p) == 0 ? s : -1;
}

int main(int argc, char **argv)
{
    const char *file = "../shared/datasets/sst2/train.tsv";
    const char *model = "../shared/models/all-MiniLM-L6-v2";
    int runs = 7, python = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--file") == 0 && i + 1 < argc)
            file = argv[++i];
        else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
            model = argv[++i];
        else if (strcmp(argv[i], "--no-python") == 0)
            python = 0;
        else {
            fprintf(stderr, "usage: %s [--runs N] [--no-python] [--file TSV] [--model DIR]\n",
                    argv[0]);
            return 2;
        }
    }
    if (runs < 1)
        runs = 1;
    pipeline pl;
    lines L = {0};
    double *t = calloc((size_t)runs, sizeof *t);
    int32_t *ids = NULL;
    int status = 1;
    if (pipeline_open(&pl, NULL, RUNNER_BUILD_DIR "/plugins") != 0) {
        fprintf(stderr, "tokenize bench: %s\n", err_get());
        free(t);
        return 1;
    }
    stage *st = open_tokenizer(&pl, model);
    if (!st || !t || read_tsv(file, &L) != 0) {
        fprintf(stderr, "tokenize bench: %s\n", err_get());
        goto done;
    }
    runner_tokenizer_info info;
    ((const runner_tokenizer_ops *)st->desc->ops)->info(st->self, &info);
    ids = malloc((size_t)info.max_len * sizeof *ids);
    size_t bytes = 0;
    for (int i = 0; i < L.n; i++)
        bytes += L.len[i];
    long long pieces = ids ? encode_all(st, &L, ids, info.max_len) : -1; /* warm-up */
    for (int r = 0; r < runs && pieces >= 0; r++) {
        double t0 = time_now();
        pieces = encode_all(st, &L, ids, info.max_len);
        t[r] = time_now() - t0;
    }
    if (pieces < 0) {
        fprintf(stderr, "tokenize bench: %s\n", err_get());
        goto done;
    }
    qsort(t, (size_t)runs, sizeof *t, cmp_double);
    double med = t[runs / 2], mb = (double)bytes / 1e6;
    printf("tokenize bench: %s, %d sentences, %.2f MB (1 MB = 10^6 bytes), max_len %d, "
           "%lld tokens per pass\n",
           file, L.n, mb, info.max_len, pieces);
    printf("%-34s %9s %10s %12s\n", "", "seconds", "MB/s", "sentences/s");
    printf("%-34s %9.4f %10.1f %12.0f   (median of %d runs, min %.4f, max %.4f)\n",
           "C tokenizer/wordpiece, 1 thread", med, mb / med, L.n / med, runs, t[0], t[runs - 1]);
    if (python) {
        char *vocab = str_printf("%s/vocab.txt", model);
        char ref_ids[] = "/tmp/tokenize-bench-XXXXXX";
        int fd = mkstemp(ref_ids);
        double ps = vocab && fd >= 0 ? python_seconds(vocab, file, info.max_len, ref_ids) : -1;
        if (ps > 0) {
            printf("%-34s %9.4f %10.2f %12.0f   (1 run; C is %.0fx faster)\n",
                   "Python BERT tokenization.py logic", ps, mb / ps, L.n / ps, ps / med);
            int diff;
            if (compare_ids(st, &L, ref_ids, &diff) == 0) {
                if (diff < 0)
                    printf("ids: identical to the Python reference on all %d sentences\n", L.n);
                else
                    printf("ids: first difference from the Python reference at sentence %d\n",
                           diff + 1);
            }
        } else {
            printf("Python reference: not run (/usr/bin/python3 bench/tokenize_ref.py failed)\n");
        }
        if (fd >= 0) {
            close(fd);
            unlink(ref_ids);
        }
        free(vocab);
    }
    status = 0;
done:
    free(ids);
    free(t);
    lines_free(&L);
    pipeline_close(&pl);
    return status;
}
