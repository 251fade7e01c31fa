/* gradshm.c — gradient sums through the node's MPI-3 shared-memory window
 * (see world.h): every rank's gradient block is its segment of one window,
 * so a sum over ranks is a pass over memory, not a transfer. Rank r takes
 * the r-th share of the buckets' floats, adds the segments in rank order
 * 0..n-1 (so the sums are the same bits whichever rank computed them) and
 * writes the sum into every segment; a synchronisation before (everyone's
 * backward written) and after (everyone's sums written). The same pass
 * gives the summed gradient's sum of squares (each rank's share left in
 * its segment's note), so the optimizer's clipping norm needs no pass of
 * its own. Sharded (the values shared by the ranks, each rank's optimizer
 * updating its share, ddp.c): the sum goes into the summing rank's segment
 * only, and world_grad_shm_share tells the optimizer which floats those
 * are. */
#include <stdlib.h>
#include <string.h>

#include "runner/kit/util.h"
#include "world.h"

enum { CHUNK = 2048 }; /* floats summed at once (8 KB: stays in L1) */

void world_grad_shared(world_grad *g, world_shm *shm) { g->shm = shm; }

void world_grad_rows(world_grad *g, int64_t at, int64_t rows, int64_t cols)
{
    g->rows_at = at;
    g->rows = rows;
    g->cols = cols;
}

/* Floats [off, off + n) of every segment := their sum over the segments
 * (two ranks: one pass; more: through a chunk that stays in L1); returns
 * the sum's sum of squares (float lanes, as grad_norm). Sharded (the
 * optimizer updates this rank's share only): the sum goes into this rank's
 * segment and zeros into the others'. */
static double sum_range(const world_grad *g, int64_t off, int64_t n)
{
    const world_shm *s = g->shm;
    int ranks = world_shm_ranks(s), me = world_rank();
    float sq = 0;
    if (ranks == 2) {
        float *a = world_shm_seg(s, 0) + off, *b = world_shm_seg(s, 1) + off;
        int keep_a = !g->sharded || me == 0, keep_b = !g->sharded || me == 1;
#pragma omp simd reduction(+ : sq)
        for (int64_t j = 0; j < n; j++) {
            float x = a[j] + b[j];
            a[j] = keep_a ? x : 0.0f;
            b[j] = keep_b ? x : 0.0f;
            sq += x * x;
        }
        return sq;
    }
    double total = 0;
    float acc[CHUNK];
    for (int64_t c = 0; c < n; c += CHUNK, total += sq) {
        int k = (int)(n - c < CHUNK ? n - c : CHUNK);
        memcpy(acc, world_shm_seg(s, 0) + off + c, (size_t)k * sizeof *acc);
        for (int r = 1; r < ranks; r++) {
            const float *x = world_shm_seg(s, r) + off + c;
#pragma omp simd
            for (int j = 0; j < k; j++)
                acc[j] += x[j];
        }
        sq = 0;
#pragma omp simd reduction(+ : sq)
        for (int j = 0; j < k; j++)
            sq += acc[j] * acc[j];
        for (int r = 0; r < ranks; r++) {
            float *to = world_shm_seg(s, r) + off + c;
            if (g->sharded && r != me)
                memset(to, 0, (size_t)k * sizeof *acc);
            else
                memcpy(to, acc, (size_t)k * sizeof *acc);
        }
    }
    return total;
}

/* This rank's share of the buckets' floats (taken in bucket order); its
 * sum of squares added to *sq. Returns the bytes summed. */
static int64_t sum_buckets(const world_grad *g, double *sq)
{
    int64_t total = 0, lo, hi, at = 0;
    for (int b = 0; b < g->n; b++)
        total += g->hi[b] - g->lo[b];
    world_share(total, &lo, &hi);
    for (int b = 0; b < g->n && at < hi; b++) {
        int64_t n = g->hi[b] - g->lo[b];
        int64_t from = lo > at ? lo : at, to = hi < at + n ? hi : at + n;
        if (from < to)
            *sq += sum_range(g, g->lo[b] + from - at, to - from);
        at += n;
    }
    return total * (int64_t)sizeof(float);
}

