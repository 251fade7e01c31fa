/* threads.c — the size of the OpenMP pool (see threads.h). */
#include "threads.h"

#include <omp.h>

void threads_setup(int threads, char **argv)
{
    (void)argv;
    if (threads > 0)
        omp_set_num_threads(threads);
}
