#!/usr/bin/env bash
# The screen of RULES.md: unet_fast, 32 epochs, on CV folds 0 and 1 at the same time, one thread
# each, then each fold's evaluation on its 10 unseen subjects (affine TTA @0.3, fp32).
#   bash experiments/lung/fast-32ep/run.sh DATA_ROOT
set -euo pipefail
D=$1
O=outputs/lung/fast-32ep
E=experiments/lung/fast-32ep/eval
mkdir -p $O $E
fold() {  # name, approach overrides, held-out folder
  local name=$1 approach=$2 test=$3
  echo "$name start $(date -u +%H:%M:%S)"
  OMP_NUM_THREADS=1 .venv/bin/python -m tumorseg.train experiment=lung_reference model=unet_fast \
    trainer.max_epochs=32 $approach data.root=$D hydra.run.dir=$O/$name > $O/$name.log 2>&1
  echo "$name end $(date -u +%H:%M:%S)"
  [ -d $test ] || .venv/bin/python experiments/lung/cv-all-16ep-tversky/fold_dir.py ${name#fold} $D $test
  OMP_NUM_THREADS=1 .venv/bin/python -m tumorseg.evaluate ckpt_path=$O/$name/checkpoints/last.ckpt data_dir=$test \
    tta=affine threshold=0.3 precision=32 hydra.run.dir=$O/eval-$name > $O/eval-$name.log 2>&1
  cp $O/eval-$name/metrics.json $E/$name.json
  echo "$name evaluated $(date -u +%H:%M:%S)"
}
fold fold0 approach=split outputs/lung/cv-fold0-test &
fold fold1 "approach=cv approach.fold=1" outputs/lung/cv-fold1-test &
wait
