#!/usr/bin/env bash
# ade20k | teacher DeepLabV3-ResNet101 (42.70) | student DeepLabV3-ResNet18 | af_dcd
# 8 GPUs x 2 images = global batch 16, 40000 iterations, crop 512x512, SGD lr 0.02 poly 0.9, momentum 0.9
# Published mIoU (val, whole image, single scale): 36.21
# Official: OSVAI/Af-DCD train_scripts (losses/ocmgd.py); grad-clip 15 on the loss module.
# Fewer GPUs: NPROC=2 bash train_scripts/ade20k/deeplabv3_r18_af_dcd.sh (the batch stays global; add --accum-steps to save memory).
# Extra flags are passed on to train_kd.py, e.g. --resume auto; on GPUs --amp bf16 --channels-last (README: bench_step).
set -euo pipefail
cd "$(dirname "$0")/../.."
NPROC=${NPROC:-8}
DATA=${DATA:-data/ADEChallengeData2016}
ARGS=(
  --kd-method af_dcd
  --teacher-model deeplabv3 --teacher-backbone resnet101 --teacher-pretrained pretrained_ckpt/deeplabv3_resnet101_ade20k_best_model.pth
  --student-model deeplabv3 --student-backbone resnet18 --student-pretrained-base pretrained_ckpt/resnet18-imagenet.pth
  --dataset ade20k --data "$DATA" --crop-size 512 512
  --batch-size 16 --max-iterations 40000
  --lr 0.02 --weight-decay 1e-4
  --val-per-iters 800 --save-per-iters 800
  --lambda-kd 0.5
  --lambda-fd 1e-6
  --lambda-ctr 0.04
  --save-dir work_dirs/ade20k_deeplabv3_r18_af_dcd --log-dir work_dirs/ade20k_deeplabv3_r18_af_dcd
)
"${PYTHON:-python3}" train_kd.py "${ARGS[@]}" "$@" --preflight-only
torchrun --nproc_per_node "$NPROC" train_kd.py "${ARGS[@]}" "$@"
