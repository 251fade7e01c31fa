/* util.c — error message, aligned memory, files written atomically. */
#include "runner/kit/util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* One error slot, in librunner.so.1 only: the runner and every
 * plugin read the same one (a plugin forwards it with h->error()). */
static char err_msg[4096];

int err_setv(const char *prefix, const char *fmt, va_list ap)
{
    char tmp[sizeof err_msg];
    vsnprintf(tmp, sizeof tmp, fmt, ap); /* fmt may quote err_msg itself */
    if (prefix && *prefix)
        snprintf(err_msg, sizeof err_msg, "%s: %s", prefix, tmp);
    else
        snprintf(err_msg, sizeof err_msg, "%s", tmp);
    return -1;
}

int err_set(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_setv(NULL, fmt, ap);
    va_end(ap);
    return -1;
}

const char *err_get(void) { return err_msg[0] ? err_msg : "unknown error"; }
void err_clear(void) { err_msg[0] = 0; }

void *mem_alloc(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0)
        return NULL;
    return p;
}

/* Whole 2 MiB pages, asking for transparent huge pages (granted on
 * request where THP is "madvise", Debian's default): one fault maps 2 MiB
 * instead of 512 faults of 4 KiB, and the TLB covers more. Measured on a
 * virtual Zen 5, where a first-touch fault cost about 17 us: an int8
 * encode's first batch took 13,000 of them. Medians of alternating runs:
 * the eval activations, int8 encode +7.9 % (1 thread), bf16 +7.6 % (2
 * threads; measured with every large block so, which in an encode are
 * these); the packed weights too, f32 +10.3 %, bf16 +3.1 % (2 threads);
 * peak RSS lower than before (f32 160 against 166 MiB).
 * Every block that way made training 13-29 % slower there: its buffers
 * grow with the batches, and each fresh huge page came zeroed from memory
 * the host had not backed yet. */
enum { HUGE_PAGE = 2u << 20 };

void *mem_alloc_huge(size_t bytes)
{
    const size_t H = HUGE_PAGE;
    if (bytes < H / 2 || bytes > SIZE_MAX - H)
        return mem_alloc(bytes);
    /* rounded up to whole huge pages when that costs at most a quarter
     * more; else only the whole huge pages inside it are asked for */
    const size_t up = (bytes + H - 1) & ~(H - 1), size = up - bytes <= bytes / 4 ? up : bytes;
    void *p = NULL;
    if (posix_memalign(&p, H, size) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    if (size & ~(H - 1))
        (void)madvise(p, size & ~(H - 1), MADV_HUGEPAGE); /* advice: may be refused */
#endif
    return p;
}

void *mem_calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *p = mem_alloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

void mem_free(void *p) { free(p); }

/* madvise on the pages of [p, p + bytes): those it touches (outward), or
 * only those wholly inside it */
static int advise_pages(const void *p, size_t bytes, int advice, int outward)
{
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = outward ? (uintptr_t)p & ~(page - 1) : ((uintptr_t)p + page - 1) & ~(page - 1);
    uintptr_t hi = outward ? (uintptr_t)p + bytes : ((uintptr_t)p + bytes) & ~(page - 1);
    return p && hi > lo ? madvise((void *)lo, hi - lo, advice) : 0;
}

int mem_populate(const void *p, size_t bytes, int for_write)
{
#if defined(MADV_POPULATE_WRITE) && defined(MADV_POPULATE_READ)
    return advise_pages(p, bytes, for_write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ, 1);
#else
    (void)p;
    (void)bytes;
    (void)for_write;
    errno = ENOSYS;
    return -1;
#endif
}

int mem_drop_pages(const void *p, size_t bytes) { return advise_pages(p, bytes, MADV_DONTNEED, 0); }

char *str_dup(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

char *str_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

int str_ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

/* A whole regular file into memory. A folder, a device or a file too large
 * for this address space is named as such; sizes stay 64-bit (off_t). */
int file_read(const char *path, char **data, size_t *len)
{
    char *buf = NULL;
    struct stat st;
    FILE *f = fopen(path, "rb");
    if (!f)
        return err_set("%s: %s", path, strerror(errno));
    if (fstat(fileno(f), &st) != 0)
        goto fail_errno;
    if (S_ISDIR(st.st_mode)) {
        err_set("%s: is a folder, expected a file", path);
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        err_set("%s: not a regular file", path);
        goto fail;
    }
    if (st.st_size < 0 || (uintmax_t)st.st_size >= SIZE_MAX) {
        err_set("%s: file too large (%jd bytes)", path, (intmax_t)st.st_size);
        goto fail;
    }
    size_t size = (size_t)st.st_size;
    buf = malloc(size + 1);
    if (!buf) {
        err_set("%s: out of memory reading %zu bytes", path, size);
        goto fail;
    }
    errno = 0;
    if (fread(buf, 1, size, f) != size)
        goto fail_errno;
    buf[size] = 0;
    fclose(f);
    *data = buf;
    *len = size;
    return 0;
fail_errno:
    err_set("%s: %s", path, errno ? strerror(errno) : "read error");
fail:
    free(buf);
    fclose(f);
    return -1;
}

static int fsync_dir_of(const char *path)
{
    char *copy = str_dup(path);
    if (!copy)
        return err_set("out of memory");
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    free(copy);
    if (fd < 0)
        return 0; /* best effort: some file systems refuse */
    fsync(fd);
    close(fd);
    return 0;
}

int file_write_atomic_with(const char *path, int (*write)(FILE *f, void *ctx), void *ctx)
{
    char *tmp = str_printf("%s.tmp.%ld", path, (long)getpid());
    FILE *f = NULL;
    if (!tmp)
        return err_set("out of memory");
    f = fopen(tmp, "wb");
    if (!f) {
        err_set("%s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (write(f, ctx) != 0)
        goto fail;
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        err_set("%s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (fclose(f) != 0) {
        f = NULL;
        err_set("%s: %s", tmp, strerror(errno));
        goto fail;
    }
    f = NULL;
    if (rename(tmp, path) != 0) {
        err_set("%s: rename: %s", path, strerror(errno));
        goto fail;
    }
    free(tmp);
    return fsync_dir_of(path);
fail:
    if (f)
        fclose(f);
    unlink(tmp);
    free(tmp);
    return -1;
}

struct bytes { const void *data; size_t len; const char *path; };

static int write_bytes(FILE *f, void *ctx)
{
    struct bytes *b = ctx;
    if (b->len && fwrite(b->data, 1, b->len, f) != b->len)
        return err_set("%s: %s", b->path, strerror(errno));
    return 0;
}

int file_write_atomic(const char *path, const void *data, size_t len)
{
    struct bytes b = {data, len, path};
    return file_write_atomic_with(path, write_bytes, &b);
}

int dir_make(const char *path)
{
    char *p = str_dup(path);
    if (!p)
        return err_set("out of memory");
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == 0) {
            char c = *s;
            *s = 0;
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                err_set("%s: %s", p, strerror(errno));
                free(p);
                return -1;
            }
            *s = c;
            if (!c)
                break;
        }
    }
    free(p);
    return 0;
}

int path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

double time_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
