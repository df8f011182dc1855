#!/usr/bin/env bash
# The second seed of the shipped recipe on CV folds 0 and 1 (RULES.md), both at once, one CPU core each:
#   bash experiments/lung/seed-ensemble/train.sh DATA_ROOT
# then, only if the screen passes, its approach=full run (alone: its time is the one that counts):
#   bash experiments/lung/seed-ensemble/train.sh DATA_ROOT full
set -euo pipefail
O=outputs/lung/seed7
mkdir -p $O
run() {  # name, overrides...
  local name=$1; shift
  echo "$name start $(date -u +%H:%M:%S)"
  .venv/bin/python -m tumorseg.train experiment=lung_reference seed=7 data.root=$D "$@" hydra.run.dir=$O/$name \
    > $O/$name.log 2>&1
  echo "$name end $(date -u +%H:%M:%S)"
}
D=$1
case "${2:-folds}" in
  full) run full approach=full ;;
  folds)
    OMP_NUM_THREADS=1 run fold0 approach=split &
    OMP_NUM_THREADS=1 run fold1 approach=cv approach.fold=1 &
    wait ;;
esac
