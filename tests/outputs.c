/* outputs.c — outputs for tools: CSV fields (RFC 4180) and JSON strings
 * read back by Python's csv and json (quotes, commas, embedded newlines,
 * leading spaces, control characters, invalid UTF-8); predictions.csv and
 * predictions.jsonl with a row id and the input text; similarity.csv's
 * header; `input = "-"` (stdin); --jsonl on stdout with logs on stderr;
 * -h, -V and exit status 2 for configuration errors at --check. */
#include <string.h>
#include <unistd.h>

#include "shell.h"
#include "tap.h"
#include "textout.h"

static char dir[] = "/tmp/runner-outputs-XXXXXX";

static char *in_dir(const char *name)
{
    return str_printf("%s/%s", dir, name);
}

static void write_text(const char *name, const char *text)
{
    char *p = in_dir(name);
    if (!p || file_write_atomic(p, text, strlen(text)) != 0)
        diag("cannot write %s", name);
    free(p);
}

static void fields_roundtrip(void)
{
    static const char *const fields[] = {"plain", "a,b", "say \"hi\"", "multi\nline", " lead", "\"starts", "cr\rlf", ""};
    enum { N = sizeof fields / sizeof *fields };
    char *csv = in_dir("fields.csv"), *jl = in_dir("strings.jsonl");
    FILE *f = fopen(csv, "w"), *g = fopen(jl, "w");
    for (int i = 0; f && i < N; i++) {
        csv_field(f, fields[i], strlen(fields[i]));
        fputc(i + 1 < N ? ',' : '\n', f);
    }
    static const char odd[] = "ctl\x01\x1f tab\t nl\n q\" bs\\ bad\xff\xc3 ok \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 sur\xed\xa0\x80";
    if (g) {
        json_text(g, odd, sizeof odd - 1);
        fputc('\n', g);
        json_text(g, "", 0);
        fputc('\n', g);
    }
    if (f)
        fclose(f);
    if (g)
        fclose(g);
    write_text("fields.json", "[[\"plain\", \"a,b\", \"say \\\"hi\\\"\", \"multi\\nline\", \" lead\", \"\\\"starts\", "
                              "\"cr\\rlf\", \"\"]]");
    write_text("strings.json", "[\"ctl\\u0001\\u001f tab\\t nl\\n q\\\" bs\\\\ bad\\ufffd\\ufffd ok \\u00e9 \\u20ac "
                               "\\ud83d\\ude00 sur\\ufffd\\ufffd\\ufffd\", \"\"]");
    is(sh(PY " tests/py/check_outputs.py fields %s %s/fields.json", csv, dir), 0,
       "csv_field: quotes, commas, newlines, CR, leading space read back by Python's csv");
    is(sh(PY " tests/py/check_outputs.py strings %s %s/strings.json", jl, dir), 0,
       "json_text: control characters escaped, invalid UTF-8 as U+FFFD, read back by Python's json");
    free(csv);
    free(jl);
}

static const char *const predict_cfg =
    "run = \"predict\";\nmodel = \"tests/goldens/tiny-bert\";\ninput = \"%s/in.txt\";\n"
    "tokenizer = { plugin = \"wordpiece\"; max_len = 32; };\nbackbone = { plugin = \"bert\"; };\n"
    "pooler = { plugin = \"mean\"; };\n"
    "tasks = ( { name = \"sentiment\";\n"
    "  dataset = { format = \"tsv\"; train = \"%s/data.tsv\"; text_field = \"sentence\"; label_field = \"label\";\n"
    "              labels = [\"neg\", \"pos\"]; };\n"
    "  head = { plugin = \"linear\"; }; loss = { plugin = \"cross_entropy\"; }; } );\n";

