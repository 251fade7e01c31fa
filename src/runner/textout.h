/* textout.h — text fields for tools: RFC 4180 CSV fields and JSON strings
 * (valid UTF-8 always: an invalid byte becomes U+FFFD), and the
 * `output` settings (output.format: csv | jsonl files; output.stdout:
 * text | jsonl, what goes to stdout; --jsonl sets the latter). */
#ifndef TEXTOUT_H
#define TEXTOUT_H

#include <stddef.h>
#include <stdio.h>

#include "pipeline.h"

/* One CSV field: quoted (quotes doubled) when it holds a comma, quote,
 * CR or LF, or starts or ends with a space. */
void csv_field(FILE *f, const char *s, size_t n);
/* A JSON string literal, quotes included. */
void json_text(FILE *f, const char *s, size_t n);
/* output.format is "jsonl" (else CSV). */
int output_jsonl(const pipeline *pl);
/* output.stdout is "jsonl": stdout carries JSON Lines only. */
int stdout_jsonl(const pipeline *pl);

#endif
