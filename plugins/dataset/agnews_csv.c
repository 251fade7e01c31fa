/* agnews_csv.c — dataset: AG News CSV, "class","title","description" per
 * record; the text is title + " " + description, the classes 1-4 are
 * World, Sports, Business, Sci/Tech. */
#include <string.h>

#include "runner/kit/rows.h"
#include "runner/runner.h"

static const char *const classes[] = {"World", "Sports", "Business", "Sci/Tech"};

static int create(const runner_host *h, const runner_cfg *cfg, void **self)
{
    *self = NULL;
    return 0;
}

static void destroy(void *self) {}

/* AG News text: a backslash stands for a line break of the original
 * ("a second\team" is "a second" / "team"; "\\" ends a paragraph), except
 * "\$" which is a dollar sign. Line breaks (and newlines inside a quoted
 * field) become one space. */
static int agnews_append(txt_buf *b, const char *s, size_t n)
{
    const char *p = s, *end;
    txt_trim(&p, &n);
    end = p + n;
    while (p < end) {
        const char *q = p;
        while (q < end && *q != '\\' && *q != '\n')
            q++;
        if (txt_buf_add(b, p, (size_t)(q - p)) != 0)
            return -1;
        p = q;
        if (p == end)
            break;
        if (*p == '\\' && p + 1 < end && p[1] == '$') {
            if (txt_buf_add(b, "$", 1) != 0)
                return -1;
            p += 2;
            continue;
        }
        while (p < end && (*p == '\\' || *p == '\n'))
            p++;
        if (b->n && b->p[b->n - 1] != ' ' && p < end && *p != ' ' && txt_buf_add(b, " ", 1) != 0)
            return -1;
    }
    return 0;
}

/* One record (fields in fb) into R. */
static int record(runner_rows *R, const char *path, long line, const txt_buf *fb, const size_t *fs,
                  const size_t *fn, txt_buf *text, txt_buf *desc)
{
    const char *cls = fb->p + fs[0];
    size_t cn = fn[0];
    txt_trim(&cls, &cn);
    text->n = desc->n = 0;
    if (txt_buf_add(text, "", 0) != 0 || agnews_append(text, fb->p + fs[1], fn[1]) != 0 ||
        agnews_append(desc, fb->p + fs[2], fn[2]) != 0 ||
        (text->n && desc->n && txt_buf_add(text, " ", 1) != 0) || txt_buf_add(text, desc->p, desc->n) != 0)
        return -1;
    if (!cn || !text->n)
        return rows_bad(R, path, line, "missing %s", !cn ? "class" : "text (title and description are empty)");
    return rows_add(R, path, line, text->p, text->n, cls, cn);
}

static int read_agnews(void *self, const char *path, runner_rows *R)
{
    txt_reader r;
    txt_buf fb = {0}, text = {0}, desc = {0};
    size_t fs[4], fn[4];
    int got, nf, rc = -1;
    rows_kind(R, ROWS_LABELS);
    if (rows_classes(R, classes, 4, 1) != 0 || txt_open(&r, path) != 0)
        return -1;
    while ((got = txt_next(&r)) == 1) {
        if (r.len == 0)
            continue;
        long line = r.line;
        const char *why = NULL;
        int rec = txt_csv_record(&r, ",", 1, &fb, fs, fn, 4, &nf, &why);
        if (rec < 0)
            goto done;
        if (rec == 0 || nf != 3) {
            if (rec == 0 ? rows_bad(R, path, line, "%s", why)
                         : rows_bad(R, path, line,
                                    "expected 3 comma-separated fields (class, title, description), got %d", nf))
                goto done;
            continue;
        }
        if (record(R, path, line, &fb, fs, fn, &text, &desc) != 0)
            goto done;
    }
    rc = got < 0 ? -1 : 0;
done:
    txt_buf_free(&fb);
    txt_buf_free(&text);
    txt_buf_free(&desc);
    txt_close(&r);
    return rc;
}

static const runner_dataset_ops ops = {.read = read_agnews};

RUNNER_DEFINE_PLUGIN(dataset, agnews_csv,
    "AG News CSV: \"class\",\"title\",\"description\"; text = title + description, classes 1-4",
    NULL, create, destroy, &ops)
