/* threads.c — thread environment set before OpenBLAS loads (see threads.h). */
#include "threads.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

void threads_setup(int threads, char **argv)
{
    if (getenv("RUNNER_ENV_SET"))
        return;
    char n[16];
    snprintf(n, sizeof n, "%d", threads);
    setenv("OMP_NUM_THREADS", n, 1);
    setenv("OPENBLAS_NUM_THREADS", n, 1);
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        setenv("OPENBLAS_CORETYPE", "SkylakeX", 0);
    setenv("RUNNER_ENV_SET", "1", 1);
    execv("/proc/self/exe", argv);
}
