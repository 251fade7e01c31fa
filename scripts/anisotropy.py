#!/usr/bin/python3
"""anisotropy.py — is the STS score of an encoder's mean-pooled embeddings
held back by anisotropy (all vectors in a narrow cone)? For each model:
the mean cosine between the embeddings of random pairs of different
sentences (Ethayarajh 2019's measure: 0 for an isotropic space, near 1 for a
narrow cone), and the STS-B Spearman (x100) of cosine similarity before and
after removing the mean embedding (estimated on sts-dev, applied to
sts-test: nothing is fitted on the test pairs).

  /usr/bin/python3 scripts/anisotropy.py [--out DIR] [--threads N] [--model DIR] [--max-len N]

Runs `./runner pipelines/study/embed_sts.cfg` (argument vectors, no shell)
for the MLM-pre-trained small BERT and the same architecture randomly
initialised, writes DIR/anisotropy.md and .csv (default results/study/anisotropy)
and prints the table. Needs numpy (Debian python3-numpy)."""
import argparse
import csv
import os
import subprocess
import sys

import numpy as np

STS = "../shared/datasets/stsbenchmark"
MODELS = [("MLM-pre-trained", ["--set", "backbone.init=pretrained"]),
          ("random init", ["--set", "backbone.init=random"])]


def read_sts(path):
    """(sentence1, sentence2, gold) of an STS-B file (tab-separated)."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            rows.append((cols[5], cols[6], float(cols[4])))
    return rows


def rank(x):
    """Ranks 1..n, ties given their average rank (as Spearman needs)."""
    order = np.argsort(x, kind="mergesort")
    r = np.empty(len(x))
    xs = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and xs[j + 1] == xs[i]:
            j += 1
        r[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return r


def spearman(a, b):
    return float(np.corrcoef(rank(np.asarray(a)), rank(np.asarray(b)))[0, 1])


def cosines(u, v):
    u = u / np.linalg.norm(u, axis=1, keepdims=True)
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    return (u * v).sum(axis=1)


def embed(sentences, extra, out, threads, model_args):
    os.makedirs(out, exist_ok=True)
    inp = os.path.join(out, "sentences.txt")
    with open(inp, "w", encoding="utf-8") as f:
        f.write("\n".join(sentences) + "\n")
    argv = ["./runner", "pipelines/study/embed_sts.cfg", "--set", "input=" + '"' + inp.replace('"', '\\"') + '"',
            "--out", os.path.join(out, "run"), "--threads", str(threads), "--quiet"] + model_args + extra
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return np.load(os.path.join(out, "run", "embeddings.npy")).astype(np.float64)


def measure(name, extra, out, threads, model_args):
    dev, test = read_sts(STS + "/sts-dev.csv"), read_sts(STS + "/sts-test.csv")
    sents = [s for r in dev + test for s in r[:2]]
    e = embed(sents, extra, os.path.join(out, name.split()[0].lower()), threads, model_args)
    nd = 2 * len(dev)
    e_dev, e_test = e[:nd], e[nd:]
    u, v = e_test[0::2], e_test[1::2]
    gold = [r[2] for r in test]
    rng = np.random.default_rng(1)
    i, j = rng.integers(0, len(e), 20000), rng.integers(0, len(e), 20000)
    keep = i != j
    mean = e_dev.mean(axis=0)
    return {
        "model": name,
        "mean_random_pair_cosine": float(cosines(e[i[keep]], e[j[keep]]).mean()),
        "sts_test_spearman_x100": 100 * spearman(cosines(u, v), gold),
        "sts_test_spearman_x100_centred": 100 * spearman(cosines(u - mean, v - mean), gold),
        "norm_of_mean_over_mean_norm": float(np.linalg.norm(mean) / np.linalg.norm(e_dev, axis=1).mean()),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="results/study/anisotropy")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", help="another model folder (default: the pipeline's, models/mini-bert-mlm)")
    ap.add_argument("--max-len", type=int, help="tokenizer.max_len (default: the pipeline's, 64)")
    a = ap.parse_args()
    model_args = (["--set", "model=\"%s\"" % a.model] if a.model else []) + \
        (["--set", "tokenizer.max_len=%d" % a.max_len] if a.max_len else [])
    rows = [measure(n, x, a.out, a.threads, model_args) for n, x in MODELS]
    keys = list(rows[0])
    with open(os.path.join(a.out, "anisotropy.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, keys)
        w.writeheader()
        w.writerows(rows)
    md = ["| model | mean cosine, random pairs | ‖mean‖ / mean ‖e‖ | STS-B test Spearman ×100 | "
          "same, mean removed |", "|---|---|---|---|---|"]
    for r in rows:
        md.append("| %s | %.3f | %.3f | %.1f | %.1f |" % (
            r["model"], r["mean_random_pair_cosine"], r["norm_of_mean_over_mean_norm"], r["sts_test_spearman_x100"], r["sts_test_spearman_x100_centred"]))
    with open(os.path.join(a.out, "anisotropy.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
