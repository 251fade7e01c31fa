/* hfround.c — the Hugging Face / sentence-transformers round trip: a tiny
 * BERT trained with a head and exported; the export's files against the
 * keys their formats document (tests/py/check_export.py); the export loaded
 * by a reference of transformers' BertModel (tests/py/hf_bert.py: its
 * parameter names, config keys, safetensors checks) giving the runner's
 * mean-pooled embeddings within 1e-4; the heads rebuilt in PyTorch from
 * heads.json giving the runner's predictions; pooling taken from a folder's
 * sentence-transformers files; folders the runner must refuse at --check
 * (exit 2): RoBERTa, pytorch_model.bin only, missing, no pooling at all. */
#include <string.h>
#include <unistd.h>

#include "runner/kit/npy.h"
#include "shell.h"
#include "tap.h"

static char dir[] = "/tmp/runner-hfround-XXXXXX";

static void write_text(const char *name, const char *text)
{
    char *p = str_printf("%s/%s", dir, name);
    if (!p || file_write_atomic(p, text, strlen(text)) != 0)
        diag("cannot write %s", name);
    free(p);
}

static int same_npy(const char *a, const char *b)
{
    char *pa = str_printf("%s/%s/embeddings.npy", dir, a), *pb = str_printf("%s/%s/embeddings.npy", dir, b);
    int64_t ra = 0, ca = 0, rb = 0, cb = 0;
    float *x = NULL, *y = NULL;
    int same = npy_read_f32(pa, &ra, &ca, &x) == 0 && npy_read_f32(pb, &rb, &cb, &y) == 0 && ra == rb &&
               ca == cb && ra > 0 && memcmp(x, y, (size_t)(ra * ca) * sizeof *x) == 0;
    free(x);
    free(y);
    free(pa);
    free(pb);
    return same;
}

/* runner on dir/cfg with args; stderr in dir/err. */
static int runner(const char *cfg, const char *args)
{
    return sh("%s %s/%s --threads 2 %s 2>%s/err >%s/out", RUNNER, dir, cfg, args, dir, dir);
}

static void like_err(const char *want, const char *what)
{
    char *err = slurp(dir, "err");
    like(err, want, "%s", what);
    free(err);
}

static void train_and_export(void)
{
    is(sh("head -65 ../shared/datasets/sst2/train.tsv > %s/data.tsv", dir), 0, "setup: 64 SST-2 rows");
    write_text("in.txt", "a gorgeous , witty , seductive movie .\n\"quoted\" start, and a comma\nboring\n");
    char *t = str_printf(
        "name = \"tiny\";\nrun = \"train\";\nmodel = \"tests/goldens/tiny-bert\";\n"
        "tokenizer = { plugin = \"wordpiece\"; max_len = 32; };\nbackbone = { plugin = \"bert\"; };\n"
        "pooler = { plugin = \"cls\"; normalize = false; };\n"
        "tasks = ( { name = \"sentiment\";\n"
        "  dataset = { format = \"tsv\"; train = \"%s/data.tsv\"; dev = \"%s/data.tsv\";\n"
        "    text_field = \"sentence\"; label_field = \"label\"; labels = [\"neg\", \"pos\"]; };\n"
        "  head = { plugin = \"mlp\"; hidden = [16]; dropout = 0.0; };\n"
        "  loss = { plugin = \"cross_entropy\"; }; metrics = [\"accuracy\"]; } );\n"
        "train = { batch = 16; lr = 2e-3; warmup = 0.0; epochs = 2; export = \"%s/export\"; };\n",
        dir, dir, dir);
    write_text("train.cfg", t);
    free(t);
    char *args = str_printf("--quiet --out %s/run", dir);
    is(runner("train.cfg", args), 0, "a tiny BERT with an mlp head trains and exports");
    free(args);
    is(sh(PY " tests/py/check_export.py %s/export >%s/check 2>&1", dir, dir), 0,
       "export: config.json, model.safetensors, modules.json, 1_Pooling, sentence_bert_config.json, "
       "config_sentence_transformers.json, heads.json have the documented keys");
    char *check = slurp(dir, "check");
    like(check, "modules: Transformer Pooling\n", "export: no Normalize module for a pooler without normalize");
    free(check);
    is(sh(PY " tests/py/check_export.py %s/run/best >/dev/null 2>&1", dir), 0, "the best/ checkpoint is such a folder too");
    is(sh(PY " -c \"import csv; r = list(csv.reader(open('%s/run/predictions_sentiment.csv', newline='')));"
          "assert r[0] == ['id', 'text', 'gold', 'predicted', 'probability'] and len(r) == 65\"", dir), 0,
       "dev predictions_sentiment.csv: header and 64 rows through Python's csv");
    args = str_printf("--quiet --set pooler.plugin=mean --set pooler.normalize=true --set train.epochs=1 "
                      "--set train.export=\\\"%s/export_norm\\\" --out %s/run_norm", dir, dir);
    is(runner("train.cfg", args), 0, "the same with a normalized mean pooler");
    free(args);
    is(sh(PY " tests/py/check_export.py %s/export_norm >%s/check 2>&1 && test -d %s/export_norm/2_Normalize", dir,
          dir, dir), 0, "export: with normalize, the documented keys and a 2_Normalize folder");
    check = slurp(dir, "check");
    like(check, "modules: Transformer Pooling Normalize\n", "export: ... and a Normalize module");
    free(check);
}

