/* world.h — the processes of a run (Open MPI): start and end, rank, size
 * and hosts, and the collectives the drivers use. Started by mpirun/srun
 * a process joins the job's world; started alone it is a world of one and
 * never calls MPI. Every helper is a no-op (or a copy) in a world of one,
 * so the single-process paths stay as they were.
 *
 * Gradients: world_grad_* sums a float block over ranks in buckets (ranges
 * of the block, started with MPI_Iallreduce as soon as the caller says the
 * range is final), so communication overlaps the rest of backward. */
#ifndef WORLD_H
#define WORLD_H

#include <stddef.h>
#include <stdint.h>

/* Join the job's world when started by mpirun or srun (0), or stay a
 * world of one. Failures print and return -1. */
int world_init(int *argc, char ***argv);
void world_finalize(void);
int world_rank(void);
int world_size(void);
int world_is_root(void);
/* Host name of a rank (gathered at init). */
const char *world_host(int rank);
/* A failure on this rank ends the whole job: prints "runner: rank R (host):
 * cause" and, in a world of more than one, MPI_Abort with code. In a world
 * of one it returns (the caller exits as usual). */
void world_fail(const char *cause, int code);

/* Rows [lo, hi) of n that this rank owns: contiguous shares, sizes
 * differing by at most one, rank order. */
void world_share(int64_t n, int64_t *lo, int64_t *hi);
/* Contiguous shares balanced by weight (e.g. tokens): bounds[r] .. bounds[r+1]
 * for every rank r (size + 1 entries). */
void world_share_weighted(const int64_t *weight, int64_t n, int64_t *bounds);

/* In-place sums over ranks (every rank gets the result). */
int world_sum_f64(double *x, int64_t n);
int world_sum_i64(int64_t *x, int64_t n);
int world_sum_i32(int32_t *x, int64_t n);
int world_sum_f32(float *x, int64_t n);
int world_max_i64(int64_t *x, int64_t n);
/* Rows [bounds[r], bounds[r+1]) of a (rows, dim) float array live on
 * rank r; gather them in place on the root (all: on every rank). */
int world_gather_rows(float *x, int dim, const int64_t *bounds, int all);
int world_bcast(void *buf, size_t bytes, int root);
/* Every rank got here (rank 0's files written so far are visible). */
int world_barrier(void);
/* Compare a 64-bit checksum over ranks: -1 (message names the ranks that
 * differ from rank 0 and what) if any differs. */
int world_check_same(uint64_t sum, const char *what);

/* May a helper thread make MPI calls (one thread at a time)? */
int world_threads_ok(void);

/* Gradient buckets over one contiguous float block (gradsync.c). Ranges
 * are added in the order they will be started (the same on every rank).
 * Between world_grad_begin and world_grad_finish a helper thread owns MPI:
 * it starts the buckets the caller marks ready and keeps them progressing
 * while the caller computes, which must make no MPI call meanwhile. */
typedef struct world_grad {
    float *base;
    int64_t *lo, *hi;
    int n, cap, next; /* buckets; next: first not yet started */
    void *req;        /* MPI_Request per bucket */
    struct grad_thread *th; /* the helper (NULL: progress from the caller's calls) */
} world_grad;

void world_grad_reset(world_grad *g, float *base);
int world_grad_add(world_grad *g, int64_t lo, int64_t hi);
/* A step's all-reduces begin (the helper thread takes over MPI). */
int world_grad_begin(world_grad *g);
/* Buckets up to (not including) upto are final: start them. */
int world_grad_start(world_grad *g, int upto);
/* Buckets released so far (marked ready, or started without the helper). */
int world_grad_released(const world_grad *g);
/* Let started buckets progress (without the helper; cheap). */
void world_grad_poll(world_grad *g);
/* Start the rest and wait for all; MPI is the caller's again. */
int world_grad_finish(world_grad *g);
void world_grad_free(world_grad *g);
/* Sum an embedding table's gradient (rows, cols) over ranks, sending only
 * the rows some rank touched (any bit set): the result is the dense sum. */
int world_grad_sum_rows(float *x, int64_t rows, int64_t cols);

/* Payload bytes this rank handed to gradient all-reduces, and to every
 * other collective. */
int64_t world_grad_bytes(void);
int64_t world_other_bytes(void);

#endif
