#!/usr/bin/env bash
# cityscapes | baseline (no distillation) | student DeepLabV3-ResNet18 | none
# 8 GPUs x 2 images = global batch 16, 40000 iterations, crop 512x1024, SGD lr 0.02 poly 0.9, momentum 0.9
# Published mIoU (val, whole image, single scale): 74.21
# Fewer GPUs: NPROC=2 bash train_scripts/cityscapes/deeplabv3_r18_none.sh (the batch stays global; add --accum-steps to save memory).
# Extra flags are passed on to train_kd.py, e.g. --resume auto; on GPUs --amp bf16 --channels-last (README: bench_step).
set -euo pipefail
cd "$(dirname "$0")/../.."
NPROC=${NPROC:-8}
DATA=${DATA:-data/cityscapes}
ARGS=(
  --kd-method none
  --student-model deeplabv3 --student-backbone resnet18 --student-pretrained-base pretrained_ckpt/resnet18-imagenet.pth
  --dataset citys --data "$DATA" --crop-size 512 1024
  --batch-size 16 --max-iterations 40000
  --lr 0.02 --weight-decay 1e-4
  --val-per-iters 800 --save-per-iters 800
  --save-dir work_dirs/citys_deeplabv3_r18_none --log-dir work_dirs/citys_deeplabv3_r18_none
)
"${PYTHON:-python3}" train_kd.py "${ARGS[@]}" "$@" --preflight-only
torchrun --nproc_per_node "$NPROC" train_kd.py "${ARGS[@]}" "$@"
