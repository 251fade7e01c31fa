/* getmodel.c — `make model` (scripts/get-model.sh) against a Hugging Face
 * mirror served on 127.0.0.1 by tests/py/hf_mirror.py: HF_ENDPOINT is
 * honoured, the files are fetched and model.safetensors sha256-verified; a
 * wrong checksum, a dropped connection and a SIGTERM mid-download leave no
 * model and no DEST.part behind; HF_HOME's cache is used (also offline) and
 * HF_HUB_OFFLINE=1 makes no request. The server lives at most 120 s. */
#include <string.h>
#include <unistd.h>

#include "shell.h"
#include "tap.h"

static char dir[] = "/tmp/runner-getmodel-XXXXXX";
static char env[2048];
static int port;

static void setup_mirror(void)
{
    is(sh("set -e; cd %s; mkdir -p repo/1_Pooling; cp %s/tests/goldens/tiny-bert/* repo/; "
          "for f in tokenizer_config.json special_tokens_map.json tokenizer.json sentence_bert_config.json "
          "modules.json config_sentence_transformers.json 1_Pooling/config.json; do echo '{}' > repo/$f; done; "
          "sha256sum repo/model.safetensors | cut -c1-64 > sha",
          dir, getcwd((char[1024]){0}, 1024)), 0, "setup: a small model folder to serve");
    is(sh("cd %s && (timeout 150 " PY " %s/tests/py/hf_mirror.py repo port log 120 >/dev/null 2>&1 & echo $! > pid) "
          "&& for i in $(seq 100); do [ -f port ] && break; sleep 0.1; done; [ -f port ]", dir,
          getcwd((char[1024]){0}, 1024)), 0, "the mirror listens on 127.0.0.1");
    char *p = slurp(dir, "port"), *sha = slurp(dir, "sha");
    port = p ? atoi(p) : 0;
    snprintf(env, sizeof env, "HF_ENDPOINT=http://127.0.0.1:%d RUNNER_MODEL_SHA256=%.64s RUNNER_MODEL_STANDIN=%s/none "
             "HF_HOME=%s/hfhome", port, sha ? sha : "", dir, dir);
    free(p);
    free(sha);
}

static int requests(void)
{
    char *log = slurp(dir, "log");
    int n = 0;
    for (char *c = log; c && *c; c++)
        n += *c == '\n';
    free(log);
    return n;
}

static int get(const char *repo, const char *dest, const char *more)
{
    return sh("%s RUNNER_MODEL_REPO=%s RUNNER_MODEL_DIR=%s/%s %s scripts/get-model.sh >%s/out 2>&1", env, repo, dir,
              dest, more, dir);
}

static int gone(const char *dest)
{
    return sh("test ! -e %s/%s && test ! -e %s/%s.part", dir, dest, dir, dest) == 0;
}

static void downloads(void)
{
    is(get("test/tiny", "m1", ""), 0, "HF_ENDPOINT: the model is fetched from the mirror");
    is(sh("cmp %s/repo/model.safetensors %s/m1/model.safetensors && cmp %s/repo/1_Pooling/config.json "
          "%s/m1/1_Pooling/config.json", dir, dir, dir, dir), 0, "... every file, byte for byte");
    char *out = slurp(dir, "out");
    like(out, "(sha256 verified)", "... and model.safetensors verified");
    free(out);
    int before = requests();
    is(get("test/tiny", "m1", ""), 0, "again: present and verified");
    is(requests(), before, "... without a request");
    is(get("test/tiny", "m2", "RUNNER_MODEL_SHA256=0000000000000000000000000000000000000000000000000000000000000000"),
       1, "a wrong checksum: refused, exit 1");
    out = slurp(dir, "out");
    like(out, "does not have the expected sha256", "... saying so");
    free(out);
    ok(gone("m2"), "... and neither the model nor m2.part is left");
    is(get("test/truncated", "m3", ""), 1, "a dropped connection: exit 1 (no stand-in here)");
    ok(gone("m3"), "... nothing left behind");
    is(sh("cd %s && (%s RUNNER_MODEL_REPO=test/stalled RUNNER_MODEL_DIR=%s/m4 setsid %s/scripts/get-model.sh "
          ">out 2>&1 & P=$!; for i in $(seq 300); do [ -s m4.part/model.safetensors ] && break; sleep 0.1; done; "
          "kill -TERM -$P; wait $P; echo $? > status)", dir, env, dir, getcwd((char[1024]){0}, 1024)), 0,
       "a download stalled half-way, then SIGTERM");
    char *status = slurp(dir, "status");
    is(status ? atoi(status) : -1, 143, "... exit 143");
    free(status);
    ok(gone("m4"), "... nothing left behind");
}

static void cache_and_offline(void)
{
    is(sh("mkdir -p %s/hfhome/hub/models--test--cached/snapshots/0123abc && cp -r %s/repo/. "
          "%s/hfhome/hub/models--test--cached/snapshots/0123abc/", dir, dir, dir), 0,
       "setup: the model in HF_HOME's cache");
    int before = requests();
    is(get("test/cached", "m5", "HF_HUB_OFFLINE=1"), 0, "HF_HUB_OFFLINE=1: installed from HF_HOME's cache");
    is(sh("cmp %s/repo/model.safetensors %s/m5/model.safetensors", dir, dir), 0, "... the same bytes");
    is(get("test/tiny", "m6", "HF_HUB_OFFLINE=1"), 1, "HF_HUB_OFFLINE=1, nothing cached: exit 1 (no stand-in here)");
    char *out = slurp(dir, "out");
    like(out, "HF_HUB_OFFLINE", "... saying why");
    free(out);
    is(requests(), before, "offline: no request reached the mirror");
    ok(gone("m6"), "... and nothing is left");
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    setup_mirror();
    downloads();
    cache_and_offline();
    sh("kill $(cat %s/pid) 2>/dev/null; rm -rf %s", dir, dir);
    return done_testing(22);
}
