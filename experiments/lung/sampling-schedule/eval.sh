#!/usr/bin/env bash
# The shipped evaluation (affine TTA @0.3, fp32) of each arm's fold models on the fold's 10 unseen
# subjects, both folds at once:
#   bash experiments/lung/sampling-schedule/eval.sh DATA_ROOT [ARM...]   (ARM: share95 cosine poly ema; then: python experiments/lung/sampling-schedule/decide.py)
set -euo pipefail
D=$1; shift
O=outputs/lung/sampling-schedule
E=experiments/lung/sampling-schedule/eval
mkdir -p $E
arms=("$@"); [ ${#arms[@]} -gt 0 ] || arms=(share95 cosine)
for f in 0 1; do
  [ -d outputs/lung/cv-fold$f-test ] || .venv/bin/python experiments/lung/cv-all-16ep-tversky/fold_dir.py $f $D outputs/lung/cv-fold$f-test
done
for arm in "${arms[@]}"; do
  for f in 0 1; do
    OMP_NUM_THREADS=1 .venv/bin/python -m tumorseg.evaluate ckpt_path=$O/$arm-fold$f/checkpoints/last.ckpt \
      data_dir=outputs/lung/cv-fold$f-test tta=affine threshold=0.3 precision=32 hydra.run.dir=$O/eval-$arm-fold$f \
      > $O/eval-$arm-fold$f.log 2>&1 && cp $O/eval-$arm-fold$f/metrics.json $E/$arm-fold$f.json &
  done
  wait
done
