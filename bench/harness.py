"""Benchmark harness: runs our `runner` (A) and its peers (B = PyTorch,
C = ONNX Runtime; in `train`, C is the runner in bf16) as whole processes, alternating A B C A B C ... for R
rounds on the same machine in the same run, and prints medians, ratios and
peak memory. Run through bench/encode.sh and bench/train.sh (they call
`/usr/bin/python3 bench/harness.py encode|train ...`).

Each process is timed from spawn to exit (model loading included) and its
peak RSS is the child's ru_maxrss from os.wait4. Engines that report their
own steady-state figure print a line
    RESULT engine=NAME sentences=N load_s=X steady_s=X steady_sps=X
(or, for the runner, any "<number> sentences/s"); the harness shows it too.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = "bench/out"
PY = "/usr/bin/python3"
EMB = {"A": "bench/out/run/embeddings.npy", "B": "bench/out/torch_emb.npy", "C": "bench/out/ort_emb.npy",
       "A2": "bench/out/run_bf16/embeddings.npy", "A3": "bench/out/run_int8/embeddings.npy",
       "D": "bench/out/ort_int8_emb.npy"}
TORCH_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_CORETYPE": "SkylakeX"}


def note(msg):
    print(f"note: {msg}", flush=True)


def die(msg):
    print(f"bench: {msg}", file=sys.stderr)
    sys.exit(1)


def tsv_first_column(src, dst, limit=None):
    """Sentences (column 1) of an SST-2 style tsv without its header row."""
    n = 0
    with open(src, encoding="utf-8") as f, open(dst, "w", encoding="utf-8") as g:
        next(f)
        for line in f:
            if limit is not None and n >= limit:
                break
            g.write(line.rstrip("\n").split("\t")[0] + "\n")
            n += 1
    return n


def make_ids(model, sentences, ids_path):
    """Token ids of `sentences` into ids_path: with the runner's tokenizer
    (pipelines/tokenize.cfg) if it works, else with bench/wordpiece.py.
    Returns which tokenizer made them."""
    if os.path.exists("runner") and os.path.exists("pipelines/tokenize.cfg"):
        outdir = os.path.join(OUT, "tokenize")
        shutil.rmtree(outdir, ignore_errors=True)
        r = subprocess.run(["./runner", "pipelines/tokenize.cfg", "--quiet", "--set", f"model={model}",
                            "--set", f"input={sentences}", "--out", outdir],
                           capture_output=True, text=True)
        if r.returncode == 0 and os.path.exists(os.path.join(outdir, "ids.txt")):
            shutil.copyfile(os.path.join(outdir, "ids.txt"), ids_path)
            return "runner pipelines/tokenize.cfg"
        note(f"the runner's tokenizer failed (exit {r.returncode}: {r.stderr.strip()[-300:]}); "
             "using bench/wordpiece.py")
    else:
        note("./runner or pipelines/tokenize.cfg missing: ids made by bench/wordpiece.py")
    subprocess.run([PY, "bench/wordpiece.py", os.path.join(model, "vocab.txt"), sentences, ids_path],
                   check=True)
    return "bench/wordpiece.py"


def ensure_onnx(model, onnx_path):
    srcs = [os.path.join(model, "model.safetensors"), os.path.join(model, "config.json"), "bench/torch_bert.py"]
    if os.path.exists(onnx_path) and all(os.path.getmtime(onnx_path) >= os.path.getmtime(s) for s in srcs):
        return
    print(f"exporting {model} to {onnx_path} ...", flush=True)
    r = subprocess.run([PY, "bench/torch_bert.py", "export-onnx", "--model", model, "--out", onnx_path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        die(f"ONNX export failed:\n{r.stderr[-2000:]}")


def ensure_ort():
    if os.path.exists("bench/node_modules/onnxruntime-node/package.json"):
        return True
    if not shutil.which("npm"):
        note("npm not found: ONNX Runtime skipped")
        return False
    print("installing onnxruntime-node (npm ci --ignore-scripts) ...", flush=True)
    r = subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd="bench",
                       capture_output=True, text=True)
    if r.returncode != 0:
        note(f"npm ci failed, ONNX Runtime skipped: {r.stderr.strip()[-300:]}")
        return False
    return True


class Engine:
    def __init__(self, key, name, argv, env_extra=None, sentences=None, tag=""):
        self.key, self.name, self.argv, self.tag = key, name, argv, tag
        self.env = dict(os.environ, **(env_extra or {}))
        self.env_extra = env_extra or {}
        self.sentences = sentences  # per run, for the whole-process rate (None: from its RESULT line)
        self.runs = []  # dicts: wall, rss_mib, steady_sps, sentences
        self.failed = None

    def run(self, label):
        log = os.path.join(OUT, "logs", f"{self.key}{self.tag}.{label.replace(' ', '').replace('/', 'of')}.log")
        with open(log, "w") as f:
            t0 = time.perf_counter()
            p = subprocess.Popen(self.argv, env=self.env, stdout=f, stderr=subprocess.STDOUT)
            _, status, ru = os.wait4(p.pid, 0)
            wall = time.perf_counter() - t0
            p.returncode = os.waitstatus_to_exitcode(status)
        with open(log, errors="replace") as f:
            text = f.read()
        if p.returncode != 0:
            self.failed = f"exit {p.returncode} in {label}, see {log}:\n" + "\n".join(text.splitlines()[-8:])
            return
        res = {"wall": wall, "rss_mib": ru.ru_maxrss / 1024.0, "steady_sps": None, "sentences": self.sentences}
        m = re.findall(r"^RESULT .*$", text, re.M)
        if m:
            kv = dict(t.split("=", 1) for t in m[-1].split()[1:] if "=" in t)
            res["steady_sps"] = float(kv["steady_sps"]) if "steady_sps" in kv else None
            if res["sentences"] is None and "sentences" in kv:
                res["sentences"] = int(kv["sentences"])
        else:
            m = re.findall(r"([0-9]+(?:\.[0-9]+)?)\s*sentences/s", text)
            if m:
                res["steady_sps"] = float(m[-1])
        self.runs.append(res)

    def whole_sps(self):
        return [r["sentences"] / r["wall"] for r in self.runs if r["sentences"]]

    def steady(self):
        return [r["steady_sps"] for r in self.runs if r["steady_sps"] is not None]


def med(xs):
    return statistics.median(xs) if xs else None


def fmt_range(xs, digits=1):
    if not xs:
        return "n/a"
    return f"{med(xs):.{digits}f} ({min(xs):.{digits}f}-{max(xs):.{digits}f})"


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "n/a"


def paired(xs, ys):
    """Per-round ratios x/y (same rounds, in order): median (min-max)."""
    rs = [x / y for x, y in zip(xs, ys) if x and y]
    if not rs or len(xs) != len(ys):
        return "n/a"
    return f"{med(rs):.2f}x ({min(rs):.2f}-{max(rs):.2f})"


def alternate(engines, rounds, warmup):
    os.makedirs(os.path.join(OUT, "logs"), exist_ok=True)
    live = [e for e in engines if e.argv]
    for rnd in range(-warmup, rounds):
        label = f"warm-up {rnd + warmup + 1}/{warmup}" if rnd < 0 else f"round {rnd + 1}/{rounds}"
        parts = []
        for e in live:
            if e.failed:
                continue
            e.run(label)
            if e.failed:
                parts.append(f"{e.key}{e.tag} FAILED")
                continue
            r = e.runs[-1]
            if rnd < 0:
                e.runs.pop()
            parts.append(f"{e.key}{e.tag} {r['wall']:.2f} s" + (f" ({r['steady_sps']:.0f}/s steady)" if r["steady_sps"] else ""))
        print(f"{label}: " + ", ".join(parts), flush=True)
    for e in live:
        if e.failed:
            print(f"\n{e.name} failed: {e.failed}", flush=True)


def print_table(engines, whole_label):
    print()
    hdr = f"{'engine':<28} {whole_label:>26} {'wall s':>8} {'steady-state sent/s':>24} {'peak RSS MiB':>13}"
    print(hdr)
    print("-" * len(hdr))
    for e in engines:
        if not e.argv:
            print(f"{e.key} {e.name:<26} skipped: {e.failed}")
            continue
        if not e.runs:
            print(f"{e.key} {e.name:<26} failed")
            continue
        walls = [r["wall"] for r in e.runs]
        rss = [r["rss_mib"] for r in e.runs]
        print(f"{e.key} {e.name:<26} {fmt_range(e.whole_sps()):>26} {med(walls):>8.2f} "
              f"{fmt_range(e.steady()):>24} {med(rss):>13.0f}")
    print("(median over rounds, (min-max); whole-process = sentences / wall time from spawn to exit,\n"
          " model loading included; steady-state = what the engine reports for its own compute loop;\n"
          " peak RSS = the child's ru_maxrss)")


def compare_embeddings(engines):
    """Max abs difference of each engine's embeddings (last round) from PyTorch's."""
    import numpy as np
    if not os.path.exists(EMB["B"]):
        return
    ref = np.load(EMB["B"])
    for e in engines:
        if e.key != "B" and e.runs and os.path.exists(EMB[e.key]):
            emb = np.load(EMB[e.key])
            if emb.shape != ref.shape:
                print(f"same-work check: {e.name} embeddings have shape {emb.shape}, PyTorch's {ref.shape}")
            else:
                print(f"same-work check: {e.name} vs PyTorch embeddings, max abs diff "
                      f"{float(np.abs(emb - ref).max()):.3g} (max |value| {float(np.abs(ref).max()):.3g})")


# the CPU features that decide which kernels run (oneDNN's and ours)
KEY_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_name():
    """The model name and its key features: one model name ("Intel(R) Xeon(R)
    Processor" under KVM) covers CPUs with and without AMX."""
    name, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and name == "unknown CPU":
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    have = [f for f in KEY_FLAGS if f in flags]
    return f"{name} ({' '.join(have) if have else 'none of ' + ', '.join(KEY_FLAGS)})"


def ensure_onnx_int8(onnx, onnx_int8):
    """The dynamic int8 copy of the ONNX model (bench/quantize_onnx.py)."""
    if os.path.exists(onnx_int8) and os.path.getmtime(onnx_int8) >= max(
            os.path.getmtime(onnx), os.path.getmtime("bench/quantize_onnx.py")):
        return True
    r = subprocess.run([PY, "bench/quantize_onnx.py", onnx, onnx_int8], capture_output=True, text=True)
    if r.returncode != 0:
        note(f"int8 quantization of {onnx} failed (python3-onnx missing?): {r.stderr.strip()[-300:]}")
        return False
    return True


def cosines(engines, ref_key="B"):
    """Min and mean cosine of each engine's embeddings (last round) against the
    float32 reference: PyTorch's, else the runner f32's."""
    import numpy as np
    key = ref_key if os.path.exists(EMB[ref_key]) else "A"
    if not os.path.exists(EMB[key]):
        return {}, None
    ref = np.load(EMB[key])
    out = {}
    for e in engines:
        if e.runs and e.key in EMB and os.path.exists(EMB[e.key]):
            emb = np.load(EMB[e.key])
            if emb.shape == ref.shape:
                c = (emb * ref).sum(1) / (np.linalg.norm(emb, axis=1) * np.linalg.norm(ref, axis=1))
                out[e.key] = (float(c.min()), float(c.mean()))
    return out, key


def encode_engines(a, threads, n, ids, onnx, onnx_int8, have_ort, tag=""):
    runners = []
    for key, prec, outdir in (("A", "f32", "run"), ("A2", "bf16", "run_bf16"), ("A3", "int8", "run_int8")):
        e = Engine(key, f"runner {prec}", None, sentences=n, tag=tag)
        if not os.path.exists("runner"):
            e.failed = "./runner not built (make)"
        elif not os.path.exists(a.runner_pipeline):
            e.failed = f"{a.runner_pipeline} does not exist yet"
        else:
            e.argv = ["./runner", a.runner_pipeline, "--threads", str(threads), "--quiet",
                      "--set", f'backbone.precision="{prec}"', "--out", os.path.join(OUT, outdir)]
        runners.append(e)
    torch_env = dict(TORCH_ENV, OMP_NUM_THREADS=str(threads))
    pt = Engine("B", "PyTorch f32",
                [PY, "bench/torch_bert.py", "--threads", str(threads), "encode", "--model", a.model,
                 "--ids", ids, "--batch", str(a.batch), "--save", EMB["B"]], torch_env, sentences=n, tag=tag)
    if a.no_torch:
        pt.argv, pt.failed = None, "--no-torch"
    orts = []
    for key, name, model in (("C", "ONNX Runtime f32", onnx), ("D", "ONNX Runtime int8", onnx_int8)):
        e = Engine(key, name, ["node", "bench/ort_encode.js", "--model", model, "--ids", ids, "--batch",
                               str(a.batch), "--threads", str(threads), "--save", EMB[key]]
                   if have_ort and model else None, sentences=n, tag=tag)
        if not e.argv:
            e.failed = "onnxruntime-node not installed" if not have_ort else "no int8 model"
        orts.append(e)
    return runners + [pt] + orts, torch_env


def encode_header(a, threads, n, ids, onnx, onnx_int8, have_ort, made_by, tag=""):
    engines, torch_env = encode_engines(a, threads, n, ids, onnx, onnx_int8, have_ort, tag)
    print(f"bench/encode: {n} sentences of {a.dataset}, model {a.model}, batch {a.batch}, "
          f"{threads} threads, {a.rounds} rounds (+{a.warmup} warm-up) alternating "
          f"{' '.join(e.key + e.tag for e in engines)}")
    print(f"  CPU: {cpu_name()}; load average {os.getloadavg()[0]:.2f} at the start")
    for e in engines:
        env = " ".join(f"{k}={v}" for k, v in e.env_extra.items())
        print(f"  {e.key:<3}{e.name + ':':<19} {(env + ' ') if env else ''}"
              f"{' '.join(e.argv) if e.argv else 'SKIPPED: ' + str(e.failed)}")
    print(f"  peers get pre-tokenized ids ({ids}, made by {made_by}), length-sorted batches of {a.batch};")
    print(f"  ONNX models: {onnx} (torch.onnx.export) and {onnx_int8} (bench/quantize_onnx.py: "
          f"DynamicQuantizeLinear + MatMulInteger, per-channel int8 weights)\n", flush=True)
    return engines


def encode_report(engines, threads, ceil=None, rates=None):
    print(f"\n{threads} threads:")
    print_table(engines, "whole-process sent/s")
    cos, ref = cosines(engines)
    by = {e.key: e for e in engines}
    if cos:
        print(f"\ncosine of each engine's embeddings with {by[ref].name}'s (872 sentences): min / mean")
        for e in engines:
            if e.key in cos:
                print(f"  {e.key:<3}{e.name:<20} {cos[e.key][0]:.6f} / {cos[e.key][1]:.6f}")
    W = {k: med(e.whole_sps()) for k, e in by.items()}
    S = {k: med(e.steady()) for k, e in by.items()}
    B = {k: max(e.steady(), default=0) for k, e in by.items()}
    print(f"\nratios (medians)                        whole-process   steady-state"
          f"   paired by round, steady: median (min-max)   best rounds")
    for x, y in (("A", "C"), ("A", "B"), ("A2", "D"), ("A3", "D"), ("D", "C")):
        label = f"{by[x].name} / {by[y].name}"
        print(f"  {label:<38}{ratio(W[x], W[y]):>13}   {ratio(S[x], S[y]):>12}"
              f"   {paired(by[x].steady(), by[y].steady()):>18}   {ratio(B[x], B[y]):>27}")
    print("(paired: the two engines' ratio within each round, which ran them minutes apart at most;\n"
          " it cancels the host's slower and faster spells that the medians of each engine keep.\n"
          " best rounds: each engine's fastest steady round, what it does when the host runs it well;\n"
          " where the peers' rounds spread far more than the runner's, this is the fairer ratio)")
    ceiling_report(engines, threads, ceil, rates)
    return cos


GEMM = "build/bench/gemm"
GEMM_ROWS = 256  # the runner's largest GEMM block (src/kit/compute.c)


def gemm_rates(C, FF):
    """One thread's GFLOPS for each of the encoder layer's four GEMM shapes
    (K, N) and each precision: build/bench/gemm, rows fixed at 256, the best
    of 20 with the weights warm. (rates, None) or (None, why not)."""
    if not os.access(GEMM, os.X_OK):
        return None, f"{GEMM} is not built (make bench)"
    r = subprocess.run([GEMM, str(GEMM_ROWS), "20", str(C), str(FF)], capture_output=True, text=True,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    rates = {}
    for line in r.stdout.splitlines():
        if line.startswith("training"):
            break
        # K x N, OpenBLAS, then f32 / bf16 / int8 each with fixed and run-time rows
        m = re.match(r"\s*(\d+) x (\d+)" + r"\s+([0-9.]+)" * 7 + r"\s*$", line)
        if m:
            g = [float(x) for x in m.groups()[2:]]
            rates[(int(m.group(1)), int(m.group(2)))] = {"f32": g[1], "bf16": g[3], "int8": g[5]}
    if r.returncode != 0 or len(rates) != 4 or any(v <= 0 for x in rates.values() for v in x.values()):
        return None, f"{GEMM} failed (exit {r.returncode}): {(r.stderr or r.stdout).strip()[-200:]}"
    return rates, None


def best_rates(a, b):
    """Per shape and precision, the faster of two gemm_rates() results."""
    if not a or not b:
        return a or b
    return {k: {p: max(a[k][p], b[k][p]) for p in a[k]} for k in a}


def gemm_ceiling(model, ids):
    """What the GEMM ceiling needs: the model's dimensions and the tokens the
    benchmark encodes. (dims, tokens, sentences) or None."""
    try:
        with open(os.path.join(model, "config.json")) as f:
            c = json.load(f)
        dims = (int(c["hidden_size"]), int(c["intermediate_size"]), int(c["num_hidden_layers"]))
        with open(ids) as f:
            lens = [len(line.split()) for line in f if line.strip()]
    except (OSError, ValueError, KeyError, TypeError) as e:
        note(f"GEMM ceiling skipped: {e}")
        return None
    return dims, sum(lens), len(lens)


def ceiling_report(engines, threads, ceil, rates):
    """Sentences/s the runner could reach if its GEMMs ran at the micro-benchmark's
    best rate on every thread and nothing else took time: an upper bound."""
    if not ceil or not rates:
        return
    (C, FF, L), tokens, n = ceil
    shapes = [(C, 3 * C), (C, C), (C, FF), (FF, C)]
    gflop = sum(2.0 * K * N for K, N in shapes) * tokens * L * 1e-9
    by = {e.key: e for e in engines}
    ort8 = med(by["D"].steady()) if "D" in by else None
    print(f"\nGEMM ceiling at {threads} thread{'s' if threads > 1 else ''}: the runner's speed if the backbone's GEMMs"
          f" ({tokens} tokens, {gflop:.0f} GFLOP)\nran at {GEMM}'s best one-thread rate ({GEMM_ROWS} rows, weights"
          f" warm) on every thread and nothing else took time")
    print(f"  {'':<22}{'GFLOPS/thread':>14}{'ceiling sent/s':>16}{'steady sent/s':>15}{'of ceiling':>12}"
          f"{'ceiling / ONNX Runtime int8':>30}")
    for key, prec in (("A", "f32"), ("A2", "bf16"), ("A3", "int8")):
        if key not in by:
            continue
        secs = sum(2.0 * K * N * tokens * L / (rates[(K, N)][prec] * 1e9) for K, N in shapes)
        cap = threads * n / secs
        got = med(by[key].steady())
        print(f"  {by[key].name:<22}{gflop / secs:>14.0f}{cap:>16.0f}{(f'{got:.0f}' if got else 'n/a'):>15}"
              f"{(f'{100 * got / cap:.0f} %' if got else 'n/a'):>12}{ratio(cap, ort8):>30}")


def clear_embeddings():
    for path in EMB.values():
        if os.path.exists(path):
            os.remove(path)


def cmd_encode(a):
    os.makedirs(OUT, exist_ok=True)
    sentences = os.path.join(OUT, "dev_sentences.txt")
    ids = os.path.join(OUT, "dev_ids.txt")
    n = tsv_first_column(a.dataset, sentences)
    made_by = make_ids(a.model, sentences, ids)
    onnx = os.path.join(OUT, os.path.basename(os.path.normpath(a.model)) + ".onnx")
    ensure_onnx(a.model, onnx)
    onnx_int8 = onnx[:-5] + ".int8.onnx"
    if not ensure_onnx_int8(onnx, onnx_int8):
        onnx_int8 = None
    have_ort = ensure_ort()
    threads = [int(t) for t in str(a.threads).split(",")]
    # every thread count's engines in each round, so the scaling ratios pair
    # runs made minutes apart at most (the host's speed drifts between passes)
    results = {t: encode_header(a, t, n, ids, onnx, onnx_int8, have_ort, made_by,
                                f"@{t}t" if len(threads) > 1 else "") for t in threads}
    clear_embeddings()
    # the GEMM micro-benchmark before and after the rounds: the better of the two
    ceil = gemm_ceiling(a.model, ids)
    rates, why = gemm_rates(*ceil[0][:2]) if ceil else (None, None)
    alternate([e for t in threads for e in results[t]], a.rounds, a.warmup)
    if rates:
        rates = best_rates(rates, gemm_rates(*ceil[0][:2])[0])
    elif why:
        note(f"GEMM ceiling skipped: {why}")
    for t in threads:
        cos = encode_report(results[t], t, ceil, rates)
        save_json(f"encode_t{t}" if len(threads) > 1 else "encode", a, results[t], cos,
                  {f"{k[0]}x{k[1]}": v for k, v in rates.items()} if rates else None)
        print()
    if len(threads) > 1:
        lo, hi = min(threads), max(threads)
        print(f"scaling, steady-state sentences/s: {hi} threads / {lo} thread(s), medians; paired by round")
        for e_lo, e_hi in zip(results[lo], results[hi]):
            print(f"  {e_lo.key:<3}{e_lo.name:<20} {ratio(med(e_hi.steady()), med(e_lo.steady())):>8}"
                  f"   paired {paired(e_hi.steady(), e_lo.steady()):>18}"
                  f"   (whole process {ratio(med(e_hi.whole_sps()), med(e_lo.whole_sps()))})")


RUNNER_KEYS = {"f32": "A", "bf16": "C"}  # PyTorch is B
RUNNER_TARGETS = {"f32": 4, "bf16": 6}   # issue #10: runner / PyTorch f32


def cmd_train(a):
    os.makedirs(OUT, exist_ok=True)
    need = (a.steps + a.warmup_steps) * a.batch
    sentences = os.path.join(OUT, "train_sentences.txt")
    ids = os.path.join(OUT, "train_ids.txt")
    n = tsv_first_column(a.dataset, sentences, need)
    if n < need:
        die(f"{a.dataset}: {n} sentences, {need} needed")
    made_by = make_ids(a.model, sentences, ids)

    precisions = [p.strip() for p in a.precision.split(",") if p.strip()]
    if not precisions or any(p not in RUNNER_KEYS for p in precisions) or len(set(precisions)) < len(precisions):
        die(f"--precision {a.precision}: expected a list of f32 and bf16 (e.g. f32,bf16)")
    runners = []
    for p in precisions:  # bench_train.cfg trains the same 23 x 32
        r = Engine(RUNNER_KEYS[p], f"runner {p}", None, sentences=need)
        if not os.path.exists("runner"):
            r.failed = "./runner not built (make)"
        elif not os.path.exists(a.runner_pipeline):
            r.failed = f"{a.runner_pipeline} does not exist yet"
        else:
            r.argv = ["./runner", a.runner_pipeline, "--threads", str(a.threads), "--quiet",
                      "--set", f"train.precision={p}", "--out", os.path.join(OUT, f"run_train_{p}")]
        runners.append(r)
    torch_env = dict(TORCH_ENV, OMP_NUM_THREADS=str(a.threads))
    pt = Engine("B", "PyTorch",
                [PY, "bench/torch_bert.py", "--threads", str(a.threads), "train", "--model", a.model,
                 "--ids", ids, "--labels", a.dataset, "--batch", str(a.batch), "--steps", str(a.steps),
                 "--warmup", str(a.warmup_steps)], torch_env, sentences=need)
    engines = runners + [pt]
    print(f"bench/train: full fine-tuning (mean pooling + linear 2-class head + cross-entropy, AdamW, "
          f"dropout on), batch {a.batch}, {a.threads} threads, model {a.model}, {a.rounds} rounds "
          f"(+{a.warmup} warm-up) alternating {' '.join(e.key for e in engines)}")
    for r in runners:
        print(f"  {r.key} {r.name + ':':<12} {' '.join(r.argv) if r.argv else 'SKIPPED: ' + r.failed}")
    print(f"  B PyTorch: {' '.join(f'{k}={v}' for k, v in torch_env.items())} {' '.join(pt.argv)}")
    print(f"  PyTorch trains on the first {need} sentences of {a.dataset} in file order (already shuffled),")
    print(f"  ids made by {made_by}; sentences/s over {a.steps} steps after {a.warmup_steps} warm-up steps\n",
          flush=True)
    alternate(engines, a.rounds, a.warmup)
    print_table(engines, "whole-process sent/s")
    print(f"(whole-process = {need} trained sentences, warm-up steps included, / wall time)")
    sb = med(pt.steady())
    print(f"\nratio (medians of steady-state training sentences/s)")
    for r in runners:
        target = RUNNER_TARGETS[r.name.split()[-1]]
        print(f"  {r.name + ' / PyTorch f32':<26} {ratio(med(r.steady()), sb)}   (target >= {target}x)")
    if len(runners) == 2:
        print(f"  {'runner bf16 / runner f32':<26} {ratio(med(runners[1].steady()), med(runners[0].steady()))}")
    for r in runners:
        if r.failed and not r.argv:
            print(f"\nnote: {r.key} ({r.name}) skipped: {r.failed}")
    save_json("train", a, engines)


def save_json(kind, a, engines, cos=None, gemm=None):
    path = os.path.join(OUT, f"{kind}_results.json")
    doc = {"args": vars(a), "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "load_avg": os.getloadavg(),
           "cpu": cpu_name(), "cosine_min_mean": cos or {}, "gemm_gflops_one_thread": gemm or {},
           "engines": [{"key": e.key, "name": e.name, "argv": e.argv, "env": e.env_extra, "skipped": e.failed,
                        "runs": e.runs} for e in engines]}
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    print(f"\nraw figures: {path}; logs: {OUT}/logs/; load average now {os.getloadavg()[0]:.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    for name in ("encode", "train"):
        p = sub.add_parser(name)
        p.add_argument("--rounds", type=int, default=5)
        p.add_argument("--warmup", type=int, default=1, help="untimed rounds first (page cache, CPU clocks)")
        p.add_argument("--threads", default="2", help="N, or N,M,... for a scaling comparison (encode)")
        p.add_argument("--batch", type=int, default=32)
        p.add_argument("--model", default="../shared/models/minilm-l6-random")
    sub.choices["encode"].add_argument("--dataset", default="../shared/datasets/sst2/dev.tsv")
    sub.choices["encode"].add_argument("--runner-pipeline", default="pipelines/bench_encode.cfg")
    sub.choices["encode"].add_argument("--no-torch", action="store_true", help="skip the PyTorch peer")
    sub.choices["train"].add_argument("--dataset", default="../shared/datasets/sst2/train.tsv")
    sub.choices["train"].add_argument("--runner-pipeline", default="pipelines/bench_train.cfg")
    sub.choices["train"].add_argument("--steps", type=int, default=20)
    sub.choices["train"].add_argument("--warmup-steps", type=int, default=3)
    sub.choices["train"].add_argument("--precision", default="f32,bf16",
                                      help="runner train.precision values to time, comma-separated (f32, bf16)")
    a = ap.parse_args()
    os.chdir(ROOT)
    if a.rounds < 1 or a.warmup < 0:
        die("--rounds must be >= 1 and --warmup >= 0")
    {"encode": cmd_encode, "train": cmd_train}[a.mode](a)


if __name__ == "__main__":
    main()
