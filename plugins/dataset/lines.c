/* lines.c — dataset: unlabeled text, one example per line (blank lines and
 * the <doc ...>/</doc> lines of Wikipedia extracts are left out), for
 * masked-language-model pre-training. The host reads `files` (paths or
 * globs) or path/train, adds the training text of `train_text_from`,
 * holds dev lines out as they come and stops at `limit`. */
#include <string.h>

#include "runner/kit/rows.h"
#include "runner/runner.h"

static int create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    *self = NULL;
    return 0;
}

static void destroy(void *self) {}

static int read_lines(void *self, const char *path, runner_rows *R)
{
    txt_reader r;
    int got = 0;
    rows_kind(R, 0);
    if (txt_open(&r, path) != 0)
        return -1;
    while (!rows_full(R) && (got = txt_next(&r)) == 1) {
        const char *s = r.s;
        size_t n = r.len;
        txt_trim(&s, &n);
        if (!n || (n >= 5 && strncmp(s, "<doc ", 5) == 0) || (n == 6 && strncmp(s, "</doc>", 6) == 0))
            continue;
        if (rows_add(R, path, r.line, s, n, NULL, 0) != 0) {
            got = -1;
            break;
        }
    }
    txt_close(&r);
    return got < 0 ? -1 : 0;
}

static const runner_dataset_ops ops = {.read = read_lines, .flags = RUNNER_DATASET_TEXT};

RUNNER_DEFINE_PLUGIN(dataset, lines,
    "unlabeled text, one example per line (MLM pre-training); files may be globs, .gz read through zlib",
    NULL, create, destroy, &ops)
