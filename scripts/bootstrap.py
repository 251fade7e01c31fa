#!/usr/bin/python3
"""bootstrap.py — a paired bootstrap confidence interval for the accuracy
difference between two groups of runs of a sweep, on the same examples.

  /usr/bin/python3 scripts/bootstrap.py SWEEP A B --task topic [--split test]
      [--resamples 10000]

A and B select point folders of SWEEP by their axis values, as in the folder
names: "pipeline=task3_full" or "backbone.init=random,pipeline=transfer"
(every k=v must match). Runs are paired by seed. Each run's per-example
predictions are read from predictions_<task>.csv (dev) or
predictions_<task>_test.csv (test), written by the runner. The statistic is
the mean over seeds of accuracy(A) - accuracy(B); the examples are resampled
with replacement (the same indices for every seed and both groups), and the
2.5% and 97.5% quantiles make the 95% interval. Prints one line."""
import argparse
import csv
import json
import os
import sys

import numpy as np


def points(sweep, want):
    """{seed: folder} of the points whose axes match every k=v of want."""
    pairs = dict(kv.split("=", 1) for kv in want.split(",") if kv)
    out = {}
    for name in sorted(os.listdir(sweep)):
        pj = os.path.join(sweep, name, "point.json")
        if not os.path.isfile(pj):
            continue
        with open(pj) as f:
            axes = {a["set"]: a["label"] for a in json.load(f)["axes"]}
        if all(axes.get(k) == v for k, v in pairs.items()):
            out[axes.get("seed", "1")] = os.path.join(sweep, name)
    return out


def correct(folder, task, split):
    name = "predictions_%s%s.csv" % (task, "_test" if split == "test" else "")
    with open(os.path.join(folder, name), newline="", encoding="utf-8") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: int(r["id"]))
    return np.array([r["gold"] == r["predicted"] for r in rows], dtype=np.float64)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sweep")
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--task", required=True)
    ap.add_argument("--split", choices=["dev", "test"], default="test")
    ap.add_argument("--resamples", type=int, default=10000)
    x = ap.parse_args()
    pa, pb = points(x.sweep, x.a), points(x.sweep, x.b)
    seeds = sorted(set(pa) & set(pb))
    if not seeds:
        sys.exit("bootstrap: no seed has runs in both groups (%d and %d runs)" % (len(pa), len(pb)))
    A = np.stack([correct(pa[s], x.task, x.split) for s in seeds])
    B = np.stack([correct(pb[s], x.task, x.split) for s in seeds])
    if A.shape != B.shape:
        sys.exit("bootstrap: the groups' prediction files differ in length")
    diff = A - B                      # seeds x examples
    rng = np.random.default_rng(12345)
    n = diff.shape[1]
    stats = np.empty(x.resamples)
    for r in range(x.resamples):
        idx = rng.integers(0, n, n)
        stats[r] = diff[:, idx].mean()
    lo, hi = np.quantile(stats, [0.025, 0.975])
    print("%s %s accuracy, %s minus %s: %+.1f points, 95%% CI [%+.1f, %+.1f] (%d seeds, %d examples)" % (
        x.task, x.split, x.a, x.b, 100 * diff.mean(), 100 * lo, 100 * hi, len(seeds), n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
