/* gradsync.c — gradient buckets summed over the ranks with MPI_Iallreduce
 * (see world.h). Open MPI moves a non-blocking collective forward only
 * inside MPI calls; during backward the caller is in long kernels, so a
 * helper thread owns MPI for the step: it starts each bucket the caller
 * marks final and polls every ~50 us until all are summed. The caller
 * makes no MPI call in between (MPI_THREAD_SERIALIZED is enough). */
#include <errno.h>
#include <mpi.h>
#include <pthread.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runner/kit/util.h"
#include "world.h"

struct grad_thread {
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    int session, finished, quit, status; /* under mu */
    int active;                          /* the caller's view: a session is on */
    atomic_int ready;                    /* buckets below it are final */
    atomic_int stop;                     /* abandon the step (the job is ending) */
    world_grad *g;
};

static int64_t grad_bytes;
static const char *grad_method; /* of the last sum: "shared" or "mpi" */

int64_t world_grad_bytes(void) { return grad_bytes; }
const char *world_grad_method(void) { return grad_method; }

void world_grad_reset(world_grad *g, float *base)
{
    g->base = base;
    g->n = g->next = 0;
    g->rows = 0;
    g->have_sumsq = 0;
}

int world_grad_add(world_grad *g, int64_t lo, int64_t hi)
{
    if (g->n == g->cap) {
        int cap = g->cap ? 2 * g->cap : 64;
        int64_t *l = realloc(g->lo, (size_t)cap * sizeof *l);
        if (l)
            g->lo = l;
        int64_t *h = l ? realloc(g->hi, (size_t)cap * sizeof *h) : NULL;
        if (h)
            g->hi = h;
        MPI_Request *q = h ? realloc(g->req, (size_t)cap * sizeof *q) : NULL;
        if (!q)
            return err_set("out of memory");
        g->req = q;
        g->cap = cap;
    }
    g->lo[g->n] = lo;
    g->hi[g->n] = hi;
    ((MPI_Request *)g->req)[g->n] = MPI_REQUEST_NULL;
    g->n++;
    return 0;
}

/* Start buckets g->next .. upto (MPI status). */
static int start_upto(world_grad *g, int upto)
{
    MPI_Request *q = g->req;
    for (; g->next < upto && g->next < g->n; g->next++) {
        int64_t lo = g->lo[g->next], n = g->hi[g->next] - lo;
        grad_bytes += n * (int64_t)sizeof(float);
        int rc = MPI_Iallreduce(MPI_IN_PLACE, g->base + lo, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                                &q[g->next]);
        if (rc != MPI_SUCCESS)
            return rc;
    }
    return MPI_SUCCESS;
}

/* The helper's step: start what becomes ready, poll until all are summed. */
static int drive(struct grad_thread *t)
{
    world_grad *g = t->g;
    const struct timespec pause = {0, 50000};
    for (;;) {
        int upto = atomic_load(&t->ready), done = 1;
        int rc = start_upto(g, upto);
        if (rc == MPI_SUCCESS && g->next > 0)
            rc = MPI_Testall(g->next, g->req, &done, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS || (done && g->next == g->n) || atomic_load(&t->stop))
            return rc;
        nanosleep(&pause, NULL);
    }
}