/* Does any segment have a bit set in floats [off, off + n)? */
static int touched(const world_shm *s, int64_t off, int64_t n)
{
    for (int r = 0; r < world_shm_ranks(s); r++) {
        const uint32_t *w = (const uint32_t *)(world_shm_seg(s, r) + off);
        uint32_t any = 0;
#pragma omp simd reduction(| : any)
        for (int64_t j = 0; j < n; j++)
            any |= w[j];
        if (any)
            return 1;
    }
    return 0;
}

/* This rank's share of the rows table: the rows some rank touched (their
 * sum of squares added to *sq). Returns the bytes summed. */
static int64_t sum_rows(const world_grad *g, double *sq)
{
    int64_t lo, hi, bytes = 0;
    world_share(g->rows, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        int64_t off = g->rows_at + r * g->cols;
        if (touched(g->shm, off, g->cols)) {
            *sq += sum_range(g, off, g->cols);
            bytes += g->cols * (int64_t)sizeof(float);
        }
    }
    return bytes;
}

static double summing; /* seconds in the sums, after the first synchronisation */
static int sharded_sums; /* the last sum was for a sharded optimizer */

double world_grad_shm_seconds(void) { return summing; }
const char *world_grad_optimizer(void)
{
    return !world_grad_method() ? NULL : sharded_sums ? "sharded" : "replicated";
}

int world_grad_shm_sum(world_grad *g, int64_t *bytes)
{
    if (world_shm_sync(g->shm) != 0)
        return -1;
    double t = time_now(), sq = 0;
    sharded_sums = g->sharded;
    *bytes += sum_buckets(g, &sq);
    if (g->rows > 0)
        *bytes += sum_rows(g, &sq);
    world_shm_note(g->shm, world_rank())[0] = sq;
    int rc = world_shm_sync(g->shm);
    g->sumsq = 0; /* every rank adds the same numbers in the same order */
    for (int r = 0; rc == 0 && r < world_shm_ranks(g->shm); r++)
        g->sumsq += world_shm_note(g->shm, r)[0];
    g->have_sumsq = rc == 0;
    summing += time_now() - t;
    return rc;
}

static int by_start(const void *a, const void *b)
{
    int64_t x = ((const int64_t *)a)[0], y = ((const int64_t *)b)[0];
    return (x > y) - (x < y);
}

int world_grad_shm_share(const world_grad *g, int64_t **ranges, int *n)
{
    *ranges = NULL;
    *n = 0;
    int64_t *r = malloc(((size_t)g->n + 1) * 2 * sizeof *r), total = 0, lo, hi, at = 0;
    if (!r)
        return err_set("out of memory");
    for (int b = 0; b < g->n; b++)
        total += g->hi[b] - g->lo[b];
    world_share(total, &lo, &hi);
    int k = 0;
    for (int b = 0; b < g->n && at < hi; at += g->hi[b] - g->lo[b], b++) {
        int64_t from = lo > at ? lo : at, to = hi < at + g->hi[b] - g->lo[b] ? hi : at + g->hi[b] - g->lo[b];
        if (from < to) {
            r[2 * k] = g->lo[b] + from - at;
            r[2 * k++ + 1] = g->lo[b] + to - at;
        }
    }
    if (g->rows > 0) {
        world_share(g->rows, &lo, &hi);
        if (lo < hi) {
            r[2 * k] = g->rows_at + lo * g->cols;
            r[2 * k++ + 1] = g->rows_at + hi * g->cols;
        }
    }
    qsort(r, (size_t)k, 2 * sizeof *r, by_start);
    int m = 0; /* adjacent ranges merged */
    for (int i = 0; i < k; i++, m++) {
        if (m > 0 && r[2 * m - 1] == r[2 * i]) {
            r[2 * --m + 1] = r[2 * i + 1];
            continue;
        }
        r[2 * m] = r[2 * i];
        r[2 * m + 1] = r[2 * i + 1];
    }
    *ranges = r;
    *n = m;
    return 0;
}
