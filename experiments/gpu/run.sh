#!/usr/bin/env bash
# One session on a lent GPU machine (the device tool: 15 minutes, one call, no network there):
# the GPU benchmark, then every lung run that needs more compute than 2 CPU cores, at once.
#   - two recipes by 5-fold subject-level CV (test = 10 unseen subjects per fold), plus each trained
#     on all of train/ (approach=full): the CV picks the recipe to ship, not val;
#   - the slice-level split (leakage) with recipe A, to compare with its subject-level folds;
#   - the original study's two runs (experiment=seed_split, seed_full), as far as the time allows.
# Carried: .whl (hydra, albumentations and their needs, absent there) and shared-pack/lung.npz
# (experiments/gpu/slices.py pack). Results come back as $OUT/runs.tar.xz, $OUT/models.tar,
# $OUT/bench/. A CPU dry run of the same script: see experiments/gpu/README.md.
set -u
export PYTHONUNBUFFERED=1 HYDRA_FULL_ERROR=1
OUT=${OUT:-/tmp/gpu-out}; RUNS=${RUNS:-/tmp/runs}; DATA=${DATA:-/tmp/lung-ct-slices}
TRAINER=${TRAINER:-gpu}; EPOCHS=${EPOCHS:-30}; MAXTIME=${MAXTIME:-00:00:04:15}; KILL=${KILL:-350}
EXTRA=${EXTRA:-}; BENCH=${BENCH:---device cuda --batch-size 32}; PY=${PY:-python3}
if [ -d "${WHEELS:-.whl}" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
mkdir -p "$OUT" "$RUNS"
[ -d "$DATA/train" ] || $PY experiments/gpu/slices.py unpack shared-pack/lung.npz "$DATA" || exit 1
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; $PY -c "import torch, lightning, albumentations, hydra; print(torch.__version__, lightning.__version__, albumentations.__version__, hydra.__version__)") \
  > "$RUNS/machine.txt" 2>&1

# The benchmark first, alone on the machine: its timings share nothing.
timeout "${BENCH_KILL:-140}" $PY -m tumorseg.bench $BENCH --out "$OUT/bench" > "$RUNS/bench.log" 2>&1
echo "bench: exit $?" >> "$RUNS/machine.txt"

common="data.root=$DATA trainer=$TRAINER data.num_workers=2 +trainer.max_time=$MAXTIME callbacks.progress_bar=null +trainer.enable_progress_bar=false callbacks.prediction_pictures=null $EXTRA"
A="augment=flip scheduler=onecycle trainer.max_epochs=$EPOCHS"
D="augment=all callbacks=ema scheduler=onecycle trainer.max_epochs=$EPOCHS"
train() {  # name, overrides...
  local name=$1; shift
  timeout "$KILL" $PY -m tumorseg.train hydra.run.dir="$RUNS/$name" task_name="$name" $common "$@" \
    > "$RUNS/$name.log" 2>&1 &
}
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
for run in full-A full-D; do  # slim weights of the last epoch (no selection on val)
  [ -f "$RUNS/$run/checkpoints/last.ckpt" ] && $PY -m tumorseg.ship "$RUNS/$run/checkpoints/last.ckpt" "$RUNS/$run.pt" \
    >> "$RUNS/ship.log" 2>&1
done
tar -cf "$OUT/models.tar" -C "$RUNS" $(cd "$RUNS" && ls *.pt 2>/dev/null)
find "$RUNS" \( -name "*.ckpt" -o -name "*.pt" \) -delete
tar -cJf "$OUT/runs.tar.xz" -C "$(dirname "$RUNS")" "$(basename "$RUNS")"
grep -h "val/dice_best=\|Error\|error" "$RUNS"/*.log | head -40
ls -la "$OUT" "$OUT/bench"
