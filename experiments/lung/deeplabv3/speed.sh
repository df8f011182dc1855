#!/usr/bin/env bash
# Inference cost of the fold-0 DeepLabV3+ model beside the shipped recipe's fold-0 model on fold 0's 370 unseen
# slices (speed_row in ../two-stage/score.sh: evaluate without TTA, fp32 PyTorch, 2 threads, one after the other on
# an otherwise idle machine):
#   bash experiments/lung/deeplabv3/speed.sh      (after train.sh; prints a Markdown table)
set -euo pipefail
source experiments/lung/two-stage/score.sh
O=outputs/lung/deeplabv3
echo "| model | seconds | slices/s |"
echo "|---|---|---|"
speed_row "U-Net (the shipped recipe's fold-0 model)" outputs/lung/lite-cpu/fold0/checkpoints/last.ckpt $O/speed-unet
speed_row "DeepLabV3+ (fold 0)" $O/fold0/checkpoints/last.ckpt $O/speed-deeplabv3
