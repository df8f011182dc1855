#!/usr/bin/env bash
# The shipped evaluation (affine TTA @0.3, fp32) on each CV fold's 10 unseen subjects: each crop-trained
# member alone and the three members' logit ensemble (one file, `tumorseg.ship --ensemble`), two at once:
#   bash experiments/lung/crop-ensemble/eval.sh DATA_ROOT     (then: python experiments/lung/crop-ensemble/decide.py)
# and, only if decide.py says the screen passed, the approach=full ensemble on val (RULES.md rule 3):
#   bash experiments/lung/crop-ensemble/eval.sh DATA_ROOT val
set -euo pipefail
D=$1
O=outputs/lung/crop-ensemble
E=experiments/lung/crop-ensemble/eval
mkdir -p $E
score() {  # model, data folder, name
  OMP_NUM_THREADS=1 .venv/bin/python -m tumorseg.evaluate ckpt_path=$1 data_dir=$2 tta=affine threshold=0.3 \
    precision=32 hydra.run.dir=$O/eval-$3 > $O/eval-$3.log 2>&1
  cp $O/eval-$3/metrics.json $E/$3.json
}
ensemble() {  # part (fold0, fold1, full)
  # ran at commit d4a30cc as `ship CKPT OUT --threshold 0.3 --tta affine --ensemble ...`; ship takes key=value since c4515d8
  .venv/bin/python -m tumorseg.ship ckpt_path=$O/s42-$1/checkpoints/last.ckpt output=$O/ensemble-$1.pt threshold=0.3 \
    tta=affine "ensemble=[$O/s7-$1/checkpoints/last.ckpt,$O/s1-$1/checkpoints/last.ckpt]" overwrite=true
}
if [ "${2:-folds}" = val ]; then
  ensemble full
  score $O/ensemble-full.pt $D/val val-ensemble
  exit
fi
for f in 0 1; do
  T=outputs/lung/cv-fold$f-test
  [ -d $T ] || .venv/bin/python experiments/lung/cv-all-16ep-tversky/fold_dir.py $f $D $T
  ensemble fold$f
done
for f in 0 1; do score $O/ensemble-fold$f.pt outputs/lung/cv-fold$f-test ensemble-fold$f & done; wait
for s in 42 7 1; do
  for f in 0 1; do score $O/s$s-fold$f/checkpoints/last.ckpt outputs/lung/cv-fold$f-test s$s-fold$f & done; wait
done
