#!/bin/sh
# scripts/study.sh — every run behind docs/study.md, docs/task3.md and the
# small-BERT tables of docs/task1.md, in order; each step is skipped when its
# results are already there (sweeps skip their finished points themselves),
# so the script resumes after an interruption. Only runner commands and the
# two table scripts; every number in those docs comes from a file this
# writes under results/.
#   scripts/study.sh                 (THREADS=2 JOBS=2 by default)
# About 2 hours on 2 cores (AMD EPYC Zen 5), after pre-training (~25 min).
set -eu
cd "$(dirname "$0")/.."
T=${THREADS:-2}
J=${JOBS:-2}
R=./runner
PY=/usr/bin/python3

ok() { [ -f "$1/run.json" ] && grep -q '"status": "ok"' "$1/run.json"; }
sweep() { $R "pipelines/sweeps/$1.cfg" --jobs "$J" --threads "$T" --quiet || echo "study: sweep $1 had failed points"; }

# 1. the pre-trained backbone (Wikipedia only) -> models/mini-bert-mlm
[ -f models/mini-bert-mlm/config.json ] || $R pipelines/pretrain_mlm.cfg --threads "$T" --out results/study/pretrain_mlm

# 2. Task 3: scenarios x backbones x seeds -> results/task3/sweep/summary.md
sweep task3

# 3. STS-B per pooler, both backbones; anisotropy
ok results/study/sts_mlm || $R pipelines/study/sts.cfg --threads "$T" --quiet --out results/study/sts_mlm
ok results/study/sts_random || $R pipelines/study/sts.cfg --set backbone.init=random --threads "$T" --quiet \
    --out results/study/sts_random
[ -f results/study/anisotropy/anisotropy.md ] || $PY scripts/anisotropy.py --threads "$T"

# 4. scenario 3 made realistic: head A first, then frozen while B trains
ok results/study/s3_stage1 || $R pipelines/study/topic_only.cfg --seed 1 --set train.save_last=false \
    --threads "$T" --quiet --out results/study/s3_stage1
sweep study_scenario3

# 5. transfer schedules at one learning rate; forgetting = STS-B of each best/ encoder
sweep study_schedules
for d in results/study_schedules/sweep/*/; do
    [ -f "$d/point.json" ] || continue
    ok "$d/sts" || $R pipelines/study/sts.cfg --set "model=\"${d}best\"" --set 'poolers=({ plugin = "mean"; })' \
        --threads "$T" --quiet --out "$d/sts"
done
$PY scripts/forgetting.py results/study_schedules/sweep > results/study_schedules/forgetting.md

# 6. frozen probes by layer x pooler; 7. MTL vs single task (+ gradient cosine);
# 8. sampling x weighting under imbalance
sweep study_probes
sweep study_mtl
sweep study_imbalance
echo "study: every sweep done; tables in results/*/sweep/summary.md"
