/* tokenizer.c — tokenizer/wordpiece: every normalisation step on a small
 * vocabulary written here (cleaning, CJK, case, accents, punctuation,
 * WordPiece, the 100-character rule, truncation), bytes that are not text
 * (invalid UTF-8, NUL, empty and blank lines), word indices, settings from
 * the model folder's JSON files, vocabulary errors, padded batches, and
 * the parity with Hugging Face on ../shared/reference/tokenizer through the
 * runner. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline.h"
#include "tap.h"
#include "text.h"
#include "runner/kit/util.h"

#define REF_DIR "../shared/reference/tokenizer"
#define MODEL_DIR "../shared/models/all-MiniLM-L6-v2"

static char tmp[] = "/tmp/tokenizer-test-XXXXXX";

/* The test vocabulary: one token per line (ids from 0). */
static const char *const tiny[] = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", ",", "!", "un",
    "##aff", "##able", "cafe", "café", "Cafe", "a", "b", "ab", "##b", "c",
    "中", "文", "$", "^", "`", "+", "€", "¿", "—", ";",
    "[", "]", "i", "##\xcc\x87", "aaaaaaaaaa", "##aaaaaaaaaa", "x", "y", NULL,
};

static char *path_in_tmp(const char *name) { return str_printf("%s/%s", tmp, name); }

static char *write_tmp(const char *name, const char *data, size_t len)
{
    char *p = path_in_tmp(name);
    FILE *f = p ? fopen(p, "wb") : NULL;
    if (!f || fwrite(data, 1, len, f) != len) {
        diag("cannot write %s", p ? p : name);
        exit(1);
    }
    fclose(f);
    return p;
}

