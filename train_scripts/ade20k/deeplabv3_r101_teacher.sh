#!/usr/bin/env bash
# ade20k | teacher DeepLabV3-ResNet101 trained without distillation (released file: 42.70 mIoU)
# 8 GPUs x 2 = global batch 16, 40000 iterations, crop 512x512 (the CIRKD maintainer reports the released
# Cityscapes teacher used 80k iterations at batch 8); writes deeplabv3_resnet101_ade20k_best_model.pth
set -euo pipefail
cd "$(dirname "$0")/../.."
NPROC=${NPROC:-8}
DATA=${DATA:-data/ADEChallengeData2016}
ARGS=(
  --kd-method none
  --student-model deeplabv3 --student-backbone resnet101 --student-pretrained-base pretrained_ckpt/resnet101-imagenet.pth
  --dataset ade20k --data "$DATA" --crop-size 512 512 --batch-size 16 --max-iterations 40000
  --lr 0.02 --weight-decay 1e-4 --save-dir work_dirs/ade20k_teacher_deeplabv3_r101
)
"${PYTHON:-python3}" train_kd.py "${ARGS[@]}" "$@" --preflight-only
torchrun --nproc_per_node "$NPROC" train_kd.py "${ARGS[@]}" "$@"
