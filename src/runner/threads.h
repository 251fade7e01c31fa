/* threads.h — one OpenMP pool serves oneDNN (its OpenMP build) and our
 * kernels, so `--threads N` means N: set with omp_set_num_threads before
 * the first parallel region. No environment variable is read or set. */
#ifndef THREADS_H
#define THREADS_H

/* N > 0: the pool's size; otherwise OpenMP's default. argv is unused (kept
 * for callers). */
void threads_setup(int threads, char **argv);

#endif
