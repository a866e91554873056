#!/usr/bin/env bash
# DKD | voc disjoint 19-1 (2 steps) | DeepLabV3-ResNet101 (OS 16) | no memory
# Published (DKD README, released weights, final step): hIoU 57.98, mIoU_all 75.90
# official: 4 GPUs x 8 = batch 32, 60 epochs per step = 18780 1020 iterations (images per step x epochs / batch);
# SGD nesterov, lr 1e-3 (step 0) / 1e-4, ASPP and heads x10, poly 0.9, pos_weight 2 / 1; steps >= 1:
# BN frozen, dropout off, weight decay 1e-4 on the new head only; loss mBCE + 5 KD + 5 DKD+ + 5 DKD- + AC.
# Test: resize the short side to 512, centre crop 512, sigmoid rule; old = background + earlier classes.
# Official AMP: add --amp fp16 on GPUs. One GPU at the same global batch: NPROC=1 bash <this script>.
# Rerunning the script continues at the first unfinished step (a killed step resumes).
set -euo pipefail
cd "$(dirname "$0")/../../.."
NPROC=${NPROC:-4}
DATA=${DATA:-data/VOCdevkit/VOC2012}
OUT=${OUT:-work_dirs/dkd_voc_disjoint_19-1}
"${PYTHON:-python3}" tools/run_incremental.py --incremental voc:19-1:disjoint --out "$OUT" --nproc "$NPROC" \
  --backbone "${BACKBONE:-resnet101}" --launcher "${LAUNCHER:-torchrun}" \
  --iterations 18780 1020 --lr 1e-3 1e-4 --pos-weight 2 1 -- \
  --data "$DATA" --pipeline dkd --crop-size 512 512 --batch-size 32 --weight-decay 1e-4 --nesterov \
  --head-lr-mult 10 --val-per-iters 1000000 --save-per-iters 1000 "$@"
