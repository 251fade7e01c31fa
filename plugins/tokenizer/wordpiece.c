/* wordpiece.c — tokenizer/wordpiece: BERT's uncased WordPiece tokenizer,
 * id for id what Hugging Face's BertTokenizerFast (the model folder's
 * tokenizer.json) produces; docs/tokenizer.md lists every step.
 *
 * Input is bytes: UTF-8 is decoded here (a byte that does not start a valid
 * sequence becomes U+FFFD, which cleaning drops), NUL bytes are content.
 * Per sentence: special tokens written literally ("[CLS]") are matched on
 * the raw text; the rest is cleaned (NUL, U+FFFD and C* dropped, whitespace
 * to a space), CJK ideographs become words of their own, each segment is
 * NFD-decomposed with Mn marks dropped (strip_accents), lower-cased, split
 * on punctuation, and every word is cut greedily into the longest pieces of
 * the vocabulary (a hash table; no allocation per token). Unicode
 * properties come from utf8proc.
 *
 * One encode() at a time per instance: it works in the instance's scratch
 * buffers, which grow to the longest segment seen. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <utf8proc.h>

#include "runner/runner.h"

enum { MAX_WORD_CHARS = 100 }; /* longer words become [UNK], as in BERT */
enum { MAX_LEN_LIMIT = 1 << 20 };
enum { SP_UNK, SP_CLS, SP_SEP, SP_PAD, SP_MASK, N_SPECIAL };

static const char *const special_key[N_SPECIAL] = {"unk_token", "cls_token", "sep_token",
                                                   "pad_token", "mask_token"};
static const char *const special_default[N_SPECIAL] = {"[UNK]", "[CLS]", "[SEP]", "[PAD]",
                                                       "[MASK]"};

/* What cleaning does with a code point. */
enum { C_KEEP = 0, C_DROP, C_SPACE };

#define FNV_BASIS 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

typedef struct vocab {
    char *text;         /* the file, each token NUL-terminated */
    uint32_t *start;    /* (n) offset of token id in text */
    uint32_t *len;      /* (n) its bytes */
    struct slot {
        uint32_t tag; /* high bits of the token's hash */
        int32_t id;   /* token id, -1: empty */
    } *slot;          /* (mask + 1) open addressing, linear probing */
    uint64_t mask;
    int n;
    int max_chars;      /* longest token, in code points */
    int max_cont_chars; /* longest "##" token without the "##" */
    uint64_t cont_basis; /* hash state after "##" */
} vocab;

typedef struct wordpiece {
    const runner_host *h;
    vocab v;
    char *vocab_path;
    int lowercase, strip_accents, chinese, max_len;
    char *special[N_SPECIAL]; /* token text */
    int32_t special_id[N_SPECIAL];
    int match[N_SPECIAL]; /* specials matched in the text (in the vocabulary) */
    int n_match;
    uint8_t special_first[256]; /* bytes that start one of them */
    uint8_t ascii_class[128], ascii_punct[128], ascii_lower[128];

    /* scratch, grown on demand */
    int32_t *seg, *nfd, *norm, *tmp; /* cleaned segment, its NFD, normalised */
    size_t seg_n, seg_cap, nfd_cap, norm_cap, tmp_cap;
    int seg_ascii;
    unsigned char bytes[MAX_WORD_CHARS * 4 + 4];
    uint32_t char_at[MAX_WORD_CHARS + 1];
    uint64_t prefix_hash[MAX_WORD_CHARS + 1];

    /* the sentence being encoded */
    int32_t *ids, *word;
    int n, limit, word_index;
} wordpiece;

