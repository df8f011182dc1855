#!/usr/bin/env bash
# The loss variants of experiments/lung/loss-gpu/RULES.md, run on the machine that width.sh had
# just used (its slices, wheels and fold folders still there): Tversky with alpha 0.2 / beta 0.8
# (Tb8) and focal_dice (FD), each by 5-fold subject CV in the setting of width.sh's control arm R,
# then each fold model on its 10 unseen subjects. On a fresh machine, source setup.sh first and
# make the fold folders as width.sh does. Results: $OUT/ev2.tar.xz.
export PYTHONPATH=/tmp/site:$PWD NO_ALBUMENTATIONS_UPDATE=1 PYTHONUNBUFFERED=1
c="experiment=lung_reference data.root=/tmp/lung-ct-slices trainer=gpu trainer.precision=32 data.batch_size=16 data.num_workers=2 +trainer.max_time=00:00:03:10 callbacks.progress_bar=null +trainer.enable_progress_bar=false callbacks.prediction_pictures=null approach=cv"
s=$(date +%s)
for f in 0 1 2 3 4; do
  timeout 200 python3 -m tumorseg.train hydra.run.dir=/tmp/r2/Tb8-$f $c approach.fold=$f loss.alpha=0.2 loss.beta=0.8 > /tmp/r2-Tb8-$f.log 2>&1 &
  timeout 200 python3 -m tumorseg.train hydra.run.dir=/tmp/r2/FD-$f $c approach.fold=$f loss=focal_dice > /tmp/r2-FD-$f.log 2>&1 &
done
wait
echo "train $(( $(date +%s) - s )) s"
export OMP_NUM_THREADS=1
for f in 0 1 2 3 4; do
  for a in Tb8 FD; do
    timeout 60 python3 -m tumorseg.evaluate ckpt_path=/tmp/r2/$a-$f/checkpoints/last.ckpt data_dir=/tmp/fold$f tta=affine threshold=0.3 \
      precision=32 device=cuda hydra.run.dir=/tmp/ev2/$a-$f > /tmp/ev2-$a-$f.log 2>&1 &
  done
done
wait
echo "all $(( $(date +%s) - s )) s"
cd /tmp && tar cJf $OUT/ev2.tar.xz r2-*.log ev2-*.log ev2 r2/*/metrics.json
grep -h "epoch 15" r2-*.log | wc -l
