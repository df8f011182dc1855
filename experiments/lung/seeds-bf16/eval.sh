#!/usr/bin/env bash
# Evaluate two runs of RULES.md and their logit ensemble on a folder of slices, with the shipped
# evaluation choices (affine TTA, threshold 0.3, fp32), writing one JSON each to experiments/.
#   bash experiments/lung/seeds-bf16/eval.sh split outputs/lung/cv-fold0-test heldout
#   bash experiments/lung/seeds-bf16/eval.sh full <lung-ct-slices>/val val   (needs full-s7, not trained: README.md)
set -euo pipefail
approach=$1 data=$2 tag=$3
O=outputs/lung/seeds-bf16
E=experiments/lung/seeds-bf16/eval
mkdir -p $E
# ran at commit c20684e as `ship CKPT OUT --threshold 0.3 --tta affine --ensemble CKPT2`; key=value since c4515d8
.venv/bin/python -m tumorseg.ship ckpt_path=$O/$approach-s42/checkpoints/last.ckpt output=$O/$approach-ensemble.pt \
  threshold=0.3 tta=affine "ensemble=[$O/$approach-s7/checkpoints/last.ckpt]" overwrite=true
for model in $O/$approach-s42/checkpoints/last.ckpt $O/$approach-s7/checkpoints/last.ckpt $O/$approach-ensemble.pt; do
  name=$(basename $(dirname $(dirname $model)))
  [ "${model##*.}" = pt ] && name=$approach-ensemble
  [ -f $E/$name-$tag.json ] && continue   # evaluated already
  .venv/bin/python -m tumorseg.evaluate ckpt_path=$model data_dir=$data tta=affine threshold=0.3 precision=32 \
    hydra.run.dir=$O/eval/$name-$tag > $O/eval-$name-$tag.log 2>&1
  cp $O/eval/$name-$tag/metrics.json $E/$name-$tag.json
done
for f in $E/*-$tag.json; do
  echo "$(basename $f .json): $(.venv/bin/python -c "import json; d=json.load(open('$f')); print(' '.join(f'{k} {d[k]:.3f}' for k in ('dice','dice_per_subject','precision','recall')))")"
done
