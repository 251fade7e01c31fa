/* params.c — the parameter store: contiguous blocks, owners' pointers,
 * initialisation, globs, trainable flags and lr scales, errors. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "params.h"
#include "tap.h"
#include "runner/kit/util.h"

int main(void)
{
    params P;
    params_init(&P);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    float *w0 = NULL, *g0 = NULL, *b0 = NULL, *gb0 = NULL, *w5 = NULL, *g5 = NULL, *head = NULL;
    int64_t s2[2] = {30, 7}, s1[1] = {7}, big[2] = {100, 100};
    is(params_add(&P, "backbone.encoder.layer.0.w", 2, s2, 0, RUNNER_INIT_NORMAL, 0.02f, &w0, &g0), 0, "first id is 0");
    is(params_add(&P, "backbone.encoder.layer.0.b", 1, s1, RUNNER_PARAM_NO_DECAY, RUNNER_INIT_ONE, 0, &b0, &gb0), 1, "second id is 1");
    is(params_add(&P, "backbone.encoder.layer.5.w", 2, big, 0, RUNNER_INIT_UNIFORM, 0.1f, &w5, &g5), 2, "third id is 2");
    is(params_add(&P, "heads.topic.0.weight", 1, s1, 0, RUNNER_INIT_ZERO, 0, &head, NULL), 3, "a head's tensor");
    is(params_add(&P, "heads.topic.0.weight", 1, s1, 0, RUNNER_INIT_ZERO, 0, NULL, NULL), -1, "a name twice is refused");
    like(err_get(), "registered twice", "... saying so");
    int64_t bad[1] = {0};
    is(params_add(&P, "x", 1, bad, 0, RUNNER_INIT_ZERO, 0, NULL, NULL), -1, "an empty dimension is refused");
    is(params_add(&P, "y", 5, s2, 0, RUNNER_INIT_ZERO, 0, NULL, NULL), -1, "five dimensions are refused");
    ok(w0 == NULL, "pointers are not set before allocation");

    is(params_alloc(&P, 1, rng), 0, "allocation");
    ok(w0 == P.data && g0 == P.grad, "the first tensor starts each block");
    ok(b0 == P.data + 224 && gb0 == P.grad + 224, "tensors are contiguous, 16-float aligned");
    ok(((uintptr_t)w5 & 63) == 0, "every tensor is 64-byte aligned");
    ok(head && P.p[3].grad_slot == NULL, "a NULL grad pointer is allowed");
    double mean = 0, var = 0;
    for (int i = 0; i < 210; i++)
        mean += w0[i];
    mean /= 210;
    for (int i = 0; i < 210; i++)
        var += (w0[i] - mean) * (w0[i] - mean);
    var /= 209;
    cmp_ok(fabs(sqrt(var) - 0.02), <, 0.004, "normal init has the asked std");
    ok(b0[0] == 1 && b0[6] == 1, "ones init");
    int in_range = 1;
    for (int i = 0; i < 10000; i++)
        in_range &= w5[i] >= -0.1f && w5[i] <= 0.1f;
    ok(in_range, "uniform init stays in range");
    ok(head[0] == 0, "zero init");
    is(params_add(&P, "late", 1, s1, 0, RUNNER_INIT_ZERO, 0, NULL, NULL), -1, "registering after allocation is refused");

    is(params_find(&P, "heads.topic.0.weight"), 3, "lookup by name");
    is(params_find(&P, "nope"), -1, "lookup of a missing name");
    is(params_count(&P, "backbone.encoder.layer.0.*", 0), 217, "count by glob");
    is(params_count(&P, "*", 0), 210 + 7 + 10000 + 7, "count of everything");
    is(params_set(&P, "backbone.*", 0, -1), 3, "freeze the backbone by glob");
    is(params_count(&P, "*", 1), 7, "only the head trains");
    is(params_set(&P, "backbone.encoder.layer.5.*", 1, 0.5), 1, "unfreeze one layer with an lr scale");
    ok(P.p[2].trainable && P.p[2].lr_scale == 0.5 && P.p[0].lr_scale == 1.0, "flag and scale set on that layer only");
    is(params_set(&P, "nothing.*", 1, 1), 0, "a glob matching nothing matches nothing");
    g0[3] = 5;
    params_zero_grad(&P);
    ok(g0[3] == 0, "gradients zeroed");
    is(params_alloc_moments(&P), 0, "optimizer moments allocated");
    ok(P.m && P.v && P.m[0] == 0 && P.v[P.total - 1] == 0, "moments are zero");
    is(params_alloc(&P, 1, rng), -1, "allocating twice is refused");

    params_free(&P);
    params_free(&P);
    ok(1, "freeing twice is harmless");

    params Q;
    params_init(&Q);
    float *x = NULL, *gx = (float *)1;
    params_add(&Q, "x", 1, s1, 0, RUNNER_INIT_ZERO, 0, &x, &gx);
    params_alloc(&Q, 0, rng);
    ok(x && gx == NULL && Q.grad == NULL, "without gradients nothing is allocated for them");
    params_free(&Q);
    gsl_rng_free(rng);

    /* the kit's aligned blocks, which hold the activations and packed weights */
    char *small = mem_alloc_huge(100), *large = mem_alloc_huge(3u << 20);
    ok(small && ((uintptr_t)small & 63) == 0, "a small long-lived block is 64-byte aligned");
    ok(large && ((uintptr_t)large & ((2u << 20) - 1)) == 0, "one of 1 MiB or more starts on a 2 MiB boundary");
    if (large)
        large[(3u << 20) - 1] = 1; /* writable to its end */
    char *odd = mem_alloc_huge((1u << 20) + 4096); /* not rounded up: 2 MiB would waste > 1/4 */
    ok(odd && ((uintptr_t)odd & ((2u << 20) - 1)) == 0, "one that is not rounded up is aligned too");
    if (odd)
        odd[(1u << 20) + 4095] = 1;
    ok(mem_calloc(SIZE_MAX / 2, 4) == NULL, "a count times size that overflows gives NULL, nothing allocated");
    /* populated ahead of writing or reading (kit 1.9): every page present
     * (mincore), contents kept; where the kernel lacks it, -1 and nothing done */
    const size_t PB = 5u << 20, pg = (size_t)sysconf(_SC_PAGESIZE);
    char *fresh = mmap(NULL, PB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char *in = calloc(PB / pg, 1);
    int prc = fresh == MAP_FAILED || !in ? -2 : mem_populate(fresh + 3, PB - 3, 1);
    size_t present = 0;
    if (prc == 0 && mincore(fresh, PB, in) == 0)
        for (size_t i = 0; i < PB / pg; i++)
            present += in[i] & 1;
    ok((prc == 0 && present == PB / pg) || (prc == -1 && (errno == EINVAL || errno == ENOSYS)),
       "mem_populate faults in all %zu pages of a fresh block at once (%zu present, rc %d)", PB / pg, present, prc);
    if (fresh != MAP_FAILED) {
        memset(fresh, 7, PB);
        int r1 = mem_populate(fresh, PB, 0), r2 = mem_populate(fresh + 1, PB - 1, 1);
        ok(r1 == prc && r2 == prc && fresh[0] == 7 && fresh[PB / 2] == 7 && fresh[PB - 1] == 7 &&
               mem_populate(NULL, 10, 1) == 0,
           "... and leaves a written block's contents as they were (read and write advice)");
        munmap(fresh, PB);
    } else {
        ok(0, "mmap of a fresh block failed");
    }
    free(in);
    mem_free(small);
    mem_free(large);
    mem_free(odd);
    mem_free(NULL);
    return done_testing(40);
}
