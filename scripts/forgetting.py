#!/usr/bin/python3
"""forgetting.py — how much of the pre-trained encoder's STS-B ability each
fine-tuning schedule keeps: reads SWEEP/<point>/sts/sts.csv (written by
scripts/study.sh: pipelines/study/sts.cfg on the point's best/ checkpoint,
mean pooling) and SWEEP/<point>/point.json, and prints one markdown row per
schedule: STS-B dev and test Spearman x100, mean ± sample std over seeds.

  /usr/bin/python3 scripts/forgetting.py results/study_schedules/sweep"""
import csv
import json
import os
import statistics
import sys


def main(sweep):
    groups = {}
    for name in sorted(os.listdir(sweep)):
        pdir = os.path.join(sweep, name)
        sts = os.path.join(pdir, "sts", "sts.csv")
        if not os.path.isfile(sts):
            continue
        with open(os.path.join(pdir, "point.json")) as f:
            axes = json.load(f)["axes"]
        key = ", ".join(a["label"] for a in axes if a["set"] != "seed")
        with open(sts, newline="") as f:
            for row in csv.DictReader(f):
                split = "dev" if "sts-dev" in row["file"] else "test"
                groups.setdefault(key, {}).setdefault(split, []).append(float(row["spearman_x100"]))
    print("| schedule | seeds | STS-B dev ×100 | STS-B test ×100 |")
    print("|---|---|---|---|")
    for key, v in groups.items():
        cells = []
        for split in ("dev", "test"):
            xs = v.get(split, [])
            sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
            cells.append("%.1f ± %.1f" % (statistics.mean(xs), sd) if xs else "–")
        print("| %s | %d | %s | %s |" % (key, len(v.get("test", [])), cells[0], cells[1]))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
