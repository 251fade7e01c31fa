#!/usr/bin/env python3
"""task3_table.py — the Task 3 results table (markdown, on stdout) from the
runs' metrics.json and run.json under results/task3/<backbone>/<scenario>/
seed<k>/: dev accuracy and macro-F1 per task (mean ± sample std over the
seeds), wall time, training time per epoch, trainable parameters. Also
draws the dev-accuracy learning curves (docs/task3_curves_<task>.png) with
gnuplot from the runs' metrics.csv."""
import csv, json, os, statistics, subprocess, sys

root = sys.argv[1] if len(sys.argv) > 1 else "results/task3"
SCEN = ["task3_frozen_all", "task3_frozen_backbone", "task3_frozen_head_a", "task3_full", "transfer"]
LABEL = {"task3_frozen_all": "1. everything frozen", "task3_frozen_backbone": "2. backbone frozen",
         "task3_frozen_head_a": "3. topic head frozen", "task3_full": "full fine-tuning",
         "transfer": "transfer schedule"}
BACK = {"mlm": "MLM-pre-trained", "random": "random init"}

def ms(xs, scale=1.0, fmt="{:.1f}"):
    xs = [x * scale for x in xs if x is not None]
    if not xs:
        return "–"
    if len(xs) == 1:
        return fmt.format(xs[0])
    return (fmt + " ± " + fmt).format(statistics.mean(xs), statistics.stdev(xs))

def runs(backbone, scen):
    d = os.path.join(root, backbone, scen)
    out = []
    for s in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        try:
            m = json.load(open(os.path.join(d, s, "metrics.json")))
            r = json.load(open(os.path.join(d, s, "run.json")))
            cfg = open(os.path.join(d, s, "config.cfg")).read()
            out.append((os.path.join(d, s), m, r, cfg))
        except (OSError, ValueError):
            pass
    return out

def epochs(cfg):
    for line in cfg.splitlines():
        line = line.strip()
        if line.startswith("epochs"):
            return int(line.split("=")[1].strip(" ;"))
    return 1

print("| backbone | scenario | seeds | topic acc % | topic macro-F1 % | sentiment acc % | sentiment macro-F1 % "
      "| trainable params | train s / epoch | wall s |")
print("|---|---|---|---|---|---|---|---|---|---|")
for b in BACK:
    for sc in SCEN:
        rs = runs(b, sc)
        if not rs:
            continue
        def best(task, metric):
            return [m["tasks"][task]["best"].get(metric) for _, m, _, _ in rs]
        tp = rs[0][1].get("trainable_parameters", 0)
        per_epoch = [m.get("train_seconds", 0) / epochs(cfg) for _, m, _, cfg in rs]
        wall = [r.get("seconds") for _, _, r, _ in rs]
        print(f"| {BACK[b]} | {LABEL[sc]} | {len(rs)} | {ms(best('topic', 'accuracy'), 100)} "
              f"| {ms(best('topic', 'macro_f1'), 100)} | {ms(best('sentiment', 'accuracy'), 100)} "
              f"| {ms(best('sentiment', 'macro_f1'), 100)} | {tp:,} | {ms(per_epoch, 1, '{:.1f}')} "
              f"| {ms(wall, 1, '{:.0f}')} |")

# learning curves: dev accuracy against step, seed 1 of each run
for task in ["topic", "sentiment"]:
    series = []
    for b in BACK:
        for sc in SCEN:
            path = os.path.join(root, b, sc, "seed1", "metrics.csv")
            if not os.path.exists(path) or sc == "task3_frozen_all":
                continue
            pts = [(int(r["step"]), float(r["accuracy"])) for r in csv.DictReader(open(path))
                   if r["task"] == task and r["split"] == "dev" and r.get("accuracy")]
            if pts:
                series.append((f"{BACK[b]}, {LABEL[sc]}", pts, b))
    if not series:
        continue
    png = f"docs/task3_curves_{task}.png"
    script = ["set terminal pngcairo size 1000,600 font 'sans,10'", f"set output '{png}'",
              f"set title 'dev accuracy, {task} (seed 1)'", "set xlabel 'step'", "set ylabel 'accuracy'",
              "set key outside right", "set grid"]
    plots = []
    for i, (name, _, b) in enumerate(series):
        dash = "dt 1" if b == "mlm" else "dt 2"
        plots.append(f"'-' using 1:2 with linespoints {dash} lw 2 title '{name}'")
    script.append("plot " + ", ".join(plots))
    for _, pts, _ in series:
        script += [f"{s} {a}" for s, a in pts] + ["e"]
    try:
        subprocess.run(["gnuplot"], input="\n".join(script), text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"\n(gnuplot failed for {png}: {e})", file=sys.stderr)
