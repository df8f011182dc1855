#!/usr/bin/env bash
# Issue 31 on one lent GPU machine (rules: RULES.md beside this file): the control and six one-change arms, each by
# 5-fold subject CV, all 35 runs at once; then every fold model's last epoch evaluated on its fold's unseen subjects;
# a summary, logs and the fold models under $OUT. Two calls of the device tool (README.md): the data travel in two
# parts, each beside the checkout within the tool's 64 MiB.
#   bash experiments/lung/gpu-quality/run.sh unpack    # call 1: wheels and part 1 of the slices, then stop
#   bash experiments/lung/gpu-quality/run.sh           # call 2, at once on the still-held machine: part 2, the runs
#   DRY_RUN=1 bash experiments/lung/gpu-quality/run.sh # on a CPU: the same steps with tiny settings on 2 folds
set -u
HERE=experiments/lung/gpu-quality
DRY=${DRY_RUN:-0}
WORK=${WORK:-/tmp/gpu-quality}; OUT=${OUT:-$WORK/out}; PACK=${PACK:-shared-pack/quality}; WHEELS=${WHEELS:-shared-pack/wheels}
export PYTHONUNBUFFERED=1 HYDRA_FULL_ERROR=1 NO_ALBUMENTATIONS_UPDATE=1
# One thread each: 35 trainings, their loaders and then 35 evaluations share 16 cores (ten evaluations with one thread
# per core did not finish in 120 s there, experiments/gpu/README.md).
export OMP_NUM_THREADS=1
mkdir -p "$WORK/logs" "$OUT"
start=$(date +%s)

if [ "$DRY" = 1 ]; then
  PY=${PY:-.venv/bin/python}; TRAINER=cpu; FOLDS=${FOLDS:-0 1}; EPOCHS=${EPOCHS:-1}; MAXTIME=${MAXTIME:-00:00:09:00}
  KILL=${KILL:-590}; EVAL_KILL=${EVAL_KILL:-300}; SIZE=64; BIG=128; WORKERS=0; BIG_WORKERS=0; BATCH=4
  TINY="trainer.limit_train_batches=2 trainer.limit_val_batches=2 trainer.limit_test_batches=2"
  EVAL="device=cpu tta=false threshold=0.3 precision=32"
else
  # 5 epochs: ~46 runs' worth of CPU work (augment=all at 512 px costs 4 runs) at ~1.1 s per run-epoch on these 16
  # cores (experiments/gpu/README.md: 10 runs, 16 epochs, 181 s) fit the 5.5-minute guard, one-cycle schedule whole.
  PY=${PY:-python3}; TRAINER=gpu; FOLDS=${FOLDS:-0 1 2 3 4}; EPOCHS=${EPOCHS:-5}; MAXTIME=${MAXTIME:-00:00:05:30}
  KILL=${KILL:-380}; EVAL_KILL=${EVAL_KILL:-100}; SIZE=256; BIG=512; WORKERS=1; BIG_WORKERS=3; BATCH=16; TINY=""
  EVAL="device=cuda tta=affine threshold=0.3 precision=32"   # the shipped model's evaluation choices
fi

# Wheels absent on the GPU image (hydra, omegaconf, antlr4, albumentations and their needs), installed once.
if [ "$DRY" != 1 ] && [ ! -d "$WORK/site/hydra" ]; then
  ls "$WHEELS"/*.whl > /dev/null 2>&1 || { echo "no $WHEELS/*.whl: carry the wheels (README.md)"; exit 1; }
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" "$WHEELS"/*.whl || exit 1
fi
export PYTHONPATH=$WORK/site:$PWD

DATA=${DATA:-$WORK/lung-ct-slices}
if [ -f "$PACK/names.txt" ]; then
  $PY $HERE/pack.py unpack "$PACK" "$DATA" || exit 1
  if [ "${1:-}" = unpack ]; then $PY $HERE/pack.py check "$DATA" "$PACK"; exit 0; fi
  $PY $HERE/pack.py check "$DATA" "$PACK" || exit 1
elif [ "$DRY" = 1 ]; then
  DATA=$WORK/phantom
  $PY -c "from tumorseg.data.phantom import generate_phantom as g; g('$DATA', 10, 2, slices=6, size=64)" || exit 1
else
  echo "no $PACK/names.txt: pack the slices (README.md) and carry a part"; exit 1
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc
  $PY -c "import torch, lightning, hydra, albumentations as A; print(torch.__version__, lightning.__version__, hydra.__version__, A.__version__)"
} > "$WORK/machine.txt" 2>&1

# The arms: one change each against the control R (experiment=lung_reference); S512's change is data.image_size.
ARMS="R DEV CTX2 STACK2 DLV3 S512 CTV"
change() {
  case $1 in
    R) echo "";;
    DEV) echo "augment=device_all";;
    CTX2) echo "data.context_slices=2";;
    STACK2) echo "model=stack_unet data.context_slices=2";;
    DLV3) echo "model=deeplabv3";;
    S512) echo "";;
    CTV) echo "loss=component_tversky";;
  esac
}
common="experiment=lung_reference approach=cv data.root=$DATA trainer=$TRAINER trainer.precision=32 data.batch_size=$BATCH
  trainer.max_epochs=$EPOCHS +trainer.max_time=$MAXTIME logger=none callbacks.progress_bar=null +trainer.enable_progress_bar=false
  callbacks.prediction_pictures=null $TINY"
for arm in $ARMS; do
  size=$SIZE; workers=$WORKERS
  if [ "$arm" = S512 ]; then size=$BIG; workers=$BIG_WORKERS; fi
  for k in $FOLDS; do
    # shellcheck disable=SC2046,SC2086
    timeout "$KILL" $PY -m tumorseg.train hydra.run.dir="$WORK/runs/$arm/fold$k" task_name="$arm-$k" $common \
      data.image_size=$size data.num_workers=$workers approach.fold=$k $(change $arm) > "$WORK/logs/$arm-$k.log" 2>&1 &
  done
done
for k in $FOLDS; do  # the unseen subjects of each fold (approach=cv's test part), while the runs train
  $PY experiments/lung/cv-all-16ep-tversky/fold_dir.py "$k" "$DATA" "$WORK/fold$k" > "$WORK/logs/fold$k.log" 2>&1
done
wait
trained=$(date +%s)

for arm in $ARMS; do
  for k in $FOLDS; do
    ckpt=$WORK/runs/$arm/fold$k/checkpoints/last.ckpt
    # shellcheck disable=SC2086
    [ -f "$ckpt" ] && timeout "$EVAL_KILL" $PY -m tumorseg.evaluate ckpt_path="$ckpt" data_dir="$WORK/fold$k" $EVAL \
      hydra.run.dir="$WORK/eval/$arm-$k" > "$WORK/logs/eval-$arm-$k.log" 2>&1 &
  done
done
wait
evaluated=$(date +%s)
echo "{\"setup_and_training\": $((trained - start)), \"evaluation\": $((evaluated - trained)), \"max_time\": \"$MAXTIME\"}" \
  > "$WORK/timing.json"

changes=()
for arm in $ARMS; do
  c=$(change $arm); [ "$arm" = S512 ] && c="data.image_size=$BIG"
  changes+=("$arm=$c")
done
$PY $HERE/summarize.py "$WORK" "$OUT" "$ARMS" "$FOLDS" "$EPOCHS" "${changes[@]}"
grep -l "Error\|error:" "$WORK"/logs/*.log 2>/dev/null | head -20 | sed 's/^/errors in: /'
echo "total: $(( $(date +%s) - start )) s"
ls -la "$OUT" "$OUT/models"