static void predictions(void)
{
    write_text("in.txt", "\"quoted\" start, then text\na, comma\ntab\there\n  leading spaces\n\xc3\xbcnic\xc3\xb6" "de\n"
                         "\"unterminated\n");
    write_text("data.tsv", "sentence\tlabel\ngood\t1\nbad\t0\n");
    char *cfg = str_printf(predict_cfg, dir, dir);
    write_text("predict.cfg", cfg);
    free(cfg);
    is(sh("%s %s/predict.cfg --quiet --out %s/p >/dev/null 2>&1", RUNNER, dir, dir), 0, "predict runs");
    is(sh(PY " tests/py/check_outputs.py csv %s/p/predictions.csv %s/in.txt", dir, dir), 0,
       "predictions.csv: Python's csv reads one row per input line, id 0..n-1, the text unchanged");
    is(sh("%s %s/predict.cfg --quiet --set output.format=jsonl --out %s/pj >/dev/null 2>&1", RUNNER, dir, dir), 0,
       "predict with output.format = \"jsonl\"");
    is(sh(PY " tests/py/check_outputs.py jsonl %s/pj/predictions.jsonl %s/in.txt", dir, dir), 0,
       "predictions.jsonl: Python's json reads every line, ids and texts");
    is(sh("%s %s/predict.cfg --quiet --set input=- --out %s/ps <%s/in.txt >/dev/null 2>&1 && "
          "cmp %s/p/predictions.csv %s/ps/predictions.csv", RUNNER, dir, dir, dir, dir, dir), 0,
       "input = \"-\": the same predictions from stdin");
    is(sh("%s %s/predict.cfg --quiet --jsonl --out %s/pk >%s/stdout 2>/dev/null && cmp %s/stdout %s/pj/predictions.jsonl "
          "&& test -f %s/pk/predictions.csv", RUNNER, dir, dir, dir, dir, dir, dir), 0,
       "--jsonl: stdout is exactly the JSON Lines predictions (the file stays CSV)");
}

static void embeddings(void)
{
    const char *common = "pipelines/task1.cfg --set model=../shared/models/minilm-l6-random";
    is(sh("%s %s --jsonl --set input=- --out %s/e <%s/in.txt >%s/stdout 2>%s/stderr", RUNNER, common, dir, dir, dir,
          dir), 0, "embed: stdin in, --jsonl out");
    is(sh(PY " tests/py/check_outputs.py embeddings %s/stdout %s/in.txt 384", dir, dir), 0,
       "stdout: one JSON object a line with the text and its 384 numbers, nothing else");
    char *err = slurp(dir, "stderr");
    like(err, "embedded 6 sentences", "logs stay on stderr");
    free(err);
    is(sh(PY " tests/py/check_outputs.py matrix %s/e/similarity.csv 6", dir), 0,
       "similarity.csv: header id,0..5 and 6 rows through Python's csv");
    is(sh("%s %s --check --set input=%s/none.txt >/dev/null 2>%s/stderr", RUNNER, common, dir, dir), 2,
       "a missing input file: exit 2 at --check");
    err = slurp(dir, "stderr");
    like(err, "none.txt: no such file", "... naming it");
    free(err);
    is(sh("%s %s --check --set input=- </dev/null >/dev/null 2>&1", RUNNER, common), 0, "input = \"-\" passes --check");
    is(sh("%s %s --check --set output.format=xml >/dev/null 2>%s/stderr", RUNNER, common, dir), 2,
       "output.format = \"xml\": exit 2 at --check");
    err = slurp(dir, "stderr");
    like(err, "output.format: 'xml' is not one of csv|jsonl", "... naming the key");
    free(err);
}

static void command_line(void)
{
    is(sh("%s -h >%s/stdout 2>&1", RUNNER, dir), 0, "-h: exit 0");
    char *out = slurp(dir, "stdout");
    like(out, "usage: runner", "-h prints the usage");
    free(out);
    is(sh("%s -V >%s/stdout 2>&1", RUNNER, dir), 0, "-V: exit 0");
    out = slurp(dir, "stdout");
    like(out, "runner 0.", "-V prints the version");
    free(out);
    is(sh("%s -x >/dev/null 2>&1", RUNNER), 2, "an unknown option: exit 2");
    is(sh("%s pipelines/task1.cfg --set model=%s/none --set input=%s/in.txt --out %s/x >/dev/null 2>&1", RUNNER, dir,
          dir, dir), 2, "a missing model folder when run: exit 2, before anything runs");
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    fields_roundtrip();
    predictions();
    embeddings();
    command_line();
    sh("rm -rf %s", dir);
    return done_testing(23);
}
