#!/usr/bin/env bash
# camvid | teacher DeepLabV3-ResNet101 (69.84) | student PSPNet-ResNet18 | af_dcd
# 8 GPUs x 2 images = global batch 16, 40000 iterations, crop 360x360, SGD lr 0.02 poly 0.9, momentum 0.9
# Published mIoU (val, whole image, single scale): 69.48
# Official: OSVAI/Af-DCD train_scripts (losses/ocmgd.py); grad-clip 15 on the loss module.
# Fewer GPUs: NPROC=2 bash train_scripts/camvid/psp_r18_af_dcd.sh (the batch stays global; add --accum-steps to save memory).
# Extra flags are passed on to train_kd.py, e.g. --resume auto; on GPUs --amp bf16 --channels-last (README: bench_step).
set -euo pipefail
cd "$(dirname "$0")/../.."
NPROC=${NPROC:-8}
DATA=${DATA:-data/CamVid}
ARGS=(
  --kd-method af_dcd
  --teacher-model deeplabv3 --teacher-backbone resnet101 --teacher-pretrained pretrained_ckpt/deeplabv3_resnet101_camvid_best_model.pth
  --student-model psp --student-backbone resnet18 --student-pretrained-base pretrained_ckpt/resnet18-imagenet.pth
  --dataset camvid --data "$DATA" --crop-size 360 360
  --batch-size 16 --max-iterations 40000
  --lr 0.02 --weight-decay 1e-4
  --val-per-iters 800 --save-per-iters 800
  --lambda-kd 1.0
  --lambda-fd 8e-6
  --lambda-ctr 0.01
  --save-dir work_dirs/camvid_psp_r18_af_dcd --log-dir work_dirs/camvid_psp_r18_af_dcd
)
"${PYTHON:-python3}" train_kd.py "${ARGS[@]}" "$@" --preflight-only
torchrun --nproc_per_node "$NPROC" train_kd.py "${ARGS[@]}" "$@"
