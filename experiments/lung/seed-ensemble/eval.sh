#!/usr/bin/env bash
# The shipped evaluation (affine TTA @0.3, fp32) of the seed-7 fold models alone and of their ensembles
# with the seed-42 fold models (../lite-net/), on each fold's 10 unseen subjects, four at once:
#   bash experiments/lung/seed-ensemble/eval.sh DATA_ROOT    (then: python experiments/lung/seed-ensemble/decide.py)
set -euo pipefail
O=outputs/lung/seed7
E=experiments/lung/seed-ensemble/eval
mkdir -p $E
score() {  # model file or checkpoint, fold, name
  OMP_NUM_THREADS=1 .venv/bin/python -m tumorseg.evaluate ckpt_path=$1 data_dir=outputs/lung/cv-fold$2-test \
    tta=affine threshold=0.3 precision=32 hydra.run.dir=$O/eval-$3 > $O/eval-$3.log 2>&1
  cp $O/eval-$3/metrics.json $E/$3.json
}
for f in 0 1; do
  T=outputs/lung/cv-fold$f-test
  [ -d $T ] || .venv/bin/python experiments/lung/cv-all-16ep-tversky/fold_dir.py $f $1 $T
  # ran at commit a452d8b as `ship CKPT OUT --ensemble CKPT2 --threshold 0.3 --tta affine`; key=value since c4515d8
  .venv/bin/python -m tumorseg.ship ckpt_path=outputs/lung/lite-cpu/fold$f/checkpoints/last.ckpt \
    output=$O/ensemble-fold$f.pt "ensemble=[$O/fold$f/checkpoints/last.ckpt]" threshold=0.3 tta=affine overwrite=true
  score $O/fold$f/checkpoints/last.ckpt $f seed7-fold$f &
  score $O/ensemble-fold$f.pt $f ensemble-fold$f &
done
wait
