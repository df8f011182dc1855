#!/usr/bin/env bash
# One session on a lent GPU machine (the device tool: 15 minutes, one call, no network there):
# the GPU benchmark, then every lung run that needs more compute than 2 CPU cores, at once.
#   - two recipes by 5-fold subject-level CV (test = 10 unseen subjects per fold), plus each trained
#     on all of train/ (approach=full): the CV picks the recipe to ship, not val;
#   - the slice-level split (leakage) with recipe A, to compare with its subject-level folds;
#   - the original study's two runs (experiment=seed_split, seed_full), as far as the time allows.
# Carried: .whl (hydra, albumentations and their needs, absent there) and shared-pack/lung.npz
# (experiments/gpu/slices.py pack). Results come back as $OUT/runs.tar.xz, $OUT/full-{A,D}.pt,
# $OUT/bench/. A CPU dry run of the same script: see experiments/gpu/README.md.
EPOCHS=${EPOCHS:-30}; MAXTIME=${MAXTIME:-00:00:04:15}; KILL=${KILL:-350}
# ran at commit 9583ee8 as `bench --device cuda --batch-size 32 --out DIR`; bench takes key=value since c4515d8
BENCH=${BENCH:-device=cuda batch_size=32}
source "$(dirname "$0")/setup.sh"

# The benchmark first, alone on the machine: its timings share nothing.
timeout "${BENCH_KILL:-140}" $PY -m tumorseg.bench $BENCH out="$OUT/bench" > "$RUNS/bench.log" 2>&1
echo "bench: exit $?" >> "$RUNS/machine.txt"

common="data.root=$DATA trainer=$TRAINER data.num_workers=2 +trainer.max_time=$MAXTIME callbacks.progress_bar=null +trainer.enable_progress_bar=false callbacks.prediction_pictures=null $EXTRA"
A="augment=flip scheduler=onecycle trainer.max_epochs=$EPOCHS"
D="augment=all callbacks=ema scheduler=onecycle trainer.max_epochs=$EPOCHS"
start=$(date +%s)
for fold in 0 1 2 3 4; do
  train "cv-A-$fold" approach=cv approach.fold=$fold $A
  train "cv-D-$fold" approach=cv approach.fold=$fold $D
done
train full-A approach=full $A
train full-D approach=full $D
train split-slices-A approach=split approach.group_by=null $A
train seed_split experiment=seed_split trainer.precision=32 trainer.max_epochs=200
train seed_full experiment=seed_full trainer.precision=32 trainer.max_epochs=200
wait
echo "training: $(( $(date +%s) - start )) s" | tee -a "$RUNS/machine.txt"
ship_last full-A full-D
pack_runs full-A full-D
ls -la "$OUT" "$OUT/bench"
