#!/usr/bin/env bash
# cityscapes | teacher DeepLabV3-ResNet101 (78.07) | student DeepLabV3-MobileNetV2 | cirkd
# 8 GPUs x 2 images = global batch 16, 40000 iterations, crop 512x1024, SGD lr 0.02 poly 0.9, momentum 0.9
# Published mIoU (val, whole image, single scale): 75.42
# Fewer GPUs: NPROC=2 bash train_scripts/cityscapes/deeplabv3_mbv2_cirkd.sh (the batch stays global; add --accum-steps to save memory).
# Extra flags are passed on to train_kd.py, e.g. --resume auto; on GPUs --amp bf16 --channels-last (README: bench_step).
set -euo pipefail
cd "$(dirname "$0")/../.."
NPROC=${NPROC:-8}
DATA=${DATA:-data/cityscapes}
ARGS=(
  --kd-method cirkd
  --teacher-model deeplabv3 --teacher-backbone resnet101 --teacher-pretrained pretrained_ckpt/deeplabv3_resnet101_citys_best_model.pth
  --student-model deeplab_mobile --student-backbone mobilenetv2 --student-pretrained-base pretrained_ckpt/mobilenetv2-imagenet.pth
  --dataset citys --data "$DATA" --crop-size 512 1024
  --batch-size 16 --max-iterations 40000
  --lr 0.02 --weight-decay 1e-4
  --val-per-iters 800 --save-per-iters 800
  --lambda-kd 1.0 --lambda-minibatch-pixel 1.0
  --lambda-memory-pixel 0.1 --lambda-memory-region 0.1
  --save-dir work_dirs/citys_deeplabv3_mbv2_cirkd --log-dir work_dirs/citys_deeplabv3_mbv2_cirkd
)
"${PYTHON:-python3}" train_kd.py "${ARGS[@]}" "$@" --preflight-only
torchrun --nproc_per_node "$NPROC" train_kd.py "${ARGS[@]}" "$@"
