#!/usr/bin/env bash
# The two-stage pipeline's crop models (stage 2) on CV folds 0 and 1 (RULES.md), both at once, one CPU core each.
# Stage 1 is each fold's model of the shipped recipe, seed 42 (../lite-net/train.sh: outputs/lung/lite-cpu/fold{0,1});
# its false alarms on the fold's training slices are the hard negatives:
#   bash experiments/lung/two-stage/train.sh DATA_ROOT        (then: bash experiments/lung/two-stage/eval.sh DATA_ROOT)
#
# Time, estimated before any run (2 cores, one run per core): stage 1's proposals over a fold's train/val slices,
# ~1,000 slices at ~6 slices/s on one core, ~3 min; then 16 epochs of ~1,800 crops (one per tumor component, as
# many random lung crops, and the false alarms) at 128 x 128, ~19 crops/s on one core (half of the ~38 crops/s
# measured on 2 cores in ../crop-ensemble/RULES.md), ~25 min. About 30 minutes for both folds together; the first
# epoch's time in the log (and the crop counts on its `data ...` line) sets the real figure.
set -euo pipefail
D=$1
S=outputs/lung/lite-cpu  # stage 1: the shipped recipe's fold models
O=outputs/lung/two-stage
mkdir -p $O
train() {  # fold, approach overrides
  echo "crops-fold$1 start $(date -u +%H:%M:%S)"
  OMP_NUM_THREADS=1 .venv/bin/python -m tumorseg.train experiment=lung_reference data=lung_crops $2 data.root=$D \
    data.crops.proposals_from=$S/fold$1/checkpoints/last.ckpt hydra.run.dir=$O/crops-fold$1 > $O/crops-fold$1.log 2>&1
  echo "crops-fold$1 end $(date -u +%H:%M:%S)"
}
train 0 approach=split &
train 1 "approach=cv approach.fold=1" &
wait
