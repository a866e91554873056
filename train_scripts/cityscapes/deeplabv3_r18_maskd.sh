#!/usr/bin/env bash
# cityscapes | teacher DeepLabV3-ResNet101 (78.07) | student DeepLabV3-ResNet18 | maskd
# 8 GPUs x 2 images = global batch 16, 40000 iterations, crop 512x1024, SGD lr 0.02 poly 0.9, momentum 0.9
# Published mIoU (val, whole image, single scale): 77.00
# Stage 2 of MasKD: needs the tokens of stage 1 (train_scripts/cityscapes/maskd_tokens_stage1.sh).
# Fewer GPUs: NPROC=2 bash train_scripts/cityscapes/deeplabv3_r18_maskd.sh (the batch stays global; add --accum-steps to save memory).
# Extra flags are passed on to train_kd.py, e.g. --resume auto; on GPUs --amp bf16 --channels-last (README: bench_step).
set -euo pipefail
cd "$(dirname "$0")/../.."
NPROC=${NPROC:-8}
DATA=${DATA:-data/cityscapes}
ARGS=(
  --kd-method maskd
  --teacher-model deeplabv3 --teacher-backbone resnet101 --teacher-pretrained pretrained_ckpt/deeplabv3_resnet101_citys_best_model.pth
  --student-model deeplabv3 --student-backbone resnet18 --student-pretrained-base pretrained_ckpt/resnet18-imagenet.pth
  --dataset citys --data "$DATA" --crop-size 512 1024
  --batch-size 16 --max-iterations 40000
  --lr 0.02 --lr-min 1e-4 --weight-decay 5e-4
  --val-per-iters 400 --save-per-iters 400
  --lambda-maskd 1.0 --pretrained-mask ${MASK_TOKENS:-work_dirs/maskd_tokens_citys/maskd_tokens_deeplabv3_resnet101_citys.pth}
  --save-dir work_dirs/citys_deeplabv3_r18_maskd --log-dir work_dirs/citys_deeplabv3_r18_maskd
)
"${PYTHON:-python3}" train_kd.py "${ARGS[@]}" "$@" --preflight-only
torchrun --nproc_per_node "$NPROC" train_kd.py "${ARGS[@]}" "$@"
