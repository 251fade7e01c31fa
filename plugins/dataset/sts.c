/* sts.c — dataset: STS Benchmark, tab-separated genre, file, year, id,
 * score (0..5), sentence 1, sentence 2 (and sometimes more columns): one
 * sentence pair with its gold similarity per line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner/kit/rows.h"
#include "runner/runner.h"

static int create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    *self = NULL;
    return 0;
}

static void destroy(void *self) {}

static int pair_line(runner_rows *R, const txt_reader *r)
{
    const char *f[9];
    size_t fl[9];
    int nf = txt_split(r->s, r->len, "\t", 1, f, fl, 9);
    if (nf < 7)
        return rows_bad(R, r->path, r->line, "expected at least 7 tab-separated fields, got %d", nf);
    char score[32], *end;
    snprintf(score, sizeof score, "%.*s", (int)(fl[4] < 31 ? fl[4] : 31), f[4]);
    double g = strtod(score, &end);
    if (end == score || *end || !(g >= 0 && g <= 5))
        return rows_bad(R, r->path, r->line, "score '%s' is not a number from 0 to 5", score);
    return rows_add_pair(R, r->path, r->line, f[5], fl[5], f[6], fl[6], g);
}

static int read_sts(void *self, const char *path, runner_rows *R)
{
    txt_reader r;
    int got = 0, rc = -1;
    rows_kind(R, ROWS_PAIRS);
    if (txt_open(&r, path) != 0)
        return -1;
    while (!rows_full(R) && (got = txt_next(&r)) == 1)
        if (r.len && pair_line(R, &r) != 0)
            goto done;
    rc = got < 0 ? -1 : 0;
done:
    txt_close(&r);
    return rc;
}

static const runner_dataset_ops ops = {.read = read_sts};

RUNNER_DEFINE_PLUGIN(dataset, sts,
    "STS Benchmark: genre, file, year, id, score 0-5, sentence 1, sentence 2 (tab-separated): scored pairs",
    NULL, create, destroy, &ops)
