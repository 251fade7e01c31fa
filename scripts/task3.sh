#!/bin/sh
# task3.sh — runs the Task 3 experiments: every scenario (frozen_all,
# frozen_backbone, frozen_head_a, full, transfer) for two backbones (the
# MLM-pre-trained small BERT in models/mini-bert-mlm and the same
# architecture randomly initialised) and three seeds, into results/task3/,
# then writes the table and plots (scripts/task3_table.py).
#   scripts/task3.sh [--threads N]
set -eu
cd "$(dirname "$0")/.."
threads=${2:-2}
[ -f models/mini-bert-mlm/model.safetensors ] || {
    echo "task3.sh: models/mini-bert-mlm is missing: run ./runner pipelines/pretrain_mlm.cfg first" >&2
    exit 1
}
for backbone in mlm random; do
    for scenario in task3_frozen_all task3_frozen_backbone task3_frozen_head_a task3_full transfer; do
        for seed in 1 2 3; do
            out=results/task3/$backbone/$scenario/seed$seed
            [ -f "$out/metrics.json" ] && continue
            extra=""
            [ "$backbone" = random ] && extra="--set backbone.init=random"
            echo "== $backbone $scenario seed $seed"
            # shellcheck disable=SC2086
            ./runner pipelines/$scenario.cfg --quiet --threads "$threads" --seed "$seed" $extra \
                --set train.save_best=false --set train.save_last=false --out "$out"
        done
    done
done
/usr/bin/env python3 scripts/task3_table.py results/task3 > docs/task3_results.md
echo "wrote docs/task3_results.md and docs/task3_*.png"
