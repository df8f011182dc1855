#!/usr/bin/env bash
# The candidate on CV folds 0 and 1 (RULES.md), both at once, one CPU core each:
#   bash experiments/lung/lite-net/train.sh DATA_ROOT
# then, only if the screen passes, the approach=full run:
#   bash experiments/lung/lite-net/train.sh DATA_ROOT full
set -euo pipefail
D=$1
O=outputs/lung/lite-cpu
mkdir -p $O
train() {  # name, approach overrides
  echo "$1 start $(date -u +%H:%M:%S)"
  # ran at commit 620c344 with model=unet_lite, which became the default network (model=unet) at 591975f
  .venv/bin/python -m tumorseg.train experiment=lung_reference model=unet $2 data.root=$D \
    hydra.run.dir=$O/$1 > $O/$1.log 2>&1
  echo "$1 end $(date -u +%H:%M:%S)"
}
if [ "${2:-}" = full ]; then
  train full approach=full
else
  OMP_NUM_THREADS=1 train fold0 approach=split &
  OMP_NUM_THREADS=1 train fold1 "approach=cv approach.fold=1" &
  wait
fi
