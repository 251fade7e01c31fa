/* state.c (fuzz) — the trainer state of --resume: byte 0 even, the rest is
 * a trainer_state.bin file (magic, CRC, zlib) through checkpoint_load_state;
 * odd, the rest is the inflated state given to tr_state_load directly.
 * The trainer is a stub of two tasks (5 and 3 training rows) and 40
 * parameters; a state that loads must then be usable (tr_next_rows).
 * With FUZZ_WRITE_SEEDS=<folder> the first call writes valid seeds there. */
#include "fuzz.h"
#include "trainer.h"

static pipeline pl;
static trainer tr;
static task tasks[2];

static void stub(void)
{
    static int order0[5], order1[3];
    if (pipeline_open(&pl, NULL, NULL) != 0)
        abort();
    int64_t shape = 40;
    float *data;
    if (params_add(&pl.P, "w", 1, &shape, 0, RUNNER_INIT_ZERO, 0, &data, NULL) < 0 ||
        params_alloc(&pl.P, 0, pl.rng) != 0)
        abort();
    tasks[0] = (task){.name = "a", .order = order0};
    tasks[1] = (task){.name = "b", .order = order1};
    tasks[0].train.ds.n = 5;
    tasks[1].train.ds.n = 3;
    tr.pl = &pl;
    tr.m.ntasks = 2;
    tr.m.t = tasks;
    tr.B = 4;
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < tasks[k].train.ds.n; i++)
            tasks[k].order[i] = i;
        tr_shuffle_task(&tr, &tasks[k]);
    }
}

static void write_seeds(const char *dir)
{
    blob b = {0};
    char *path = str_printf("%s/raw", dir), *ck = str_printf("%s/ck", fuzz_dir());
    tr.step = 7;
    tr.evals = 2;
    if (tr_state_save(&tr, &b) != 0)
        abort();
    FILE *f = fopen(path, "wb");
    fputc(1, f);
    fwrite(b.p, 1, b.n, f);
    fclose(f);
    if (params_alloc_moments(&pl.P) != 0 || (blob_free(&b), tr_state_save(&tr, &b)) != 0 ||
        checkpoint_save(ck, &pl, &b, NULL, NULL, 0) != 0)
        abort();
    char *from = str_printf("%s/trainer_state.bin", ck), *d = NULL;
    size_t n;
    free(path);
    path = str_printf("%s/file", dir);
    if (file_read(from, &d, &n) != 0 || !(f = fopen(path, "wb")))
        abort();
    fputc(0, f);
    fwrite(d, 1, n, f);
    fclose(f);
    free(d);
    free(from);
    free(ck);
    free(path);
    blob_free(&b);
}

FUZZ_TARGET(state)
{
    static int ready;
    if (!ready) {
        stub();
        ready = 1;
        if (getenv("FUZZ_WRITE_SEEDS"))
            write_seeds(getenv("FUZZ_WRITE_SEEDS"));
    }
    if (size < 1)
        return 0;
    blob b = {0};
    int rc;
    if (data[0] & 1) {
        b.p = malloc(size);
        memcpy(b.p, data + 1, size - 1);
        b.n = b.cap = size - 1;
        rc = tr_state_load(&tr, &b, "fuzz");
    } else {
        char *dir = str_printf("%s/ck", fuzz_dir());
        dir_make(dir);
        char *p = str_printf("ck/trainer_state.bin");
        free(fuzz_file(p, data + 1, size - 1));
        rc = checkpoint_load_state(dir, &b) == 0 ? tr_state_load(&tr, &b, dir) : -1;
        free(p);
        free(dir);
    }
    blob_free(&b);
    if (rc == 0) {
        int rows[4];
        for (int k = 0; k < 2; k++)
            for (int j = 0; j < 3; j++) {
                int n = tr_next_rows(&tr, &tasks[k], rows);
                for (int i = 0; i < n; i++)
                    if (rows[i] < 0 || rows[i] >= tasks[k].train.ds.n)
                        abort();
            }
    }
    return 0;
}
