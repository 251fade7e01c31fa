/* nodepages.c — one copy of a block for all the ranks of a node (see
 * world.h): the block's pages are replaced, at the same address, by pages
 * of a memory file that rank 0 creates (memfd) and the others open through
 * /proc/<pid>/fd, so every pointer into the block, the plugins' included,
 * stays valid. mremap moves a fully built mapping over the old one in one
 * call, so a block is never half replaced. Back to private pages the same
 * way. Both are collective over the world, and every rank must be on one
 * node (the shared-memory gradient mode, ddp.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runner/kit/util.h"
#include "world.h"

static size_t page_round(size_t bytes)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (bytes + page - 1) / page * page;
}

void *world_pages_alloc(size_t bytes, int huge)
{
    size_t n = page_round(bytes ? bytes : 1);
    if (!huge) {
        /* zeroed pages, faulted in now in one call (MAP_POPULATE):
         * faulting them in later, one by one in the optimizer's parallel
         * pass, made a training 10 % slower */
        void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        return p == MAP_FAILED ? NULL : p;
    }
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, n, MADV_HUGEPAGE); /* advice: refused where THP is off */
#endif
#ifdef MADV_POPULATE_WRITE
    if (madvise(p, n, MADV_POPULATE_WRITE) == 0)
        return p;
#endif
    memset(p, 0, n); /* kernels before 5.14: fault them in by writing */
    return p;
}

void world_pages_free(void *p, size_t bytes)
{
    if (p)
        munmap(p, page_round(bytes ? bytes : 1));
}

/* Rank 0: a memory file of the block's size holding its contents, mapped
 * at *map. Returns the descriptor or -1 (err_set). */
static int create_file(const void *addr, size_t bytes, void **map)
{
    int fd = memfd_create("runner-shared-values", MFD_CLOEXEC);
    if (fd < 0)
        return err_set("memfd_create: %s", strerror(errno));
    if (ftruncate(fd, (off_t)bytes) != 0) {
        err_set("sizing a shared block of %zu bytes: %s", bytes, strerror(errno));
        close(fd);
        return -1;
    }
    *map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (*map == MAP_FAILED) {
        err_set("mapping a shared block of %zu bytes: %s", bytes, strerror(errno));
        *map = NULL;
        close(fd);
        return -1;
    }
    memcpy(*map, addr, bytes);
    return fd;
}

/* Other ranks: rank 0's memory file (its pid and descriptor), mapped. */
static void *open_file(int64_t pid, int64_t fd, size_t bytes)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%lld/fd/%lld", (long long)pid, (long long)fd);
    const char *fail = getenv("RUNNER_TEST_SHARE_FAIL"); /* tests/mpi.c: the fallback */
    int mine = fail && strcmp(fail, "1") == 0 ? (errno = EACCES, -1) : open(path, O_RDWR | O_CLOEXEC);
    if (mine < 0) {
        err_set("opening rank 0's shared block %s: %s", path, strerror(errno));
        return NULL;
    }
    void *map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, mine, 0);
    close(mine);
    if (map == MAP_FAILED) {
        err_set("mapping rank 0's shared block: %s", strerror(errno));
        return NULL;
    }
    return map;
}

/* The mapping at from moved over [to, to + bytes). */
static int move_over(void *from, void *to, size_t bytes)
{
    if (mremap(from, bytes, bytes, MREMAP_MAYMOVE | MREMAP_FIXED, to) == MAP_FAILED) {
        err_set("moving a block of %zu bytes into place: %s", bytes, strerror(errno));
        munmap(from, bytes);
        return -1;
    }
    return 0;
}

int world_pages_share(void *addr, size_t bytes)
{
    if (world_size() <= 1 || !world_one_node())
        return err_set("sharing pages needs several ranks on one node");
    bytes = page_round(bytes);
    void *map = NULL;
    int64_t file[2] = {(int64_t)getpid(), -1}; /* rank 0's pid and descriptor */
    if (world_rank() == 0)
        file[1] = create_file(addr, bytes, &map);
    if (world_bcast(file, sizeof file, 0) != 0)
        return -1;
    if (world_rank() != 0 && file[1] >= 0)
        map = open_file(file[0], file[1], bytes);
    int mapped = map != NULL && map != MAP_FAILED;
    int64_t failed = !mapped;
    if (world_max_i64(&failed, 1) != 0) /* everyone mapped: rank 0 may close */
        failed = 1;
    if (file[1] >= 0 && world_rank() == 0)
        close((int)file[1]);
    if (failed) {
        if (mapped) {
            munmap(map, bytes);
            err_set("another rank could not map the shared block");
        } else if (file[1] < 0 && world_rank() != 0) {
            err_set("rank 0 could not create the shared block");
        }
        return -1;
    }
    int64_t moved = move_over(map, addr, bytes) == 0, all = !moved;
    if (world_max_i64(&all, 1) != 0 || all) { /* a rank could not: everyone private again */
        char why[256];
        snprintf(why, sizeof why, "%s", moved ? "another rank could not move the shared block into place" : err_get());
        if (moved)
            world_pages_private(addr, bytes);
        return err_set("%s", why);
    }
    return 0;
}

int world_pages_private(void *addr, size_t bytes)
{
    bytes = page_round(bytes);
    void *copy = world_pages_alloc(bytes, 0);
    if (!copy)
        return err_set("out of memory copying a shared block of %zu bytes", bytes);
    memcpy(copy, addr, bytes);
    return move_over(copy, addr, bytes);
}
