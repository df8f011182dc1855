#!/usr/bin/env bash
# The fine-tune of the five CV fold models and of the full run, then their evaluations (RULES.md).
#   bash experiments/lung/finetune-4ep/run.sh ../shared/data/lung-ct-slices
set -euo pipefail
D=${1:?the lung-ct-slices root}
O=outputs/lung/finetune-4ep
start_of() {  # the 16-epoch model a fold starts from
  if [ "$1" = 0 ]; then echo outputs/lung/split-all-16ep-tversky/checkpoints/last.ckpt
  else echo outputs/lung/cv-all-16ep-tversky/fold$1/checkpoints/last.ckpt; fi
}
test_dir() { if [ "$1" = 0 ]; then echo outputs/lung/heldout-split42; else echo outputs/lung/cv-fold$1-test; fi; }
for F in 0 1 2 3 4; do
  echo "fold $F start $(date -u +%H:%M)"
  python -m tumorseg.train experiment=lung_finetune approach=cv approach.fold=$F init_from="$(start_of $F)" \
    data.root="$D" hydra.run.dir=$O/fold$F
  for M in start tuned; do
    CK=$([ $M = start ] && start_of $F || echo $O/fold$F/checkpoints/last.ckpt)
    python -m tumorseg.evaluate ckpt_path="$CK" data_dir="$(test_dir $F)" tta=true threshold=0.3 precision=32 \
      hydra.run.dir=$O/eval/fold$F-$M
  done
  echo "fold $F done $(date -u +%H:%M)"
done
echo "full start $(date -u +%H:%M)"
python -m tumorseg.train experiment=lung_finetune init_from=outputs/lung/full-all-16ep-tversky/checkpoints/last.ckpt \
  data.root="$D" hydra.run.dir=$O/full
python -m tumorseg.evaluate ckpt_path=$O/full/checkpoints/last.ckpt data_dir="$D/val" tta=true threshold=0.3 \
  precision=32 hydra.run.dir=$O/eval/full-val
echo "full done $(date -u +%H:%M)"
