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
/* Do all ranks share one node (memory)? 1 in a world of one. */
int world_one_node(void);
/* "rank 0 on HOST, rank 1 on HOST, ..." (malloc'd; NULL: out of memory). */
char *world_hosts_text(void);

/* Float blocks in an MPI-3 shared-memory window over the node's ranks:
 * every rank has a segment of its own (zeroed), and sees every other's.
 * Alloc and free are collective over the node (free(NULL) is a no-op);
 * world_shm_sync is the point after which every rank sees what every rank
 * wrote before it (MPI_Win_sync, node barrier, MPI_Win_sync). */
typedef struct world_shm world_shm;
/* Is there room for a window of floats per rank where Open MPI keeps it
 * (OMPI_MCA_osc_sm_backing_directory, else /dev/shm: Docker gives 64 MB)?
 * 1 yes (or unknown); 0 no, with why (the folder, the sizes, the fixes);
 * -1 error. Collective (every rank gets the same answer). */
int world_shm_room(int64_t floats, char *why, size_t len);
int world_shm_alloc(int64_t floats, world_shm **out);
void world_shm_free(world_shm *s);
int world_shm_sync(world_shm *s);
float *world_shm_mine(const world_shm *s);
/* Segment of node rank r (0 .. world_shm_ranks - 1). */
float *world_shm_seg(const world_shm *s, int r);
int world_shm_ranks(const world_shm *s);
/* A few doubles after segment r's floats (zeroed): small results a rank
 * leaves for the others, read after a world_shm_sync. */
enum { WORLD_SHM_NOTE = 8 };
double *world_shm_note(const world_shm *s, int r);

/* One copy of a block for every rank of the node (nodepages.c). Blocks
 * are whole pages of their own (world_pages_alloc: zeroed, faulted in;
 * huge: in 2 MiB pages where the kernel offers them; free(NULL) a
 * no-op). world_pages_share replaces this rank's pages of [addr, addr +
 * bytes) by rank 0's, shared by all, at the same address (so pointers into
 * the block stay valid): collective; every rank on one node; on failure
 * (-1 on every rank) every rank has private pages as before. world_pages_private
 * gives this rank private pages again, holding the shared contents. */
void *world_pages_alloc(size_t bytes, int huge);
void world_pages_free(void *p, size_t bytes);
int world_pages_share(void *addr, size_t bytes);
int world_pages_private(void *addr, size_t bytes);

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
    /* Shared mode: base is this rank's segment of shm; finish sums the
     * buckets (and the rows table, if any) through the window. NULL: MPI. */
    world_shm *shm;
    int64_t rows_at, rows, cols; /* the rows table in the block (rows 0: none) */
    /* shared mode: the summed gradient's sum of squares (the ranks' shares
     * added in rank order), set by world_grad_finish, cleared by reset */
    double sumsq;
    int have_sumsq;
    /* shared mode, optimizer sharded: a rank's sums go into its own segment
     * only (zeros into the others'), for its optimizer's share */
    int sharded;
} world_grad;

void world_grad_reset(world_grad *g, float *base);
/* Sum through shm (every rank's block a segment of it; NULL: MPI). */
void world_grad_shared(world_grad *g, world_shm *shm);
/* Shared mode: the (rows, cols) table at float offset at is summed by the
 * rows some rank touched, in world_grad_finish (rows 0: no such table);
 * each rank sums the touched rows of its share of the table and counts
 * their bytes in world_grad_bytes. */
void world_grad_rows(world_grad *g, int64_t at, int64_t rows, int64_t cols);
int world_grad_add(world_grad *g, int64_t lo, int64_t hi);
/* A step's all-reduces begin (the helper thread takes over MPI). */
int world_grad_begin(world_grad *g);
/* Buckets up to (not including) upto are final: start them. */
int world_grad_start(world_grad *g, int upto);
/* Buckets released so far (marked ready, or started without the helper). */
int world_grad_released(const world_grad *g);
/* Let started buckets progress (without the helper; cheap). */
void world_grad_poll(world_grad *g);
/* Start the rest and wait for all; MPI is the caller's again. Shared mode:
 * synchronise, this rank sums its share of the buckets' floats over the
 * segments (ranks in order 0..n-1: every rank gets the same bits) and
 * writes the sum into every segment, synchronise. */
int world_grad_finish(world_grad *g);
/* Shared mode's finish (gradshm.c); adds the bytes summed to *bytes. */
int world_grad_shm_sum(world_grad *g, int64_t *bytes);
/* Shared mode: the floats of the block this rank sums, as sorted [lo, hi)
 * pairs (malloc'd, *n of them): with g->sharded, the share its optimizer
 * updates (the sums are there, in its segment). */
int world_grad_shm_share(const world_grad *g, int64_t **ranges, int *n);
/* Seconds spent in shared-mode sums after the first synchronisation (the
 * wait for the slowest rank's backward excluded). */
double world_grad_shm_seconds(void);
void world_grad_free(world_grad *g);
/* Sum an embedding table's gradient (rows, cols) over ranks, sending only
 * the rows some rank touched (any bit set): the result is the dense sum. */
int world_grad_sum_rows(float *x, int64_t rows, int64_t cols);

/* Payload bytes this rank handed to gradient all-reduces, and to every
 * other collective. */
int64_t world_grad_bytes(void);
/* How the last gradient sum ran: "shared" or "mpi" (NULL: none ran). */
const char *world_grad_method(void);
/* Who ran the optimizer after the last gradient sum: "sharded" (each rank
 * its share of one node-wide copy) or "replicated" (every rank all of its
 * own copy); NULL: no sum ran. */
const char *world_grad_optimizer(void);
int64_t world_other_bytes(void);

#endif
