/* threads.h — the thread environment of a process that uses OpenBLAS and
 * OpenMP: both read it when they load, before main(), so it is set and the
 * program runs itself again once (execv of /proc/self/exe). One OpenMP pool
 * serves the OpenMP flavour of OpenBLAS and our kernels, so N threads means
 * N. OpenBLAS 0.3.21 does not know Zen 5 and would fall back to Haswell
 * kernels at half speed; on any AVX-512 CPU its SkylakeX kernels are
 * chosen (unless OPENBLAS_CORETYPE is already set). */
#ifndef THREADS_H
#define THREADS_H

/* Returns only if the environment was already set or exec failed. Under
 * valgrind (which cannot follow the exec) set RUNNER_ENV_SET=1 yourself. */
void threads_setup(int threads, char **argv);

#endif
