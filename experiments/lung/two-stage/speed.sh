#!/usr/bin/env bash
# Inference cost of each file on fold 0's 370 unseen slices (speed_row in score.sh: evaluate without TTA, fp32
# PyTorch, 2 threads, one file after the other on an otherwise idle machine):
#   bash experiments/lung/two-stage/speed.sh      (after eval.sh; prints a Markdown table)
set -euo pipefail
source experiments/lung/two-stage/score.sh
O=outputs/lung/two-stage
echo "| file | seconds | slices/s |"
echo "|---|---|---|"
speed_row "stage 1 alone (the shipped recipe's fold-0 model)" outputs/lung/lite-cpu/fold0/checkpoints/last.ckpt \
  $O/speed-last
speed_row "two-stage (stage 1 + crop model)" $O/two-stage-fold0.pt $O/speed-two-stage-fold0
