#!/usr/bin/env bash
# DKD | ade20k overlap 100-50 (2 steps) | DeepLabV3-ResNet101 (OS 16) | no memory
# Published (DKD README, released weights, final step): hIoU 29.42, mIoU_all 35.55
# official: 4 GPUs x 6 = batch 24, 100 epochs per step = 84100 39100 iterations (images per step x epochs / batch);
# SGD nesterov, lr 2.5e-3 (step 0) / 2.5e-4, ASPP and heads x10, poly 0.9 with 20%% linear warm-up, pos_weight 35 / 35; steps >= 1:
# BN frozen, dropout off, weight decay 1e-4 on the new head only; loss mBCE + 5 KD + 5 DKD+ + 5 DKD- + AC.
# Test: resize the short side to 512, centre crop 512, sigmoid rule; old = background + earlier classes.
# Official AMP: add --amp fp16 on GPUs. One GPU at the same global batch: NPROC=1 bash <this script>.
# Rerunning the script continues at the first unfinished step (a killed step resumes).
set -euo pipefail
cd "$(dirname "$0")/../../.."
NPROC=${NPROC:-4}
DATA=${DATA:-data/ADEChallengeData2016}
OUT=${OUT:-work_dirs/dkd_ade_overlap_100-50}
"${PYTHON:-python3}" tools/run_incremental.py --incremental ade:100-50:overlap --out "$OUT" --nproc "$NPROC" \
  --backbone "${BACKBONE:-resnet101}" --launcher "${LAUNCHER:-torchrun}" \
  --iterations 84100 39100 --lr 2.5e-3 2.5e-4 --pos-weight 35 35 -- \
  --data "$DATA" --pipeline dkd --crop-size 512 512 --batch-size 24 --weight-decay 1e-4 --nesterov \
  --head-lr-mult 10 --val-per-iters 1000000 --save-per-iters 1000 --warmup-fraction 0.2 --warmup-factor 0.001 "$@"
