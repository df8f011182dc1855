#!/usr/bin/env bash
# Each fold's DeepLabV3+ model under the shipped evaluation (affine TTA @0.3, fp32) on its 10 unseen subjects, both
# at once, then decided by the rule against the shipped recipe's fold models (../two-stage/control.sh scores those):
#   bash experiments/lung/deeplabv3/eval.sh DATA_ROOT
set -euo pipefail
O=outputs/lung/deeplabv3
E=experiments/lung/deeplabv3/eval
source experiments/lung/two-stage/score.sh
score() {  # fold, data root
  score_fold $1 $2 $O/fold$1/checkpoints/last.ckpt $O/eval-fold$1 $E/fold$1.json tta=affine threshold=0.3
}
score 0 $1 &
score 1 $1 &
wait
[ -f experiments/lung/two-stage/eval/stage1-fold1.json ] || bash experiments/lung/two-stage/control.sh $1
.venv/bin/python -m tumorseg.compare "a=experiments/lung/two-stage/eval/stage1-fold*.json" "b=$E/fold*.json" \
  rule=experiments/lung/deeplabv3/rule.yaml output=experiments/lung/deeplabv3/compare
