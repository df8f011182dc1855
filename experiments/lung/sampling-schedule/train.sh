#!/usr/bin/env bash
# The arms of RULES.md (two, then two in its addendum), each on CV folds 0 and 1 (both folds at once, one CPU core each),
# one arm after the other; every run is the shipped recipe at seed 42 with one change:
#   bash experiments/lung/sampling-schedule/train.sh DATA_ROOT [ARM...]   (ARM: share95 cosine poly ema; default the first two)
set -euo pipefail
D=$1; shift
O=outputs/lung/sampling-schedule
mkdir -p $O
declare -A CHANGE=([share95]="data.tumor_share=0.95" [cosine]="scheduler=cosine" [poly]="scheduler=poly" [ema]="callbacks=ema")
run() {  # arm, fold, approach overrides
  echo "$1-fold$2 start $(date -u +%H:%M:%S)"
  OMP_NUM_THREADS=1 .venv/bin/python -m tumorseg.train experiment=lung_reference ${CHANGE[$1]} $3 data.root=$D \
    hydra.run.dir=$O/$1-fold$2 > $O/$1-fold$2.log 2>&1
  echo "$1-fold$2 end $(date -u +%H:%M:%S)"
}
arms=("$@"); [ ${#arms[@]} -gt 0 ] || arms=(share95 cosine)
for arm in "${arms[@]}"; do
  run $arm 0 approach=split &
  run $arm 1 "approach=cv approach.fold=1" &
  wait
done
