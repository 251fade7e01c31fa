/* world.c — the processes of a run on Open MPI (see world.h). */
#include "world.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "runner/kit/util.h"

enum { HOST_LEN = 64 };

static struct {
    int on;         /* MPI initialised by us */
    int serialized; /* MPI may be called from another thread (one at a time) */
    int rank, size;
    char (*hosts)[HOST_LEN];
    int64_t other_bytes;
    MPI_Comm node;  /* the ranks sharing this rank's node (memory) */
    int node_size, node_rank;
} W = {0, 0, 0, 1, NULL, 0, MPI_COMM_NULL, 1, 0};

static char self_host[HOST_LEN];

/* Started by a launcher? (mpirun sets OMPI_*, srun and PMIx set PMI*.) */
static int launched(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", NULL};
    for (int i = 0; vars[i]; i++)
        if (getenv(vars[i]))
            return 1;
    return 0;
}

static int mpi_error(int rc, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return err_set("%s: %.*s", what, len, msg);
}

/* The node communicator: ranks that can share memory, in world order.
 * RUNNER_TEST_SPLIT_NODES=1 makes every rank a node of its own (the
 * several-node paths, tested on one machine). */
static int node_open(void)
{
    const char *split = getenv("RUNNER_TEST_SPLIT_NODES");
    int rc = split && strcmp(split, "1") == 0
                 ? MPI_Comm_split(MPI_COMM_WORLD, W.rank, 0, &W.node)
                 : MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, W.rank, MPI_INFO_NULL, &W.node);
    if (rc == MPI_SUCCESS)
        rc = MPI_Comm_size(W.node, &W.node_size);
    if (rc == MPI_SUCCESS)
        rc = MPI_Comm_rank(W.node, &W.node_rank);
    if (rc != MPI_SUCCESS) {
        world_fail("cannot find the ranks sharing this node", 1);
        return -1;
    }
    return 0;
}

int world_init(int *argc, char ***argv)
{
    gethostname(self_host, sizeof self_host - 1);
    if (!launched())
        return 0;
    int provided, rc = MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided);
    if (rc != MPI_SUCCESS) {
        fprintf(stderr, "runner: MPI_Init failed on %s\n", self_host);
        return -1;
    }
    W.on = 1;
    W.serialized = provided >= MPI_THREAD_SERIALIZED;
    /* errors come back as codes; world_fail ends the job */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &W.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &W.size);
    W.hosts = calloc((size_t)W.size, sizeof *W.hosts);
    if (!W.hosts) {
        world_fail("out of memory", 1);
        return -1;
    }
    rc = MPI_Allgather(self_host, HOST_LEN, MPI_CHAR, W.hosts, HOST_LEN, MPI_CHAR, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
        world_fail("cannot gather host names", 1);
        return -1;
    }
    return node_open();
}

void world_finalize(void)
{
    if (W.node != MPI_COMM_NULL)
        MPI_Comm_free(&W.node);
    if (W.on)
        MPI_Finalize();
    W.on = 0;
    free(W.hosts);
    W.hosts = NULL;
}

int world_rank(void) { return W.rank; }
int world_size(void) { return W.size; }
int world_is_root(void) { return W.rank == 0; }
int world_threads_ok(void) { return W.serialized; }
int world_one_node(void) { return W.size <= 1 || W.node_size == W.size; }

char *world_hosts_text(void)
{
    size_t n = (size_t)W.size * (HOST_LEN + 16) + 1;
    char *s = malloc(n);
    if (!s)
        return NULL;
    s[0] = 0;
    for (int r = 0, at = 0; r < W.size && at >= 0 && (size_t)at < n; r++)
        at += snprintf(s + at, n - (size_t)at, "%srank %d on %s", r ? ", " : "", r, world_host(r));
    return s;
}

const char *world_host(int rank)
{
    if (!W.hosts || rank < 0 || rank >= W.size)
        return self_host;
    return W.hosts[rank];
}

void world_fail(const char *cause, int code)
{
    if (W.size <= 1)
        return;
    fprintf(stderr, "runner: rank %d of %d (%s) failed: %s; ending the job\n", W.rank, W.size, self_host, cause);
    fflush(stderr);
    fflush(stdout);
    MPI_Abort(MPI_COMM_WORLD, code);
}

void world_share(int64_t n, int64_t *lo, int64_t *hi)
{
    int64_t base = n / W.size, extra = n % W.size;
    *lo = W.rank * base + (W.rank < extra ? W.rank : extra);
    *hi = *lo + base + (W.rank < extra);
}

void world_share_weighted(const int64_t *weight, int64_t n, int64_t *bounds)
{
    int64_t total = 0, acc = 0, i = 0;
    for (int64_t j = 0; j < n; j++)
        total += weight[j];
    bounds[0] = 0;
    for (int r = 1; r < W.size; r++) {
        /* first row whose prefix reaches r/size of the weight */
        while (i < n && (acc + weight[i]) * W.size <= total * r)
            acc += weight[i++];
        bounds[r] = i;
    }
    bounds[W.size] = n;
}

