/* util.h — small pieces shared by the core: error messages, aligned memory,
 * whole-file reads, atomic file writes, string helpers. */
#ifndef UTIL_H
#define UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The last error of the run: one message with its origin. */
int err_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int err_setv(const char *prefix, const char *fmt, va_list ap);
const char *err_get(void);
void err_clear(void);

void *mem_alloc(size_t bytes);            /* 64-byte aligned; NULL on failure */
/* kit 1.8: mem_alloc for a block kept for long (an eval forward's
 * activations, packed weights): from 1 MiB on, 2 MiB-aligned, with
 * transparent huge pages asked for its whole 2 MiB pages (rounded up to
 * whole pages when that costs at most a quarter more): fewer page faults
 * and TLB misses. Not for blocks freed and allocated again and again
 * (fresh huge pages are zeroed 2 MiB at a time). Freed with mem_free. */
void *mem_alloc_huge(size_t bytes);
void *mem_calloc(size_t n, size_t size);  /* aligned and zeroed */
void mem_free(void *p);
/* kit 1.9: fault in the pages of [p, p + bytes) in one call, for a block
 * about to be written whole (for_write: MADV_POPULATE_WRITE) or read whole
 * (0: MADV_POPULATE_READ, e.g. a read-only file mapping): touched one by
 * one, each fresh page is a fault, about 14 us on this project's virtual
 * machines against 0.5 us a page this way. Contents unchanged. 0, or -1
 * with errno set (kernels before 5.14: nothing done). */
int mem_populate(const void *p, size_t bytes, int for_write);
/* Give the whole pages inside [p, p + bytes) back to the kernel
 * (MADV_DONTNEED): private anonymous memory reads as zeros afterwards, a
 * file mapping is read again from its file. 0, or -1 with errno set. */
int mem_drop_pages(const void *p, size_t bytes);

char *str_dup(const char *s);             /* NULL on failure or NULL input */
char *str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int str_ends_with(const char *s, const char *suffix);

/* Read a whole file (NUL appended, not counted). -1 with err_set. */
int file_read(const char *path, char **data, size_t *len);
/* Write a file atomically: path.tmp, fsync, rename, fsync the folder. */
int file_write_atomic(const char *path, const void *data, size_t len);
/* Same, with the content produced by a callback writing to a FILE. */
int file_write_atomic_with(const char *path, int (*write)(FILE *f, void *ctx), void *ctx);
/* mkdir -p. */
int dir_make(const char *path);
int path_exists(const char *path);

/* Seconds since an arbitrary origin, monotonic. */
double time_now(void);

#endif
