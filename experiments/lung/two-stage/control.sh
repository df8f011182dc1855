#!/usr/bin/env bash
# The control of the two-stage and DeepLabV3+ decisions: the shipped recipe's fold models (stage 1) alone, retrained
# by ../lite-net/train.sh, under the shipped evaluation (affine TTA @0.3, fp32) on their folds' 10 unseen subjects:
#   bash experiments/lung/two-stage/control.sh DATA_ROOT
set -euo pipefail
S=outputs/lung/lite-cpu
E=experiments/lung/two-stage/eval
mkdir -p $E
score() {  # fold
  T=outputs/lung/cv-fold$1-test
  [ -d $T ] || .venv/bin/python experiments/lung/cv-all-16ep-tversky/fold_dir.py $1 $2 $T
  OMP_NUM_THREADS=1 .venv/bin/python -m tumorseg.evaluate ckpt_path=$S/fold$1/checkpoints/last.ckpt data_dir=$T \
    tta=affine threshold=0.3 precision=32 hydra.run.dir=$S/eval-fold$1 > $S/eval-fold$1.log 2>&1
  cp $S/eval-fold$1/metrics.json $E/stage1-fold$1.json
}
score 0 $1 &
score 1 $1 &
wait
