#!/usr/bin/env bash
# The shipped recipe's fold models on 2 CPU cores, fp32, one after the other (RULES.md):
#   bash experiments/lung/lcc-3d/train.sh DATA_ROOT
set -euo pipefail
D=$1
O=outputs/lung/tb8-cpu
mkdir -p $O
train() {  # name, approach overrides
  echo "$1 start $(date -u +%H:%M:%S)"
  .venv/bin/python -m tumorseg.train experiment=lung_reference $2 data.root=$D hydra.run.dir=$O/$1 > $O/$1.log 2>&1
  echo "$1 end $(date -u +%H:%M:%S)"
}
train fold0 approach=split
train fold1 "approach=cv approach.fold=1"
