#!/usr/bin/env bash
# Four bf16-mixed trainings of the shipped recipe on 2 CPU cores, one after another (RULES.md):
# the held-out twins (approach=split, seed 42's 10 test subjects = CV fold 0) for seeds 42 and 7,
# then their approach=full counterparts.   bash experiments/lung/seeds-bf16/run.sh DATA_ROOT
set -euo pipefail
D=$1
O=outputs/lung/seeds-bf16
mkdir -p $O
for run in split-s42:split:42 split-s7:split:7 full-s42:full:42 full-s7:full:7; do
  IFS=: read -r name approach seed <<< "$run"
  echo "$name start $(date -u +%H:%M:%S)"
  .venv/bin/python -m tumorseg.train experiment=lung_reference approach=$approach seed=$seed \
    trainer.precision=bf16-mixed data.root=$D hydra.run.dir=$O/$name > $O/$name.log 2>&1
  echo "$name end $(date -u +%H:%M:%S)"
done