static const runner_key wordpiece_keys[] = {
    {"vocab", RUNNER_T_STRING, NULL, "vocab.txt, one token per line (default: <model>/vocab.txt)"},
    {"lowercase", RUNNER_T_BOOL, NULL,
     "lower-case the text (default: tokenizer_config.json do_lower_case, else true)"},
    {"strip_accents", RUNNER_T_BOOL, NULL,
     "NFD and drop nonspacing marks (default: tokenizer_config.json strip_accents; null or "
     "absent follows lowercase)"},
    {"tokenize_chinese_chars", RUNNER_T_BOOL, NULL,
     "CJK ideographs become words of their own (default: tokenizer_config.json, else true)"},
    {"max_len", RUNNER_T_INT, NULL,
     "tokens per sentence with [CLS] and [SEP] (default: sentence_bert_config.json "
     "max_seq_length, else 512)", "[2, 65536]"},
    {0},
};

/* ---- Unicode classes (utf8proc) ------------------------------------------ */

/* Cleaning: tab, LF, CR and separators (Zs, Zl, Zp) become a space; NUL,
 * U+FFFD, controls (Cc), format (Cf) and private-use (Co) characters go. */

static int char_class(int32_t cp)
{
    if (cp == '\t' || cp == '\n' || cp == '\r')
        return C_SPACE;
    if (cp == 0 || cp == 0xFFFD)
        return C_DROP;
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CO: return C_DROP; /* not Cn: the fast tokenizer keeps those */
    case UTF8PROC_CATEGORY_ZS:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP: return C_SPACE;
    default: return C_KEEP;
    }
}

/* BERT's punctuation: the ASCII symbol ranges, and every P* category. */
static int is_punct(int32_t cp)
{
    if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
        (cp >= 123 && cp <= 126))
        return 1;
    utf8proc_category_t c = utf8proc_category(cp);
    return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

/* BERT's "Chinese characters": CJK Unified Ideographs, their extensions and
 * compatibility forms. The ranges of the fast tokenizer's BertNormalizer,
 * which starts extension E at U+2B920 where BertTokenizer has U+2B820. */
