#!/usr/bin/env bash
# A second GPU session: the reference recipe of that morning (flips, Tversky, one-cycle) trained
# for a full 40-epoch schedule instead of 16, and four one-change variants of it. Each
# candidate runs twice, at once on the one GPU:
#   - split-X: approach=split (40 training subjects; test = 10 unseen ones). Its last epoch,
#     evaluated on those 10 subjects, is what picks the recipe (not val: val is what it is reported on);
#   - full-X: approach=full (all 50 training subjects), its last epoch shipped as full-X.pt and
#     evaluated on val/ (subjects 57-60).
# Carried: .whl and shared-pack (see run.sh). Results: $OUT/runs.tar.xz, $OUT/full-*.pt, $OUT/splits-{a,b}.pt
# (evaluated back here: experiments/lung/gpu-h100-tversky/README.md).
EPOCHS=${EPOCHS:-40}; MAXTIME=${MAXTIME:-00:00:06:30}; KILL=${KILL:-440}
source "$(dirname "$0")/setup.sh"

common="data.root=$DATA loss=tversky scheduler=onecycle trainer=$TRAINER trainer.max_epochs=$EPOCHS data.num_workers=2 +trainer.max_time=$MAXTIME callbacks.progress_bar=null +trainer.enable_progress_bar=false callbacks.prediction_pictures=null $EXTRA"
declare -A VARIANT=(
  [T]="augment=flip"                                      # the recipe as it was, 40 epochs
  [Tb8]="augment=flip loss.alpha=0.2 loss.beta=0.8"       # misses cost 4x false alarms (was 0.7 / 0.3)
  [Tctx]="augment=flip data.context_slices=1"             # 2.5D: slices K-1, K, K+1
  [Tall]="augment=all data.num_workers=3"                 # flips + affine + elastic + brightness/contrast
  [Tema]="augment=flip callbacks=ema"                     # weights averaged over the steps
)
NAMES="T Tb8 Tctx Tall Tema"
start=$(date +%s)
for v in $NAMES; do
  train "split-$v" approach=split ${VARIANT[$v]}
  train "full-$v" approach=full ${VARIANT[$v]}
done
wait
echo "training: $(( $(date +%s) - start )) s" | tee -a "$RUNS/machine.txt"

ship_last $(for v in $NAMES; do echo "split-$v full-$v"; done)
pack_runs $(for v in $NAMES; do echo "full-$v"; done)
# The split runs' models travel at half precision, two files (the 8-file limit); evaluate them here
# (ckpt_path=<split-X.pt> data_dir=<the 10 test subjects of approach=split>) after casting back.
$PY - "$RUNS" "$OUT" $(for v in $NAMES; do echo "split-$v"; done) <<'PY'
import sys, torch
runs, out, *names = sys.argv[1:]
models = {}
for name in names:
    try:
        m = torch.load(f"{runs}/{name}.pt", weights_only=True)
    except FileNotFoundError:
        continue
    m["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in m["state_dict"].items()}
    models[name] = m
names = sorted(models)
torch.save({k: models[k] for k in names[:3]}, f"{out}/splits-a.pt")
torch.save({k: models[k] for k in names[3:]}, f"{out}/splits-b.pt")
PY
ls -la "$OUT"
