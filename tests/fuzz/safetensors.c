/* safetensors.c (fuzz) — st_open on a file of arbitrary bytes, then every
 * tensor (up to a million elements) converted to float32. */
#include "fuzz.h"
#include "runner/kit/safetensors.h"

FUZZ_TARGET(safetensors)
{
    char *path = fuzz_file("fuzz.safetensors", data, size);
    safetensors st;
    if (st_open(&st, path) == 0) {
        for (int i = 0; i < st.n; i++) {
            const st_tensor *t = &st.t[i];
            if (st_find(&st, t->name) == NULL)
                abort();
            if (t->numel > (1 << 20))
                continue;
            float *x = malloc((size_t)t->numel * sizeof *x + 1);
            if (x && st_to_f32(&st, t, x) == 0)
                st_release(&st, t);
            free(x);
        }
        st_meta(&st, "format");
        st_close(&st);
    }
    free(path);
    return 0;
}
