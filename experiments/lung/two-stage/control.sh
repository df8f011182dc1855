#!/usr/bin/env bash
# The control of the two-stage and DeepLabV3+ decisions: the shipped recipe's fold models (stage 1) alone, retrained
# by ../lite-net/train.sh, under the shipped evaluation (affine TTA @0.3, fp32) on their folds' 10 unseen subjects:
#   bash experiments/lung/two-stage/control.sh DATA_ROOT
set -euo pipefail
S=outputs/lung/lite-cpu
E=experiments/lung/two-stage/eval
source experiments/lung/two-stage/score.sh
score() {  # fold, data root
  score_fold $1 $2 $S/fold$1/checkpoints/last.ckpt $S/eval-fold$1 $E/stage1-fold$1.json tta=affine threshold=0.3
}
score 0 $1 &
score 1 $1 &
wait
