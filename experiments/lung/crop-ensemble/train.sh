#!/usr/bin/env bash
# RULES.md's runs, two at a time (one CPU core each): the shipped recipe with data.train_crop=128 at seeds
# 42, 7 and 1 on CV folds 0 and 1, then on all of train/ (approach=full; the first two together, the third
# alone on both cores; the wall time from the first start to the last end is the training time):
#   bash experiments/lung/crop-ensemble/train.sh DATA_ROOT
set -euo pipefail
D=$1
O=outputs/lung/crop-ensemble
mkdir -p $O
run() {  # threads, name, overrides...
  local threads=$1 name=$2; shift 2
  echo "$name start $(date -u +%H:%M:%S)"
  OMP_NUM_THREADS=$threads .venv/bin/python -m tumorseg.train experiment=lung_reference data.train_crop=128 \
    data.root=$D "$@" hydra.run.dir=$O/$name > $O/$name.log 2>&1
  echo "$name end $(date -u +%H:%M:%S)"
}
for s in 42 7 1; do
  run 1 s$s-fold0 seed=$s approach=split &
  run 1 s$s-fold1 seed=$s approach=cv approach.fold=1 &
  wait
done
run 1 s42-full seed=42 approach=full &
run 1 s7-full seed=7 approach=full &
wait
run 2 s1-full seed=1 approach=full