static void *helper(void *arg)
{
    struct grad_thread *t = arg;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (!t->session && !t->quit)
            pthread_cond_wait(&t->go, &t->mu);
        if (t->quit)
            break;
        pthread_mutex_unlock(&t->mu);
        int rc = drive(t);
        pthread_mutex_lock(&t->mu);
        t->status = rc;
        t->session = 0;
        t->finished = 1;
        pthread_cond_signal(&t->done);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

static int mpi_error(int rc, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return err_set("%s: %.*s", what, len, msg);
}

int world_grad_begin(world_grad *g)
{
    if (world_size() <= 1 || !world_threads_ok() || g->shm)
        return 0;
    if (!g->th) {
        struct grad_thread *t = calloc(1, sizeof *t);
        if (!t)
            return err_set("out of memory");
        pthread_mutex_init(&t->mu, NULL);
        pthread_cond_init(&t->go, NULL);
        pthread_cond_init(&t->done, NULL);
        if (pthread_create(&t->tid, NULL, helper, t) != 0) {
            free(t);
            return err_set("cannot start the gradient all-reduce thread: %s", strerror(errno));
        }
        g->th = t;
    }
    struct grad_thread *t = g->th;
    t->g = g;
    atomic_store(&t->ready, g->next);
    pthread_mutex_lock(&t->mu);
    t->session = 1;
    t->finished = 0;
    pthread_cond_signal(&t->go);
    pthread_mutex_unlock(&t->mu);
    t->active = 1;
    return 0;
}

int world_grad_start(world_grad *g, int upto)
{
    if (world_size() <= 1 || g->shm) { /* shared mode: all summed in finish */
        g->next = upto > g->next ? upto : g->next;
        return 0;
    }
    if (g->th && g->th->active) {
        if (upto > atomic_load(&g->th->ready))
            atomic_store(&g->th->ready, upto);
        return 0;
    }
    int rc = start_upto(g, upto);
    return rc == MPI_SUCCESS ? 0 : mpi_error(rc, "gradient all-reduce");
}

int world_grad_released(const world_grad *g)
{
    if (g->th && g->th->active)
        return atomic_load(&g->th->ready);
    return g->next;
}

void world_grad_poll(world_grad *g)
{
    if (world_size() <= 1 || g->shm || (g->th && g->th->active) || g->next == 0) /* next is the helper's meanwhile */
        return;
    int done;
    MPI_Testall(g->next, g->req, &done, MPI_STATUSES_IGNORE);
}

int world_grad_finish(world_grad *g)
{
    if (world_size() <= 1)
        return 0;
    grad_method = g->shm ? "shared" : "mpi";
    if (g->shm) {
        g->next = g->n;
        return world_grad_shm_sum(g, &grad_bytes);
    }
    struct grad_thread *t = g->th;
    if (t && t->active) {
        atomic_store(&t->ready, g->n);
        pthread_mutex_lock(&t->mu);
        while (!t->finished)
            pthread_cond_wait(&t->done, &t->mu);
        int rc = t->status;
        pthread_mutex_unlock(&t->mu);
        t->active = 0;
        return rc == MPI_SUCCESS ? 0 : mpi_error(rc, "gradient all-reduce");
    }
    int rc = start_upto(g, g->n);
    if (rc == MPI_SUCCESS && g->n > 0)
        rc = MPI_Waitall(g->n, g->req, MPI_STATUSES_IGNORE);
    return rc == MPI_SUCCESS ? 0 : mpi_error(rc, "gradient all-reduce");
}

/* Rows with any bit set in a (rows, cols) block. */
static int64_t mark_rows(const float *x, int64_t rows, int64_t cols, unsigned char *mark)
{
    int64_t k = 0;
    for (int64_t r = 0; r < rows; r++) {
        const uint32_t *w = (const uint32_t *)(x + r * cols);
        uint32_t any = 0;
        for (int64_t c = 0; c < cols; c++)
            any |= w[c];
        mark[r] = any != 0;
        k += mark[r];
    }
    return k;
}

int world_grad_sum_rows(float *x, int64_t rows, int64_t cols)
{
    if (world_size() <= 1)
        return 0;
    unsigned char *mark = malloc((size_t)rows + 1);
    float *pack = NULL;
    int rc = MPI_ERR_NO_MEM;
    if (!mark)
        return err_set("out of memory");
    mark_rows(x, rows, cols, mark);
    rc = MPI_Allreduce(MPI_IN_PLACE, mark, (int)rows, MPI_UNSIGNED_CHAR, MPI_BOR, MPI_COMM_WORLD);
    int64_t k = 0;
    for (int64_t r = 0; r < rows; r++)
        k += mark[r];
    if (rc == MPI_SUCCESS && k > 0 && !(pack = malloc((size_t)(k * cols) * sizeof *pack)))
        rc = MPI_ERR_NO_MEM;
    for (int64_t r = 0, j = 0; pack && r < rows; r++)
        if (mark[r])
            memcpy(pack + cols * j++, x + r * cols, (size_t)cols * sizeof *pack);
    grad_bytes += rows + (pack ? k * cols * (int64_t)sizeof *pack : 0);
    if (rc == MPI_SUCCESS && pack) /* counts fit an int: rows of one tensor */
        rc = MPI_Allreduce(MPI_IN_PLACE, pack, (int)(k * cols), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    for (int64_t r = 0, j = 0; rc == MPI_SUCCESS && pack && r < rows; r++)
        if (mark[r])
            memcpy(x + r * cols, pack + cols * j++, (size_t)cols * sizeof *pack);
    free(mark);
    free(pack);
    return rc == MPI_SUCCESS ? 0 : mpi_error(rc, "embedding gradient all-reduce");
}

void world_grad_free(world_grad *g)
{
    struct grad_thread *t = g->th;
    if (t) {
        atomic_store(&t->stop, 1);
        pthread_mutex_lock(&t->mu);
        t->quit = 1;
        pthread_cond_signal(&t->go);
        pthread_mutex_unlock(&t->mu);
        pthread_join(t->tid, NULL);
        pthread_mutex_destroy(&t->mu);
        pthread_cond_destroy(&t->go);
        pthread_cond_destroy(&t->done);
        free(t);
    }
    free(g->lo);
    free(g->hi);
    free(g->req);
    memset(g, 0, sizeof *g);
}
