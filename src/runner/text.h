/* text.h — sentences as bytes: files of one sentence per line, their
 * token ids, and padded batches in length order (outputs keep input
 * order: batch rows carry their sentence index). */
#ifndef TEXT_H
#define TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "pipeline.h"
#include "runner/runner.h"

/* Lines of a file: '\n' ends a line, a '\r' before it is dropped, a last
 * line without '\n' counts, NUL bytes are content. */
typedef struct lines {
    char *data;
    size_t *start, *len;
    int n;
} lines;

/* path "-" reads stdin. */
int lines_read(const char *path, lines *out);
void lines_free(lines *L);

/* Token ids of n sentences, flat: sentence i is ids[off[i] .. off[i+1]). */
typedef struct encoded {
    int n;
    int64_t *off;
    int32_t *ids, *word;
    runner_tokenizer_info info;
} encoded;

/* Encode n texts with a tokenizer stage. */
int encode_texts(stage *tok, int n, const char *const *text, const size_t *len, encoded *out);
int encode_lines(stage *tok, const lines *L, encoded *out);
void encoded_free(encoded *e);
/* Visit order: longest first when sort (stable, as sentence-transformers). */
int *encoded_order(const encoded *e, int sort);

/* One padded batch, reused across calls (no allocation once grown). */
typedef struct batch {
    runner_batch b;
    int32_t *ids, *type_ids, *word;
    uint8_t *mask;
    int *len, *rows; /* rows[i]: index of the sentence in batch row i */
    size_t cap_tokens;
    int cap_rows;
} batch;

/* Fill batch from sentences rows[0..n) of e, padded to the longest. */
int batch_fill(batch *bt, const encoded *e, const int *rows, int n);
void batch_free(batch *bt);

#endif
