/* drive_tokenize.c — `run = "tokenize"`: every line of `input` through the
 * tokenizer; ids.txt (ids of sentence i on line i, [CLS] ... [SEP], no
 * padding) and tokens.txt (the word pieces, same layout). */
#include <stdlib.h>
#include <string.h>

#include "drivers.h"
#include "run.h"
#include "text.h"
#include "runner/kit/util.h"

struct tok_out {
    const encoded *e;
    stage *tok;
    int pieces;
};

static int write_ids(FILE *f, void *ctx)
{
    struct tok_out *o = ctx;
    const runner_tokenizer_ops *ops = o->tok->desc->ops;
    for (int i = 0; i < o->e->n; i++) {
        for (int64_t j = o->e->off[i]; j < o->e->off[i + 1]; j++) {
            if (j > o->e->off[i])
                fputc(' ', f);
            if (o->pieces) {
                const char *t = ops->token(o->tok->self, o->e->ids[j]);
                fputs(t ? t : "?", f);
            } else {
                fprintf(f, "%d", (int)o->e->ids[j]);
            }
        }
        fputc('\n', f);
    }
    return ferror(f) ? err_set("write error") : 0;
}

int write_token_files(pipeline *pl, stage *tok, const encoded *e)
{
    struct tok_out o = {e, tok, 0};
    char *ids = run_path(pl, "ids.txt"), *tokens = run_path(pl, "tokens.txt");
    int rc = -1;
    if (ids && tokens && file_write_atomic_with(ids, write_ids, &o) == 0) {
        o.pieces = 1;
        rc = file_write_atomic_with(tokens, write_ids, &o);
    }
    free(ids);
    free(tokens);
    return rc;
}

int drive_tokenize(pipeline *pl)
{
    lines L = {0};
    encoded e = {0};
    int rc = -1;
    const char *input = cfg_str(pl, "input");
    if (!input)
        return err_set("%s: `input` (a file of sentences) is not set", pl->file);
    stage *tok = pipeline_stage(pl, "tokenizer", "tokenizer.", RUNNER_KIND_TOKENIZER,
                                config_lookup(&pl->cfg, "tokenizer"));
    if (!tok)
        return -1;
    if (lines_read(input, &L) != 0)
        goto done;
    double t0 = time_now();
    if (encode_lines(tok, &L, &e) != 0)
        goto done;
    double dt = time_now() - t0;
    if (write_token_files(pl, tok, &e) != 0)
        goto done;
    pipeline_log(pl, RUNNER_LOG_INFO, "tokenized %d sentences, %lld pieces, in %.3f s -> %s/ids.txt",
                 e.n, (long long)e.off[e.n], dt, pl->out_dir);
    rc = 0;
done:
    encoded_free(&e);
    lines_free(&L);
    return rc;
}
