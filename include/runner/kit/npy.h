/* npy.h — NumPy .npy files (format version 1.0) of float32 matrices:
 * written atomically, read back with their header checked. */
#ifndef NPY_H
#define NPY_H

#include <stdint.h>

/* Write rows x cols little-endian float32, C order, shape (rows, cols). */
int npy_write_f32(const char *path, int64_t rows, int64_t cols, const float *data);
/* Read a 2-D (or 1-D: cols = 1) '<f4' C-order file; *data is malloc'ed. */
int npy_read_f32(const char *path, int64_t *rows, int64_t *cols, float **data);

#endif
