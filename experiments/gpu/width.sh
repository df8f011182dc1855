#!/usr/bin/env bash
# A third GPU session (rules: experiments/lung/width32/RULES.md): the shipped recipe with a wider
# network (W32: base 32) and as it is (R: base 16), both in fp32 at batch 16 on the GPU, by 5-fold
# subject CV; W32 also on all of train/ (approach=full), the run that would be shipped.
# Then every fold model is evaluated on its fold's 10 unseen subjects (affine TTA, threshold 0.3,
# fp32) on the GPU. Carried: .whl and shared-pack (see run.sh).
# Results: $OUT/runs.tar.xz (logs, configs, metrics, evaluations) and $OUT/full-W32.pt (fp16).
EPOCHS=${EPOCHS:-16}; MAXTIME=${MAXTIME:-00:00:07:20}; KILL=${KILL:-460}
source "$(dirname "$0")/setup.sh"

common="experiment=lung_reference data.root=$DATA trainer=$TRAINER trainer.precision=32 data.batch_size=16 trainer.max_epochs=$EPOCHS data.num_workers=2 +trainer.max_time=$MAXTIME callbacks.progress_bar=null +trainer.enable_progress_bar=false callbacks.prediction_pictures=null $EXTRA"
start=$(date +%s)
train full-W32 approach=full model.base_channels=32
for fold in 0 1 2 3 4; do
  train "cv-W32-$fold" approach=cv approach.fold=$fold model.base_channels=32
  train "cv-R-$fold" approach=cv approach.fold=$fold
done
for fold in 0 1 2 3 4; do
  $PY experiments/lung/cv-all-16ep-tversky/fold_dir.py $fold "$DATA" "/tmp/fold$fold" > /dev/null
done
wait
echo "training: $(( $(date +%s) - start )) s" | tee -a "$RUNS/machine.txt"

mkdir -p "$RUNS/eval"
# One thread each: ten evaluations with PyTorch's default of one thread per core (16 each) did not
# finish in 120 s on the machine's 16 cores; with one thread each the ten took 32 s.
export OMP_NUM_THREADS=1
for fold in 0 1 2 3 4; do
  for arm in W32 R; do
    ckpt="$RUNS/cv-$arm-$fold/checkpoints/last.ckpt"
    [ -f "$ckpt" ] && timeout 120 $PY -m tumorseg.evaluate ckpt_path="$ckpt" data_dir="/tmp/fold$fold" tta=affine threshold=0.3 \
      precision=32 ${EVAL_EXTRA:-} hydra.run.dir="$RUNS/eval/$arm-$fold" > "$RUNS/eval/$arm-$fold.log" 2>&1 &
  done
done
wait
echo "evaluation: $(( $(date +%s) - start )) s" | tee -a "$RUNS/machine.txt"

ship_last full-W32
$PY - "$RUNS/full-W32.pt" "$OUT/full-W32.pt" <<'PY'
import sys, torch
try:
    m = torch.load(sys.argv[1], weights_only=True)
except FileNotFoundError:
    sys.exit("no full-W32.pt")
m["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in m["state_dict"].items()}
torch.save(m, sys.argv[2])  # fp16 for the tool's 16 MiB per file
PY
pack_runs
for f in "$RUNS"/eval/*.log; do echo "$(basename "$f" .log): $(tail -1 "$f" | cut -c1-160)"; done
ls -la "$OUT"
