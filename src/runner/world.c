/* world.c — the processes of a run on Open MPI (see world.h). */
#include "world.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runner/kit/util.h"

enum { HOST_LEN = 64 };

static struct {
    int on;         /* MPI initialised by us */
    int serialized; /* MPI may be called from another thread (one at a time) */
    int rank, size;
    char (*hosts)[HOST_LEN];
    int64_t other_bytes;
} W = {0, 0, 0, 1, NULL, 0};

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
    return 0;
}

void world_finalize(void)
{
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
