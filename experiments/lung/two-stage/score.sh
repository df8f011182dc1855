# Sourced by control.sh, eval.sh and ../deeplabv3/eval.sh: the shipped evaluation of one model file on one CV fold's
# 10 unseen subjects (the fold's test folder made first where missing), its figures copied into experiments/:
#   score_fold FOLD DATA_ROOT MODEL RUN_DIR JSON [evaluate overrides...]
# The model file's own TTA and threshold hold unless overridden (the shipped ones: tta=affine threshold=0.3).
score_fold() {
  local fold=$1 data=$2 model=$3 run=$4 json=$5 test=outputs/lung/cv-fold$1-test
  shift 5
  [ -d $test ] || .venv/bin/python experiments/lung/cv-all-16ep-tversky/fold_dir.py $fold $data $test
  OMP_NUM_THREADS=1 .venv/bin/python -m tumorseg.evaluate ckpt_path=$model data_dir=$test precision=32 "$@" \
    hydra.run.dir=$run > $run.log 2>&1
  mkdir -p "$(dirname $json)"
  cp $run/metrics.json $json
}
