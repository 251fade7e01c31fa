/* npy.h — NumPy .npy files (format version 1.0) of float32 matrices:
 * written atomically, read back with their header checked. */
#ifndef NPY_H
#define NPY_H

#include <stddef.h>
#include <stdint.h>

/* Write rows x cols little-endian float32, C order, shape (rows, cols). */
int npy_write_f32(const char *path, int64_t rows, int64_t cols, const float *data);
/* Read a 2-D (or 1-D: cols = 1) '<f4' C-order file; *data is malloc'ed. */
int npy_read_f32(const char *path, int64_t *rows, int64_t *cols, float **data);

/* The same from memory (buf of len bytes; path names it in messages).
 * Shapes must be non-negative and addressable; the size must match. */
int npy_parse_f32(const char *path, const char *buf, size_t len, int64_t *rows, int64_t *cols,
                  float **data);

#endif
