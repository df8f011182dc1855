#!/usr/bin/env bash
# Inference cost of each file on fold 0's 370 unseen slices: `tumorseg evaluate` without TTA, fp32 PyTorch, 2 threads,
# one file after the other on an otherwise idle machine; slices/s = 370 / the command's wall time (model loading and
# scoring included, as a user waits for them):
#   bash experiments/lung/two-stage/speed.sh      (after eval.sh; prints a Markdown table)
set -euo pipefail
T=outputs/lung/cv-fold0-test
O=outputs/lung/two-stage
echo "| file | seconds | slices/s |"
echo "|---|---|---|"
for pair in "stage 1 alone (the shipped recipe's fold-0 model)=outputs/lung/lite-cpu/fold0/checkpoints/last.ckpt" \
            "two-stage (stage 1 + crop model)=$O/two-stage-fold0.pt"; do
  name=${pair%%=*} ckpt=${pair#*=}
  start=$(date +%s.%N)
  OMP_NUM_THREADS=2 .venv/bin/python -m tumorseg.evaluate ckpt_path=$ckpt data_dir=$T tta=false precision=32 \
    runtime=pytorch viewer=false hydra.run.dir=$O/speed-$(basename $ckpt .pt) > /dev/null 2>&1
  end=$(date +%s.%N)
  n=$(python3 -c "import json; print(json.load(open('$O/speed-$(basename $ckpt .pt)/metrics.json'))['n_images'])")
  NAME=$name N=$n python3 -c "import os; s = $end - $start; print(f'| {os.environ[\"NAME\"]} | {s:.1f} | {int(os.environ[\"N\"]) / s:.1f} |')"
done
