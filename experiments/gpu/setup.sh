# Sourced by the GPU session scripts: settings, the wheels absent on the GPU image, the slices
# unpacked from the carried pack, and a description of the machine in $RUNS/machine.txt.
set -u
# No network there: albumentations' update check would fail (and wait) in every process.
export PYTHONUNBUFFERED=1 HYDRA_FULL_ERROR=1 NO_ALBUMENTATIONS_UPDATE=1
OUT=${OUT:-/tmp/gpu-out}; RUNS=${RUNS:-/tmp/runs}; DATA=${DATA:-/tmp/lung-ct-slices}
TRAINER=${TRAINER:-gpu}; EXTRA=${EXTRA:-}; PY=${PY:-python3}
if [ -d "${WHEELS:-.whl}" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
mkdir -p "$OUT" "$RUNS"
[ -d "$DATA/train" ] || $PY experiments/gpu/slices.py unpack shared-pack/lung.npz "$DATA" || exit 1
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; $PY -c "import torch, lightning, albumentations, hydra; print(torch.__version__, lightning.__version__, albumentations.__version__, hydra.__version__)") \
  > "$RUNS/machine.txt" 2>&1

# train NAME OVERRIDES...: one run in the background, in $RUNS/NAME, with the caller's $common
# overrides, killed after $KILL seconds (its +trainer.max_time guard should stop it before).
train() {
  local name=$1; shift
  timeout "$KILL" $PY -m tumorseg.train hydra.run.dir="$RUNS/$name" task_name="$name" $common "$@" \
    > "$RUNS/$name.log" 2>&1 &
}

# ship_last RUN...: slim weights of each run's last epoch as $RUNS/RUN.pt (no selection on val).
ship_last() {
  local run
  for run in "$@"; do
    # ran (commit 9583ee8) as `ship CKPT OUT`; key=value since c4515d8
    [ -f "$RUNS/$run/checkpoints/last.ckpt" ] && $PY -m tumorseg.ship ckpt_path="$RUNS/$run/checkpoints/last.ckpt" \
      output="$RUNS/$run.pt" overwrite=true >> "$RUNS/ship.log" 2>&1
  done
}

# pack_runs RUN...: each named model file as $OUT/RUN.pt (the device tool brings back up to 8 files
# of at most 16 MiB); logs, configs and metrics as $OUT/runs.tar.xz (no checkpoints, TensorBoard
# events or pictures: with them the archive outgrew 16 MiB and took minutes to compress).
pack_runs() {
  local run
  for run in "$@"; do [ -f "$RUNS/$run.pt" ] && cp "$RUNS/$run.pt" "$OUT/"; done
  (cd "$(dirname "$RUNS")" && find "$(basename "$RUNS")" \( -name "*.log" -o -name "*.json" -o -name "*.yaml" -o -name "*.txt" \) \
    -print0 | tar --null -T - -cJf "$OUT/runs.tar.xz")
  grep -h "val/dice_best=\|Error\|error" "$RUNS"/*.log | head -40
}
