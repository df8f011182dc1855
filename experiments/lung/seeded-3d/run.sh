#!/usr/bin/env bash
# The grid of RULES.md on one fold: bash experiments/lung/seeded-3d/run.sh FOLD CKPT FOLDER
set -euo pipefail
fold=$1 ckpt=$2 folder=$3
for t in 0.3 0.2; do for s in 0 0.5 0.7 0.9; do
  [ "$t" = 0.2 ] && [ "$s" = 0 ] && continue   # the baseline is threshold 0.3 without seeds
  python -m tumorseg.evaluate ckpt_path=$ckpt data_dir=$folder tta=true threshold=$t precision=32 \
    postprocess.seed_threshold=$s hydra.run.dir=outputs/lung/seeded-3d/fold$fold-t$t-s$s > /dev/null
  python -c "import json; m=json.load(open('outputs/lung/seeded-3d/fold$fold-t$t-s$s/metrics.json')); print('fold$fold t=$t seed=$s', *(f'{k} {m[k]:.4f}' for k in ('dice', 'dice_per_subject', 'precision', 'recall')))"
done; done