static void parity_and_heads(void)
{
    char *args = str_printf("--quiet --set model=%s/export --set input=%s/in.txt "
                            "--set 'pooler={ plugin = \"mean\"; normalize = false; }' --out %s/mean",
                            dir, dir, dir);
    is(sh("%s pipelines/task1.cfg %s >/dev/null 2>&1", RUNNER, args), 0, "embed with the export, mean pooling");
    free(args);
    is(sh(PY " tests/py/hf_bert.py %s/export %s/mean/ids.txt %s/mean/embeddings.npy 1e-4 >%s/check 2>&1", dir, dir,
          dir, dir), 0, "transformers' BertModel (reference) loads the export: mean-pooled embeddings within 1e-4");
    char *check = slurp(dir, "check");
    diag("%.*s", check ? (int)strcspn(check, "\n") : 11, check ? check : "(no output)");
    free(check);
    args = str_printf("--quiet --set model=%s/export --set input=%s/in.txt "
                      "--set 'pooler={ plugin = \"cls\"; normalize = false; }' --out %s/cls", dir, dir, dir);
    is(sh("%s pipelines/task1.cfg %s >/dev/null 2>&1", RUNNER, args), 0, "embed with the export, cls pooling");
    free(args);
    char *pred = str_printf(
        "run = \"predict\";\nmodel = \"%s/export\";\ninput = \"%s/in.txt\";\ncheckpoint = \"%s/export\";\n"
        "tokenizer = { plugin = \"wordpiece\"; max_len = 32; };\nbackbone = { plugin = \"bert\"; };\n"
        "tasks = ( { name = \"sentiment\";\n"
        "  dataset = { format = \"tsv\"; train = \"%s/data.tsv\"; dev = \"%s/data.tsv\";\n"
        "    text_field = \"sentence\"; label_field = \"label\"; labels = [\"neg\", \"pos\"]; };\n"
        "  head = { plugin = \"mlp\"; hidden = [16]; dropout = 0.0; };\n"
        "  loss = { plugin = \"cross_entropy\"; }; metrics = [\"accuracy\"]; } );\n", dir, dir, dir, dir, dir);
    write_text("predict.cfg", pred);
    free(pred);
    args = str_printf("--out %s/pred", dir);
    is(runner("predict.cfg", args), 0, "predict from the export, pooling from its sentence-transformers files");
    free(args);
    like_err("pooling from the model folder: cls", "... saying so in one info line");
    is(sh(PY " tests/py/check_export.py %s/export heads %s/cls/embeddings.npy %s/pred/predictions.csv", dir, dir, dir),
       0, "heads rebuilt in PyTorch from heads.json + heads.safetensors give the runner's labels and probabilities");
}

static void pooling_from_folder(void)
{
    char *cfg = str_printf("run = \"embed\";\nmodel = \"%s/export\";\ninput = \"%s/in.txt\";\n"
                           "tokenizer = { plugin = \"wordpiece\"; };\nbackbone = { plugin = \"bert\"; };\n", dir, dir);
    write_text("nopooler.cfg", cfg);
    free(cfg);
    char *args = str_printf("--out %s/folder", dir);
    is(runner("nopooler.cfg", args), 0, "embed without a pooler on a folder declaring CLS, no Normalize");
    free(args);
    ok(same_npy("folder", "cls"), "its embeddings equal the cls pooler's without normalisation, bit for bit");
    is(runner("nopooler.cfg", "--check"), 0, "--check passes");
    char *out = slurp(dir, "out");
    like(out, "plugin = \"cls\";", "--check prints the pooler taken from the folder");
    free(out);
    args = str_printf("--check --set 'pooler={ plugin = \"mean\"; normalize = true; }'");
    is(runner("nopooler.cfg", args), 0, "a pipeline pooler over the folder's");
    free(args);
    like_err("the pipeline's pooler (mean, normalized) overrides the model folder's (cls", "... is one info line");
    is(runner("nopooler.cfg", "--check --set model=tests/goldens/tiny-bert"), 2,
       "no pooler, a folder without sentence-transformers files: exit 2 at --check");
    like_err("modules.json", "... naming what is missing");
}

static void refused_folders(void)
{
    is(sh("cp -r %s/export %s/roberta && sed -i 's/\"model_type\": \"bert\"/\"model_type\": \"roberta\"/' "
          "%s/roberta/config.json", dir, dir, dir), 0, "setup: a RoBERTa config.json");
    char *args = str_printf("--check --set model=%s/roberta", dir);
    is(runner("nopooler.cfg", args), 2, "RoBERTa folder: exit 2 at --check");
    free(args);
    like_err("model_type \"roberta\"", "... naming the model_type");
    args = str_printf("--set model=%s/roberta --out %s/r", dir, dir);
    is(runner("nopooler.cfg", args), 2, "... and when run");
    free(args);
    is(sh("mkdir -p %s/binonly && cp %s/export/config.json %s/export/vocab.txt %s/binonly/ && "
          "echo pickle > %s/binonly/pytorch_model.bin", dir, dir, dir, dir, dir), 0, "setup: a .bin-only folder");
    args = str_printf("--check --set model=%s/binonly --set 'pooler={ plugin = \"mean\"; }'", dir);
    is(runner("nopooler.cfg", args), 2, ".bin-only folder: exit 2 at --check");
    free(args);
    like_err("only pytorch_model.bin", "... naming the file");
    like_err("save_file(torch.load(", "... and how to convert it");
    args = str_printf("--check --set model=%s/absent", dir);
    is(runner("nopooler.cfg", args), 2, "missing model folder: exit 2 at --check");
    free(args);
    like_err("absent not found", "... naming it");
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    train_and_export();
    parity_and_heads();
    pooling_from_folder();
    refused_folders();
    sh("rm -rf %s", dir);
    return done_testing(33);
}