static char *write_vocab(const char *name, const char *const *tokens, const char *eol)
{
    char buf[8192];
    size_t n = 0;
    for (int i = 0; tokens[i]; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", tokens[i], eol);
    return write_tmp(name, buf, n);
}

typedef struct tok {
    pipeline pl;
    stage *st;
    const runner_tokenizer_ops *ops;
    runner_tokenizer_info info;
} tok;

/* A wordpiece stage with model folder `model` and extra tokenizer keys. */
static int tok_open(tok *t, const char *model, const char *keys)
{
    memset(t, 0, sizeof *t);
    char *text = str_printf("run = \"tokenize\"; model = \"%s\";\n"
                            "tokenizer = { plugin = \"wordpiece\"; %s };\n",
                            model, keys);
    diags d;
    diag_init(&d);
    int rc = -1;
    if (!text || pipeline_open(&t->pl, NULL, RUNNER_BUILD_DIR "/plugins") != 0)
        goto done;
    t->pl.quiet = 1;
    if (!config_read_string(&t->pl.cfg, text)) {
        err_set("config line %d: %s", config_error_line(&t->pl.cfg), config_error_text(&t->pl.cfg));
        goto done;
    }
    if (pipeline_validate(&t->pl, &d) != 0) {
        err_set("%s", d.n ? d.msg[0] : "invalid pipeline");
        goto done;
    }
    t->st = pipeline_stage(&t->pl, "tokenizer", "tokenizer.", RUNNER_KIND_TOKENIZER,
                           config_lookup(&t->pl.cfg, "tokenizer"));
    if (!t->st)
        goto done;
    t->ops = t->st->desc->ops;
    t->ops->info(t->st->self, &t->info);
    rc = 0;
done:
    diag_free(&d);
    free(text);
    return rc;
}

static void tok_close(tok *t) { pipeline_close(&t->pl); }

static char *vocab_keys(const char *vocab, const char *more)
{
    return str_printf("vocab = \"%s\"; %s", vocab, more);
}

/* Encode len bytes; the pieces as "[CLS] a ##b [SEP]" and the word indices
 * as "-1 0 0 -1" (static buffers). */
static const char *words_of_last;
static const char *enc_cap(tok *t, const char *text, size_t len, int cap)
{
    static char pieces[16384], words[8192];
    int32_t ids[1024], word[1024];
    int n = -1;
    if (t->ops->encode(t->st->self, text, len, ids, word, cap, &n) != 0) {
        snprintf(pieces, sizeof pieces, "error: %s", err_get());
        words_of_last = "";
        return pieces;
    }
    size_t pu = 0, wu = 0;
    pieces[0] = words[0] = 0;
    for (int i = 0; i < n; i++) {
        const char *s = t->ops->token(t->st->self, ids[i]);
        pu += (size_t)snprintf(pieces + pu, sizeof pieces - pu, "%s%s", i ? " " : "", s ? s : "?");
        wu += (size_t)snprintf(words + wu, sizeof words - wu, "%s%d", i ? " " : "", (int)word[i]);
    }
    words_of_last = words;
    return pieces;
}

static const char *enc_len(tok *t, const char *text, size_t len) { return enc_cap(t, text, len, 1024); }
static const char *enc(tok *t, const char *text) { return enc_len(t, text, strlen(text)); }

/* A tokenizer on the tiny vocabulary with extra keys (empty model folder:
 * BERT's defaults apply). */
static int tiny_open(tok *t, const char *vocab, const char *more)
{
    char *keys = vocab_keys(vocab, more);
    char *model = path_in_tmp("empty_model");
    int rc = tok_open(t, model, keys);
    if (rc != 0)
        diag("tokenizer: %s", err_get());
    free(keys);
    free(model);
    return rc;
}

static void test_cleaning(tok *t)
{
    is_str(enc(t, "hel\x01lo\x7f"), "[CLS] hello [SEP]", "control characters (Cc) are dropped");
    is_str(enc(t, "hel\xe2\x80\x8blo"), "[CLS] hello [SEP]", "format characters (Cf, U+200B) are dropped");
    is_str(enc(t, "hel\xef\xbf\xbdlo"), "[CLS] hello [SEP]", "U+FFFD is dropped");
    is_str(enc(t, "hel\xee\x80\x80lo"), "[CLS] hello [SEP]", "private use (Co) is dropped");
    is_str(enc(t, "hello\tworld\xc2\xa0hello\xe3\x80\x80world\xe2\x80\xa8x\ry\nx"),
           "[CLS] hello world hello world x y x [SEP]",
           "tab, NBSP, ideographic space, U+2028, CR, LF separate words");
    is_str(words_of_last, "-1 0 1 2 3 4 5 6 -1", "each separated word has its own index");
    is_str(enc(t, "a\xcd\xb8"), "[CLS] [UNK] [SEP]",
           "an unassigned code point (Cn, U+0378) is kept, as by the fast tokenizer");
    is_str(enc(t, "hello\x0bworld"), "[CLS] [UNK] [SEP]",
           "VT is a control character: dropped, it does not separate");
}

static void test_cjk(tok *t, const char *vocab)
{
    is_str(enc(t, "ab\xe4\xb8\xad\xe6\x96\x87" "ab"), "[CLS] ab 中 文 ab [SEP]",
           "CJK ideographs become words of their own");
    is_str(words_of_last, "-1 0 0 0 0 -1", "... inside the same whitespace word");
    tok u;
    if (tiny_open(&u, vocab, "tokenize_chinese_chars = false;") == 0) {
        is_str(enc(&u, "ab\xe4\xb8\xad\xe6\x96\x87" "ab"), "[CLS] [UNK] [SEP]",
               "tokenize_chinese_chars = false: one word");
        tok_close(&u);
    } else {
        skip(1, "tokenizer");
    }
}

static void test_case_and_accents(const char *vocab)
{
    tok t;
    if (tiny_open(&t, vocab, "") == 0) {
        is_str(enc(&t, "HeLLo WORLD"), "[CLS] hello world [SEP]", "lower-casing");
        is_str(enc(&t, "Caf\xc3\xa9"), "[CLS] cafe [SEP]", "accents stripped (precomposed é)");
        is_str(enc(&t, "Cafe\xcc\x81"), "[CLS] cafe [SEP]", "accents stripped (e + U+0301)");
        is_str(enc(&t, "\xc4\xb0"), "[CLS] i [SEP]", "İ: NFD then drop Mn then lower = i");
        is_str(enc(&t, "a\xe1\xbf\xaf" "b"), "[CLS] a ` b [SEP]",
               "U+1FEF (Sk) decomposes to '`', then splits as punctuation");
        tok_close(&t);
    } else {
        skip(5, "tokenizer");
    }
    if (tiny_open(&t, vocab, "strip_accents = false;") == 0) {
        is_str(enc(&t, "CAF\xc3\x89"), "[CLS] café [SEP]", "lowercase without accent stripping");
        is_str(enc(&t, "\xc4\xb0"), "[CLS] i ##\xcc\x87 [SEP]",
               "İ lower-cases to i + U+0307 (full case mapping)");
        tok_close(&t);
    } else {
        skip(2, "tokenizer");
    }
    if (tiny_open(&t, vocab, "lowercase = false;") == 0) {
        is_str(enc(&t, "Caf\xc3\xa9"), "[CLS] [UNK] [SEP]",
               "lowercase = false: strip_accents follows it (off)");
        tok_close(&t);
    } else {
        skip(1, "tokenizer");
    }
    if (tiny_open(&t, vocab, "lowercase = false; strip_accents = true;") == 0) {
        is_str(enc(&t, "Caf\xc3\xa9"), "[CLS] Cafe [SEP]", "accents stripped, case kept");
        tok_close(&t);
    } else {
        skip(1, "tokenizer");
    }
}

#define STEM "\xf0\x9d\x85\xa5" /* U+1D165, Mc, combining class 216 */
#define DOT "\xf0\x9d\x85\xad"  /* U+1D16D, Mc, combining class 226 */
#define STEM4 STEM STEM STEM STEM
#define DOT4 DOT DOT DOT DOT
#define DOT_STEM4 DOT STEM DOT STEM DOT STEM DOT STEM

/* NFD puts combining marks in canonical order (stable by class); marks of
 * class 0 (here U+0941, Mn) end a run even when they are then dropped. */
static void test_mark_order(void)
{
    const char *v[] = {"[UNK]", "[CLS]", "[SEP]", "a", "##" STEM DOT,
                       "##" STEM4 STEM4 STEM4 STEM4 STEM4 DOT4 DOT4 DOT4 DOT4 DOT4, NULL};
    char *path = write_vocab("marks.txt", v, "\n");
    tok t;
    if (tiny_open(&t, path, "") == 0) {
        is_str(enc(&t, "a" DOT STEM), "[CLS] a ##" STEM DOT " [SEP]",
               "spacing marks with classes 226, 216 are put in canonical order");
        is_str(enc(&t, "a" DOT "\xcc\x81" STEM), "[CLS] a ##" STEM DOT " [SEP]",
               "... also around a dropped nonspacing mark of class 230");
        is_str(enc(&t, "a" DOT "\xe0\xa5\x81" STEM), "[CLS] [UNK] [SEP]",
               "a dropped mark of class 0 still ends the run (no reordering across it)");
        is_str(enc(&t, "a" DOT_STEM4 DOT_STEM4 DOT_STEM4 DOT_STEM4 DOT_STEM4),
               "[CLS] a ##" STEM4 STEM4 STEM4 STEM4 STEM4 DOT4 DOT4 DOT4 DOT4 DOT4 " [SEP]",
               "a run of 40 marks is ordered stably");
        tok_close(&t);
    } else {
        skip(4, "tokenizer");
    }
    free(path);
}

static void test_punctuation(tok *t)
{
    is_str(enc(t, "hello,world!"), "[CLS] hello , world ! [SEP]", "punctuation splits words");
    is_str(words_of_last, "-1 0 0 0 0 -1", "split pieces keep their whitespace word's index");
    is_str(enc(t, "a$b^c`x+y"), "[CLS] a $ b ^ c ` x + y [SEP]",
           "ASCII symbols ($ ^ ` +) count as punctuation");
    is_str(enc(t, "a\xe2\x82\xac"), "[CLS] [UNK] [SEP]", "€ (Sc, not ASCII) is not punctuation");
    is_str(enc(t, "a\xc2\xbf" "b\xe2\x80\x94" "c"), "[CLS] a ¿ b — c [SEP]",
           "¿ (Po) and em dash (Pd) are punctuation");
}

static void test_wordpiece(tok *t)
{
    is_str(enc(t, "unaffable"), "[CLS] un ##aff ##able [SEP]", "greedy longest match with ##");
    is_str(enc(t, "abb"), "[CLS] ab ##b [SEP]", "longest first piece wins");
    is_str(enc(t, "unaffablex hello"), "[CLS] [UNK] hello [SEP]",
           "a word with an unmatched rest is one [UNK]");
    char a[256];
    memset(a, 'a', sizeof a);
    const char *ten = "aaaaaaaaaa ##aaaaaaaaaa ##aaaaaaaaaa ##aaaaaaaaaa ##aaaaaaaaaa "
                      "##aaaaaaaaaa ##aaaaaaaaaa ##aaaaaaaaaa ##aaaaaaaaaa ##aaaaaaaaaa";
    char want[512];
    snprintf(want, sizeof want, "[CLS] %s [SEP]", ten);
    is_str(enc_len(t, a, 100), want, "a word of 100 characters is cut into pieces");
    is_str(enc_len(t, a, 101), "[CLS] [UNK] [SEP]", "a word of 101 characters is [UNK]");
    char acc[128];
    memcpy(acc, a, 100);
    memcpy(acc + 100, "\xcc\x81", 2);
    is_str(enc_len(t, acc, 102), want, "characters are counted after accents are stripped");
    memcpy(acc, a, 100);
    memcpy(acc + 100, "\xe4\xb8\xad", 3);
    memcpy(acc + 103, a, 10);
    snprintf(want, sizeof want, "[CLS] %s 中 aaaaaaaaaa [SEP]", ten);
    is_str(enc_len(t, acc, 113), want, "a CJK ideograph ends a word before its length is counted");
    memcpy(acc + 100, ",", 1);
    memcpy(acc + 101, a, 10);
    snprintf(want, sizeof want, "[CLS] %s , aaaaaaaaaa [SEP]", ten);
    is_str(enc_len(t, acc, 111), want, "so does punctuation");
}

static void test_truncation(const char *vocab)
{
    tok t;
    if (tiny_open(&t, vocab, "max_len = 6;") == 0) {
        is(t.info.max_len, 6, "max_len setting");
        is_str(enc(&t, "a b a b a b a"), "[CLS] a b a b [SEP]", "pieces cut to max_len - 2");
        is_str(words_of_last, "-1 0 1 2 3 -1", "word indices of the kept pieces");
        is_str(enc(&t, "a b unaffable"), "[CLS] a b un ##aff [SEP]", "a word cut in the middle");
        is_str(enc(&t, "a b c unaffablex"), "[CLS] a b c [UNK] [SEP]",
               "a bad word at the limit is one [UNK]");
        is_str(enc_cap(&t, "a b a b a b a", 13, 4), "[CLS] a b [SEP]",
               "a smaller cap than max_len cuts at the cap");
        tok_close(&t);
    } else {
        skip(6, "tokenizer");
    }
    if (tiny_open(&t, vocab, "max_len = 2;") == 0) {
        is_str(enc(&t, "a b"), "[CLS] [SEP]", "max_len 2: no pieces");
        tok_close(&t);
    } else {
        skip(1, "tokenizer");
    }
    char *keys = vocab_keys(vocab, "max_len = 1;");
    char *model = path_in_tmp("empty_model");
    if (tok_open(&t, model, keys) == 0) {
        ok(0, "max_len 1 is refused");
    } else {
        like(err_get(), "tokenizer.max_len: 1 is out of range: must be in [2, 65536]", "max_len 1 is refused at validation: %s", err_get());
    }
    tok_close(&t);
    free(keys);
    free(model);
}

static void test_bytes(tok *t)
{
    is_str(enc(t, "hel\xfflo"), "[CLS] hello [SEP]", "invalid byte 0xFF: U+FFFD, dropped");
    is_str(enc(t, "hello \xf0world"), "[CLS] hello world [SEP]",
           "lone 0xF0 lead byte: dropped, the next byte decodes normally");
    is_str(enc(t, "hello\xe2\x82"), "[CLS] hello [SEP]", "truncated sequence at the end");
    is_str(enc(t, "a\xc0\xaf" "b"), "[CLS] ab [SEP]", "overlong '/' is invalid, not '/'");
    is_str(enc(t, "a\xed\xa0\x80" "b"), "[CLS] ab [SEP]", "UTF-8 surrogate is invalid");
    is_str(enc(t, "a\xf4\x90\x80\x80" "b"), "[CLS] ab [SEP]", "code point past U+10FFFF is invalid");
    is_str(enc(t, "a\x80\xbf" "b"), "[CLS] ab [SEP]", "stray continuation bytes are invalid");
    is_str(enc(t, "hello \xff world"), "[CLS] hello world [SEP]", "a word of invalid bytes only");
    is_str(words_of_last, "-1 0 2 -1", "... still counts as a word (no pieces)");
    is_str(enc(t, "\xf0\x9f\x98\x8d"), "[CLS] [UNK] [SEP]", "valid 4-byte emoji, not in vocab");
    is_str(enc_len(t, "hel\0lo", 6), "[CLS] hello [SEP]", "NUL inside a line is content, dropped");
    is_str(enc_len(t, "hello\0", 6), "[CLS] hello [SEP]", "NUL at the end");
    is_str(enc_len(t, "\0", 1), "[CLS] [SEP]", "a line of one NUL");
    is_str(enc_len(t, "", 0), "[CLS] [SEP]", "empty line");
    is_str(words_of_last, "-1 -1", "... [CLS] and [SEP] have word -1");
    is_str(enc(t, "  \t \xe3\x80\x80 \r"), "[CLS] [SEP]", "whitespace-only line");
    int32_t ids[8];
    int n = -1;
    ok(t->ops->encode(t->st->self, "a b", 3, ids, NULL, 8, &n) == 0 && n == 4,
       "word may be NULL");
}

static void test_specials(tok *t)
{
    is_str(enc(t, "[CLS]hello[SEP] [MASK]"), "[CLS] [CLS] hello [SEP] [MASK] [SEP]",
           "special tokens written in the text are matched literally");
    is_str(words_of_last, "-1 0 0 0 1 -1", "... and belong to their whitespace word");
    is_str(enc(t, "[cls] [CLS"), "[CLS] [ [UNK] ] [ [UNK] [SEP]",
           "lower-case or incomplete specials are text");
    is_str(enc(t, "Hello, unaffable! \xe4\xb8\xad\xe6\x96\x87 x"),
           "[CLS] hello , un ##aff ##able ! 中 文 x [SEP]", "word index example");
    is_str(words_of_last, "-1 0 0 1 1 1 1 2 2 3 -1", "word indices: all pieces of a whitespace word");
}

static void test_info_and_tokens(tok *t)
{
    int n = 0;
    while (tiny[n])
        n++;
    is(t->info.vocab_size, n, "vocab_size = lines of vocab.txt");
    ok(t->info.pad_id == 0 && t->info.unk_id == 1 && t->info.cls_id == 2 && t->info.sep_id == 3 &&
           t->info.mask_id == 4,
       "special ids from the vocabulary");
    is(t->info.max_len, 512, "max_len without setting or sentence_bert_config.json: 512");
    is_str(t->ops->token(t->st->self, 5), "hello", "token(5)");
    ok(t->ops->token(t->st->self, -1) == NULL && t->ops->token(t->st->self, n) == NULL,
       "token() out of range is NULL");
}

static void test_vocab_files(void)
{
    tok t;
    char buf[8192];
    size_t n = 0;
    for (int i = 0; tiny[i]; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", i ? "\r\n" : "", tiny[i]);
    char *crlf = write_tmp("crlf.txt", buf, n);
    if (tiny_open(&t, crlf, "") == 0) {
        is_str(enc(&t, "hello y"), "[CLS] hello y [SEP]", "\\r\\n vocabulary, last line without newline");
        tok_close(&t);
    } else {
        skip(1, "tokenizer");
    }
    free(crlf);

    const char *dup[] = {"[UNK]", "[CLS]", "[SEP]", "x", "x", NULL};
    char *dpath = write_vocab("dup.txt", dup, "\n");
    if (tiny_open(&t, dpath, "") == 0) {
        int32_t ids[8];
        int got = 0;
        t.ops->encode(t.st->self, "x", 1, ids, NULL, 8, &got);
        ok(got == 3 && ids[1] == 4, "a token listed twice maps to its last line");
        is(t.info.pad_id, 0, "no [PAD]: padding id 0");
        is(t.info.mask_id, -1, "no [MASK]: mask id -1");
        tok_close(&t);
    } else {
        skip(3, "tokenizer");
    }
    free(dpath);

    struct {
        const char *name, *content, *want;
    } bad[] = {
        {"missing.txt", NULL, "No such file"},
        {"empty.txt", "", "is empty"},
        {"no_unk.txt", "[CLS]\n[SEP]\nx\n", "no [UNK] token"},
        {"no_cls.txt", "[UNK]\n[SEP]\nx\n", "no [CLS] token"},
        {"no_sep.txt", "[UNK]\n[CLS]\nx\n", "no [SEP] token"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *p = bad[i].content ? write_tmp(bad[i].name, bad[i].content, strlen(bad[i].content))
                                 : path_in_tmp(bad[i].name);
        char *keys = vocab_keys(p, "");
        char *model = path_in_tmp("empty_model");
        int rc = tok_open(&t, model, keys);
        const char *e = err_get();
        ok(rc != 0 && strstr(e, p) && strstr(e, bad[i].want), "vocab %s: error names the file: %s",
           bad[i].name, e);
        tok_close(&t);
        free(keys);
        free(model);
        free(p);
    }
}

static void mkdir_tmp(const char *name)
{
    char *p = path_in_tmp(name);
    if (dir_make(p) != 0)
        diag("mkdir %s: %s", p, err_get());
    free(p);
}

static void test_model_folder(const char *vocab)
{
    tok t;
    mkdir_tmp("cased");
    const char *tc = "{\"do_lower_case\": false, \"strip_accents\": null}";
    free(write_tmp("cased/tokenizer_config.json", tc, strlen(tc)));
    const char *sb = "{\"max_seq_length\": 5, \"do_lower_case\": true}";
    free(write_tmp("cased/sentence_bert_config.json", sb, strlen(sb)));
    char *model = path_in_tmp("cased");
    char *keys = vocab_keys(vocab, "");
    if (tok_open(&t, model, keys) == 0) {
        is(t.info.max_len, 5, "max_len from sentence_bert_config.json max_seq_length");
        is_str(enc(&t, "Caf\xc3\xa9 hello"), "[CLS] [UNK] hello [SEP]",
               "do_lower_case false in tokenizer_config.json: no lowercasing, no stripping");
        tok_close(&t);
    } else {
        diag("%s", err_get());
        skip(2, "tokenizer");
    }
    free(keys);
    keys = vocab_keys(vocab, "lowercase = true; max_len = 7;");
    if (tok_open(&t, model, keys) == 0) {
        ok(t.info.max_len == 7 && strcmp(enc(&t, "Caf\xc3\xa9"), "[CLS] cafe [SEP]") == 0,
           "settings override the model folder");
        tok_close(&t);
    } else {
        skip(1, "tokenizer");
    }
    free(keys);
    free(model);

    mkdir_tmp("other_unk");
    const char *stm = "{\"unk_token\": {\"content\": \"<unk>\", \"lstrip\": false}}";
    free(write_tmp("other_unk/special_tokens_map.json", stm, strlen(stm)));
    model = path_in_tmp("other_unk");
    keys = vocab_keys(vocab, "");
    int rc = tok_open(&t, model, keys);
    ok(rc != 0 && strstr(err_get(), vocab) && strstr(err_get(), "<unk>"),
       "unk_token from special_tokens_map.json, missing from the vocabulary: %s", err_get());
    tok_close(&t);
    free(keys);
    free(model);

    mkdir_tmp("broken");
    free(write_tmp("broken/tokenizer_config.json", "{\"do_lower_case\": tru", 21));
    model = path_in_tmp("broken");
    keys = vocab_keys(vocab, "");
    rc = tok_open(&t, model, keys);
    ok(rc != 0 && strstr(err_get(), "broken/tokenizer_config.json:1"),
       "malformed JSON names the file and line: %s", err_get());
    tok_close(&t);
    free(keys);
    free(model);

    mkdir_tmp("badtype");
    free(write_tmp("badtype/tokenizer_config.json", "{\"do_lower_case\": 1}", 20));
    model = path_in_tmp("badtype");
    keys = vocab_keys(vocab, "");
    rc = tok_open(&t, model, keys);
    ok(rc != 0 && strstr(err_get(), "do_lower_case"), "a wrong JSON type names the key: %s",
       err_get());
    tok_close(&t);
    free(keys);
    free(model);

    model = path_in_tmp("no_such_model");
    rc = tok_open(&t, model, "");
    ok(rc != 0 && strstr(err_get(), "no_such_model/vocab.txt"),
       "default vocabulary <model>/vocab.txt, missing: %s", err_get());
    tok_close(&t);
    free(model);
}

static void test_batches(tok *t)
{
    const char *text[] = {"a", "a b a b a", "hello world", "", "unaffable b"};
    size_t len[5];
    for (int i = 0; i < 5; i++)
        len[i] = strlen(text[i]);
    encoded e;
    batch bt = {0};
    if (encode_texts(t->st, 5, text, len, &e) != 0) {
        diag("%s", err_get());
        skip(4, "encode_texts");
        return;
    }
    int *order = encoded_order(&e, 1);
    int seen[5] = {0}, pad_ok = 1, ids_ok = 1, sorted = 1, prev = 1 << 30;
    for (int at = 0; order && at < 5; at += 2) {
        int nb = 5 - at < 2 ? 5 - at : 2;
        if (batch_fill(&bt, &e, order + at, nb) != 0)
            break;
        for (int r = 0; r < nb; r++) {
            int s = bt.rows[r], l = bt.len[r];
            seen[s]++;
            if (l > prev)
                sorted = 0;
            prev = l;
            ids_ok &= l == (int)(e.off[s + 1] - e.off[s]) &&
                      memcmp(bt.ids + (size_t)r * bt.b.T, e.ids + e.off[s], (size_t)l * 4) == 0;
            for (int k = 0; k < bt.b.T; k++) {
                int in = k < l;
                pad_ok &= bt.mask[(size_t)r * bt.b.T + k] == in;
                if (!in)
                    pad_ok &= bt.ids[(size_t)r * bt.b.T + k] == e.info.pad_id &&
                              bt.word[(size_t)r * bt.b.T + k] == -1;
            }
        }
    }
    ok(sorted, "length-sorted batches: longest first");
    ok(seen[0] == 1 && seen[1] == 1 && seen[2] == 1 && seen[3] == 1 && seen[4] == 1,
       "every sentence in exactly one batch row, found again through rows[]");
    ok(ids_ok, "batch rows hold the sentence's ids");
    ok(pad_ok, "padding: pad id, mask 0, word -1; mask 1 on tokens");
    free(order);
    batch_free(&bt);
    encoded_free(&e);
}

/* Run the runner on an input file into a fresh folder; 0 on success. */
static int run_tokenize(const char *model, const char *input, const char *out)
{
    char *cmd = str_printf("%s/runner pipelines/tokenize.cfg --quiet --set model=%s "
                           "--set input=%s --out %s",
                           RUNNER_BUILD_DIR, model, input, out);
    int rc = cmd ? system(cmd) : -1;
    free(cmd);
    return rc;
}

static int read_all(const char *path, lines *L)
{
    if (lines_read(path, L) != 0) {
        diag("%s", err_get());
        return -1;
    }
    return 0;
}

static void test_runner_lines(const char *vocab)
{
    /* model folder = a copy of the tiny vocabulary */
    mkdir_tmp("runner_model");
    char *mv = path_in_tmp("runner_model/vocab.txt");
    char *link_target = realpath(vocab, NULL);
    if (!link_target || symlink(link_target, mv) != 0)
        diag("symlink %s", mv);
    free(link_target);
    free(mv);
    const char input[] = "hello\r\nhel\0lo world\r\n\r\nx \xff y\n\xf0" "ab";
    char *in = write_tmp("lines.txt", input, sizeof input - 1);
    char *model = path_in_tmp("runner_model"), *out = path_in_tmp("runner_out");
    int rc = run_tokenize(model, in, out);
    is(rc, 0, "runner tokenize on a file with \\r\\n, NUL, invalid bytes, no final newline");
    char *ids = str_printf("%s/ids.txt", out), *toks = str_printf("%s/tokens.txt", out);
    lines L = {0}, T = {0};
    if (rc == 0 && read_all(ids, &L) == 0 && read_all(toks, &T) == 0) {
        is(L.n, 5, "ids.txt: one line per input line, the last one without newline included");
        const char *want[] = {"2 5 3", "2 5 6 3", "2 3", "2 36 37 3", "2 17 3"};
        int same = L.n == 5;
        for (int i = 0; same && i < 5; i++)
            same = L.len[i] == strlen(want[i]) && memcmp(L.data + L.start[i], want[i], L.len[i]) == 0;
        ok(same, "ids.txt lines");
        ok(T.n == 5 && T.len[1] == strlen("[CLS] hello world [SEP]") &&
               memcmp(T.data + T.start[1], "[CLS] hello world [SEP]", T.len[1]) == 0,
           "tokens.txt holds the pieces");
    } else {
        skip(3, "runner output");
    }
    lines_free(&L);
    lines_free(&T);
    free(ids);
    free(toks);
    free(in);
    free(model);
    free(out);
}

static void test_reference(void)
{
    if (!path_exists(REF_DIR "/ids.txt") || !path_exists(MODEL_DIR "/vocab.txt")) {
        skip(3, "../shared/reference/tokenizer not found");
        return;
    }
    char *out = path_in_tmp("reference");
    int rc = run_tokenize(MODEL_DIR, REF_DIR "/sentences.txt", out);
    is(rc, 0, "runner pipelines/tokenize.cfg on the reference sentences");
    char *ids = str_printf("%s/ids.txt", out);
    lines got = {0}, want = {0};
    if (rc == 0 && read_all(ids, &got) == 0 && read_all(REF_DIR "/ids.txt", &want) == 0) {
        is(got.n, want.n, "ids.txt has as many lines as the reference (%d)", want.n);
        int first_diff = -1, n = got.n < want.n ? got.n : want.n;
        for (int i = 0; i < n && first_diff < 0; i++)
            if (got.len[i] != want.len[i] ||
                memcmp(got.data + got.start[i], want.data + want.start[i], got.len[i]) != 0)
                first_diff = i;
        ok(first_diff < 0, "ids.txt identical to Hugging Face's ids, line for line");
        if (first_diff >= 0)
            diag("first differing line %d:\n#   got  %.*s\n#   want %.*s", first_diff + 1,
                 (int)got.len[first_diff], got.data + got.start[first_diff],
                 (int)want.len[first_diff], want.data + want.start[first_diff]);
    } else {
        skip(2, "runner output");
    }
    lines_free(&got);
    lines_free(&want);
    free(ids);
    free(out);
}

int main(void)
{
    if (!mkdtemp(tmp)) { /* a setup that failed is a failure, never a skip */
        ok(0, "a temporary folder: %s", strerror(errno));
        return done_testing(1);
    }
    mkdir_tmp("empty_model");
    char *vocab = write_vocab("vocab.txt", tiny, "\n");
    tok t;
    if (tiny_open(&t, vocab, "") != 0) {
        ok(0, "tokenizer on the test vocabulary: %s", err_get());
        return done_testing(99);
    }
    test_info_and_tokens(&t);
    test_cleaning(&t);
    test_cjk(&t, vocab);
    test_punctuation(&t);
    test_wordpiece(&t);
    test_bytes(&t);
    test_specials(&t);
    test_batches(&t);
    tok_close(&t);
    test_case_and_accents(vocab);
    test_mark_order();
    test_truncation(vocab);
    test_vocab_files();
    test_model_folder(vocab);
    test_runner_lines(vocab);
    test_reference();
    free(vocab);
    char *rm = str_printf("rm -rf '%s'", tmp);
    if (rm && system(rm) != 0)
        diag("could not remove %s", tmp);
    free(rm);
    return done_testing(99);
}
