#!/usr/bin/env bash
# Each fold model's shipped evaluation (affine TTA @0.3, fp32) on its 10 unseen subjects, both at once:
#   bash experiments/lung/lite-net/eval.sh DATA_ROOT    (then: python experiments/lung/lite-net/decide.py)
set -euo pipefail
O=outputs/lung/lite-cpu
for f in 0 1; do
  T=outputs/lung/cv-fold$f-test
  [ -d $T ] || .venv/bin/python experiments/lung/cv-all-16ep-tversky/fold_dir.py $f $1 $T
  OMP_NUM_THREADS=1 .venv/bin/python -m tumorseg.evaluate ckpt_path=$O/fold$f/checkpoints/last.ckpt data_dir=$T \
    tta=affine threshold=0.3 precision=32 hydra.run.dir=$O/eval-fold$f > $O/eval-fold$f.log 2>&1 &
done
wait
mkdir -p experiments/lung/lite-net/eval
for f in 0 1; do cp $O/eval-fold$f/metrics.json experiments/lung/lite-net/eval/fold$f.json; done
