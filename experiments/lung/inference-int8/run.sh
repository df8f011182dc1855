#!/usr/bin/env bash
# int8 ONNX export vs the PyTorch fp32 model: the shipped model on val, and the CV fold models on their
# unseen subjects (each calibrated on slices of its own training subjects, never on its test subjects).
#   bash experiments/lung/inference-int8/run.sh <lung-ct-slices>
set -euo pipefail
D=${1:?usage: run.sh <lung-ct-slices>}
E=experiments/lung/inference-int8
O=outputs/lung/inference-int8
mkdir -p $E/eval $O
evaluate() {  # model data name args...
  local model=$1 data=$2 name=$3; shift 3
  python -m tumorseg.evaluate ckpt_path=$model data_dir=$data "$@" hydra.run.dir=$O/eval-$name
  cp $O/eval-$name/metrics.json $E/eval/$name.json
}
if [ -z "${FOLDS:-}" ]; then  # FOLDS="4": only those folds' part
python -m tumorseg.export output=$O/shipped.int8.onnx quantize=int8 calibration_dir=$D/train hydra.run.dir=$O/export-shipped \
  | tee $E/eval/export-shipped.txt
for p in 32 bf16; do evaluate tumorseg/reference/lung_unet.pt $D/val shipped-val-$p precision=$p; done
evaluate $O/shipped.int8.onnx $D/val shipped-val-int8
fi
# fold 0 = the held-out twin of ../cpu-16ep-twins/ (calibrated on fold 1's test subjects, part of its training)
declare -A CKPT=([0]=outputs/lung/split-all-16ep-tversky/checkpoints/last.ckpt
                 [1]=outputs/lung/cv-all-16ep-tversky/fold1/checkpoints/last.ckpt
                 [2]=outputs/lung/cv-all-16ep-tversky/fold2/checkpoints/last.ckpt
                 [3]=outputs/lung/cv-all-16ep-tversky/fold3/checkpoints/last.ckpt
                 [4]=outputs/lung/cv-all-16ep-tversky/fold4/checkpoints/last.ckpt)
declare -A TEST=([0]=outputs/lung/heldout-split42 [1]=outputs/lung/cv-fold1-test
                 [2]=outputs/lung/cv-fold2-test [3]=outputs/lung/cv-fold3-test [4]=outputs/lung/cv-fold4-test)
for F in ${FOLDS:-0 1 2 3 4}; do
  CAL=outputs/lung/heldout-split42; [ $F = 0 ] && CAL=outputs/lung/cv-fold1-test
  python -m tumorseg.export ckpt_path=${CKPT[$F]} output=$O/fold$F.int8.onnx quantize=int8 calibration_dir=$CAL \
    hydra.run.dir=$O/export-fold$F | tee $E/eval/export-fold$F.txt
  evaluate ${CKPT[$F]} ${TEST[$F]} fold$F-32 tta=true threshold=0.3 precision=32
  evaluate $O/fold$F.int8.onnx ${TEST[$F]} fold$F-int8 tta=true threshold=0.3
done
