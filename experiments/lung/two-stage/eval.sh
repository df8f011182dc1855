#!/usr/bin/env bash
# Each fold's stage 1 and crop model shipped as one two-stage file, with the shipped evaluation's choices (affine TTA,
# threshold 0.3, fp32) and the crop models' proposal threshold (0.2), all fixed in RULES.md before any result; scored
# on the fold's 10 unseen subjects, then decided by the rule against the shipped recipe's fold models alone:
#   bash experiments/lung/two-stage/eval.sh DATA_ROOT
# Time, estimated: ~250 slices a fold at 10 TTA views on one core, stage 1 ~3 min, the crops ~1 min; both folds at once.
set -euo pipefail
S=outputs/lung/lite-cpu
O=outputs/lung/two-stage
E=experiments/lung/two-stage/eval
source experiments/lung/two-stage/score.sh
score() {  # fold, data root
  .venv/bin/python -m tumorseg.ship ckpt_path=$S/fold$1/checkpoints/last.ckpt \
    crop=$O/crops-fold$1/checkpoints/last.ckpt proposal_threshold=0.2 threshold=0.3 tta=affine \
    output=$O/two-stage-fold$1.pt overwrite=true
  score_fold $1 $2 $O/two-stage-fold$1.pt $O/eval-fold$1 $E/fold$1.json
}
score 0 $1 &
score 1 $1 &
wait
# a = stage 1 alone, the retrained shipped-recipe fold models (control.sh; RULES.md's amendment), b = two stages
[ -f $E/stage1-fold1.json ] || bash experiments/lung/two-stage/control.sh $1
.venv/bin/python -m tumorseg.compare "a=$E/stage1-fold*.json" "b=$E/fold*.json" \
  rule=experiments/lung/two-stage/rule.yaml output=experiments/lung/two-stage/compare
