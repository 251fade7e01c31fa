/* tokenizer.c (fuzz) — the wordpiece plugin, loaded as the runner loads it
 * (the bundle through the loader), encoding arbitrary bytes (NUL bytes,
 * invalid UTF-8, long words) with the 30,522-piece BERT vocabulary when
 * ../shared is there, else the tiny test vocabulary. */
#include "fuzz.h"
#include "pipeline.h"

static pipeline pl;
static stage *tok;
static runner_tokenizer_info info;

static int open_tokenizer(void)
{
    static const char *const vocabs[] = {FUZZ_ROOT "/../shared/models/minilm-l6-random/vocab.txt",
                                         FUZZ_ROOT "/tests/goldens/tiny-bert/vocab.txt"};
    const char *vocab = access(vocabs[0], R_OK) == 0 ? vocabs[0] : vocabs[1];
    char *text = str_printf("run = \"tokenize\"; model = \"%s\";\n"
                            "tokenizer = { plugin = \"wordpiece\"; vocab = \"%s\"; max_len = 512; };\n",
                            FUZZ_ROOT "/tests/goldens/tiny-bert", vocab);
    diags d;
    diag_init(&d);
    int bad = !text || pipeline_open(&pl, NULL, FUZZ_PLUGINS) != 0;
    pl.quiet = 1;
    bad = bad || !config_read_string(&pl.cfg, text) ||
              pipeline_validate(&pl, &d) != 0 ||
              !(tok = pipeline_stage(&pl, "tokenizer", "tokenizer.", RUNNER_KIND_TOKENIZER,
                                     config_lookup(&pl.cfg, "tokenizer")));
    diag_free(&d);
    free(text);
    if (bad) {
        fprintf(stderr, "fuzz tokenizer: cannot open the wordpiece tokenizer: %s\n", err_get());
        return -1;
    }
    ((const runner_tokenizer_ops *)tok->desc->ops)->info(tok->self, &info);
    return 0;
}

FUZZ_TARGET(tokenizer)
{
    if (!tok && open_tokenizer() != 0)
        abort();
    const runner_tokenizer_ops *ops = tok->desc->ops;
    int32_t ids[512], word[512];
    int n = -1;
    if (ops->encode(tok->self, (const char *)data, size, ids, word, info.max_len, &n) == 0) {
        if (n < 2 || n > info.max_len)
            abort();
        for (int i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= info.vocab_size || !ops->token(tok->self, ids[i]))
                abort();
    }
    return 0;
}
