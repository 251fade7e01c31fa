#!/bin/sh
# bench/scale.sh — data parallel on one machine: sentences/s of training
# (pipelines/bench_train.cfg: full fine-tuning of the MiniLM-sized stand-in,
# batch 32) and of encoding (pipelines/bench_encode.cfg: the 872 SST-2 dev
# sentences) at
#   1 rank  x 2 threads   (no mpirun)
#   2 ranks x 1 thread    (mpirun -np 2, train.allreduce auto: on one node the
#                         gradients are summed through a shared-memory window,
#                         and each rank's AdamW updates its share of one
#                         node-wide copy of the values and moments)
#   2 ranks x 1 thread    the same with train.shard_optimizer=false (every
#                         rank updates its whole copy; training only)
#   2 ranks x 1 thread    with train.allreduce="mpi" (bucketed MPI all-reduce
#                         overlapping backward; training only)
#   2 ranks x 1 thread    with train.allreduce="mpi" and train.overlap=false
#                         (all-reduce after backward; training only)
# alternating the set-ups, ROUNDS rounds (default 3), medians side by side.
# On one 2-core machine, 2 x 1 within 10 % of 1 x 2 shows the communication
# is hidden. Usage: bench/scale.sh [ROUNDS] [TRAIN_STEPS]
set -eu
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
STEPS=${2:-23}
OUT=bench/out/scale
mkdir -p "$OUT"
make -s -j2 >/dev/null
command -v mpirun >/dev/null || { echo "scale.sh: mpirun missing (scripts/install-deps.sh)" >&2; exit 1; }
[ -s bench/out/dev_sentences.txt ] || tail -n +2 ../shared/datasets/sst2/dev.tsv | cut -f1 > bench/out/dev_sentences.txt
ROOT=""
[ "$(id -u)" = 0 ] && ROOT="--allow-run-as-root"
MPI="mpirun $ROOT --bind-to core -np 2"

# one measurement: $1 set-up (1x2 | 2x1 | 2x1-repl | 2x1-mpi | 2x1-serial), $2 train|encode; prints sentences/s
measure() {
    case $2 in
    train) cfg=pipelines/bench_train.cfg; extra="--set train.max_steps=$STEPS" ;;
    encode) cfg=pipelines/bench_encode.cfg; extra="" ;;
    esac
    case $1 in
    1x2) cmd="./runner --threads 2" ;;
    2x1) cmd="$MPI ./runner --threads 1" ;;
    2x1-repl) cmd="$MPI ./runner --threads 1"; extra="$extra --set train.shard_optimizer=false" ;;
    2x1-mpi) cmd="$MPI ./runner --threads 1"; extra="$extra --set train.allreduce=\"mpi\"" ;;
    2x1-serial) cmd="$MPI ./runner --threads 1"; extra="$extra --set train.allreduce=\"mpi\" --set train.overlap=false" ;;
    esac
    # shellcheck disable=SC2086
    $cmd $cfg $extra --out "$OUT/$1-$2" >"$OUT/$1-$2.out" 2>"$OUT/$1-$2.err" ||
        { echo "scale.sh: $1 $2 failed, see $OUT/$1-$2.err" >&2; exit 1; }
    case $2 in
    train) sed -n 's/^trained .*, \([0-9.]*\) sentences\/s$/\1/p' "$OUT/$1-$2.out" ;;
    encode) sed -n 's/.*encoded at \([0-9.]*\) sentences\/s$/\1/p' "$OUT/$1-$2.out" ;;
    esac
}

median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "bench/scale.sh: $ROUNDS rounds, training $STEPS steps of batch 32; $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
echo "load before: $(uptime | sed 's/.*load average: //')"
: >"$OUT/samples"
r=0
while [ "$r" -lt "$ROUNDS" ]; do
    for setup in 1x2 2x1 2x1-repl 2x1-mpi 2x1-serial; do
        echo "$setup train $(measure $setup train)" >>"$OUT/samples"
        case $setup in 1x2 | 2x1) echo "$setup encode $(measure $setup encode)" >>"$OUT/samples" ;; esac
    done
    r=$((r + 1))
done
echo "load after:  $(uptime | sed 's/.*load average: //')"
printf '\n%-22s %14s %14s %20s %18s %22s\n' "sentences/s (median)" "1 rank x 2 thr" "2 ranks x 1" "2 x 1, AdamW replic." "2 x 1, MPI all-red." "2 x 1, MPI, no overlap"
: >"$OUT/verdict"
for what in train encode; do
    a=$(awk -v w=$what '$1 == "1x2" && $2 == w {print $3}' "$OUT/samples" | median)
    b=$(awk -v w=$what '$1 == "2x1" && $2 == w {print $3}' "$OUT/samples" | median)
    c=$(awk -v w=$what '$1 == "2x1-mpi" && $2 == w {print $3}' "$OUT/samples" | median)
    d=$(awk -v w=$what '$1 == "2x1-serial" && $2 == w {print $3}' "$OUT/samples" | median)
    e=$(awk -v w=$what '$1 == "2x1-repl" && $2 == w {print $3}' "$OUT/samples" | median)
    [ "$what" = encode ] && c="-" && d="-" && e="-"
    printf '%-22s %14s %14s %20s %18s %22s\n' "$what" "$a" "$b" "$e" "$c" "$d"
    awk -v a="$a" -v b="$b" -v w="$what" 'BEGIN { if (a > 0) printf "  %s: 2 x 1 vs 1 x 2: %+.0f %% (goal: within 10 %%)\n", w, 100 * (b - a) / a }' >>"$OUT/verdict"
done
cat "$OUT/verdict"
rm -f "$OUT/verdict"
for setup in 2x1 2x1-repl 2x1-mpi 2x1-serial; do
    grep -h "data parallel: per step" "$OUT/$setup-train.err" 2>/dev/null | sed "s/^/  $setup: /" || true
done
echo "samples in $OUT/samples"