/* MPI counts are ints: reduce in chunks. */
static int reduce_chunks(void *x, int64_t n, MPI_Datatype t, size_t elem, MPI_Op op)
{
    if (W.size <= 1)
        return 0;
    W.other_bytes += n * (int64_t)elem;
    for (int64_t at = 0; at < n; at += 1 << 28) {
        int c = (int)(n - at < (1 << 28) ? n - at : (1 << 28));
        int rc = MPI_Allreduce(MPI_IN_PLACE, (char *)x + at * (int64_t)elem, c, t, op, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS)
            return mpi_error(rc, "all-reduce");
    }
    return 0;
}

int world_sum_f64(double *x, int64_t n) { return reduce_chunks(x, n, MPI_DOUBLE, sizeof *x, MPI_SUM); }
int world_sum_i64(int64_t *x, int64_t n) { return reduce_chunks(x, n, MPI_INT64_T, sizeof *x, MPI_SUM); }
int world_sum_i32(int32_t *x, int64_t n) { return reduce_chunks(x, n, MPI_INT32_T, sizeof *x, MPI_SUM); }
int world_sum_f32(float *x, int64_t n) { return reduce_chunks(x, n, MPI_FLOAT, sizeof *x, MPI_SUM); }
int world_max_i64(int64_t *x, int64_t n) { return reduce_chunks(x, n, MPI_INT64_T, sizeof *x, MPI_MAX); }

int world_gather_rows(float *x, int dim, const int64_t *bounds, int all)
{
    if (W.size <= 1)
        return 0;
    int *count = malloc(2 * (size_t)W.size * sizeof *count), rc = MPI_SUCCESS;
    if (!count)
        return err_set("out of memory");
    int *displ = count + W.size;
    for (int r = 0; r < W.size; r++) {
        count[r] = (int)(bounds[r + 1] - bounds[r]);
        displ[r] = (int)bounds[r];
    }
    MPI_Datatype row;
    MPI_Type_contiguous(dim, MPI_FLOAT, &row);
    MPI_Type_commit(&row);
    float *mine = x + bounds[W.rank] * dim;
    W.other_bytes += (int64_t)count[W.rank] * dim * (int64_t)sizeof(float);
    if (all)
        rc = MPI_Allgatherv(MPI_IN_PLACE, 0, row, x, count, displ, row, MPI_COMM_WORLD);
    else if (W.rank == 0)
        rc = MPI_Gatherv(MPI_IN_PLACE, 0, row, x, count, displ, row, 0, MPI_COMM_WORLD);
    else
        rc = MPI_Gatherv(mine, count[W.rank], row, NULL, NULL, NULL, row, 0, MPI_COMM_WORLD);
    MPI_Type_free(&row);
    free(count);
    return rc == MPI_SUCCESS ? 0 : mpi_error(rc, "gathering embeddings");
}

int world_bcast(void *buf, size_t bytes, int root)
{
    if (W.size <= 1)
        return 0;
    W.other_bytes += W.rank == root ? (int64_t)bytes : 0;
    for (size_t at = 0; at < bytes; at += 1u << 30) {
        int c = (int)(bytes - at < (1u << 30) ? bytes - at : (1u << 30));
        int rc = MPI_Bcast((char *)buf + at, c, MPI_BYTE, root, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS)
            return mpi_error(rc, "broadcast");
    }
    return 0;
}

