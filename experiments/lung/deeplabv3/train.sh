#!/usr/bin/env bash
# model=deeplabv3 with the shipped recipe on CV folds 0 and 1 (RULES.md), both at once, one CPU core each:
#   bash experiments/lung/deeplabv3/train.sh DATA_ROOT        (then: bash experiments/lung/deeplabv3/eval.sh DATA_ROOT)
# Time, estimated before any run: the control's folds took 53-56 min on one core each (../lite-net/README.md) and a
# DeepLabV3+ training step is 1.17x the U-Net's (RULES.md): ~47 min a fold alone on a core, longer beside other runs.
set -euo pipefail
D=$1
O=outputs/lung/deeplabv3
mkdir -p $O
train() {  # fold, approach overrides
  echo "fold$1 start $(date -u +%H:%M:%S)"
  OMP_NUM_THREADS=1 .venv/bin/python -m tumorseg.train experiment=lung_reference model=deeplabv3 $2 data.root=$D \
    hydra.run.dir=$O/fold$1 > $O/fold$1.log 2>&1
  echo "fold$1 end $(date -u +%H:%M:%S)"
}
train 0 approach=split &
train 1 "approach=cv approach.fold=1" &
wait
