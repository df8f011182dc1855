# score_fold, sourced by control.sh, eval.sh and ../deeplabv3/eval.sh: the shipped evaluation of one model file on one CV fold's
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

# Sourced by speed.sh and ../deeplabv3/speed.sh: one model file's inference cost on fold 0's unseen slices, as a
# Markdown row: `tumorseg evaluate` without TTA, fp32 PyTorch, 2 threads; slices/s = slices / the command's wall time
# (model loading and scoring included, as a user waits for them). Run on an otherwise idle machine.
#   speed_row NAME MODEL RUN_DIR
speed_row() {
  local name=$1 model=$2 run=$3 start end
  start=$(date +%s.%N)
  OMP_NUM_THREADS=2 .venv/bin/python -m tumorseg.evaluate ckpt_path=$model data_dir=outputs/lung/cv-fold0-test \
    tta=false precision=32 runtime=pytorch viewer=false hydra.run.dir=$run > /dev/null 2>&1
  end=$(date +%s.%N)
  NAME=$name RUN=$run python3 -c "import json, os; s = $end - $start; n = json.load(open(os.environ['RUN'] + '/metrics.json'))['n_images']; print(f'| {os.environ[\"NAME\"]} | {s:.1f} | {n / s:.1f} |')"
}
