#!/usr/bin/env bash
# tta=affine on the five CV fold models' unseen subjects (RULES.md); tta=true is in ../finetune-4ep's evals.
set -euo pipefail
O=outputs/lung/tta-affine
for F in 0 1 2 3 4; do
  if [ $F = 0 ]; then CK=outputs/lung/split-all-16ep-tversky/checkpoints/last.ckpt; T=outputs/lung/heldout-split42
  else CK=outputs/lung/cv-all-16ep-tversky/fold$F/checkpoints/last.ckpt; T=outputs/lung/cv-fold$F-test; fi
  python -m tumorseg.evaluate ckpt_path=$CK data_dir=$T tta=affine threshold=0.3 precision=32 hydra.run.dir=$O/fold$F
done