int world_barrier(void)
{
    if (W.size <= 1)
        return 0;
    int rc = MPI_Barrier(MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? 0 : mpi_error(rc, "barrier");
}

int world_check_same(uint64_t sum, const char *what)
{
    if (W.size <= 1)
        return 0;
    uint64_t *all = malloc((size_t)W.size * sizeof *all);
    if (!all)
        return err_set("out of memory");
    int rc = MPI_Allgather(&sum, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
        free(all);
        return mpi_error(rc, "comparing checksums");
    }
    int bad = -1;
    for (int r = 1; r < W.size && bad < 0; r++)
        if (all[r] != all[0])
            bad = r;
    if (bad > 0)
        err_set("ranks diverged: %s on rank %d (%s) differs from rank 0 (%s) (checksum %016llx vs %016llx)",
                what, bad, world_host(bad), world_host(0), (unsigned long long)all[bad],
                (unsigned long long)all[0]);
    free(all);
    return bad > 0 ? -1 : 0;
}

int64_t world_other_bytes(void) { return W.other_bytes; }

/* ---- shared-memory blocks on the node (MPI-3 windows) ------------------- */

struct world_shm {
    MPI_Win win;
    int ranks;   /* on the node: its communicator's size */
    int locked;  /* in the lock_all epoch */
    int64_t floats; /* per segment, before its note */
    float **seg; /* every rank's segment, mapped here, 64-byte aligned */
};

/* The segment of node rank r as mapped in this process; 64-byte aligned
 * (the offset within a page is the same in every process). */
static int shm_query(world_shm *s, int r)
{
    MPI_Aint size;
    int unit;
    char *base;
    int rc = MPI_Win_shared_query(s->win, r, &size, &unit, &base);
    if (rc != MPI_SUCCESS)
        return rc;
    s->seg[r] = (float *)(base + ((64 - (uintptr_t)base % 64) % 64));
    return MPI_SUCCESS;
}

/* Window, segments, the passive-target epoch of every rank (MPI status). */
static int shm_open(world_shm *s, int64_t floats)
{
    MPI_Info info;
    int rc = MPI_Info_create(&info);
    if (rc != MPI_SUCCESS)
        return rc;
    rc = MPI_Info_set(info, "alloc_shared_noncontig", "true");
    char *base = NULL;
    s->floats = (floats + 15) & ~(int64_t)15; /* the note on its own cache line */
    MPI_Aint bytes = (MPI_Aint)((size_t)s->floats * sizeof(float) + 64 + sizeof(double) * WORLD_SHM_NOTE);
    if (rc == MPI_SUCCESS)
        rc = MPI_Win_allocate_shared(bytes, sizeof(float), info, W.node, &base, &s->win);
    MPI_Info_free(&info);
    if (rc != MPI_SUCCESS)
        return rc;
    MPI_Win_set_errhandler(s->win, MPI_ERRORS_RETURN);
    s->ranks = W.node_size;
    if (!(s->seg = calloc((size_t)s->ranks, sizeof *s->seg)))
        return MPI_ERR_NO_MEM;
    for (int r = 0; rc == MPI_SUCCESS && r < s->ranks; r++)
        rc = shm_query(s, r);
    if (rc != MPI_SUCCESS)
        return rc;
    memset(s->seg[W.node_rank], 0, (size_t)s->floats * sizeof(float) + sizeof(double) * WORLD_SHM_NOTE);
    rc = MPI_Win_lock_all(MPI_MODE_NOCHECK, s->win);
    s->locked = rc == MPI_SUCCESS;
    return rc;
}

int world_shm_room(int64_t floats, char *why, size_t len)
{
    const char *dir = getenv("OMPI_MCA_osc_sm_backing_directory");
    dir = dir && *dir ? dir : "/dev/shm";
    struct statvfs fs;
    int64_t need = (int64_t)W.node_size * (floats * (int64_t)sizeof(float) + (1 << 20));
    int64_t have = statvfs(dir, &fs) == 0 ? (int64_t)fs.f_bavail * (int64_t)fs.f_frsize : -1;
    const char *test = getenv("RUNNER_TEST_SHM_FREE"); /* tests/mpi.c: Docker's small /dev/shm */
    if (test)
        have = atoll(test);
    int64_t short_of = have >= 0 && have < need; /* unknown (no such folder): let MPI try */
    if (world_max_i64(&short_of, 1) != 0)
        return -1;
    if (short_of)
        snprintf(why, len, "%s has %lld MB free, and the shared-memory window of the gradients needs %lld MB "
                 "(docker run --shm-size=%lldm, or OMPI_MCA_osc_sm_backing_directory=<a larger tmpfs>)",
                 dir, (long long)(have >> 20), (long long)(need >> 20), (long long)((need >> 20) + 64));
    return !short_of;
}

int world_shm_alloc(int64_t floats, world_shm **out)
{
    *out = NULL;
    if (W.size <= 1)
        return err_set("a shared-memory block needs several ranks");
    world_shm *s = calloc(1, sizeof *s);
    if (!s)
        return err_set("out of memory");
    s->win = MPI_WIN_NULL;
    int rc = shm_open(s, floats);
    if (rc != MPI_SUCCESS) {
        world_shm_free(s);
        return mpi_error(rc, "allocating a shared-memory window of the gradients");
    }
    if (world_shm_sync(s) != 0) { /* every rank's zeros visible */
        world_shm_free(s);
        return -1;
    }
    *out = s;
    return 0;
}

float *world_shm_mine(const world_shm *s) { return s->seg[W.node_rank]; }
float *world_shm_seg(const world_shm *s, int r) { return s->seg[r]; }
int world_shm_ranks(const world_shm *s) { return s->ranks; }
double *world_shm_note(const world_shm *s, int r) { return (double *)(s->seg[r] + s->floats); }

/* MPI-3 unified model: a memory barrier, the node's barrier, another. */
int world_shm_sync(world_shm *s)
{
    int rc = MPI_Win_sync(s->win);
    if (rc == MPI_SUCCESS)
        rc = MPI_Barrier(W.node);
    if (rc == MPI_SUCCESS)
        rc = MPI_Win_sync(s->win);
    return rc == MPI_SUCCESS ? 0 : mpi_error(rc, "synchronising the shared-memory window");
}

void world_shm_free(world_shm *s)
{
    if (!s)
        return;
    if (s->locked)
        MPI_Win_unlock_all(s->win);
    if (s->win != MPI_WIN_NULL)
        MPI_Win_free(&s->win);
    free(s->seg);
    free(s);
}
