#!/usr/bin/env bash
# Rule 3: the ensemble of the two approach=full runs (seed 42: ../lite-net/, seed 7: train.sh full) as one
# model file, and its shipped evaluation on val (fp32, and bf16 as `evaluate` runs it by default here):
#   bash experiments/lung/seed-ensemble/val.sh DATA_ROOT
set -euo pipefail
O=outputs/lung/seed7
E=experiments/lung/seed-ensemble/eval
# ran at commit 95f2c9a as `ship CKPT OUT --ensemble CKPT2 --threshold 0.3 --tta affine`; key=value since c4515d8
.venv/bin/python -m tumorseg.ship ckpt_path=outputs/lung/lite-cpu/full/checkpoints/last.ckpt output=$O/ensemble-full.pt \
  "ensemble=[$O/full/checkpoints/last.ckpt]" threshold=0.3 tta=affine overwrite=true
for p in 32 auto; do
  .venv/bin/python -m tumorseg.evaluate ckpt_path=$O/ensemble-full.pt data_dir=$1/val precision=$p \
    hydra.run.dir=$O/eval-val-$p > $O/eval-val-$p.log 2>&1
  cp $O/eval-val-$p/metrics.json $E/val-ensemble-$p.json
done
.venv/bin/python -m tumorseg.evaluate ckpt_path=$O/full/checkpoints/last.ckpt data_dir=$1/val precision=32 \
  tta=affine threshold=0.3 hydra.run.dir=$O/eval-val-seed7 > $O/eval-val-seed7.log 2>&1
cp $O/eval-val-seed7/metrics.json $E/val-seed7-32.json