static int is_cjk(int32_t cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
           (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

static int ccc(int32_t cp) { return cp < 0x300 ? 0 : utf8proc_get_property(cp)->combining_class; }

/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF). A
 * byte that does not start a valid sequence decodes to U+FFFD and decoding
 * resumes at the next byte. */
static int32_t utf8_next(const unsigned char *s, size_t n, size_t *at)
{
    size_t i = *at, left = n - i;
    unsigned c = s[i];
    if (c >= 0xC2 && c <= 0xDF) {
        if (left >= 2 && (s[i + 1] & 0xC0) == 0x80) {
            *at = i + 2;
            return (int32_t)(((c & 0x1F) << 6) | (s[i + 1] & 0x3F));
        }
    } else if (c >= 0xE0 && c <= 0xEF) {
        unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        if (left >= 3 && s[i + 1] >= lo && s[i + 1] <= hi && (s[i + 2] & 0xC0) == 0x80) {
            *at = i + 3;
            return (int32_t)(((c & 0x0F) << 12) | ((s[i + 1] & 0x3Fu) << 6) | (s[i + 2] & 0x3F));
        }
    } else if (c >= 0xF0 && c <= 0xF4) {
        unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        if (left >= 4 && s[i + 1] >= lo && s[i + 1] <= hi && (s[i + 2] & 0xC0) == 0x80 &&
            (s[i + 3] & 0xC0) == 0x80) {
            *at = i + 4;
            return (int32_t)(((c & 0x07) << 18) | ((s[i + 1] & 0x3Fu) << 12) |
                             ((s[i + 2] & 0x3Fu) << 6) | (s[i + 3] & 0x3F));
        }
    }
    *at = i + 1;
    return 0xFFFD;
}

static size_t utf8_put(int32_t cp, unsigned char *out)
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- vocabulary ------------------------------------------------------------ */

static uint64_t fnv(uint64_t h, const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * FNV_PRIME;
    return h;
}

static uint64_t slot_of(uint64_t h) { return h ^ (h >> 29); }

/* Token id of the bytes s[0..n) (prefixed with "##" when cont), or -1. */
static int32_t vocab_find(const vocab *v, uint64_t h, const unsigned char *s, size_t n, int cont)
{
    uint32_t tag = (uint32_t)(h >> 32);
    size_t want = n + (cont ? 2 : 0);
    for (uint64_t i = slot_of(h) & v->mask;; i = (i + 1) & v->mask) {
        struct slot e = v->slot[i];
        if (e.id < 0)
            return -1;
        if (e.tag != tag || v->len[e.id] != want)
            continue;
        int32_t id = e.id;
        const char *t = v->text + v->start[id];
        if (cont && (t[0] != '#' || t[1] != '#'))
            continue;
        t += cont ? 2 : 0;
        size_t k = 0;
        while (k < n && t[k] == (char)s[k]) /* short keys: cheaper than a memcmp call */
            k++;
        if (k == n)
            return id;
    }
}

static void vocab_free(vocab *v)
{
    free(v->text);
    free(v->start);
    free(v->len);
    free(v->slot);
    memset(v, 0, sizeof *v);
}

static int chars_of(const char *s, size_t n)
{
    int c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

/* vocab.txt: token i on line i ('\n' or "\r\n" ends a line; a last line
 * without one counts). A token listed twice maps to its last line, as a
 * Python dict built from the file does. */
static int vocab_load(const runner_host *h, const char *path, vocab *v)
{
    FILE *f = fopen(path, "rb");
    size_t size = 0, cap = 0;
    memset(v, 0, sizeof *v);
    if (!f)
        return h->error(h, "vocabulary %s: %s", path, strerror(errno));
    for (;;) {
        if (size + 65536 + 1 > cap) {
            cap = 2 * cap + 65536 + 1;
            char *t = realloc(v->text, cap);
            if (!t) {
                fclose(f);
                vocab_free(v);
                return h->error(h, "vocabulary %s: out of memory", path);
            }
            v->text = t;
        }
        size_t got = fread(v->text + size, 1, cap - size - 1, f);
        size += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad)
        goto read_error;
    if (size == 0) {
        vocab_free(v);
        return h->error(h, "vocabulary %s is empty", path);
    }
    v->text[size] = '\n';
    size_t lines = 0;
    for (size_t i = 0; i < size; i++)
        lines += v->text[i] == '\n';
    lines += v->text[size - 1] != '\n';
    if (lines >= INT32_MAX / 2 || size >= UINT32_MAX)
        goto too_big;
    v->n = (int)lines;
    uint64_t slots = 16;
    while (slots < 4 * lines) /* load <= 1/4: misses end in one or two probes */
        slots *= 2;
    v->mask = slots - 1;
    v->start = malloc(lines * sizeof *v->start);
    v->len = malloc(lines * sizeof *v->len);
    v->slot = malloc(slots * sizeof *v->slot);
    if (!v->start || !v->len || !v->slot)
        goto oom;
    memset(v->slot, 0xff, slots * sizeof *v->slot);
    v->cont_basis = fnv(FNV_BASIS, (const unsigned char *)"##", 2);
    size_t at = 0;
    for (int id = 0; id < v->n; id++) {
        char *nl = memchr(v->text + at, '\n', size + 1 - at);
        size_t len = (size_t)(nl - (v->text + at));
        if (len && v->text[at + len - 1] == '\r')
            len--;
        v->text[at + len] = 0;
        v->start[id] = (uint32_t)at;
        v->len[id] = (uint32_t)len;
        const char *t = v->text + at;
        int chars = chars_of(t, len);
        if (chars > v->max_chars)
            v->max_chars = chars;
        if (len > 2 && t[0] == '#' && t[1] == '#' && chars - 2 > v->max_cont_chars)
            v->max_cont_chars = chars - 2;
        uint64_t hash = fnv(FNV_BASIS, (const unsigned char *)t, len);
        uint64_t i = slot_of(hash) & v->mask;
        for (;; i = (i + 1) & v->mask) {
            int32_t other = v->slot[i].id;
            if (other < 0 || (v->len[other] == len && memcmp(v->text + v->start[other], t, len) == 0))
                break;
        }
        v->slot[i] = (struct slot){(uint32_t)(hash >> 32), id};
        at = (size_t)(nl - v->text) + 1;
    }
    if (v->max_chars > MAX_WORD_CHARS)
        v->max_chars = MAX_WORD_CHARS;
    if (v->max_cont_chars > MAX_WORD_CHARS)
        v->max_cont_chars = MAX_WORD_CHARS;
    return 0;
read_error:
    vocab_free(v);
    return h->error(h, "vocabulary %s: read error", path);
too_big:
    vocab_free(v);
    return h->error(h, "vocabulary %s: too large (%zu bytes)", path, size);
oom:
    vocab_free(v);
    return h->error(h, "vocabulary %s: out of memory", path);
}

static int32_t vocab_id(const vocab *v, const char *token)
{
    size_t n = strlen(token);
    return vocab_find(v, fnv(FNV_BASIS, (const unsigned char *)token, n),
                      (const unsigned char *)token, n, 0);
}

/* ---- encoding ---------------------------------------------------------------- */

static int grow(const runner_host *h, int32_t **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    int32_t *b = realloc(*buf, c * sizeof *b);
    if (!b)
        return h->error(h, "out of memory for a segment of %zu code points", need);
    *buf = b;
    *cap = c;
    return 0;
}

static void push(wordpiece *wp, int32_t id)
{
    if (wp->n < wp->limit) {
        wp->ids[wp->n] = id;
        if (wp->word)
            wp->word[wp->n] = wp->word_index;
    }
    wp->n++;
}

/* Greedy longest-match WordPiece of one word of m code points. */
static void wordpiece_word(wordpiece *wp, const int32_t *w, int m)
{
    const vocab *v = &wp->v;
    if (m > MAX_WORD_CHARS) {
        push(wp, wp->special_id[SP_UNK]);
        return;
    }
    uint32_t at = 0;
    for (int k = 0; k < m; k++) {
        wp->char_at[k] = at;
        at += (uint32_t)utf8_put(w[k], wp->bytes + at);
    }
    wp->char_at[m] = at;
    int first = wp->n;
    for (int start = 0; start < m;) {
        int cont = start > 0;
        int end = m - start < (cont ? v->max_cont_chars : v->max_chars)
                      ? m
                      : start + (cont ? v->max_cont_chars : v->max_chars);
        uint64_t hash = cont ? v->cont_basis : FNV_BASIS;
        for (int k = start; k < end; k++)
            wp->prefix_hash[k + 1 - start] = hash =
                fnv(hash, wp->bytes + wp->char_at[k], wp->char_at[k + 1] - wp->char_at[k]);
        int32_t id = -1;
        for (; end > start; end--) {
            id = vocab_find(v, wp->prefix_hash[end - start], wp->bytes + wp->char_at[start],
                            wp->char_at[end] - wp->char_at[start], cont);
            if (id >= 0)
                break;
        }
        if (id < 0) {
            wp->n = first;
            push(wp, wp->special_id[SP_UNK]);
            return;
        }
        push(wp, id);
        start = end;
    }
}

/* Canonical order of a run of combining marks: stable by combining class
 * (insertion for short runs, counting sort for long ones: linear time on
 * any input). */
static int order_marks(wordpiece *wp, int32_t *a, size_t n)
{
    if (n <= 16) {
        for (size_t i = 1; i < n; i++) {
            int32_t cp = a[i];
            int c = ccc(cp);
            size_t at = i;
            while (at > 0 && ccc(a[at - 1]) > c) {
                a[at] = a[at - 1];
                at--;
            }
            a[at] = cp;
        }
        return 0;
    }
    if (grow(wp->h, &wp->tmp, &wp->tmp_cap, n) != 0)
        return -1;
    size_t count[257] = {0};
    for (size_t i = 0; i < n; i++)
        count[ccc(a[i]) + 1]++;
    for (int c = 1; c < 257; c++)
        count[c] += count[c - 1];
    for (size_t i = 0; i < n; i++)
        wp->tmp[count[ccc(a[i])]++] = a[i];
    memcpy(a, wp->tmp, n * sizeof *a);
    return 0;
}

/* NFD of seg into nfd without nonspacing marks (Mn), when accents are
 * stripped. Dropping the marks before ordering the rest is the same as
 * after: a stable order restricted to what is kept; a mark of class 0
 * still ends its run. */
static int segment_nfd(wordpiece *wp, size_t *n_out)
{
    size_t n = 0, run = 0; /* run: start of the current run of class > 0 */
    for (size_t i = 0; i < wp->seg_n; i++) {
        int32_t cp = wp->seg[i], d[32];
        int boundclass = 0;
        utf8proc_ssize_t k = 1;
        d[0] = cp;
        if (cp >= 0xC0) {
            k = utf8proc_decompose_char(cp, d, 32, UTF8PROC_DECOMPOSE, &boundclass);
            if (k < 1 || k > 32) {
                d[0] = cp;
                k = 1;
            }
        }
        if (grow(wp->h, &wp->nfd, &wp->nfd_cap, n + (size_t)k) != 0)
            return -1;
        for (utf8proc_ssize_t j = 0; j < k; j++) {
            int c = ccc(d[j]);
            if (c == 0) {
                if (order_marks(wp, wp->nfd + run, n - run) != 0)
                    return -1;
                run = n;
            }
            if (d[j] >= 0x300 && utf8proc_category(d[j]) == UTF8PROC_CATEGORY_MN)
                continue;
            wp->nfd[n++] = d[j];
            if (c == 0)
                run = n;
        }
    }
    *n_out = n;
    return order_marks(wp, wp->nfd + run, n - run);
}

/* Normalise the pending segment (accents, case), split it on punctuation
 * and cut every word into pieces. */
static int flush_segment(wordpiece *wp)
{
    if (wp->seg_n == 0)
        return 0;
    const int32_t *src = wp->seg;
    size_t n = wp->seg_n;
    const int32_t *norm = src;
    if (wp->seg_ascii) {
        if (wp->lowercase) {
            if (n > wp->norm_cap && grow(wp->h, &wp->norm, &wp->norm_cap, n) != 0)
                return -1;
            for (size_t i = 0; i < n; i++)
                wp->norm[i] = wp->ascii_lower[src[i]];
            norm = wp->norm;
        }
    } else if (wp->strip_accents || wp->lowercase) {
        if (wp->strip_accents) {
            if (segment_nfd(wp, &n) != 0)
                return -1;
            src = wp->nfd;
        }
        if (grow(wp->h, &wp->norm, &wp->norm_cap, 2 * n) != 0)
            return -1;
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            int32_t cp = src[i];
            if (wp->lowercase) {
                if (cp == 0x130) { /* the one unconditional multi-character lower case */
                    wp->norm[m++] = 'i';
                    cp = 0x307;
                } else {
                    cp = utf8proc_tolower(cp);
                }
            }
            wp->norm[m++] = cp;
        }
        n = m;
        norm = wp->norm;
    }
    wp->seg_n = 0;
    wp->seg_ascii = 1;
    size_t a = 0;
    for (size_t k = 0; k < n && wp->n < wp->limit; k++) {
        int32_t cp = norm[k];
        if (cp < 128 ? !wp->ascii_punct[cp] : !is_punct(cp))
            continue;
        if (k > a)
            wordpiece_word(wp, norm + a, (int)(k - a));
        if (wp->n < wp->limit)
            wordpiece_word(wp, norm + k, 1);
        a = k + 1;
    }
    if (n > a && wp->n < wp->limit)
        wordpiece_word(wp, norm + a, (int)(n - a));
    return 0;
}

static int append(wordpiece *wp, int32_t cp)
{
    if (wp->seg_n == wp->seg_cap && grow(wp->h, &wp->seg, &wp->seg_cap, wp->seg_n + 1) != 0)
        return -1;
    wp->seg[wp->seg_n++] = cp;
    if (cp >= 0x80)
        wp->seg_ascii = 0;
    return 0;
}

/* A special token written literally at s[0..left), or -1. */
static int special_at(const wordpiece *wp, const char *s, size_t left, size_t *len)
{
    int best = -1;
    size_t best_len = 0;
    for (int j = 0; j < wp->n_match; j++) {
        int k = wp->match[j];
        size_t l = strlen(wp->special[k]);
        if (l <= left && l > best_len && memcmp(s, wp->special[k], l) == 0) {
            best = k;
            best_len = l;
        }
    }
    *len = best_len;
    return best;
}

static int wordpiece_encode(void *self, const char *text, size_t len, int32_t *ids, int32_t *word,
                            int cap, int *n_out)
{
    wordpiece *wp = self;
    const unsigned char *s = (const unsigned char *)text;
    int max_len = wp->max_len < cap ? wp->max_len : cap;
    if (max_len < 2)
        return wp->h->error(wp->h, "encode: room for %d tokens, [CLS] and [SEP] need 2", cap);
    wp->ids = ids;
    wp->word = word;
    wp->limit = max_len - 1; /* pieces go to ids[1 .. max_len - 2] */
    wp->n = 0;
    wp->word_index = -1;
    wp->seg_n = 0;
    wp->seg_ascii = 1;
    push(wp, wp->special_id[SP_CLS]);
    if (word)
        word[0] = -1;
    int in_word = 0;
    size_t i = 0;
    while (i < len && wp->n < wp->limit) {
        unsigned c = s[i];
        int32_t cp;
        int cls;
        if (wp->special_first[c]) {
            size_t l;
            int k = special_at(wp, text + i, len - i, &l);
            if (k >= 0) {
                if (flush_segment(wp) != 0)
                    return -1;
                if (!in_word) {
                    wp->word_index++;
                    in_word = 1;
                }
                push(wp, wp->special_id[k]);
                i += l;
                continue;
            }
        }
        if (c < 0x80) {
            cp = (int32_t)c;
            cls = wp->ascii_class[c];
            i++;
        } else {
            cp = utf8_next(s, len, &i);
            cls = char_class(cp);
        }
        if (cls == C_SPACE) {
            if (flush_segment(wp) != 0)
                return -1;
            in_word = 0;
            continue;
        }
        if (!in_word) {
            wp->word_index++;
            in_word = 1;
        }
        if (cls == C_DROP)
            continue;
        if (wp->chinese && cp >= 0x3400 && is_cjk(cp)) {
            if (flush_segment(wp) != 0 || append(wp, cp) != 0 || flush_segment(wp) != 0)
                return -1;
            continue;
        }
        if (append(wp, cp) != 0)
            return -1;
    }
    if (wp->n < wp->limit && flush_segment(wp) != 0)
        return -1;
    if (wp->n > wp->limit)
        wp->n = wp->limit;
    wp->word_index = -1;
    wp->limit++;
    push(wp, wp->special_id[SP_SEP]);
    *n_out = wp->n;
    return 0;
}

static const char *wordpiece_token(void *self, int32_t id)
{
    const wordpiece *wp = self;
    return id >= 0 && id < wp->v.n ? wp->v.text + wp->v.start[id] : NULL;
}

static void wordpiece_info(void *self, runner_tokenizer_info *out)
{
    const wordpiece *wp = self;
    out->vocab_size = wp->v.n;
    out->max_len = wp->max_len;
    out->pad_id = wp->special_id[SP_PAD] >= 0 ? wp->special_id[SP_PAD] : 0;
    out->unk_id = wp->special_id[SP_UNK];
    out->cls_id = wp->special_id[SP_CLS];
    out->sep_id = wp->special_id[SP_SEP];
    out->mask_id = wp->special_id[SP_MASK];
}

/* ---- the model folder's JSON files ------------------------------------------- */

static char *path_join(const char *dir, const char *file)
{
    size_t a = strlen(dir), b = strlen(file);
    char *p = malloc(a + b + 2);
    if (p)
        snprintf(p, a + b + 2, "%s%s%s", dir, a && dir[a - 1] != '/' ? "/" : "", file);
    return p;
}

/* The JSON object in dir/file; *out = NULL when the file does not exist. */
static int json_read(const runner_host *h, const char *dir, const char *file, json_t **out)
{
    *out = NULL;
    if (!dir)
        return 0;
    char *path = path_join(dir, file);
    if (!path)
        return h->error(h, "out of memory");
    int rc = 0;
    if (access(path, F_OK) == 0) {
        json_error_t e;
        *out = json_load_file(path, 0, &e);
        if (!*out)
            rc = h->error(h, "%s:%d: %s", path, e.line, e.text);
        else if (!json_is_object(*out))
            rc = h->error(h, "%s: expected a JSON object", path);
    }
    if (rc != 0) {
        json_decref(*out);
        *out = NULL;
    }
    free(path);
    return rc;
}

/* A boolean member: 0 found, 1 absent or null, -1 wrong type. */
static int json_bool(const runner_host *h, json_t *o, const char *dir, const char *file,
                     const char *key, int *out)
{
    json_t *m = o ? json_object_get(o, key) : NULL;
    if (!m || json_is_null(m))
        return 1;
    if (!json_is_boolean(m))
        return h->error(h, "%s/%s: %s is not true, false or null", dir, file, key);
    *out = json_is_true(m);
    return 0;
}

/* Special token names: tokenizer_config.json, overridden by
 * special_tokens_map.json; a value is "[UNK]" or {"content": "[UNK]", ...}. */
static int read_specials(wordpiece *wp, json_t *o, const char *dir, const char *file)
{
    const runner_host *h = wp->h;
    for (int k = 0; o && k < N_SPECIAL; k++) {
        json_t *m = json_object_get(o, special_key[k]);
        if (!m || json_is_null(m))
            continue;
        if (json_is_object(m))
            m = json_object_get(m, "content");
        if (!json_is_string(m))
            return h->error(h, "%s/%s: %s is not a string or {\"content\": string}", dir, file,
                            special_key[k]);
        char *s = strdup(json_string_value(m));
        if (!s)
            return h->error(h, "out of memory");
        free(wp->special[k]);
        wp->special[k] = s;
    }
    return 0;
}

static void wordpiece_destroy(void *self)
{
    wordpiece *wp = self;
    if (!wp)
        return;
    vocab_free(&wp->v);
    free(wp->vocab_path);
    for (int k = 0; k < N_SPECIAL; k++)
        free(wp->special[k]);
    free(wp->seg);
    free(wp->nfd);
    free(wp->norm);
    free(wp->tmp);
    free(wp);
}

/* Settings, then the model folder's files, then BERT's defaults. */
static int resolve_settings(wordpiece *wp, const runner_cfg *cfg, const char *model)
{
    const runner_host *h = wp->h;
    json_t *tc = NULL, *stm = NULL, *sbc = NULL;
    int rc = -1, lowercase = 1, strip = -1, chinese = 1, r;
    long long max_len = 512;
    const char *vocab_set = NULL;

    if (json_read(h, model, "tokenizer_config.json", &tc) != 0 ||
        json_read(h, model, "special_tokens_map.json", &stm) != 0 ||
        json_read(h, model, "sentence_bert_config.json", &sbc) != 0)
        goto done;
    if (json_bool(h, tc, model, "tokenizer_config.json", "do_lower_case", &lowercase) < 0 ||
        json_bool(h, tc, model, "tokenizer_config.json", "strip_accents", &strip) < 0 ||
        json_bool(h, tc, model, "tokenizer_config.json", "tokenize_chinese_chars", &chinese) < 0)
        goto done;
    int basic = 1;
    if (json_bool(h, tc, model, "tokenizer_config.json", "do_basic_tokenize", &basic) < 0)
        goto done;
    if (!basic) {
        h->error(h, "%s/tokenizer_config.json: do_basic_tokenize false is not supported", model);
        goto done;
    }
    json_t *msl = sbc ? json_object_get(sbc, "max_seq_length") : NULL;
    if (msl && !json_is_null(msl)) {
        if (!json_is_integer(msl)) {
            h->error(h, "%s/sentence_bert_config.json: max_seq_length is not an integer", model);
            goto done;
        }
        max_len = json_integer_value(msl);
    }
    for (int k = 0; k < N_SPECIAL; k++)
        if (!(wp->special[k] = strdup(special_default[k]))) {
            h->error(h, "out of memory");
            goto done;
        }
    if (read_specials(wp, tc, model, "tokenizer_config.json") != 0 ||
        read_specials(wp, stm, model, "special_tokens_map.json") != 0)
        goto done;

    if ((r = h->cfg_bool(cfg, "lowercase", &lowercase)) < 0 ||
        (r = h->cfg_bool(cfg, "strip_accents", &strip)) < 0 ||
        (r = h->cfg_bool(cfg, "tokenize_chinese_chars", &chinese)) < 0 ||
        (r = h->cfg_int(cfg, "max_len", &max_len)) < 0 ||
        (r = h->cfg_string(cfg, "vocab", &vocab_set)) < 0)
        goto done;
    if (max_len < 2 || max_len > MAX_LEN_LIMIT) {
        h->error(h, "max_len %lld: expected 2 to %d ([CLS] and [SEP] included)", max_len,
                 MAX_LEN_LIMIT);
        goto done;
    }
    if (!vocab_set && !model) {
        h->error(h, "no vocabulary: set `vocab` or the pipeline's `model` folder");
        goto done;
    }
    wp->vocab_path = vocab_set ? strdup(vocab_set) : path_join(model, "vocab.txt");
    if (!wp->vocab_path) {
        h->error(h, "out of memory");
        goto done;
    }
    wp->lowercase = lowercase;
    wp->strip_accents = strip < 0 ? lowercase : strip;
    wp->chinese = chinese;
    wp->max_len = (int)max_len;
    rc = 0;
done:
    json_decref(tc);
    json_decref(stm);
    json_decref(sbc);
    return rc;
}

static int wordpiece_create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    wordpiece *wp = calloc(1, sizeof *wp);
    if (!wp)
        return h->error(h, "out of memory");
    wp->h = h;
    if (resolve_settings(wp, cfg, h->pipeline_string(h, "model")) != 0 ||
        vocab_load(h, wp->vocab_path, &wp->v) != 0)
        goto fail;
    for (int k = 0; k < N_SPECIAL; k++) {
        wp->special_id[k] = vocab_id(&wp->v, wp->special[k]);
        if (wp->special_id[k] < 0 && k <= SP_SEP) {
            h->error(h, "vocabulary %s has no %s token (the %s)", wp->vocab_path, wp->special[k],
                     special_key[k]);
            goto fail;
        }
        if (wp->special_id[k] >= 0 && wp->special[k][0]) {
            wp->match[wp->n_match++] = k;
            wp->special_first[(unsigned char)wp->special[k][0]] = 1;
        }
    }
    for (int c = 0; c < 128; c++) {
        wp->ascii_class[c] = (uint8_t)char_class(c);
        wp->ascii_punct[c] = (uint8_t)is_punct(c);
        wp->ascii_lower[c] = (uint8_t)utf8proc_tolower(c);
    }
    wp->seg_ascii = 1;
    h->log(h, RUNNER_LOG_INFO,
           "%s: %d tokens; lowercase %d, strip_accents %d, tokenize_chinese_chars %d, max_len %d "
           "(Unicode %s)",
           wp->vocab_path, wp->v.n, wp->lowercase, wp->strip_accents, wp->chinese, wp->max_len,
           utf8proc_unicode_version());
    *self = wp;
    return 0;
fail:
    wordpiece_destroy(wp);
    return -1;
}

static const runner_tokenizer_ops wordpiece_ops = {
    .encode = wordpiece_encode,
    .token = wordpiece_token,
    .info = wordpiece_info,
};

RUNNER_DEFINE_PLUGIN(tokenizer, wordpiece,
    "BERT WordPiece, id for id as Hugging Face's BertTokenizerFast",
    wordpiece_keys, wordpiece_create, wordpiece_destroy, &wordpiece_ops)
